"""Tests for utils.models.ReLUDiffusion, utils.train.fit_diffusion and utils.quality."""
import math

import numpy as np
import pytest
import torch

from utils.data import load_images
from utils.diffusion import sample_ve
from utils.metrics import copy_test, cosine_matrix
from utils.models import ReLUDiffusion
from utils.quality import DigitClassifier, manifold_precision, relative_confidence
from utils.train import fit_diffusion


# ------------------------------------------------------------------ model: shapes and contract
def test_shapes_float_and_vector_sigma():
    m = ReLUDiffusion(12, 7, seed=1)
    x = torch.randn(5, 12)
    assert m(x, 0.3).shape == (5, 12)
    h = m.encode(x, 0.3)
    assert h.shape == (5, 7) and bool((h >= 0).all())
    s = torch.tensor([0.1, 0.3, 0.5, 1.0, 2.0])
    per_row = torch.stack([m(x[i:i + 1], float(s[i]))[0] for i in range(5)])
    assert torch.allclose(m(x, s), per_row, atol=1e-6)
    assert torch.allclose(m.encode(x, s)[2], m.encode(x[2:3], 0.5)[0], atol=1e-6)


def test_image_input_keeps_shape_and_tied_weights():
    m = ReLUDiffusion(16, 4)
    x = torch.randn(3, 1, 4, 4)
    out = m(x, 0.5)
    assert out.shape == (3, 1, 4, 4)
    assert torch.allclose(out.reshape(3, 16), m(x.reshape(3, 16), 0.5))
    assert m.decoder_weight is m.encoder_weight


def test_time_scaling_is_multiplicative_exp_of_g():
    m = ReLUDiffusion(10, 6, seed=2)
    with torch.no_grad():
        m.time_out.bias.fill_(0.7)
    x = torch.randn(4, 10)
    h1, h2 = m.encode(x, 0.2), m.encode(x, 1.5)
    alive = (h1 > 0) & (h2 > 0)
    assert alive.any()
    # the same units fire at every sigma; only their scale exp(g(log sigma)) changes
    assert torch.equal(h1 > 0, h2 > 0)
    r = (h2[alive] / h1[alive])
    scale = torch.exp(m.log_scale(torch.log(torch.tensor([1.5]))) - m.log_scale(torch.log(torch.tensor([0.2]))))[0]
    cols = alive.nonzero()[:, 1]
    assert torch.allclose(r, scale[cols], rtol=1e-5)


def test_c_skip_range_and_default_init():
    m = ReLUDiffusion(8, 3)
    cs = m.c_skip(torch.tensor([0.02, 0.5, 2.0]))
    assert bool(((cs > 0) & (cs < 1)).all())
    assert math.isclose(float(m.c_skip(0.5)), 0.5, rel_tol=1e-5)   # EDM: sd^2/(s^2+sd^2) at s=sd
    assert cs[0] > cs[1] > cs[2]


@pytest.mark.parametrize("sigma", [0.0, -0.1, float("nan"), float("inf")])
def test_bad_sigma_raises(sigma):
    m = ReLUDiffusion(6, 3)
    with pytest.raises(ValueError, match="sigma"):
        m(torch.zeros(2, 6), sigma)
    with pytest.raises(ValueError, match="sigma"):
        m.encode(torch.zeros(2, 6), sigma)


def test_bad_inputs_raise():
    m = ReLUDiffusion(6, 3)
    with pytest.raises(ValueError, match="d=6"):
        m(torch.zeros(2, 5), 0.1)
    with pytest.raises(ValueError, match="3 entries but the batch has 2"):
        m(torch.zeros(2, 6), torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="sigma must be positive"):
        m(torch.zeros(2, 6), torch.tensor([0.1, 0.0]))
    with pytest.raises(ValueError, match="NaN"):
        m(torch.tensor([[float("nan")] * 6]), 0.1)
    with pytest.raises(ValueError, match="dimensions"):
        m(torch.zeros(6), 0.1)
    with pytest.raises(TypeError):
        m(torch.zeros(2, 6), True)
    with pytest.raises(ValueError, match="p must be"):
        ReLUDiffusion(6, 0)
    with pytest.raises(TypeError):
        ReLUDiffusion(6.5, 3)


