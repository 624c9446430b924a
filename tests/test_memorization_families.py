"""Closed forms for the competing solution families of chapter 3 (utils.memorization)."""
import numpy as np
import pytest
import torch

from utils.memorization import (dae_data_loss, few_neuron_bound, linear_denoiser, memorization_error,
                                memorization_loss_bound, memorizing_weights, second_moment_spectrum,
                                signed_pair_weights)


def _orthogonal(norms, d=16, seed=0):
    Q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, len(norms))))
    return (Q * np.asarray(norms, float)).T


def test_second_moment_spectrum_of_orthogonal_data():
    X = _orthogonal([1.0, 2.0, 3.0])
    mu, V = second_moment_spectrum(X)
    assert np.allclose(mu[:3], np.array([9.0, 4.0, 1.0]) / 3) and np.allclose(mu[3:], 0, atol=1e-12)
    assert np.allclose(V.T @ V, np.eye(16), atol=1e-10)


def test_linear_denoiser_closed_form_matches_monte_carlo_and_is_optimal():
    X, sigma = _orthogonal([1.0, 2.0, 3.0, 4.0]), 0.3
    A, loss = linear_denoiser(X, sigma)
    mu = np.array([1.0, 4.0, 9.0, 16.0]) / 4
    assert loss == pytest.approx(float((mu * sigma**2 / (mu + sigma**2)).sum()))
    W = signed_pair_weights(A, 20)
    assert W.shape == (20, 16) and np.allclose(W[8:], 0)
    mc, se = dae_data_loss(W, X, sigma, draws=4000)
    assert abs(mc - loss) < 4 * se
    # any other linear map is worse (exactly, by the quadratic form)
    for scale in (0.9, 1.1):
        mc2, _ = dae_data_loss(signed_pair_weights(scale * A, 20), X, sigma, draws=4000)
        assert mc2 > mc


def test_signed_pairs_compute_the_linear_map():
    rng = np.random.default_rng(1)
    B = rng.normal(size=(6, 6))
    A = B @ B.T
    W = signed_pair_weights(A)
    y = rng.normal(size=(5, 6))
    assert np.allclose(np.maximum(y @ W.T, 0) @ W, y @ A)
    with pytest.raises(ValueError, match="semi-definite"):
        signed_pair_weights(-A)
    with pytest.raises(ValueError, match="symmetric"):
        signed_pair_weights(B)
    with pytest.raises(ValueError, match="p must be"):
        signed_pair_weights(A, 3)


def test_few_neuron_bound_and_memorization_bound_orthogonal():
    X = _orthogonal([1.0, 2.0, 3.0, 4.0])
    assert few_neuron_bound(X, 3) == pytest.approx(1.0 / 4)
    assert few_neuron_bound(X, 0) == pytest.approx(30.0 / 4)
    assert few_neuron_bound(X, 10) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="q must"):
        few_neuron_bound(X, -1)
    # a network with q = 3 neurons (3 samples memorized, the weakest dropped) respects the bound
    W3 = memorizing_weights(X, 0.2, 0.0)[1:]
    assert dae_data_loss(W3, X, 0.2, draws=2000)[0] >= few_neuron_bound(X, 3)
    # W* sits below the bound (n + 1) sigma^2 / 2 + n lam, and its exact loss matches Monte Carlo
    r, sigma, lam = np.array([1.0, 2.0, 3.0, 4.0]), 0.3, 1e-3
    exact = memorization_error(r, sigma, lam).mean()
    assert exact <= memorization_loss_bound(4, sigma, 0.0)
    mc, se = dae_data_loss(memorizing_weights(X, sigma, lam), X, sigma, draws=4000)
    assert abs(mc - exact) < 4 * se
    assert memorization_loss_bound(4, sigma, lam) == pytest.approx(5 * 0.09 / 2 + 4e-3)


def test_dae_data_loss_input_checks():
    X = _orthogonal([1.0, 2.0])
    with pytest.raises(ValueError, match="features"):
        dae_data_loss(np.zeros((3, 5)), X, 0.2)
    with pytest.raises(ValueError):
        dae_data_loss(np.zeros((3, 16)), X, -1.0)
    zero, se = dae_data_loss(torch.zeros(3, 16), X, 0.2, draws=10)
    assert zero == pytest.approx(2.5) and se == pytest.approx(0.0)


def test_memorization_gradient_matches_autograd_on_orthogonal_data():
    from utils.memorization import dae_loss_gradient_mc, memorization_gradient, memorizing_weights
    r = np.array([2.0, 2.5, 3.0])
    X = np.zeros((3, 5))
    X[np.arange(3), np.arange(3)] = r                       # orthogonal samples, d = 5
    sigma, lam = 0.4, 1e-3
    W = memorizing_weights(X, sigma, lam, p=4)              # one unused neuron
    G_mc, se = dae_loss_gradient_mc(W, X, sigma, lam, draws=60_000, batches=20, seed=1)
    G = memorization_gradient(r, sigma, lam)
    along = G_mc[:3, :3] / 1.0                              # u_m = e_m, so <dL/dw_i, u_m> = G_mc[i, m]
    z = np.abs(along - G) / se[:3, :3]
    assert z.max() < 5, z
    off = ~np.eye(3, dtype=bool)
    assert np.abs(G[off]).min() > 5 * se[:3, :3][off].max()  # the formula's entries are resolved
    assert np.all(G_mc[3] == 0)                             # unused neuron: zero gradient exactly
    assert np.abs(G_mc[:3, 3:]).max() < 5 * se[:3, 3:].max()  # orthogonal to span: zero


def test_memorization_gradient_bad_input():
    from utils.memorization import dae_loss_gradient_mc, memorization_gradient
    with pytest.raises(ValueError, match="positive"):
        memorization_gradient([1.0, -1.0], 0.2, 0.0)
    with pytest.raises(ValueError, match="multiple"):
        dae_loss_gradient_mc(np.eye(2), np.eye(2), 0.2, 0.0, draws=101, batches=20)
    with pytest.raises(ValueError, match="features"):
        dae_loss_gradient_mc(np.eye(3), np.eye(2), 0.2, 0.0, draws=100, batches=10)
    with pytest.raises(ValueError, match="directions"):
        dae_loss_gradient_mc(np.eye(2), np.eye(2), 0.2, 0.0, draws=100, batches=10, directions=np.eye(3))


def test_gradient_projection_equals_projected_gradient():
    from utils.memorization import dae_loss_gradient_mc
    rng = np.random.default_rng(0)
    W, X = rng.normal(size=(3, 4)), rng.normal(size=(2, 4))
    Dm = np.linalg.qr(rng.normal(size=(4, 4)))[0].T
    G, _ = dae_loss_gradient_mc(W, X, 0.3, 0.01, draws=200, batches=4, seed=2)
    Gp, _ = dae_loss_gradient_mc(W, X, 0.3, 0.01, draws=200, batches=4, seed=2, directions=Dm)
    assert np.allclose(Gp, G @ Dm.T)
