"""Bootstrap intervals for AUROCs, resampling the unit that was sampled (a sample, a training seed).

* :func:`auroc_draws`: one trained network, several noisy copies of each sample; whole samples are
  resampled on each side, so the spread reflects how many distinct samples each group has.
* :func:`seed_sample_auroc_draws`: several networks trained with different seeds; each draw
  resamples the seeds, then the positives and the negatives within each drawn seed, and averages
  the per-seed AUROCs (scores of different networks are never ranked against each other).
"""
from __future__ import annotations

import numpy as np

from .checks import check_positive_int


def _weights(src, draws: int, rng) -> np.ndarray:
    """(draws, len(src)) bootstrap multiplicities of each row, drawing whole source units."""
    _, inv = np.unique(np.asarray(src), return_inverse=True)
    m = inv.max() + 1
    return np.stack([np.bincount(rng.integers(0, m, m), minlength=m)[inv] for _ in range(draws)]).astype(float)


def _wins(sp: np.ndarray, sn: np.ndarray) -> np.ndarray:
    """Mann-Whitney pair scores (n_pos, n_neg): 1 if the positive scores higher, 1/2 on ties."""
    return (sp[:, None] > sn[None, :]) + 0.5 * (sp[:, None] == sn[None, :])


def auroc_draws(scores: dict, n_pos: int, pos_src, neg_src, draws: int = 1000, seed: int = 0) -> dict:
    """Bootstrap draws (draws,) of the AUROC of each score in ``scores`` (arrays with the ``n_pos``
    positives first). ``pos_src`` / ``neg_src`` give the source sample of each row, so all noisy
    copies of a drawn sample are taken together. Does not include the variation from training
    another network (use :func:`seed_sample_auroc_draws` for that)."""
    draws = check_positive_int(draws, "draws")
    rng = np.random.default_rng(seed)
    wp, wn = _weights(pos_src, draws, rng), _weights(neg_src, draws, rng)
    out = {}
    for k, s in scores.items():
        s = np.asarray(s, dtype=float)
        if len(s) != n_pos + wn.shape[1] or n_pos != wp.shape[1]:
            raise ValueError(f"score {k!r} has {len(s)} rows, expected {wp.shape[1]} + {wn.shape[1]}")
        w = _wins(s[:n_pos], s[n_pos:])
        out[k] = ((wp @ w) * wn).sum(1) / (wp.sum(1) * wn.sum(1))
    return out


def seed_sample_auroc_draws(per_seed, draws: int = 1000, seed: int = 0) -> np.ndarray:
    """Two-stage bootstrap draws (draws,) of the mean AUROC over independently trained networks.

    Args:
        per_seed: a list, one entry per training seed, of (scores (n,), labels (n,) with 1 for the
            positives); each sample appears once (average its noisy copies first).
    """
    draws = check_positive_int(draws, "draws")
    groups = []
    for i, (s, y) in enumerate(per_seed):
        s, y = np.asarray(s, dtype=float), np.asarray(y).astype(bool)
        if s.shape != y.shape or s.ndim != 1 or not y.any() or y.all():
            raise ValueError(f"seed {i}: need 1-D scores and labels of one length with both classes")
        groups.append(_wins(s[y], s[~y]))
    return two_stage_win_draws(groups, draws, seed)


def two_stage_win_draws(groups, draws: int, seed: int = 0) -> np.ndarray:
    """Two-stage bootstrap (draws,) of the mean over groups of a win-matrix average.

    ``groups``: one (positives, negatives) win matrix per training seed (``_wins``, or a
    difference of two). Each draw resamples the seeds, then within each drawn seed its positives
    and its negatives, and averages the weighted win rate over the drawn seeds."""
    rng = np.random.default_rng(seed)
    out = np.empty(draws)
    for b in range(draws):
        vals = []
        for g in rng.integers(0, len(groups), len(groups)):
            w = groups[g]
            wp = np.bincount(rng.integers(0, w.shape[0], w.shape[0]), minlength=w.shape[0])
            wn = np.bincount(rng.integers(0, w.shape[1], w.shape[1]), minlength=w.shape[1])
            vals.append(wp @ w @ wn / (wp.sum() * wn.sum()))
        out[b] = np.mean(vals)
    return out


def interval(draws) -> str:
    """The 95% percentile interval of bootstrap draws, as text ``[lo, hi]`` (3 decimals)."""
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return f"[{lo:.3f}, {hi:.3f}]"


def beyond_noise(lead_draws) -> bool:
    """Whether a lead (draws of AUROC(a) - AUROC(b)) is above 0 at the printed precision: the lower
    end of its interval, rounded to 3 decimals, is positive."""
    return bool(round(float(np.percentile(lead_draws, 2.5)), 3) > 0)


def seed_mean_draws(values, draws: int = 1000, seed: int = 0) -> np.ndarray:
    """Bootstrap draws (draws,) of the mean of per-seed values (one number per trained network).

    Args:
        values: (s,) finite numbers, one per training seed (s >= 2); the seed is the sampled unit.
    With few seeds the draws can take only a few values (3 seeds: 10 distinct means, the extremes
    being the smallest and the largest seed), so the interval is a coarse statement about seeds.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or len(v) < 2:
        raise ValueError(f"values must be one number per seed, at least 2 seeds, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("values contain NaN or infinite entries")
    draws = check_positive_int(draws, "draws")
    rng = np.random.default_rng(seed)
    return v[rng.integers(0, len(v), (draws, len(v)))].mean(1)


def seed_interval(values, draws: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """(mean over seeds, lower, upper end of the 95% percentile bootstrap interval of that mean)."""
    d = seed_mean_draws(values, draws, seed)
    lo, hi = np.percentile(d, [2.5, 97.5])
    return float(np.mean(values)), float(lo), float(hi)


def seed_t_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean over seeds, lower, upper end of the Student-t interval of that mean).

    Args:
        values: (s,) finite numbers, one per training seed (s >= 2).
        level: the coverage, in (0, 1).
    The interval is mean +- t_{s-1} * sd / sqrt(s) (sd with ddof=1). Unlike :func:`seed_interval`,
    whose percentile bootstrap with 3 seeds is exactly the range of the seeds, it widens when the
    seeds are few (3 seeds: t quantile 4.30 at 95%), and it assumes roughly normal per-seed values.
    """
    from scipy.stats import t as student_t

    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or len(v) < 2:
        raise ValueError(f"values must be one number per seed, at least 2 seeds, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("values contain NaN or infinite entries")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    m = float(v.mean())
    half = float(student_t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return m, m - half, m + half
