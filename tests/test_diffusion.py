import math

import numpy as np
import pytest
import torch

from utils import diffusion, metrics


def naive_f_emp(y, X, sigma):
    y, X = y.double(), X.double()
    d2 = ((y[:, None, :] - X[None]) ** 2).sum(-1)
    w = torch.softmax(-d2 / (2 * sigma ** 2), dim=1)
    return w @ X


def test_matches_definition_at_moderate_sigma():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(20, 16, generator=g) * 2 - 1
    y = X[:5] + 0.5 * torch.randn(5, 16, generator=g)
    out = diffusion.empirical_denoiser(y, X, 0.5)
    assert out.dtype == torch.float32 and out.shape == (5, 16)
    torch.testing.assert_close(out.double(), naive_f_emp(y, X, 0.5), atol=1e-6, rtol=1e-5)


def test_stable_for_tiny_sigma_and_large_d():
    g = torch.Generator().manual_seed(1)
    d = 4096
    X = (torch.rand(50, d, generator=g) * 2 - 1).float()
    y = X[7] + 1e-3 * torch.randn(d, generator=g)
    y = y[None].float()
    out = diffusion.empirical_denoiser(y, X, 1e-3)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0], X[7], atol=1e-6, rtol=0)
    # a naive float32 implementation breaks here (exp underflows to 0/0)
    d2 = ((y - X) ** 2).sum(1)
    naive = torch.exp(-d2 / (2 * 1e-6))
    assert naive.sum() == 0


def test_weights_between_two_points_exact():
    # two points at +-a along one axis: f_emp(0 + t e1) = a * tanh(a t / sigma^2)
    a, t, s = 1.0, 0.03, 0.1
    X = torch.tensor([[a, 0.0], [-a, 0.0]])
    out = diffusion.empirical_denoiser(torch.tensor([[t, 0.0]]), X, s)
    assert out[0, 0].item() == pytest.approx(a * math.tanh(a * t / s ** 2), rel=1e-5)


def test_images_and_per_row_sigma():
    X = torch.rand(10, 1, 4, 4) * 2 - 1
    y = X[:3] + 0.01
    out = diffusion.empirical_denoiser(y, X, torch.tensor([0.01, 0.5, 5.0]))
    assert out.shape == (3, 1, 4, 4)
    torch.testing.assert_close(out[0], X[0], atol=1e-3, rtol=0)
    # at huge sigma the weights are uniform: the output is the training mean
    big = diffusion.empirical_denoiser(y, X, 1e4)
    torch.testing.assert_close(big[0], X.mean(0), atol=1e-4, rtol=0)


def test_empirical_denoiser_bad_input():
    X = torch.zeros(4, 3)
    with pytest.raises(ValueError, match="trailing shape"):
        diffusion.empirical_denoiser(torch.zeros(2, 5), X, 0.1)
    with pytest.raises(ValueError, match="positive"):
        diffusion.empirical_denoiser(torch.zeros(2, 3), X, 0.0)
    with pytest.raises(ValueError, match="positive"):
        diffusion.empirical_denoiser(torch.zeros(2, 3), X, -1.0)
    with pytest.raises(ValueError, match="NaN"):
        diffusion.empirical_denoiser(torch.tensor([[0.0, float("nan"), 0]]), X, 0.1)
    with pytest.raises(ValueError, match="NaN"):
        diffusion.empirical_denoiser(torch.zeros(2, 3), X, float("nan"))
    with pytest.raises(ValueError, match="empty"):
        diffusion.empirical_denoiser(torch.zeros(2, 3), torch.zeros(0, 3), 0.1)
    with pytest.raises(ValueError, match="entries but the batch"):
        diffusion.empirical_denoiser(torch.zeros(2, 3), X, torch.ones(3))
    with pytest.raises(TypeError):
        diffusion.empirical_denoiser(torch.zeros(2, 3), X, True)


def test_noise_levels():
    s = diffusion.noise_levels(2.0, 0.02, 60)
    assert len(s) == 60 and s[0].item() == pytest.approx(2.0) and s[-1].item() == pytest.approx(0.02)
    ratios = s[1:] / s[:-1]
    torch.testing.assert_close(ratios, ratios[0].expand_as(ratios))
    with pytest.raises(ValueError, match="smaller"):
        diffusion.noise_levels(0.1, 0.2)
    with pytest.raises(ValueError, match="steps"):
        diffusion.noise_levels(2.0, 0.02, 1)


