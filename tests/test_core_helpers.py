import numpy as np
import pytest
import torch

from utils import checks, plotting, seeding


def test_seed_everything_reproducible():
    g1 = seeding.seed_everything(5)
    a = (torch.rand(3), np.random.rand(2), torch.rand(2, generator=g1))
    g2 = seeding.seed_everything(5)
    b = (torch.rand(3), np.random.rand(2), torch.rand(2, generator=g2))
    for u, v in zip(a, b):
        assert np.allclose(np.asarray(u), np.asarray(v))
    with pytest.raises(ValueError):
        seeding.seed_everything(-1)
    with pytest.raises(ValueError):
        seeding.seed_everything(1.5)


def test_checks():
    t = checks.as_float_tensor([[1, 2], [3, 4]], "x", ndim=2)
    assert t.dtype == torch.float32
    with pytest.raises(TypeError, match="bool"):
        checks.as_float_tensor(torch.tensor([True]), "x")
    with pytest.raises(TypeError, match="real numbers"):
        checks.as_float_tensor(["a"], "x")
    with pytest.raises(ValueError, match="x must have 2 dimensions"):
        checks.as_float_tensor(torch.zeros(3), "x", ndim=2)
    with pytest.raises(ValueError, match="inf"):
        checks.as_float_tensor([1.0, float("inf")], "x")
    s = checks.check_sigma(torch.tensor([0.1, 0.2]), n=2)
    assert s.dtype == torch.float64
    with pytest.raises(ValueError, match="positive"):
        checks.check_sigma(torch.tensor([0.1, 0.0]))
    with pytest.raises(TypeError):
        checks.check_positive_int(2.0, "steps")
    with pytest.raises(ValueError):
        checks.check_positive_int(0, "steps")


def test_plotting_grid_and_errors():
    import matplotlib
    matplotlib.use("Agg")
    plotting.set_style()
    imgs = torch.rand(5, 1, 4, 4) * 2 - 1
    fig = plotting.image_grid(imgs, ncols=3, titles=[str(i) for i in range(5)])
    assert len(fig.axes) == 6
    disp = plotting.to_display(imgs)
    assert disp.shape == (5, 4, 4) and disp.min() >= 0 and disp.max() <= 1
    assert plotting.vectors_as_images(torch.zeros(3, 16), (1, 4, 4)).shape == (3, 1, 4, 4)
    fig = plotting.image_grid(torch.randn(2, 1, 3, 3) * 10, normalize=True)
    with pytest.raises(ValueError, match="channels"):
        plotting.to_display(torch.zeros(2, 2, 4, 4))
    with pytest.raises(ValueError, match="pixels"):
        plotting.vectors_as_images(torch.zeros(3, 15), (1, 4, 4))
    import matplotlib.pyplot as plt
    plt.close("all")


def test_lazy_submodules():
    import utils
    assert utils.metrics.spikiness is not None
    with pytest.raises(AttributeError, match="submodules"):
        utils.not_a_module
