"""The Wiener-filter solution of the linear denoising autoencoder (utils.linear_dae)."""
import numpy as np
import pytest
import torch

from utils import linear_dae as L


def _random_second_moment(d=6, seed=0):
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((d, d))
    return B @ B.T / d


def test_risk_formula_matches_monte_carlo():
    rng = np.random.default_rng(1)
    d, sigma = 5, 0.7
    C = rng.standard_normal((d, d)) / 2
    A = rng.standard_normal((d, d)) / 3
    x = rng.standard_normal((200_000, d)) @ C.T + 0.3
    S = x.T @ x / len(x)
    y = x + sigma * rng.standard_normal(x.shape)
    mc = ((y @ A.T - x) ** 2).sum(1).mean()
    assert L.linear_risk(A, S, sigma) == pytest.approx(mc, rel=0.02)


def test_wiener_filter_is_the_minimizer_and_matches_closed_form():
    S, sigma = _random_second_moment(), 0.5
    A = L.optimal_linear_denoiser(S, sigma)
    np.testing.assert_allclose(A, S @ np.linalg.inv(S + sigma ** 2 * np.eye(len(S))), atol=1e-10)
    lam = np.linalg.eigvalsh(S)
    assert L.linear_risk(A, S, sigma) == pytest.approx((lam * sigma ** 2 / (lam + sigma ** 2)).sum())
    rng = np.random.default_rng(2)
    for _ in range(20):
        assert L.linear_risk(A + 0.05 * rng.standard_normal(A.shape), S, sigma) > L.linear_risk(A, S, sigma)


def test_rank_constrained_optimum_beats_other_low_rank_maps():
    S, sigma, q = _random_second_moment(8, seed=3), 0.4, 3
    Aq = L.optimal_linear_denoiser(S, sigma, rank=q)
    assert np.linalg.matrix_rank(Aq, tol=1e-9) == q
    best = L.linear_risk(Aq, S, sigma)
    rng = np.random.default_rng(4)
    lam, U = np.linalg.eigh(S)
    for _ in range(50):                     # random rank-q maps, and the "wrong" eigenvectors
        P = rng.standard_normal((8, q)); Q = rng.standard_normal((q, 8))
        assert L.linear_risk(P @ Q, S, sigma) > best
    wrong = (U[:, :q] * L.wiener_shrinkage(lam[:q], sigma)) @ U[:, :q].T   # bottom-q eigenvectors
    assert L.linear_risk(wrong, S, sigma) > best


def test_shrinkage_and_component_second_moment():
    np.testing.assert_allclose(L.wiener_shrinkage([0.0, 1.0, 3.0], 1.0), [0, 0.5, 0.75])
    mu = np.array([1.0, 0, 0]); U = np.array([[0.0], [1.0], [0.0]])
    np.testing.assert_allclose(L.component_second_moment(mu, U, [2.0]), np.diag([1.0, 4.0, 0.0]))
    with pytest.raises(ValueError, match="scales"):
        L.component_second_moment(mu, U, [1.0, 2.0])
    with pytest.raises(ValueError, match=">= 0"):
        L.wiener_shrinkage([-1.0], 1.0)


def test_tied_factor_reproduces_the_matrix_and_rejects_bad_input():
    S = _random_second_moment(5)
    A = L.optimal_linear_denoiser(S, 0.3, rank=2)
    W = L.tied_factor(A, 4)
    assert W.shape == (4, 5)
    np.testing.assert_allclose(W.T @ W, A, atol=1e-10)
    with pytest.raises(ValueError, match="rank"):
        L.tied_factor(A, 1)
    with pytest.raises(ValueError, match="semidefinite"):
        L.tied_factor(-A, 4)
    with pytest.raises(ValueError, match="square"):
        L.optimal_linear_denoiser(np.ones((2, 3)), 0.1)
    with pytest.raises(ValueError, match="sigma"):
        L.optimal_linear_denoiser(S, 0.0)


def test_trained_linear_tied_autoencoder_reaches_the_wiener_optimum():
    """Gradient descent on the exact risk of W W^T finds the rank-q Wiener solution."""
    S, sigma, q = _random_second_moment(6, seed=5), 0.5, 2
    St = torch.tensor(S)
    W = torch.randn(6, q, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.3
    W.requires_grad_(True)
    M = St + sigma ** 2 * torch.eye(6, dtype=torch.float64)
    opt = torch.optim.LBFGS([W], lr=1, max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        A = W @ W.T
        risk = torch.trace(A @ M @ A.T) - 2 * torch.trace(A @ St) + torch.trace(St)
        risk.backward()
        return risk

    opt.step(closure)
    np.testing.assert_allclose((W @ W.T).detach().numpy(), L.optimal_linear_denoiser(S, sigma, q), atol=1e-4)


def test_signed_pairs_make_a_relu_network_linear():
    from utils.models import ReLUDAE
    rng = np.random.default_rng(0)
    B = rng.standard_normal((3, 6))
    A = B.T @ B                                      # PSD, rank 3
    Wp = L.signed_pairs(A, 3)
    assert Wp.shape == (6, 6)
    net = ReLUDAE(6, 6)
    with torch.no_grad():
        net.encoder_weight.copy_(torch.from_numpy(Wp))
    y = torch.from_numpy(rng.standard_normal((50, 6))).float()
    np.testing.assert_allclose(net(y).detach().numpy(), y.numpy() @ A.T, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="rank"):
        L.signed_pairs(A, 2)
