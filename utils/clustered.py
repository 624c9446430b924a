"""Bootstrap intervals for means and ratios of means, resampling whole clusters.

Generations that share a caption are not independent: the effective sample is the number of
captions. Each draw resamples the clusters (captions) with replacement and takes every row of a
drawn cluster as many times as it was drawn.

    d = mean_draws(values, clusters)          # (draws,) bootstrap means
    utils.intervals.interval(d)               # '[lo, hi]'
"""
from __future__ import annotations

import numpy as np

from .checks import as_numpy_1d, check_positive_int


def cluster_weights(clusters, draws: int = 1000, seed: int = 0) -> np.ndarray:
    """(draws, n) bootstrap multiplicities of each of n rows, drawing whole clusters.

    ``clusters``: (n,) the cluster id of each row (any hashable values NumPy can sort)."""
    draws = check_positive_int(draws, "draws")
    c = np.asarray(clusters)
    if c.ndim != 1 or len(c) == 0:
        raise ValueError(f"clusters must be a non-empty 1-D array, got shape {c.shape}")
    _, inv = np.unique(c, return_inverse=True)
    m = inv.max() + 1
    rng = np.random.default_rng(seed)
    counts = np.stack([np.bincount(rng.integers(0, m, m), minlength=m) for _ in range(draws)])
    return counts[:, inv].astype(float)


def _values(v, n, name):
    v = as_numpy_1d(v, name).astype(float)
    if len(v) != n:
        raise ValueError(f"{name} has {len(v)} rows but clusters has {n}")
    return v


def mean_draws(values, clusters, draws: int = 1000, seed: int = 0) -> np.ndarray:
    """Cluster-bootstrap draws (draws,) of the mean of ``values`` (n,)."""
    w = cluster_weights(clusters, draws, seed)
    v = _values(values, w.shape[1], "values")
    return (w @ v) / w.sum(1)


def ratio_draws(numerator, denominator, clusters, draws: int = 1000, seed: int = 0) -> np.ndarray:
    """Cluster-bootstrap draws (draws,) of mean(numerator) / mean(denominator), both (n,) and
    resampled together (the same clusters in each draw)."""
    w = cluster_weights(clusters, draws, seed)
    a = _values(numerator, w.shape[1], "numerator")
    b = _values(denominator, w.shape[1], "denominator")
    den = w @ b
    if np.any(den == 0):
        raise ValueError("the denominator's resampled mean is zero in some draw")
    return (w @ a) / den


def two_way_mean_draws(values, clusters, draws: int = 1000, seed: int = 0) -> np.ndarray:
    """Bootstrap draws (draws,) of the mean of ``values`` (K, n): K repeated control draws (e.g.
    random directions) of the same n rows. Each draw resamples the K control draws with
    replacement *and* the clusters of the rows (the same cluster weights as :func:`mean_draws`
    with this ``seed``), so the interval covers both sources of variation."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or v.shape[0] < 2:
        raise ValueError(f"values must have shape (K >= 2 control draws, n rows), got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("values contain NaN or infinity")
    w = cluster_weights(clusters, draws, seed)
    if w.shape[1] != v.shape[1]:
        raise ValueError(f"values have {v.shape[1]} rows but clusters has {w.shape[1]}")
    pick = np.random.default_rng([seed, 1]).integers(0, len(v), (len(w), len(v)))   # (draws, K)
    rows = v[pick].mean(1)                                                               # (draws, n)
    return (w * rows).sum(1) / w.sum(1)
