"""Statistics of representations, weights and samples.

Every function accepts torch tensors or NumPy arrays and returns NumPy (or a float), so results
drop straight into plots and tables. Inputs are validated: wrong shapes, NaN and empty inputs raise
``ValueError`` with a message that names the argument.

Spikiness of a representation h in R^p (h >= 0 for ReLU features; magnitudes are used otherwise):

=============== ================================================ ============ =================
kind            formula                                          range        scale-invariant
=============== ================================================ ============ =================
"std"           population std of the entries                    [0, inf)     no (degree 1)
"l4_over_l2"    ||h||_4 / ||h||_2                                 [p^-1/4, 1]  yes
"hoyer"         (sqrt(p) - ||h||_1/||h||_2) / (sqrt(p) - 1)       [0, 1]       yes
"gini"          Hurley & Rickard's Gini index of |h|              [0, 1 - 1/p] yes
"top1_share"    max h_i^2 / sum h_i^2                             [1/p, 1]     yes
=============== ================================================ ============ =================

An all-zero row (a dead representation) gets 0 for every kind.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .checks import as_float_tensor, as_numpy_1d, check_positive_int

SPIKINESS_KINDS = ("std", "l4_over_l2", "hoyer", "gini", "top1_share")


def _rows(H, name="H") -> np.ndarray:
    """(n, p) float64 NumPy, validated; a 1-D input is one row."""
    t = as_float_tensor(H, name, ndim=(1, 2))
    if t.ndim == 1:
        t = t[None]
    return t.double().cpu().numpy()


def spikiness(H, kind: str = "std") -> np.ndarray:
    """Spikiness of each row of ``H`` (n, p) -> (n,). See the module docstring for the kinds."""
    if kind not in SPIKINESS_KINDS:
        raise ValueError(f"unknown spikiness kind {kind!r}; choose one of {SPIKINESS_KINDS}")
    R = _rows(H)
    if kind == "std":
        return R.std(axis=1)
    A = np.abs(R)
    n, p = A.shape
    sq = (A ** 2).sum(1)
    alive = sq > 0
    out = np.zeros(n)
    if not alive.any():
        return out
    Aa, sqa = A[alive], sq[alive]
    if kind == "l4_over_l2":
        out[alive] = ((Aa ** 4).sum(1) ** 0.25) / np.sqrt(sqa)
    elif kind == "hoyer":
        if p == 1:
            out[alive] = 1.0
        else:
            out[alive] = (np.sqrt(p) - Aa.sum(1) / np.sqrt(sqa)) / (np.sqrt(p) - 1)
    elif kind == "gini":
        c = np.sort(Aa, axis=1)                       # ascending magnitudes
        k = np.arange(1, p + 1)
        out[alive] = 1 - 2 * ((c / c.sum(1, keepdims=True)) * (p - k + 0.5) / p).sum(1)
    elif kind == "top1_share":
        out[alive] = (Aa ** 2).max(1) / sqa
    return out


def participation_ratio(H) -> np.ndarray:
    """Effective number of active units of each row of ``H`` (n, p) -> (n,).

    PR(h) = (sum h_i^2)^2 / sum h_i^4, between 1 (one unit) and p (all units equal); 0 for a zero row.
    """
    A = _rows(H)
    sq = (A ** 2).sum(1)
    q = (A ** 4).sum(1)
    out = np.zeros(A.shape[0])
    ok = q > 0
    out[ok] = sq[ok] ** 2 / q[ok]
    return out


def merge_parallel_units(H, W, *, min_cosine: float = 0.99, return_groups: bool = False):
    """Combine the activity of units whose weight rows point the same way -> (n, q).

    Args:
        H: activities (n, p) of p hidden units (for the ReLU DAE, ``model.encode(x)``).
        W: the units' weight rows (p, d) (the encoder rows; for tied weights also the decoder's).
        min_cosine: two units are parallel when the cosine of their rows is at least this; groups
            are the connected components of that relation (single linkage). Rows of zero norm
            (dead units) are never merged.
        return_groups: also return the list of q index arrays, one per merged unit.
    Returns:
        (n, q) float64 array: column g is sqrt(sum_{j in g} H[:, j]^2), groups ordered by their
        first unit.

    Why the root of the sum of squares: splitting a unit w of the tied model
    f(y) = sum_j w_j [w_j . y]_+ into parallel units c_i w with sum_i c_i^2 = 1 leaves f unchanged
    and gives activities c_i h; their root sum of squares is h again. So after merging, every
    spikiness measure of :func:`spikiness` and the participation ratio are the same for the
    original and the split network (the number of merged units q equals the original p).
    """
    A = _rows(H)
    Wt = as_float_tensor(W, "W", ndim=2).double().cpu().numpy()
    if Wt.shape[0] != A.shape[1]:
        raise ValueError(f"W has {Wt.shape[0]} rows but H has {A.shape[1]} units (columns); "
                         "pass the (p, d) weight rows of the units of H")
    if isinstance(min_cosine, bool) or not isinstance(min_cosine, (int, float)) \
            or not -1 < float(min_cosine) <= 1:
        raise ValueError(f"min_cosine must be a number in (-1, 1], got {min_cosine!r}")
    from scipy.sparse.csgraph import connected_components

    alive = np.linalg.norm(Wt, axis=1) > 0
    U = _unit_rows(Wt)
    adjacent = (U @ U.T >= float(min_cosine)) & alive[:, None] & alive[None, :]
    _, label = connected_components(adjacent, directed=False)
    order = list(dict.fromkeys(label.tolist()))          # component ids by first unit
    groups = [np.flatnonzero(label == c) for c in order]
    merged = np.stack([np.sqrt((A[:, g] ** 2).sum(1)) for g in groups], axis=1)
    return (merged, groups) if return_groups else merged


def _unit_rows(M: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(M, axis=1, keepdims=True)
    return np.divide(M, norms, out=np.zeros_like(M), where=norms > 0)


def cosine_matrix(A, B) -> np.ndarray:
    """Cosine similarity of every row of ``A`` (m, d) with every row of ``B`` (n, d) -> (m, n).

    Images (m, C, H, W) are flattened. Rows of zero norm have cosine 0 with everything.
    """
    a = as_float_tensor(A, "A", ndim=(2, 3, 4))
    b = as_float_tensor(B, "B", ndim=(2, 3, 4))
    a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"A rows have {a.shape[1]} features but B rows have {b.shape[1]}")
    return _unit_rows(a.double().numpy()) @ _unit_rows(b.double().numpy()).T


def least_aligned(Z: torch.Tensor, k: int, pool: int = 300) -> list[int]:
    """Greedily pick ``k`` of the first ``pool`` rows of ``Z`` (n, d): start at row 0, then add the
    row whose largest |cosine| to the rows already chosen is smallest. Returns their indices."""
    k = check_positive_int(k, "k")
    absC = np.abs(cosine_matrix(Z[:pool], Z[:pool]))
    chosen = [0]
    while len(chosen) < k:
        rest = [i for i in range(min(pool, len(Z))) if i not in chosen]
        chosen.append(min(rest, key=lambda i: absC[i, chosen].max()))
    return chosen


def weight_data_cosine(W, X) -> np.ndarray:
    """For each row of ``W`` (p, d), its largest cosine similarity to any row of ``X`` (n, d) -> (p,).

    A value near 1 means that neuron stores (a rescaled copy of) one training sample.
    """
    return cosine_matrix(W, X).max(axis=1)


STORED_COSINE = 0.9
"""The book's one definition of *stored*: a training sample x is stored by a weight matrix W when
some row w of W has cos(w, x) >= STORED_COSINE. Chapters print the cosines on either side of it."""


def stored_mask(W, X, min_cosine: float = STORED_COSINE) -> np.ndarray:
    """Which rows of ``X`` (n, d) are stored by some row of ``W`` (p, d) -> (n,) bool.

    A sample counts as stored when its best cosine to a weight row is at least ``min_cosine``
    (default :data:`STORED_COSINE`).
    """
    if not 0.0 < float(min_cosine) <= 1.0:
        raise ValueError(f"min_cosine must lie in (0, 1], got {min_cosine}")
    return cosine_matrix(X, W).max(axis=1) >= float(min_cosine)


def nearest_neighbors(Q, X, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean k nearest rows of ``X`` (n, d) for each row of ``Q`` (m, d).

    Images are flattened. Returns (distances (m, k), indices (m, k)), nearest first.
    """
    q = as_float_tensor(Q, "Q", ndim=(2, 3, 4)).double()
    x = as_float_tensor(X, "X", ndim=(2, 3, 4)).double()
    q, x = q.reshape(q.shape[0], -1), x.reshape(x.shape[0], -1)
    if q.shape[1] != x.shape[1]:
        raise ValueError(f"Q rows have {q.shape[1]} features but X rows have {x.shape[1]}")
    if not 1 <= k <= x.shape[0]:
        raise ValueError(f"k must be between 1 and the number of reference rows ({x.shape[0]}), got {k}")
    dist = torch.cdist(q, x, compute_mode="donot_use_mm_for_euclid_dist")
    d, i = torch.topk(dist, k, dim=1, largest=False)
    return d.numpy(), i.numpy()


