"""utils.regimes.paired_auroc_difference_draws: a seed-paired bootstrap of an AUROC difference."""
import numpy as np
import pytest

from utils import metrics, regimes


def _seeds(shift, n_seeds=3, seed=0):
    rng = np.random.default_rng(seed)
    a, b = [], []
    for _ in range(n_seeds):
        y = np.r_[np.ones(10), np.zeros(40)]
        base = rng.normal(size=50) + 0.5 * y            # shared by both conditions
        a.append((base, y))
        b.append((base + shift * y, y))
    return a, b


def test_identical_conditions_give_zero_difference():
    a, _ = _seeds(0.0)
    d = regimes.paired_auroc_difference_draws(a, a, draws=200)
    assert d.shape == (200,) and np.all(d == 0)


def test_shift_of_positives_gives_positive_difference_and_mean_matches():
    a, b = _seeds(1.0)
    d = regimes.paired_auroc_difference_draws(a, b, draws=500, seed=1)
    assert np.percentile(d, 2.5) > 0
    point = np.mean([metrics.roc_auc(s, y) for s, y in b]) - np.mean([metrics.roc_auc(s, y) for s, y in a])
    assert abs(d.mean() - point) < 0.03
    # pairing: narrower than the spread of an unpaired comparison of the same numbers
    assert np.percentile(d, 97.5) - np.percentile(d, 2.5) < 0.5


def test_bad_input():
    a, b = _seeds(1.0)
    with pytest.raises(ValueError, match="same number"):
        regimes.paired_auroc_difference_draws(a, b[:2])
    bad = [(s, np.roll(y, 1)) for s, y in b]
    with pytest.raises(ValueError, match="labels of a and b differ"):
        regimes.paired_auroc_difference_draws(a, bad)
    nan = [(np.where(np.arange(50) == 0, np.nan, s), y) for s, y in b]
    with pytest.raises(ValueError, match="NaN"):
        regimes.paired_auroc_difference_draws(a, nan)
    one = [(s, np.ones_like(y)) for s, y in a]
    with pytest.raises(ValueError, match="both classes"):
        regimes.paired_auroc_difference_draws(one, one)
