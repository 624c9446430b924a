"""Kadkhodaie et al.'s test of generalization (ICLR 2024): two networks trained on *disjoint*
training sets, sampled from the same initial noise, produce nearly the same image when they
generalize (both learn the same density) and different images when they memorize (each returns
its own training images).

    d = pair_distances(samples_a, samples_b, train_a, train_b)   # per initial noise
    median_interval(d["paired"])                                 # (median, lo, hi)

Whether each network of a pair generalizes is checked directly by its loss on digits it never
saw against its loss on its own training digits, with the same noise draws:

    g = loss_gap(model, scheduler, own_digits, disjoint_digits)  # g["gap"], g["lo"], g["hi"]
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


@torch.no_grad()
def per_image_loss(model, scheduler, X, *, draws: int = 2, seed: int = 0, batch_size: int = 512) -> np.ndarray:
    """The diffusion loss of each image of ``X`` (n, C, H, W): the squared noise-prediction error,
    averaged over pixels and over ``draws`` fixed draws of (timestep, noise) from ``seed`` -> (n,)
    float64. The draws are those of :func:`utils.train_unet.eval_loss` (same seed, same order), so
    the mean equals it; two image sets of the same shape get the same draws."""
    X = as_float_tensor(X, "X", ndim=4).float()
    if X.shape[0] == 0:
        raise ValueError("X is empty")
    draws = check_positive_int(draws, "draws")
    batch_size = check_positive_int(batch_size, "batch_size")
    gen = torch.Generator().manual_seed(int(seed))
    was_training = model.training
    model.eval()
    total = torch.zeros(X.shape[0], dtype=torch.float64)
    for _ in range(draws):
        t = torch.randint(0, scheduler.config.num_train_timesteps, (X.shape[0],), generator=gen)
        eps = torch.randn(X.shape, generator=gen)
        for a in range(0, X.shape[0], batch_size):
            sl = slice(a, a + batch_size)
            xt = scheduler.add_noise(X[sl], eps[sl], t[sl])
            total[sl] += (model(xt, t[sl]).sample - eps[sl]).pow(2).flatten(1).mean(1).double()
    model.train(was_training)
    return (total / draws).numpy()


def loss_gap(model, scheduler, own, other, *, draws: int = 2, seed: int = 0, boot: int = 1000,
             boot_seed: int = 0) -> dict:
    """Generalization gap of ``model``: its mean :func:`per_image_loss` on ``other`` (m, C, H, W),
    images it never saw, minus that on ``own`` (n, C, H, W), its training images, with the same
    ``draws`` and ``seed``. The 95% bootstrap interval resamples the images of each set
    independently (the unit is the image). Returns a dict of floats: ``own``, ``other``, ``gap``,
    ``relative`` (gap / own), ``lo``, ``hi``."""
    a = per_image_loss(model, scheduler, own, draws=draws, seed=seed)
    b = per_image_loss(model, scheduler, other, draws=draws, seed=seed)
    boot = check_positive_int(boot, "boot")
    rng = np.random.default_rng(boot_seed)
    d = (b[rng.integers(0, len(b), (boot, len(b)))].mean(1) - a[rng.integers(0, len(a), (boot, len(a)))].mean(1))
    lo, hi = np.percentile(d, [2.5, 97.5])
    gap = float(b.mean() - a.mean())
    return dict(own=float(a.mean()), other=float(b.mean()), gap=gap, relative=gap / float(a.mean()),
                lo=float(lo), hi=float(hi))