@dataclass
class CopyTest:
    """Result of :func:`copy_test` for m samples (every field has shape (m,))."""
    is_copy: np.ndarray      # bool: ratio < threshold
    ratio: np.ndarray        # nearest / second-nearest training distance
    nearest: np.ndarray      # index of the nearest training sample
    distance: np.ndarray     # Euclidean distance to it
    cosine: np.ndarray       # cosine similarity to it

    @property
    def copy_fraction(self) -> float:
        return float(self.is_copy.mean())


def copy_test(samples, train, threshold: float = 1 / 3) -> CopyTest:
    """The nearest-neighbour copy test: a sample copies a training point when
    ``dist(nearest) / dist(second nearest) < threshold`` (1/3 is the usual choice).

    ``samples`` (m, ...) and ``train`` (n, ...) with n >= 2 and matching trailing shapes.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    d, i = nearest_neighbors(samples, train, k=2)
    ratio = np.divide(d[:, 0], d[:, 1], out=np.zeros(len(d)), where=d[:, 1] > 0)
    q = as_float_tensor(samples, "samples").reshape(len(d), -1).double().numpy()
    x = as_float_tensor(train, "train").reshape(-1, q.shape[1]).double().numpy()
    cos = (_unit_rows(q) * _unit_rows(x[i[:, 0]])).sum(1)
    return CopyTest(is_copy=ratio < threshold, ratio=ratio, nearest=i[:, 0], distance=d[:, 0], cosine=cos)


def _binary_labels(labels, n) -> np.ndarray:
    y = as_numpy_1d(labels, "labels")
    if len(y) != n:
        raise ValueError(f"scores has {n} entries but labels has {len(y)}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (not memorized) or 1 (memorized)")
    if y.min() == y.max():
        raise ValueError("labels must contain both classes (0 and 1)")
    return y.astype(bool)


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve; label 1 (memorized) is positive and a higher score means
    more memorized. Ties count one half (Mann-Whitney U)."""
    s = as_numpy_1d(scores, "scores")
    y = _binary_labels(labels, len(s))
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    n_pos, n_neg = y.sum(), (~y).sum()
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) for every distinct threshold, predicting positive when score >= t.
    The first point is (0, 0) at threshold +inf."""
    s = as_numpy_1d(scores, "scores")
    y = _binary_labels(labels, len(s))
    thr = np.unique(s)[::-1]
    pos = (s[None, :] >= thr[:, None])
    tpr = (pos & y).sum(1) / y.sum()
    fpr = (pos & ~y).sum(1) / (~y).sum()
    return (np.r_[0.0, fpr], np.r_[0.0, tpr], np.r_[np.inf, thr])


def tpr_at_fpr(scores, labels, fpr: float = 0.01) -> float:
    """The largest true-positive rate over thresholds whose false-positive rate is <= ``fpr``."""
    if not 0 <= fpr <= 1:
        raise ValueError(f"fpr must be in [0, 1], got {fpr}")
    f, t, _ = roc_curve(scores, labels)
    return float(t[f <= fpr + 1e-12].max())


def psnr(x, ref, peak: float = 2.0) -> np.ndarray:
    """Peak signal-to-noise ratio in dB of each row of ``x`` against ``ref`` (same shape).

    ``peak`` is the data range: 2 for images in [-1, 1]. Identical rows give +inf.
    """
    a = as_float_tensor(x, "x").double()
    b = as_float_tensor(ref, "ref").double()
    if a.shape != b.shape:
        raise ValueError(f"x has shape {tuple(a.shape)} but ref has {tuple(b.shape)}")
    mse = ((a - b) ** 2).reshape(a.shape[0], -1).mean(1).numpy()
    with np.errstate(divide="ignore"):
        return 10 * np.log10(peak ** 2 / mse)