@pytest.mark.parametrize("stochastic", [True, False])
def test_sampling_with_f_emp_returns_training_points(stochastic):
    g = torch.Generator().manual_seed(3)
    X = torch.rand(12, 1, 6, 6, generator=g) * 2 - 1
    den = lambda x, s: diffusion.empirical_denoiser(x, X, s)
    out = diffusion.sample_ve(den, (16, 1, 6, 6), stochastic=stochastic, seed=0)
    assert out.shape == (16, 1, 6, 6) and out.dtype == torch.float32
    assert metrics.copy_test(out, X).copy_fraction == 1.0
    again = diffusion.sample_ve(den, (16, 1, 6, 6), stochastic=stochastic, seed=0)
    torch.testing.assert_close(out, again, atol=0, rtol=0)
    other = diffusion.sample_ve(den, (16, 1, 6, 6), stochastic=stochastic, seed=1)
    assert not torch.equal(out, other)


def test_gaussian_data_ancestral_sampler_matches_variance():
    # for N(0, v I) data the exact denoiser is linear: x0 = v/(v+s^2) y; samples must have variance v
    v = 0.25
    den = lambda x, s: v / (v + s ** 2) * x
    out = diffusion.sample_ve(den, (4000, 2), sigma_max=20.0, sigma_min=0.01, steps=200,
                              clip=False, seed=0)
    assert out.var().item() == pytest.approx(v, rel=0.08)
    det = diffusion.sample_ve(den, (4000, 2), sigma_max=20.0, sigma_min=0.01, steps=200,
                              stochastic=False, clip=False, seed=0)
    assert det.var().item() == pytest.approx(v, rel=0.08)


def test_trajectory_and_clip():
    X = torch.rand(5, 3) * 2 - 1
    den = lambda x, s: 3 * diffusion.empirical_denoiser(x, X, s)
    out, traj = diffusion.sample_ve(den, (4, 3), steps=10, return_trajectory=True)
    assert traj["sigmas"].shape == (10,) and traj["x"].shape == (10, 4, 3) and traj["x0"].shape == (10, 4, 3)
    assert out.abs().max() <= 1.0
    torch.testing.assert_close(out, traj["x0"][-1])


def test_sample_ve_bad_input():
    with pytest.raises(TypeError, match="callable"):
        diffusion.sample_ve(None, (2, 3))
    with pytest.raises(ValueError, match="shape"):
        diffusion.sample_ve(lambda x, s: x, (3,))
    with pytest.raises(ValueError, match="expected a tensor of shape"):
        diffusion.sample_ve(lambda x, s: x[:1], (2, 3))
    with pytest.raises(ValueError, match="NaN"):
        diffusion.sample_ve(lambda x, s: x * float("nan"), (2, 3))
    with pytest.raises(ValueError, match="sigma_min"):
        diffusion.sample_ve(lambda x, s: x, (2, 3), sigma_min=-1)


def test_empirical_jacobian_matches_autograd_and_vanishes_on_a_stored_point():
    from utils.diffusion import empirical_denoiser, empirical_jacobian
    g = torch.Generator().manual_seed(0)
    X = torch.randn(12, 5, generator=g).double()
    y = torch.randn(3, 5, generator=g).double()
    J = empirical_jacobian(y, X, 0.8)
    assert J.shape == (3, 5, 5) and torch.allclose(J, J.transpose(1, 2))
    def f_emp(v):                                    # a differentiable copy of the definition
        return torch.softmax(-((v - X) ** 2).sum(1) / (2 * 0.8 ** 2), dim=0) @ X

    assert torch.allclose(f_emp(y[0]), empirical_denoiser(y[:1], X, 0.8)[0])
    for i in range(3):
        auto = torch.autograd.functional.jacobian(f_emp, y[i])
        assert torch.allclose(J[i], auto, atol=1e-10)
    assert (torch.linalg.eigvalsh(J) > -1e-12).all()
    at_point = empirical_jacobian(X[:1] + 1e-3, X, 0.05)            # posterior on one point
    assert at_point.abs().max() < 1e-8
    with pytest.raises(ValueError, match="features"):
        empirical_jacobian(y[:, :4], X, 0.8)
