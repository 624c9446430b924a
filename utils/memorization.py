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


# --- competing solution families (chapter 3, proposition prf-ch3-families) -------------------------

def _data(X, name: str = "X") -> np.ndarray:
    from .checks import as_float_tensor
    Xn = as_float_tensor(X, name, ndim=2).double().numpy()
    if Xn.shape[0] == 0:
        raise ValueError(f"{name} must have at least one row")
    return Xn


def second_moment_spectrum(X) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (d,) in decreasing order and eigenvectors (d, d) (columns) of the uncentred
    second moment Sigma = (1/n) sum_k x_k x_k^T of the training set X (n, d)."""
    Xn = _data(X)
    mu, V = np.linalg.eigh(Xn.T @ Xn / Xn.shape[0])
    order = np.argsort(mu)[::-1]
    return np.clip(mu[order], 0.0, None), V[:, order]


def linear_denoiser(X, sigma) -> tuple[np.ndarray, float]:
    """The best linear denoiser of the training set and its loss.

    A = Sigma (Sigma + sigma^2 I)^{-1} minimizes (1/n) sum_k E||A (x_k + sigma eps) - x_k||^2 over
    all d x d matrices; its loss is sum_i mu_i sigma^2 / (mu_i + sigma^2) over the eigenvalues mu_i of
    Sigma. Args: X (n, d), sigma > 0. Returns (A (d, d) symmetric PSD, loss).
    """
    s = float(check_sigma(sigma))
    mu, V = second_moment_spectrum(X)
    a = mu / (mu + s ** 2)
    return (V * a) @ V.T, float((mu * s ** 2 / (mu + s ** 2)).sum())


def signed_pair_weights(A, p: int | None = None, *, tol: float = 1e-10) -> np.ndarray:
    """Tied ReLU weights (p, d) that compute the linear map y -> A y for a symmetric PSD A (d, d).

    Each eigenpair (a_i > tol, v_i) becomes two neurons +sqrt(a_i) v_i and -sqrt(a_i) v_i, since
    w relu(w^T y) + (-w) relu(-w^T y) = w w^T y. Rows beyond the 2 rank(A) pair neurons are zero;
    p=None gives exactly 2 rank(A) rows. Raises ValueError if A is not square, symmetric and PSD.
    """
    A = np.asarray(A, dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be a square matrix, got shape {A.shape}")
    if not np.isfinite(A).all() or not np.allclose(A, A.T, atol=1e-8):
        raise ValueError("A must be finite and symmetric")
    a, V = np.linalg.eigh(A)
    if a.min() < -1e-8 * max(1.0, abs(a).max()):
        raise ValueError(f"A must be positive semi-definite (smallest eigenvalue {a.min():.3g})")
    keep = a > tol
    rows = np.sqrt(a[keep])[:, None] * V[:, keep].T
    W = np.concatenate([rows, -rows])
    if p is None:
        return W
    p = check_positive_int(p, "p")
    if p < len(W):
        raise ValueError(f"p must be >= 2 rank(A) = {len(W)}, got {p}")
    return np.concatenate([W, np.zeros((p - len(W), A.shape[0]))])


def few_neuron_bound(X, q: int) -> float:
    """Lower bound on the data term of any tied network with at most q nonzero neurons: the sum
    of all but the q largest eigenvalues of Sigma = (1/n) sum_k x_k x_k^T (its output lies in a
    q-dimensional subspace). Args: X (n, d), q >= 0."""
    if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or q < 0:
        raise ValueError(f"q must be an integer >= 0, got {q!r}")
    mu, _ = second_moment_spectrum(X)
    return float(mu[int(q):].sum())


def memorization_loss_bound(n: int, sigma, weight_decay=0.0) -> float:
    """Upper bound (n + 1) sigma^2 / 2 + n lam on the loss of the memorizing solution W* for n
    pairwise orthogonal samples (W* is at most the member of the family with every c_k = 1)."""
    n = check_positive_int(n, "n")
    s = float(check_sigma(sigma))
    return (n + 1) * s ** 2 / 2 + n * _lam(weight_decay)


def dae_data_loss(W, X, sigma, *, draws: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Monte Carlo estimate of the data term (1/n) sum_k E||f_W(x_k + sigma eps) - x_k||^2 of the
    tied model f_W(y) = W^T relu(W y), in float64.

    Args: W (p, d) weights (rows = neurons), X (n, d), sigma > 0, draws noise draws per sample
    (the same draws for every W with the same seed, so that families are compared on common noise).
    Returns (estimate, its standard error).
    """
    from .checks import as_float_tensor
    import torch
    Wt = as_float_tensor(W, "W", ndim=2).double()
    Xt = torch.from_numpy(_data(X))
    if Wt.shape[1] != Xt.shape[1]:
        raise ValueError(f"W rows have {Wt.shape[1]} features but X rows have {Xt.shape[1]}")
    draws = check_positive_int(draws, "draws")
    s = float(check_sigma(sigma))
    gen = torch.Generator().manual_seed(int(seed))
    eps = torch.randn(draws, *Xt.shape, generator=gen, dtype=torch.float64)
    y = Xt + s * eps                                            # (draws, n, d)
    err = ((torch.relu(y @ Wt.T) @ Wt - Xt) ** 2).sum(-1).mean(1)   # (draws,): mean over samples
    return float(err.mean()), float(err.std() / np.sqrt(draws))


