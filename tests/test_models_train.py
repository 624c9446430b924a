"""Tests of utils.models.ReLUDAE and utils.train.fit_dae, including the two regime signatures."""
import numpy as np
import pytest
import torch

from utils import gmm
from utils.data import gaussian_mixture
from utils.metrics import cosine_matrix, participation_ratio, spikiness
from utils.models import ReLUDAE
from utils.train import dae_defaults, fit_dae


def test_relu_dae_shapes_and_tying():
    x = torch.randn(7, 12)
    tied, untied = ReLUDAE(12, 5), ReLUDAE(12, 5, tied=False)
    for m in (tied, untied):
        assert m(x).shape == (7, 12)
        h = m.encode(x)
        assert h.shape == (7, 5) and (h >= 0).all()
        assert m.encoder_weight.shape == (5, 12)
        assert torch.allclose(m(x), h @ m.decoder_weight)
    assert tied.decoder_weight is tied.encoder_weight
    assert len(list(tied.parameters())) == 1 and len(list(untied.parameters())) == 2
    # f(x) = W2 relu(W1^T x) written out
    W = tied.encoder_weight.detach()
    assert torch.allclose(tied(x), torch.relu(x @ W.T) @ W, atol=1e-6)
    assert torch.equal(ReLUDAE(12, 5, seed=3).encoder_weight, ReLUDAE(12, 5, seed=3).encoder_weight)


def test_relu_dae_bad_inputs():
    m = ReLUDAE(4, 3)
    with pytest.raises(ValueError, match="features"):
        m(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="dimensions"):
        m(torch.zeros(4))
    with pytest.raises(ValueError, match=">= 1"):
        ReLUDAE(0, 3)
    with pytest.raises(TypeError):
        ReLUDAE(4.5, 3)


def test_fit_dae_validates_inputs():
    m = ReLUDAE(4, 3)
    X = torch.randn(10, 4)
    with pytest.raises(ValueError, match="columns"):
        fit_dae(m, torch.randn(10, 5), sigma=0.1)
    with pytest.raises(ValueError, match="NaN"):
        fit_dae(m, torch.full((3, 4), float("nan")), sigma=0.1)
    with pytest.raises(ValueError, match="dimensions"):
        fit_dae(m, torch.randn(4), sigma=0.1)
    with pytest.raises(ValueError, match="sigma"):
        fit_dae(m, X, sigma=0)
    with pytest.raises(ValueError, match="steps"):
        fit_dae(m, X, sigma=0.1, steps=0)
    with pytest.raises(ValueError, match="weight_decay"):
        fit_dae(m, X, sigma=0.1, weight_decay=-1.0)
    with pytest.raises(ValueError, match="lr"):
        fit_dae(m, X, sigma=0.1, lr=0)
    with pytest.raises(TypeError, match="model"):
        fit_dae("not a model", X, sigma=0.1)


def test_fit_dae_is_seeded_and_decreases_the_loss():
    X = torch.rand(40, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    runs = []
    for _ in range(2):
        m = ReLUDAE(16, 8, seed=1)
        losses = fit_dae(m, X, sigma=0.2, steps=200, seed=4)
        runs.append(m.encoder_weight.detach().clone())
    assert len(losses) == 200 and np.isfinite(losses).all()
    assert np.mean(losses[-20:]) < 0.7 * np.mean(losses[:5])
    assert torch.equal(runs[0], runs[1])
    untied = ReLUDAE(16, 8, tied=False, seed=1)
    ul = fit_dae(untied, X, sigma=0.2, steps=200)
    assert np.mean(ul[-20:]) < 0.7 * np.mean(ul[:5])
    threads = torch.get_num_threads()
    assert len(fit_dae(ReLUDAE(16, 8), X, sigma=0.2, steps=5, progress=True)) == 5
    assert torch.get_num_threads() == threads          # fit_dae restores the thread setting


def test_defaults_depend_on_sizes():
    small, big = dae_defaults(5, 256, 100), dae_defaults(20000, 1024, 256)
    assert small["steps"] >= big["steps"] >= 600
    assert small["sparsity"] > big["sparsity"] > 0
    assert big["lr"] <= small["lr"]      # equal: the generalization regime doubles lr at d = 1024


def test_memorization_signature_with_defaults():
    """n = 5 well-separated samples, p = 40 > n: each sample gets its own neuron."""
    d, p, sigma = 64, 40, 0.2
    X = torch.rand(5, d, generator=torch.Generator().manual_seed(3)) * 2 - 1
    m = ReLUDAE(d, p, seed=0)
    fit_dae(m, X, sigma=sigma)
    W = m.encoder_weight.detach()
    best = cosine_matrix(X, W).max(1)                  # best neuron for each sample
    assert (best >= 0.9).mean() >= 0.8, best
    noisy = X + sigma * torch.randn(X.shape, generator=torch.Generator().manual_seed(9))
    for inp in (X, noisy):
        H = m.encode(inp).detach()
        assert np.median(spikiness(H, "top1_share")) >= 0.6
        assert np.median(participation_ratio(H)) <= 2.5
    # the denoiser pulls a noisy training input back to its sample
    err = (m(noisy).detach() - X).norm(dim=1) / (noisy - X).norm(dim=1)
    assert (err < 0.5).all(), err


def test_generalization_signature_with_defaults():
    """n = 3000 points of a 3-cluster rank-3 mixture in d = 48 with p = 48 neurons."""
    d, p, sigma = 48, 48, 0.2
    X, _, P = gaussian_mixture(3000, d, 3, 3, seed=11, return_params=True)
    Xte, _ = gaussian_mixture(2000, d, 3, 3, seed=11, sample_seed=12)
    m = ReLUDAE(d, p, seed=0)
    fit_dae(m, X, sigma=sigma)
    train = gmm.denoising_mse(m, X[:2000], sigma, seed=3)
    test = gmm.denoising_mse(m, Xte, sigma, seed=4)
    bayes = gmm.bayes_mse(P, sigma, n=4000, seed=5)
    assert abs(test - train) <= 0.1 * train, (train, test)
    assert test <= 2 * bayes, (test, bayes)
    H = m.encode(Xte).detach()
    assert np.median(spikiness(H, "top1_share")) <= 0.35
    assert np.median(participation_ratio(H)) >= 6


def test_split_parallel_keeps_the_function_and_checks_its_input():
    from utils.models import ReLUDAE, split_parallel
    m = ReLUDAE(7, 5, seed=3)
    y = torch.randn(20, 7, generator=torch.Generator().manual_seed(0))
    s = split_parallel(m, [1, 4], (0.6, 0.8))
    assert s.p == 7
    assert torch.allclose(m(y), s(y), atol=1e-6)
    assert torch.allclose(s.encoder_weight[3], 0.6 * m.encoder_weight[1])
    assert torch.allclose(s.encoder_weight[6], 0.8 * m.encoder_weight[4])
    with pytest.raises(ValueError, match="squares sum to 1"):
        split_parallel(m, [1], (0.5, 0.5))
    with pytest.raises(ValueError, match="distinct"):
        split_parallel(m, [1, 1])
    with pytest.raises(TypeError, match="tied"):
        split_parallel(ReLUDAE(7, 5, tied=False), [1])
