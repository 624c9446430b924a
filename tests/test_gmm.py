"""Tests of utils.gmm: the closed-form Bayes denoiser of a mixture of low-rank Gaussians."""
import math

import numpy as np
import pytest
import torch

from utils import gmm
from utils.data import MixtureParams, gaussian_mixture
from utils.diffusion import empirical_denoiser


def _small_params(noise_std=0.0, seed=0):
    rng = np.random.default_rng(seed)
    k, d, r = 3, 4, 2
    bases = np.stack([np.linalg.qr(rng.standard_normal((d, r)))[0] for _ in range(k)])
    t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return MixtureParams(t(rng.standard_normal((k, d))), t(bases), t(rng.uniform(0.3, 1.0, (k, r))),
                         t([0.5, 0.3, 0.2]), noise_std)


def _dense_posterior_mean(y, P, sigma):
    """Reference with dense d x d covariances and explicit inverses/determinants."""
    y = y.double().numpy()
    covs = P.covariances().numpy()
    d = y.shape[1]
    logs, posts = [], []
    for j in range(P.k):
        mu = P.means[j].double().numpy()
        C = covs[j] + sigma ** 2 * np.eye(d)
        Ci = np.linalg.inv(C)
        r = y - mu
        logs.append(math.log(float(P.weights[j])) - 0.5 * np.einsum("md,de,me->m", r, Ci, r)
                    - 0.5 * np.linalg.slogdet(C)[1] - 0.5 * d * math.log(2 * math.pi))
        posts.append(mu + r @ Ci.T @ covs[j].T)
    L = np.stack(logs, 1)
    w = np.exp(L - L.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    return np.einsum("mk,kmd->md", w, np.stack(posts)), L


@pytest.mark.parametrize("noise_std", [0.0, 0.15])
def test_matches_dense_formula(noise_std):
    P = _small_params(noise_std)
    y = torch.randn(7, 4, generator=torch.Generator().manual_seed(1)) * 1.5
    want, L = _dense_posterior_mean(y, P, 0.4)
    got, pi = gmm.mixture_denoiser(y, P, 0.4, return_responsibilities=True)
    assert np.allclose(got.double().numpy(), want, atol=1e-5)
    assert np.allclose(gmm.component_log_likelihoods(y, P, 0.4).numpy(), L, atol=1e-8)
    assert np.allclose(pi.sum(1).numpy(), 1.0)


def test_matches_brute_force_monte_carlo():
    """E[x | y] by self-normalized importance sampling over 400k prior draws."""
    P = _small_params(0.1, seed=3)
    sigma = 0.5
    X, _ = P.sample(400_000, seed=5)
    X = X.double()
    y = torch.tensor([[0.3, -0.2, 0.5, 0.1], [-1.0, 0.4, 0.0, 0.8]], dtype=torch.float64)
    logw = -((y[:, None, :] - X[None]) ** 2).sum(-1) / (2 * sigma ** 2)
    w = torch.softmax(logw, dim=1)
    brute = w @ X
    got = gmm.mixture_denoiser(y, P, sigma).double()
    assert torch.allclose(got, brute, atol=0.02), (got, brute)


def test_single_gaussian_is_wiener_filter():
    P = _small_params(0.0)
    one = MixtureParams(P.means[:1], P.bases[:1], P.scales[:1], torch.ones(1), 0.0)
    y = torch.randn(5, 4, generator=torch.Generator().manual_seed(2))
    sigma = 0.3
    C = one.covariances()[0]
    mu = one.means[0].double()
    wiener = mu + (y.double() - mu) @ torch.linalg.solve(C + sigma ** 2 * torch.eye(4, dtype=torch.float64), C).T
    assert torch.allclose(gmm.mixture_denoiser(y, one, sigma).double(), wiener, atol=1e-5)
    direct = gmm.gaussian_denoiser(y, one.means[0], one.bases[0], one.scales[0], sigma)
    assert torch.allclose(direct, wiener, atol=1e-10)
    # its exact error equals the Monte Carlo error
    X, _ = one.sample(40_000, seed=4)
    mc = gmm.denoising_mse(lambda v: gmm.mixture_denoiser(v, one, sigma), X, sigma, seed=1)
    exact = gmm.gaussian_mse(one.scales[0], sigma)
    assert abs(mc - exact) < 0.03 * exact


def test_stable_for_tiny_sigma_and_large_d():
    X, _, P = gaussian_mixture(20, 1024, 5, 4, seed=0, return_params=True)
    y = X + 1e-3 * torch.randn(X.shape, generator=torch.Generator().manual_seed(0))
    out, pi = gmm.mixture_denoiser(y, P, 1e-3, return_responsibilities=True)
    assert torch.isfinite(out).all() and torch.isfinite(pi).all()
    assert ((out - X).norm(dim=1) < 0.05).all()


def test_beats_empirical_denoiser_on_fresh_data():
    Xtr, _, P = gaussian_mixture(50, 32, 3, 4, seed=2, return_params=True)
    Xte, _ = gaussian_mixture(2000, 32, 3, 4, seed=2, sample_seed=9)
    sigma = 0.5
    bayes = gmm.denoising_mse(lambda v: gmm.mixture_denoiser(v, P, sigma), Xte, sigma, seed=0)
    emp = gmm.denoising_mse(lambda v: empirical_denoiser(v, Xtr, sigma), Xte, sigma, seed=0)
    assert bayes < 0.75 * emp
    assert abs(gmm.bayes_mse(P, sigma, n=2000, seed=3) - bayes) < 0.1 * bayes


def test_bad_inputs():
    P = _small_params()
    with pytest.raises(ValueError, match="features"):
        gmm.mixture_denoiser(torch.zeros(2, 5), P, 0.1)
    with pytest.raises(ValueError, match="sigma"):
        gmm.mixture_denoiser(torch.zeros(2, 4), P, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        gmm.mixture_denoiser(torch.full((2, 4), float("nan")), P, 0.1)
    with pytest.raises(TypeError, match="MixtureParams"):
        gmm.mixture_denoiser(torch.zeros(2, 4), {"means": 1}, 0.1)
    with pytest.raises(TypeError):
        gmm.denoising_mse(3, torch.zeros(2, 4), 0.1)
    with pytest.raises(ValueError, match="shape"):
        gmm.denoising_mse(lambda v: v[:, :2], torch.zeros(2, 4), 0.1)