# ------------------------------------------------------------------ fit_diffusion
def test_fit_reduces_loss_is_seeded_and_sets_center():
    X = torch.rand(40, 8) * 2 - 1
    m1, m2 = ReLUDiffusion(8, 16, seed=0), ReLUDiffusion(8, 16, seed=0)
    l1 = fit_diffusion(m1, X, steps=200, seed=3)
    l2 = fit_diffusion(m2, X, steps=200, seed=3)
    assert l1 == l2 and len(l1) == 200
    assert np.mean(l1[-20:]) < 0.5 * np.mean(l1[:20])
    assert all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters()))
    assert not m1.training


def test_fit_bad_inputs_raise():
    m = ReLUDiffusion(4, 3)
    X = torch.zeros(10, 4)
    with pytest.raises(ValueError, match="sigma_min"):
        fit_diffusion(m, X, sigma_min=2.0, sigma_max=1.0, steps=1)
    with pytest.raises(ValueError, match="sigma_min"):
        fit_diffusion(m, X, sigma_min=0.0, steps=1)
    with pytest.raises(ValueError, match="d=4"):
        fit_diffusion(m, torch.zeros(10, 5), steps=1)
    with pytest.raises(ValueError, match="NaN"):
        fit_diffusion(m, torch.full((10, 4), float("nan")), steps=1)
    with pytest.raises(ValueError, match="steps"):
        fit_diffusion(m, X, steps=0)
    with pytest.raises(ValueError, match="lr"):
        fit_diffusion(m, X, steps=1, lr=0.0)
    with pytest.raises(ValueError, match="weight_decay"):
        fit_diffusion(m, X, steps=1, weight_decay=-1.0)
    with pytest.raises(TypeError):
        fit_diffusion("not a model", X)


# ------------------------------------------------------------------ quality
def test_manifold_precision():
    X = load_images("digits").reshape(-1, 64)
    assert manifold_precision(X[:100], X[100:600], k=3) > 0.7
    noise = torch.rand(50, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert manifold_precision(noise, X[100:600], k=3) == 0.0
    with pytest.raises(ValueError, match="k must"):
        manifold_precision(noise, X[:3], k=3)
    with pytest.raises(ValueError, match="pixels"):
        manifold_precision(torch.zeros(2, 10), X[:10], k=2)


def test_digit_classifier():
    X, y = load_images("digits", return_labels=True)
    clf = DigitClassifier().fit(X[:1000], y[:1000])
    assert clf.accuracy(X[1000:], y[1000:]) > 0.9
    conf_real = clf.confidence(X[1000:1300]).mean()
    noise = torch.rand(300, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert conf_real > clf.confidence(noise).mean() + 0.2
    with pytest.raises(RuntimeError):
        DigitClassifier().confidence(X[:2])
    with pytest.raises(ValueError, match="pixels"):
        clf.confidence(torch.zeros(2, 10))
    with pytest.raises(ValueError, match="labels"):
        DigitClassifier().fit(X[:10], y[:9])


# ------------------------------------------------------------------ the two regimes (reduced size)
def test_memorizing_vs_generalizing_regimes():
    """A handful of separable digits -> copies; a thousand -> new, digit-like samples."""
    torch.manual_seed(0)
    X, y = load_images("digits", return_labels=True)
    X = X.reshape(len(X), -1)
    perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(11))
    train, held = perm[:1300], perm[1300:]
    few = torch.stack([train[y[train] == k][0] for k in range(6)])      # one image per class
    m_mem = ReLUDiffusion(64, 64, seed=5)
    fit_diffusion(m_mem, X[few], seed=5)
    s_mem = sample_ve(m_mem, (60, 64), seed=21)
    ct = copy_test(s_mem, X[few])
    cos = cosine_matrix(s_mem, X[few]).max(1)
    assert (ct.is_copy | (cos >= 0.95)).mean() >= 0.9

    m_gen = ReLUDiffusion(64, 64, seed=5)
    fit_diffusion(m_gen, X[train], seed=5)
    s_gen = sample_ve(m_gen, (60, 64), seed=21)
    ct = copy_test(s_gen, X[train])
    cos = cosine_matrix(s_gen, X[train]).max(1)
    assert (ct.is_copy | (cos >= 0.95)).mean() <= 0.1
    # "looks like the data": inside the real digits' neighbourhoods, and clearly above noise for
    # a classifier trained on held-out digits (chapter 7 reports both measures)
    assert manifold_precision(s_gen, X[held], k=3) >= 0.5
    clf = DigitClassifier().fit(X[held], y[held])
    assert relative_confidence(clf, s_gen, X[train[:300]], seed=1) >= 0.25
