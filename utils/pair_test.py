"""Kadkhodaie et al.'s test of generalization (ICLR 2024): two networks trained on *disjoint*
training sets, sampled from the same initial noise, produce nearly the same image when they
generalize (both learn the same density) and different images when they memorize (each returns
its own training images).

    d = pair_distances(samples_a, samples_b, train_a, train_b)   # per initial noise
    median_interval(d["paired"])                                 # (median, lo, hi)
"""
from __future__ import annotations

import numpy as np
import torch

from .checks import as_float_tensor, check_positive_int
from .metrics import nearest_neighbors


def pair_distances(A, B, train_a, train_b, *, seed: int = 0) -> dict:
    """Euclidean distances for samples ``A``, ``B`` (m, C, H, W) drawn by networks a and b from the
    same m initial noises (row i of A and of B share a noise), trained on ``train_a`` / ``train_b``.

    Returns a dict of (m,) float64 arrays: ``paired`` ||A_i - B_i||; ``unpaired`` ||A_i - B_j||
    for a random derangement j(i) (the control: two samples from different noises);
    ``nearest_a`` / ``nearest_b`` the distance of A_i / B_i to the nearest image of its own
    network's training set.
    """
    A = as_float_tensor(A, "A", ndim=4).double()
    B = as_float_tensor(B, "B", ndim=4).double()
    if A.shape != B.shape:
        raise ValueError(f"A {tuple(A.shape)} and B {tuple(B.shape)} must have the same shape")
    m = A.shape[0]
    if m < 2:
        raise ValueError("need at least 2 pairs")
    rng = np.random.default_rng(seed)
    shift = rng.integers(1, m)
    perm = (np.arange(m) + shift) % m           # a derangement: j(i) != i for every i
    fa, fb = A.flatten(1), B.flatten(1)
    paired = (fa - fb).norm(dim=1).numpy()
    unpaired = (fa - fb[torch.as_tensor(perm)]).norm(dim=1).numpy()
    da, _ = nearest_neighbors(A, train_a, k=1)
    db, _ = nearest_neighbors(B, train_b, k=1)
    return dict(paired=paired, unpaired=unpaired, nearest_a=da[:, 0], nearest_b=db[:, 0])


def median_interval(values, *, draws: int = 1000, seed: int = 0) -> tuple:
    """The median of ``values`` (m,) and its 95% bootstrap percentile interval (resampling
    the m values): ``(median, lo, hi)``."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or len(v) == 0 or not np.isfinite(v).all():
        raise ValueError("values must be a non-empty 1-D array of finite numbers")
    draws = check_positive_int(draws, "draws")
    rng = np.random.default_rng(seed)
    meds = np.median(v[rng.integers(0, len(v), (draws, len(v)))], axis=1)
    lo, hi = np.percentile(meds, [2.5, 97.5])
    return float(np.median(v)), float(lo), float(hi)
