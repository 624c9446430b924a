"""How far a ReLU DAE on a Gaussian mixture is from cluster gating, and what that costs (chapter 4).

For units w_i (rows of W, (p, d)) and groups G_1..G_K (one group index per unit), an input y of
component j is *gated* when the set of active units ({i : w_i . y > 0}) is exactly G_j. On a
Gaussian component, y ~ N(mu_j, Sigma_j) with Sigma_j = C_j + sigma^2 I, the margin of unit i is
m_ij = w_i . mu_j / sqrt(w_i^T Sigma_j w_i), and P(w_i . y <= 0) = Phi(-m_ij) exactly.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.stats import norm

from .checks import as_float_tensor, check_sigma


def _groups(groups, p: int, K: int) -> np.ndarray:
    g = np.asarray(groups)
    if g.shape != (p,) or g.dtype.kind not in "iu":
        raise ValueError(f"groups must be ({p},) integers (one component per unit), got shape {g.shape}")
    if g.min() < 0 or g.max() >= K:
        raise ValueError(f"groups must lie in [0, {K}), got range [{g.min()}, {g.max()}]")
    return g


def margins(W, params, sigma) -> np.ndarray:
    """m (K, p): m[j, i] = w_i . mu_j / sqrt(w_i^T (C_j + sigma^2 I) w_i), for W (p, d) and a
    ``utils.data.MixtureParams`` with K components."""
    Wn = as_float_tensor(W, "W", ndim=2).double()
    if Wn.shape[1] != params.d:
        raise ValueError(f"W has {Wn.shape[1]} columns but the mixture has d = {params.d}")
    s2 = float(check_sigma(sigma)) ** 2
    cov = params.covariances() + s2 * torch.eye(params.d, dtype=torch.float64)       # (K, d, d)
    mean = Wn @ params.means.double().T                                             # (p, K)
    var = torch.einsum("pd,kde,pe->pk", Wn, cov, Wn)
    if (var <= 0).any():
        raise ValueError("a unit has zero norm: drop dead units before computing margins")
    return (mean / var.sqrt()).T.numpy()


def gating_error_bound(m, groups) -> np.ndarray:
    """eps (K,): the union bound sum_{i in G_j} Phi(-m_ji) + sum_{i not in G_j} Phi(m_ji) on the
    probability that an input of component j is not gated (values >= 1 say nothing)."""
    m = np.asarray(m, dtype=float)
    g = _groups(groups, m.shape[1], m.shape[0])
    own = g[None, :] == np.arange(m.shape[0])[:, None]
    return np.where(own, norm.cdf(-m), norm.cdf(m)).sum(1)


def gating_failure_rate(W, groups, Y, labels, K: int) -> np.ndarray:
    """The measured fraction (K,) of the inputs Y (n, d) of each component (labels (n,)) whose
    active set differs from their component's group."""
    Wn = as_float_tensor(W, "W", ndim=2).double()
    Yn = as_float_tensor(Y, "Y", ndim=2).double()
    lab = np.asarray(labels)
    g = _groups(groups, Wn.shape[0], K)
    active = (Yn @ Wn.T > 0).numpy()                                                # (n, p)
    want = g[None, :] == lab[:, None]
    bad = (active != want).any(1)
    return np.array([bad[lab == j].mean() if (lab == j).any() else np.nan for j in range(K)])


def decomposition_terms(model, groups, X, Y, labels, K: int) -> dict:
    """Monte Carlo terms of the approximate-gating decomposition, per component j (arrays (K,)):

    * ``loss``: E||f_W(y) - x||^2 on component j;  ``linear``: E||A_j y - x||^2 with
      A_j = W_{G_j}^T W_{G_j}, the group's linear map;  ``delta`` = loss - linear;
    * ``cs_factor``: sqrt(E||f_W(y) - x||^4) + sqrt(E||A_j y - x||^4), so that
      |delta| <= cs_factor * sqrt(P(not gated)) by Cauchy-Schwarz.
    X, Y: clean and noisy inputs (n, d); labels (n,).
    """
    W = model.encoder_weight.detach().double()
    g = _groups(groups, W.shape[0], K)
    Xd = as_float_tensor(X, "X", ndim=2).double()
    Yd = as_float_tensor(Y, "Y", ndim=2).double()
    lab = np.asarray(labels)
    f = torch.relu(Yd @ W.T) @ W
    out = {k: np.zeros(K) for k in ("loss", "linear", "delta", "cs_factor")}
    for j in range(K):
        rows = torch.from_numpy(lab == j)
        Wg = W[torch.from_numpy(g == j)]
        lin = Yd[rows] @ Wg.T @ Wg
        e_f = (f[rows] - Xd[rows]).pow(2).sum(1)
        e_l = (lin - Xd[rows]).pow(2).sum(1)
        out["loss"][j], out["linear"][j] = float(e_f.mean()), float(e_l.mean())
        out["delta"][j] = out["loss"][j] - out["linear"][j]
        out["cs_factor"][j] = float(e_f.pow(2).mean().sqrt() + e_l.pow(2).mean().sqrt())
    return out
