"""utils.train.dae_defaults: the book's memorization and hybrid settings, and every d <= 64, keep
their values; the generalization regime in more than 64 dimensions (chapter 6's augmented faces,
chapter 4's d = 300 mixture) gets the longer schedule (issue 10, section 3)."""
import math
import os

import pytest

from utils.train import DAE_FLOP_BUDGET, dae_defaults


def _old_rule(n, d, p):
    """dae_defaults before the generalization-regime schedule (commit ca93b4f)."""
    flops = 6.0 * 256 * d * p
    steps = int(min(1500, max(600, 1500 * 2e8 / flops)))
    return {"steps": steps, "lr": 0.16 / math.sqrt(d), "weight_decay": 1e-3,
            "batch_size": 256, "sparsity": 0.1 * min(1.0, p / n)}


# every (n, d, p) for which a chapter calls fit_dae or dae_defaults (found by executing chapters
# 2-6 with both instrumented), the unit tests' and the recipe ablation's settings
BOOK_SETTINGS = [
    (3000, 64, 64),                                                            # ch2
    (5, 64, 100), (5, 256, 100),                                               # ch3
    (4000, 64, 48), (2000, 64, 12), (2016, 64, 48), (2240, 64, 48), (2480, 64, 48), (256, 64, 48),
    *[(n, 64, p) for n in (8, 32, 128, 512) for p in (8, 24, 96)],             # ch4 sweeps
    (2000, 64, 48), (2232, 64, 48), (4392, 64, 48), (8, 64, 48), (5, 64, 105),
    (4, 12, 10), (4, 12, 12),                                                  # ch5, exercises
    (1692, 64, 100), (5, 625, 100), (90, 625, 100),                            # ch6
    (3000, 48, 48), (5, 64, 40), (1080, 32, 30), (1500, 64, 100),              # tests, ablation
]


@pytest.mark.parametrize("n,d,p", BOOK_SETTINGS)
def test_book_settings_keep_their_defaults(n, d, p):
    assert dae_defaults(n, d, p) == _old_rule(n, d, p)


def test_the_book_settings_that_get_the_longer_schedule():
    faces = dae_defaults(4000, 625, 100)                  # chapter 6's augmented faces
    assert faces["steps"] == 3125 and faces["lr"] == pytest.approx(2 * _old_rule(4000, 625, 100)["lr"])


def test_generalization_regime_above_64_dimensions_gets_the_longer_schedule():
    new, old = dae_defaults(10000, 300, 100), _old_rule(10000, 300, 100)
    assert new["steps"] == 6000 and new["lr"] == pytest.approx(2 * old["lr"])
    assert new["weight_decay"] == old["weight_decay"] and new["sparsity"] == old["sparsity"]
    # n < 2p (memorization, hybrid) keeps the old values at any d
    assert dae_defaults(199, 300, 100) == _old_rule(199, 300, 100)
    assert dae_defaults(200, 300, 100)["steps"] > 1500
    # the factor stops at 4 and the schedule never exceeds the FLOP budget (nor goes below the old)
    for n, d, p in [(20000, 1024, 256), (20000, 1024, 100), (20000, 512, 256), (10000, 128, 64)]:
        dd, o = dae_defaults(n, d, p), _old_rule(n, d, p)
        flops = 6.0 * 256 * d * p
        assert o["steps"] <= dd["steps"] <= max(o["steps"], DAE_FLOP_BUDGET / flops)
        assert o["lr"] < dd["lr"] <= 2 * o["lr"] + 1e-12
    assert dae_defaults(20000, 1024, 256)["steps"] == _old_rule(20000, 1024, 256)["steps"]


@pytest.mark.skipif(os.environ.get("BOOK_SLOW_TESTS") != "1",
                    reason="about 30-60 s of training; set BOOK_SLOW_TESTS=1 to run")
def test_target_on_the_d300_mixture():
    """Issue 10's mixture: d = 300, 5 clusters of rank 6, n = 10000, p = 100, sigma = 0.2:
    the defaults reach test/train <= 1.1 and test/Bayes <= 2."""
    import torch

    from utils import data, gmm, models, regimes, train
    X, _, params = data.gaussian_mixture(10000, 300, 5, 6, seed=0, sample_seed=100, return_params=True)
    Xte, _ = data.gaussian_mixture(4000, 300, 5, 6, seed=0, sample_seed=999)
    model = models.ReLUDAE(300, 100, seed=0)
    train.fit_dae(model, X, sigma=0.2, seed=0)
    bayes = lambda y: gmm.mixture_denoiser(y, params, 0.2)  # noqa: E731
    with torch.no_grad():
        tr = regimes.per_sample_measures(model, X[:4000], 0.2, copies=2, seed=7)
        te = regimes.per_sample_measures(model, Xte, 0.2, copies=2, reference=bayes, seed=8)
    assert te["error"].mean() <= 1.1 * tr["error"].mean()
    assert te["error"].mean() <= 2 * te["ref_error"].mean()


def test_the_sweep_command_writes_results_with_provenance(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path
    out = tmp_path / "sweep.json"
    proc = subprocess.run([sys.executable, "-m", "utils.defaults_sweep", "--quick", "--jobs", "1", "--out", str(out)],
                          cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert {"command", "date", "torch", "seconds", "machine"} <= set(result["provenance"])
    assert [r["recipe"] for r in result["runs"]] == ["defaults", "previous defaults"]
    for r in result["runs"]:
        assert r["gap_ratio"] == pytest.approx(r["test_mse"] / r["train_mse"])
        assert 0 <= r["auroc_pull"] <= 1 and 0 <= r["frac_below_test_q01"] <= 1
        assert 0 <= r["off_span_mse"] <= r["test_mse"]


def test_per_sample_summary_sees_a_memorized_subset():
    import numpy as np

    from utils.defaults_sweep import per_sample_summary
    rng = np.random.default_rng(0)
    test = {"error": rng.uniform(1, 2, 1000), "weight_cosine": rng.uniform(0, 0.5, 1000)}
    test["pull_ratio"] = test["error"] / 1.0
    same = {k: v.copy() for k, v in test.items()}
    s = per_sample_summary(same, test)
    assert s["auroc_pull"] == pytest.approx(0.5) and s["frac_below_test_q01"] == pytest.approx(0.01)
    mem = {k: v.copy() for k, v in test.items()}
    mem["error"][:50] = 0.01          # 5% of the training samples pulled onto themselves
    mem["pull_ratio"] = mem["error"] / 1.0
    s = per_sample_summary(mem, test)
    # the 50 and about 1% of the others fall below the test samples' 1% quantile
    assert 0.05 <= s["frac_below_test_q01"] <= 0.07
    assert s["gap_share_top10"] > 0.5
    assert s["auroc_pull"] > 0.52
