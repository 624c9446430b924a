"""The optimal *linear* denoiser of a distribution with a given second moment (Wiener filter).

For clean data x with second-moment matrix S = E[x x^T] (d, d) and noisy input y = x + sigma*eps,
the population denoising risk of a linear map y -> A y is

    R(A) = E||A y - x||^2 = tr(A (S + sigma^2 I) A^T) - 2 tr(A S) + tr(S).

Its minimizer is the Wiener filter A* = S (S + sigma^2 I)^{-1}: in the eigenbasis of S it keeps each
eigenvector u_i and shrinks it by lambda_i / (lambda_i + sigma^2). Under a rank constraint
rank(A) <= p (a tied linear autoencoder W^T W with p hidden units) the minimizer keeps the top p
eigenvectors with the same shrinkage factors. Chapter 4 proves both statements; these functions
compute them so the chapter can compare them with trained networks.
"""
from __future__ import annotations

import numpy as np

from .checks import as_float_tensor, check_positive_int, check_sigma


def _matrix(S, name="S") -> np.ndarray:
    M = as_float_tensor(S, name, ndim=2).double().cpu().numpy()
    if M.shape[0] != M.shape[1]:
        raise ValueError(f"{name} must be square (d, d), got shape {M.shape}")
    if not np.allclose(M, M.T, atol=1e-8 * max(1.0, np.abs(M).max())):
        raise ValueError(f"{name} must be symmetric")
    return (M + M.T) / 2


def component_second_moment(mean, basis, scales) -> np.ndarray:
    """S = mu mu^T + U diag(scales^2) U^T, the second moment of x = mu + U z, z ~ N(0, diag(scales^2)).

    Args:
        mean: mu, shape (d,).  basis: U, shape (d, r).  scales: (r,) standard deviations along
            the columns of U.
    Returns:
        (d, d) float64 array.
    """
    mu = as_float_tensor(mean, "mean", ndim=1).double().numpy()
    U = as_float_tensor(basis, "basis", ndim=2).double().numpy()
    s = as_float_tensor(scales, "scales", ndim=1).double().numpy()
    if U.shape[0] != mu.shape[0]:
        raise ValueError(f"basis has {U.shape[0]} rows but mean has {mu.shape[0]} entries; "
                         "basis must be (d, r)")
    if U.shape[1] != s.shape[0]:
        raise ValueError(f"basis has {U.shape[1]} columns but scales has {s.shape[0]} entries")
    return np.outer(mu, mu) + (U * s ** 2) @ U.T


def wiener_shrinkage(eigenvalues, sigma) -> np.ndarray:
    """lambda / (lambda + sigma^2) for each eigenvalue (>= 0) of the second moment -> same shape."""
    lam = as_float_tensor(eigenvalues, "eigenvalues", ndim=1).double().numpy()
    if (lam < -1e-10).any():
        raise ValueError(f"eigenvalues of a second moment must be >= 0, got minimum {lam.min():.3g}")
    s2 = float(check_sigma(sigma)) ** 2
    lam = np.clip(lam, 0, None)
    return lam / (lam + s2)


def optimal_linear_denoiser(S, sigma, rank: int | None = None) -> np.ndarray:
    """The minimizer of R(A) over (d, d) matrices of rank <= ``rank`` (all matrices if None).

    A* = sum over the top-``rank`` eigenpairs (lambda_i, u_i) of S of lambda_i/(lambda_i + sigma^2) u_i u_i^T.
    Returns a (d, d) float64 symmetric positive semidefinite array.
    """
    M = _matrix(S)
    lam, U = np.linalg.eigh(M)
    lam, U = lam[::-1], U[:, ::-1]
    k = M.shape[0] if rank is None else min(check_positive_int(rank, "rank"), M.shape[0])
    shrink = wiener_shrinkage(np.clip(lam[:k], 0, None), sigma)
    return (U[:, :k] * shrink) @ U[:, :k].T


def linear_risk(A, S, sigma) -> float:
    """Population risk E||A(x + sigma*eps) - x||^2 = tr(A(S + sigma^2 I)A^T) - 2 tr(AS) + tr(S)."""
    M = _matrix(S)
    A = as_float_tensor(A, "A", ndim=2).double().numpy()
    if A.shape != M.shape:
        raise ValueError(f"A has shape {A.shape} but S has shape {M.shape}")
    s2 = float(check_sigma(sigma)) ** 2
    return float(np.trace(A @ M @ A.T) + s2 * (A ** 2).sum() - 2 * np.trace(A @ M) + np.trace(M))


def tied_factor(A, p: int) -> np.ndarray:
    """A (p, d) matrix W with W^T W = A, for a symmetric PSD A of rank <= p.

    Rows are sqrt(eigenvalue) * eigenvector, largest first, padded with zero rows.
    Raises ValueError when A has more than p non-negligible eigenvalues or a negative one.
    """
    M = _matrix(A, "A")
    p = check_positive_int(p, "p")
    lam, U = np.linalg.eigh(M)
    lam, U = lam[::-1], U[:, ::-1]
    tol = 1e-9 * max(1.0, abs(lam[0]))
    if lam[-1] < -tol:
        raise ValueError(f"A must be positive semidefinite, its smallest eigenvalue is {lam[-1]:.3g}")
    rank = int((lam > tol).sum())
    if rank > p:
        raise ValueError(f"A has rank {rank} > p = {p}: no (p, d) factor W with W^T W = A exists")
    W = np.zeros((p, M.shape[0]))
    W[:rank] = (U[:, :rank] * np.sqrt(lam[:rank])).T
    return W


def signed_pairs(A, q: int) -> np.ndarray:
    """Weights (2q, d) of a tied ReLU DAE that computes y -> A y *exactly*, for a symmetric PSD A
    of rank <= q.

    The rows are W and -W with W = :func:`tied_factor` (A, q): since relu(t) - relu(-t) = t,
    sum_i relu(w_i^T y) w_i + relu(-w_i^T y)(-w_i) = W^T W y = A y. So a bias-free ReLU network
    with 2 rank(A) neurons can be any positive semidefinite linear map (chapter 4).
    """
    W = tied_factor(A, q)
    return np.concatenate([W, -W])
