"""The recipe ablation command, the official recipe and the optimizer option of fit_dae."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from utils.models import ReLUDAE
from utils.official_recipe import fit_dae_official
from utils.train import fit_dae

ROOT = Path(__file__).resolve().parent.parent


def test_the_ablation_command_writes_results_with_provenance(tmp_path):
    out = tmp_path / "ablation.json"
    proc = subprocess.run([sys.executable, "-m", "utils.recipe_ablation", "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert {"command", "date", "torch", "seconds", "machine"} <= set(result["provenance"])
    runs = result["runs"]
    assert len(runs) == 18       # 8 fit_dae factor combinations, 1 official snapshot, 9 optimizers
    assert {(r["penalty"], r["optimizer"], r["init"]) for r in runs if r["recipe"] == "fit_dae"} == {
        (a, b, c) for a in (True, False) for b in ("adam", "rmsprop") for c in ("default", "small")}
    for r in runs:
        assert 0 <= r["top1_share"] <= 1 and 0 <= r["participation_ratio"] <= 100   # 0: dead
        assert r["merged_0.9_units"] <= r["merged_0.99_units"] <= 100


def test_the_committed_results_file_has_the_full_design():
    path = ROOT / "book" / "results" / "recipe_ablation.json"
    result = json.loads(path.read_text())
    assert result["provenance"]["command"] == "python -m utils.recipe_ablation --seeds=3"
    runs = result["runs"]
    assert {r["dataset"] for r in runs} == {"digits", "faces"}
    assert len([r for r in runs if r["recipe"] == "fit_dae"]) == 2 * 3 * 8
    assert {r["steps"] for r in runs if r["recipe"] == "official"} == {1000, 5000, 20000, 50000}
    assert len([r for r in runs if r["recipe"] == "anatomy"]) == 3 * 9


def test_fit_dae_optimizer_option():
    X = torch.randn(8, 6, generator=torch.Generator().manual_seed(0))
    for name in ("adam", "rmsprop", "sgd"):
        m = ReLUDAE(6, 4, seed=0)
        losses = fit_dae(m, X, sigma=0.3, steps=5, optimizer=name)
        assert len(losses) == 5
    fit_dae(ReLUDAE(6, 4), X, sigma=0.3, steps=3, optimizer_options={"betas": (0.0, 0.99)})
    with pytest.raises(TypeError, match="do not fit sgd"):
        fit_dae(ReLUDAE(6, 4), X, sigma=0.3, steps=3, optimizer="sgd", optimizer_options={"betas": (0.0, 0.9)})
    with pytest.raises(ValueError, match="must not set lr"):
        fit_dae(ReLUDAE(6, 4), X, sigma=0.3, steps=3, optimizer_options={"lr": 1.0})
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        fit_dae(ReLUDAE(6, 4), X, sigma=0.3, steps=5, optimizer="lbfgs")


def test_fit_dae_official_ties_through_shared_storage_and_snapshots():
    X = torch.randn(5, 10, generator=torch.Generator().manual_seed(0))
    models, losses = fit_dae_official(X, sigma=0.2, p=7, steps=30, snapshots=(10,))
    assert sorted(models) == [10, 30] and len(losses) == 30
    assert models[10].encoder_weight.shape == (7, 10)
    assert not torch.equal(models[10].encoder_weight, models[30].encoder_weight)
    again, _ = fit_dae_official(X, sigma=0.2, p=7, steps=30)
    assert torch.equal(again[30].encoder_weight, models[30].encoder_weight)   # seeded
    with pytest.raises(ValueError, match="snapshot"):
        fit_dae_official(X, sigma=0.2, steps=5, snapshots=(9,))
    with pytest.raises(ValueError, match="NaN"):
        fit_dae_official(torch.full((5, 10), float("nan")), sigma=0.2, steps=5)
