"""Geometry of weight vectors relative to subspaces (e.g. a cluster's span{mu_j, U_j}).

Subspaces are given by a set of spanning vectors stored as rows, shape (k, d). All functions
return NumPy float64.
"""
from __future__ import annotations

import numpy as np

from .checks import as_float_tensor


def _rows(V, name) -> np.ndarray:
    return as_float_tensor(V, name, ndim=2).double().cpu().numpy()


def orthonormal_basis(V, *, tol: float = 1e-10) -> np.ndarray:
    """Orthonormal rows (r, d) spanning the row space of ``V`` (k, d); r = numerical rank."""
    M = _rows(V, "V")
    _, s, Vt = np.linalg.svd(M, full_matrices=False)
    r = int((s > tol * max(1.0, s[0] if len(s) else 0.0)).sum())
    if r == 0:
        raise ValueError("V spans only the zero vector")
    return Vt[:r]


def cluster_subspace(mean, basis) -> np.ndarray:
    """Orthonormal rows spanning span{mu, columns of U}: mean (d,), basis U (d, r) -> (<= r+1, d)."""
    mu = as_float_tensor(mean, "mean", ndim=1).double().numpy()
    U = _rows(basis, "basis")
    if U.shape[0] != mu.shape[0]:
        raise ValueError(f"basis must be (d, r) with d = {mu.shape[0]}, got shape {U.shape}")
    return orthonormal_basis(np.vstack([mu[None], U.T]))


def projection_fraction(W, basis) -> np.ndarray:
    """||P w|| / ||w|| for each row w of ``W`` (p, d), P the projector onto span of ``basis`` rows.

    1 means the row lies in the subspace; a zero row gets 0. Returns (p,).
    """
    Wm = _rows(W, "W")
    B = orthonormal_basis(basis)
    if B.shape[1] != Wm.shape[1]:
        raise ValueError(f"W rows have {Wm.shape[1]} entries but basis rows have {B.shape[1]}")
    norms = np.linalg.norm(Wm, axis=1)
    proj = np.linalg.norm(Wm @ B.T, axis=1)
    return np.divide(proj, norms, out=np.zeros_like(norms), where=norms > 0)


def principal_angles(A, B) -> np.ndarray:
    """Principal angles in degrees between the row spans of ``A`` (k, d) and ``B`` (l, d).

    Returns min(rank A, rank B) angles, smallest first (0 = a shared direction, 90 = orthogonal).
    """
    Qa, Qb = orthonormal_basis(A), orthonormal_basis(B)
    if Qa.shape[1] != Qb.shape[1]:
        raise ValueError(f"A rows have {Qa.shape[1]} entries but B rows have {Qb.shape[1]}")
    c = np.linalg.svd(Qa @ Qb.T, compute_uv=False)
    return np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))


def nearest_subspace(W, bases) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``W`` (p, d), the subspace in ``bases`` (a list of (k_j, d)) holding the
    largest fraction of it. Returns (index (p,) int, fraction (p,) float)."""
    if len(bases) == 0:
        raise ValueError("bases is empty: give at least one subspace")
    F = np.stack([projection_fraction(W, B) for B in bases], axis=1)
    return F.argmax(1), F.max(1)
