"""The transition sweep command and its helpers (chapter 4)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from utils import linear_dae, transition_sweep as ts
from utils.models import ReLUDAE

from conftest import run_results_command

ROOT = Path(__file__).resolve().parent.parent


def test_the_sweep_command_writes_results_with_provenance(tmp_path):
    out = tmp_path / "sweep.json"
    run_results_command("transition_sweep", out)
    result = ts.load_results(out)
    prov = result["provenance"]
    assert {"command", "date", "torch", "numpy", "seconds", "machine", "threads"} <= set(prov)
    assert prov["command"] == "python -m utils.transition_sweep --quick" and prov["threads"] == 1
    rows = result["transition"]
    assert len(rows) == 2 * 2 * (2 + 1)            # (trained, gated) x ns x (ps + sigmas)
    assert {r["family"] for r in rows} == {"trained", "gated"}
    for r in rows:
        assert r["gap_ratio"] > 0 and r["dist_emp"] >= 0 and r["dist_ref"] >= 0
    ns, vals = ts.curves(rows, p=8, sigma=0.2, family="gated", key="emp_over_ref")
    assert list(ns) == [8, 64] and vals.shape == (1, 2)
    hyb = result["hybrid"]
    assert [h["copies"] for h in hyb] == [1, 4]
    assert len(hyb[0]["predicted_copies"]) == ts.N_RARE and "a" not in hyb[1]


def test_the_committed_results_file_has_the_full_design():
    result = ts.load_results()
    assert result["provenance"]["command"] == "python -m utils.transition_sweep --seeds=3"
    cfg = result["config"]
    rows = result["transition"]
    settings = len(cfg["ps"]) + len(cfg["sigmas"])
    assert len(rows) == 2 * 3 * len(cfg["ns"]) * settings
    assert len(result["hybrid"]) == 3 * len(cfg["hybrid"]["copies"])


def test_load_results_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m utils.transition_sweep"):
        ts.load_results(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"runs": []}))
    with pytest.raises(ValueError, match="not a transition-sweep"):
        ts.load_results(bad)


def test_empirical_wiener_is_the_training_optimum():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(5, 8, generator=gen) + 2.0
    A = ts.empirical_wiener(X, 0.3, rank=3)
    S = (X.double().T @ X.double() / 5).numpy()
    assert np.allclose(A, linear_dae.optimal_linear_denoiser(S, 0.3, rank=3))
    # the training loss (exact, over the noise) is no larger than at any perturbed matrix
    base = linear_dae.linear_risk(A, S, 0.3)
    rng = np.random.default_rng(0)
    for _ in range(20):
        B = A + 0.01 * rng.standard_normal(A.shape)
        assert linear_dae.linear_risk(B, S, 0.3) >= base - 1e-12 or np.linalg.matrix_rank(B) > 3
    assert np.all(ts.empirical_wiener(X[:0], 0.3, rank=2) == 0)
    with pytest.raises(ValueError, match="rank"):
        ts.empirical_wiener(X, 0.3, rank=0)


def test_the_gated_predictor_stores_the_span_of_few_samples():
    """With fewer samples per cluster than the cluster's dimension, the gated optimum's range is
    the span of the samples: its output on a training sample is (a shrunk) that sample."""
    from utils.data import gaussian_mixture
    X, lab = gaussian_mixture(8, 32, 2, 4, seed=0)
    pred = ts.gated_wiener_predictor(X, lab, 2, 0.05, units=64, rank=4)
    out = pred(X, lab)
    cos = torch.nn.functional.cosine_similarity(out, X, dim=1)
    assert cos.min() > 0.999
    with pytest.raises(ValueError, match="labels"):
        ts.gated_wiener_predictor(X, lab[:3], 2, 0.05, units=4)


def test_crossover_interpolates_in_log_log():
    assert ts.crossover([10, 100], [4.0, 1.0], level=2.0) == pytest.approx(10 ** 1.5)
    assert ts.crossover([10, 100, 1000], [0.5, 0.4, 0.3]) == 10
    assert ts.crossover([10, 100], [3.0, 2.0]) == float("inf")
    with pytest.raises(ValueError, match="increasing"):
        ts.crossover([100, 10], [2.0, 1.0])
    with pytest.raises(ValueError, match="positive"):
        ts.crossover([10, 100], [2.0, -1.0])


def test_seed_bootstrap_brackets_the_mean():
    m, lo, hi = ts.seed_bootstrap([1.0, 2.0, 3.0], draws=500)
    assert m == 2.0 and 1.0 <= lo <= m <= hi <= 3.0
    with pytest.raises(ValueError, match="non-empty"):
        ts.seed_bootstrap([])


def test_unit_addition_terms_give_the_exact_loss_change():
    """Adding the unit t u changes the data loss by exactly -2 C t^2 + B t^4 (same noise draws)."""
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(6, 10, generator=gen)
    model = ReLUDAE(10, 4, seed=0)
    u = X[0] / X[0].norm()
    terms = ts.unit_addition_terms(model, X, u, 0.3, draws=16, seed=5)
    g = torch.Generator().manual_seed(5)
    Y = X.repeat(16, 1) + 0.3 * torch.randn(16 * 6, 10, generator=g)
    Xr = X.repeat(16, 1)
    t = 0.7
    bigger = ReLUDAE(10, 5, seed=0)
    with torch.no_grad():
        bigger.encoder_weight[:4] = model.encoder_weight
        bigger.encoder_weight[4] = t * u
        before = ((model(Y) - Xr) ** 2).sum(1).mean()
        after = ((bigger(Y) - Xr) ** 2).sum(1).mean()
    assert float(after - before) == pytest.approx(-2 * terms["C"] * t ** 2 + terms["B"] * t ** 4, abs=1e-4)
    with pytest.raises(ValueError, match="non-zero"):
        ts.unit_addition_terms(model, X, torch.zeros(10), 0.3)


def test_predicted_copies_solves_the_threshold():
    c = ts.predicted_copies(a=2.0, b=0.0, n_typical=1000, n_rare=10, lam=1e-3)
    assert 2 * (c * 2.0) / (1000 + 10 * c) == pytest.approx(1e-3)
    assert ts.predicted_copies(a=2.0, b=1.0, n_typical=1000, n_rare=10) == 0.0   # always pays
    assert ts.predicted_copies(a=1e-6, b=0.0, n_typical=1000, n_rare=10) == float("inf")


def test_seed_crossovers_reads_the_rows():
    rows = []
    for seed, (a, b) in enumerate([(4.0, 1.0), (4.0, 3.0)]):
        for n, g in ((10, a), (100, b)):
            rows.append({"seed": seed, "p": 8, "sigma": 0.2, "n": n, "family": "trained", "gap_ratio": g,
                         "dist_emp": 1.0, "dist_ref": g})
    got = ts.seed_crossovers(rows, p=8, sigma=0.2, family="trained", key="gap_ratio", level=2.0)
    assert got[0] == pytest.approx(10 ** 1.5) and got[1] == float("inf")
    got = ts.seed_crossovers(rows, p=8, sigma=0.2, family="trained", key="ref_over_emp", level=2.0)
    assert got[0] == pytest.approx(10 ** 1.5)
    with pytest.raises(ValueError, match="no rows"):
        ts.seed_crossovers(rows, p=16, sigma=0.2, family="trained", key="gap_ratio", level=2.0)


def test_rerun_point_reproduces_a_row_of_the_sweep():
    rows = ts.transition_runs(seeds=(0,), ns=(8, 40), ps=(8,), sigmas=(), steps=15, n_eval=100,
                              progress=lambda *_: None)
    again = ts.rerun_point(seed=0, p=8, sigma=0.2, n=40, n_pool=40, steps=15, n_eval=100)
    row = next(r for r in rows if r["family"] == "trained" and r["n"] == 40)
    for key in ("train_mse", "test_mse", "gap_ratio", "dist_emp", "dist_ref", "mean_top1_share"):
        assert again[key] == pytest.approx(row[key], rel=1e-6)
