"""Subspace geometry helpers (utils.subspaces)."""
import numpy as np
import pytest

from utils import subspaces as S


def test_orthonormal_basis_and_rank():
    V = np.array([[1.0, 0, 0], [2.0, 0, 0], [0, 1.0, 1.0]])
    B = S.orthonormal_basis(V)
    assert B.shape == (2, 3)
    np.testing.assert_allclose(B @ B.T, np.eye(2), atol=1e-12)
    with pytest.raises(ValueError, match="zero"):
        S.orthonormal_basis(np.zeros((2, 3)))


def test_projection_fraction_and_principal_angles():
    B = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    W = np.array([[3.0, 4.0, 0], [0, 0, 2.0], [1.0, 0, 1.0], [0, 0, 0]])
    np.testing.assert_allclose(S.projection_fraction(W, B), [1.0, 0.0, 1 / np.sqrt(2), 0.0])
    ang = S.principal_angles(B, np.array([[0, 1.0, 0], [1.0, 0, 1.0]]))
    np.testing.assert_allclose(ang, [0.0, 45.0], atol=1e-6)
    with pytest.raises(ValueError, match="entries"):
        S.projection_fraction(np.ones((2, 4)), B)


def test_cluster_subspace_and_nearest_subspace():
    rng = np.random.default_rng(0)
    d = 10
    mu = rng.standard_normal(d); U = np.linalg.qr(rng.standard_normal((d, 2)))[0]
    V = S.cluster_subspace(mu, U)
    assert V.shape == (3, d)
    w = 0.5 * mu + U @ np.array([1.0, -2.0])
    other = S.cluster_subspace(rng.standard_normal(d), np.linalg.qr(rng.standard_normal((d, 2)))[0])
    idx, frac = S.nearest_subspace(np.stack([w, rng.standard_normal(d)]), [other, V])
    assert idx[0] == 1 and frac[0] == pytest.approx(1.0)
    assert frac[1] < 1.0
    with pytest.raises(ValueError, match="empty"):
        S.nearest_subspace(w[None], [])
    with pytest.raises(ValueError, match="basis"):
        S.cluster_subspace(mu, U.T)
