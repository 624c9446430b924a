"""Closed forms for the memorizing solution of the tied ReLU DAE (chapter 3).

Setting: n training samples x_1..x_n, pairwise orthogonal, norms r_k = ||x_k||; the tied model
f(y) = sum_j w_j relu(w_j^T y) with w_k = c_k x_k / r_k for k <= n (other neurons 0); loss
(1/n) sum_k E||f(x_k + sigma eps) - x_k||^2 + lam ||W||_F^2 (sum over coordinates).

With z ~ N(0, 1): g(r) = E relu(r + sigma z) = r Phi(r/sigma) + sigma phi(r/sigma) and
q(r) = E relu(r + sigma z)^2 = (r^2 + sigma^2) Phi(r/sigma) + r sigma phi(r/sigma).
"""
from __future__ import annotations

import numpy as np
from scipy.stats import norm

from .checks import as_numpy_1d, check_positive_int, check_sigma


def relu_moments(r, sigma) -> tuple[np.ndarray, np.ndarray]:
    """(E relu(r + sigma z), E relu(r + sigma z)^2) for z ~ N(0, 1), elementwise in r (m,)."""
    r = as_numpy_1d(np.atleast_1d(r), "r")
    s = float(check_sigma(sigma))
    t = r / s
    g = r * norm.cdf(t) + s * norm.pdf(t)
    q = (r ** 2 + s ** 2) * norm.cdf(t) + r * s * norm.pdf(t)
    return g, q


def _lam(weight_decay) -> float:
    lam = float(weight_decay)
    if not np.isfinite(lam) or lam < 0:
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay}")
    return lam


def memorization_scale(norms, sigma, weight_decay) -> np.ndarray:
    """The optimal squared scales s_k = c_k^2 of the memorizing solution (Theorem of chapter 3).

    s_k = max(0, (r_k g(r_k) - n lam / 2) / (q(r_k) + (n - 1) sigma^2 / 2)), n = len(norms).
    Args: norms (n,) = ||x_k|| > 0; sigma > 0; weight_decay = lam >= 0. Returns (n,).
    """
    r = as_numpy_1d(np.atleast_1d(norms), "norms")
    if (r <= 0).any():
        raise ValueError("norms must be positive")
    n = check_positive_int(len(r), "len(norms)")
    s = float(check_sigma(sigma))
    lam = _lam(weight_decay)
    g, q = relu_moments(r, s)
    return np.maximum(0.0, (r * g - n * lam / 2) / (q + (n - 1) * s ** 2 / 2))


def memorization_error(norms, sigma, weight_decay) -> np.ndarray:
    """E||f*(x_k + sigma eps) - x_k||^2 of the memorizing solution, for each sample k -> (n,).

    = s_k^2 q(r_k) - 2 s_k r_k g(r_k) + r_k^2 + (sigma^2 / 2) sum_{i != k} s_i^2.
    """
    r = as_numpy_1d(np.atleast_1d(norms), "norms")
    s_ = memorization_scale(r, sigma, weight_decay)
    g, q = relu_moments(r, sigma)
    sig = float(check_sigma(sigma))
    leak = 0.5 * sig ** 2 * ((s_ ** 2).sum() - s_ ** 2)
    return s_ ** 2 * q - 2 * s_ * r * g + r ** 2 + leak


def memorizing_weights(X, sigma, weight_decay, p: int | None = None) -> np.ndarray:
    """The memorizing weight matrix (p, d): row k = sqrt(s_k) x_k / ||x_k||, rows n..p-1 zero."""
    from .checks import as_float_tensor
    Xn = as_float_tensor(X, "X", ndim=2).double().numpy()
    n = Xn.shape[0]
    p = n if p is None else check_positive_int(p, "p")
    if p < n:
        raise ValueError(f"p must be >= n = {n}, got {p}")
    r = np.linalg.norm(Xn, axis=1)
    W = np.zeros((p, Xn.shape[1]))
    W[:n] = np.sqrt(memorization_scale(r, sigma, weight_decay))[:, None] * Xn / r[:, None]
    return W
