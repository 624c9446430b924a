"""utils.intervals: bootstrap AUROC draws that resample samples and training seeds."""
import numpy as np
import pytest

from utils.intervals import auroc_draws, beyond_noise, interval, seed_sample_auroc_draws
from utils.metrics import roc_auc


def test_auroc_draws_center_on_the_auroc_and_respect_sources():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 40), rng.normal(0, 1, 60)
    s = np.r_[pos, neg]
    d = auroc_draws({"s": s}, 40, np.arange(40), np.arange(60), draws=400)["s"]
    auc = roc_auc(s, np.r_[np.ones(40), np.zeros(60)])
    assert abs(np.median(d) - auc) < 0.02 and d.std() > 0.01
    # 4 noisy copies of 10 positive sources: resampling sources gives a wider spread than rows would
    src = np.repeat(np.arange(10), 4)
    wide = auroc_draws({"s": s}, 40, src, np.arange(60), draws=400)["s"]
    assert wide.std() > d.std()
    with pytest.raises(ValueError, match="rows"):
        auroc_draws({"s": s[:-1]}, 40, np.arange(40), np.arange(60))


def test_seed_sample_draws_average_per_seed_aurocs_and_widen_with_seed_spread():
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(16), np.zeros(200)].astype(int)
    same = [(np.r_[rng.normal(2, 1, 16), rng.normal(0, 1, 200)], y) for _ in range(3)]
    mixed = [(np.r_[rng.normal(m, 1, 16), rng.normal(0, 1, 200)], y) for m in (0.0, 2.0, 4.0)]
    d_same, d_mixed = seed_sample_auroc_draws(same, 300), seed_sample_auroc_draws(mixed, 300)
    mean_auc = np.mean([roc_auc(s, l) for s, l in same])
    assert abs(np.median(d_same) - mean_auc) < 0.03
    assert d_mixed.std() > d_same.std()
    with pytest.raises(ValueError, match="both classes"):
        seed_sample_auroc_draws([(np.zeros(5), np.zeros(5))])


def test_interval_and_beyond_noise():
    assert interval(np.linspace(0, 1, 1001)) == "[0.025, 0.975]"
    assert beyond_noise(np.linspace(0.01, 0.05, 100)) and not beyond_noise(np.linspace(-0.01, 0.05, 100))


def test_seed_t_interval_is_wider_than_the_three_seed_bootstrap_range():
    from utils.intervals import seed_interval, seed_t_interval
    v = [0.007, 0.008, 0.043]
    m, lo, hi = seed_t_interval(v)
    assert abs(m - np.mean(v)) < 1e-12 and lo < 0 < hi          # t-interval contains 0
    _, blo, bhi = seed_interval(v)
    assert np.isclose(blo, min(v)) and np.isclose(bhi, max(v))  # 3-seed bootstrap = the range
    # known value: mean 2, sd 1, n = 3 -> half width t_{0.975, 2} / sqrt(3) = 4.3027 / 1.7321
    m, lo, hi = seed_t_interval([1.0, 2.0, 3.0])
    assert abs((hi - lo) / 2 - 4.302653 / np.sqrt(3)) < 1e-5
    for bad in ([1.0], [1.0, np.nan]):
        with pytest.raises(ValueError):
            seed_t_interval(bad)
    with pytest.raises(ValueError, match="level"):
        seed_t_interval([1.0, 2.0], level=1.5)