def memorization_gradient(norms, sigma, weight_decay) -> np.ndarray:
    """The gradient of the loss at W* along the other samples (part 2 of the chapter-3 theorem).

    For pairwise orthogonal samples with norms r (n,), unit directions u_k, returns G (n, n) with
    G[i, m] = <dL/dw_i, u_m> at the memorizing solution W*:
    G[i, m] = 2 c_i sigma / (n sqrt(2 pi)) [s_m g(r_i) + s_m g(r_m) - r_m + s_i r_m + (n - 2) s_m sigma / sqrt(2 pi)]
    for m != i, and G[i, i] = 0 (stationarity in c_i). c = sqrt(s*), s* from :func:`memorization_scale`.
    """
    r = as_numpy_1d(np.atleast_1d(norms), "norms")
    s_ = memorization_scale(r, sigma, weight_decay)
    sig = float(check_sigma(sigma))
    g, _ = relu_moments(r, sig)
    n = len(r)
    a = sig / np.sqrt(2 * np.pi)
    c = np.sqrt(s_)
    G = 2 * c[:, None] * a / n * (s_[None, :] * g[:, None] + (s_ * g)[None, :] - r[None, :]
                                  + s_[:, None] * r[None, :] + (n - 2) * s_[None, :] * a)
    np.fill_diagonal(G, 0.0)
    return G


def dae_loss_gradient_mc(W, X, sigma, weight_decay, *, draws: int = 100_000, batches: int = 20,
                         seed: int = 0, directions=None) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo gradient of the tied loss (1/n) sum_k E||f_W(x_k + sigma eps) - x_k||^2 + lam ||W||_F^2
    with respect to W (p, d), by autograd in float64 on ``draws`` noise draws per sample, split into
    ``batches`` equal batches. With ``directions`` (m, d), each neuron's gradient is projected on
    them first (entry [j, l] = <dL/dw_j, directions[l]>). Returns (mean gradient (p, d) or (p, m),
    its standard error of the same shape, from the spread of the batch gradients).
    """
    from .checks import as_float_tensor
    import torch
    Wt = as_float_tensor(W, "W", ndim=2).double()
    Xt = torch.from_numpy(_data(X))
    if Wt.shape[1] != Xt.shape[1]:
        raise ValueError(f"W rows have {Wt.shape[1]} features but X rows have {Xt.shape[1]}")
    draws, batches = check_positive_int(draws, "draws"), check_positive_int(batches, "batches", minimum=2)
    if draws % batches:
        raise ValueError(f"draws ({draws}) must be a multiple of batches ({batches})")
    s, lam = float(check_sigma(sigma)), _lam(weight_decay)
    gen = torch.Generator().manual_seed(int(seed))
    grads = []
    for _ in range(batches):
        Wb = Wt.clone().requires_grad_(True)
        y = Xt + s * torch.randn(draws // batches, *Xt.shape, generator=gen, dtype=torch.float64)
        loss = ((torch.relu(y @ Wb.T) @ Wb - Xt) ** 2).sum(-1).mean() + lam * (Wb ** 2).sum()
        loss.backward()
        grads.append(Wb.grad.numpy().copy())
    G = np.stack(grads)                                          # (batches, p, d)
    if directions is not None:
        Dm = _data(directions, "directions")
        if Dm.shape[1] != G.shape[2]:
            raise ValueError(f"directions have {Dm.shape[1]} features but W rows have {G.shape[2]}")
        G = G @ Dm.T
    return G.mean(0), G.std(0, ddof=1) / np.sqrt(batches)
