"""The recipe ablation command, the official recipe, the optimizer option of fit_dae, the
generalization / hybrid helpers and the seed intervals."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from utils import recipe_ablation as ra
from utils.gmm import mixture_denoiser
from utils.intervals import seed_interval, seed_mean_draws
from utils.models import ReLUDAE
from utils.official_recipe import fit_dae_official
from utils.train import fit_dae

from conftest import run_results_command

ROOT = Path(__file__).resolve().parent.parent


def test_the_ablation_command_writes_results_with_provenance(tmp_path):
    out = tmp_path / "ablation.json"
    run_results_command("recipe_ablation", out)
    result = json.loads(out.read_text())
    assert {"command", "date", "torch", "seconds", "machine"} <= set(result["provenance"])
    runs = [r for r in result["runs"] if r["regime"] == "memorization"]
    assert len(runs) == 18       # 8 fit_dae factor combinations, 1 official snapshot, 9 optimizers
    assert {(r["penalty"], r["optimizer"], r["init"]) for r in runs if r["recipe"] == "fit_dae"} == {
        (a, b, c) for a in (True, False) for b in ("adam", "rmsprop") for c in ("default", "small")}
    for r in runs:
        assert 0 <= r["top1_share"] <= 1 and 0 <= r["participation_ratio"] <= 100   # 0: dead
        assert r["merged_0.9_units"] <= r["merged_0.99_units"] <= 100
    reg = [r for r in result["runs"] if r["regime"] != "memorization"]
    assert len(reg) == 3 * len(ra.REGIME_RECIPES)            # 3 datasets, 1 seed, 11 recipes
    assert {r["dataset"] for r in reg} == {"mixture", "all digits", "hybrid"}
    for r in reg:
        assert 0 <= r["top1_share"] <= 1 and 0 <= r["stored_fraction"] <= 1
        assert r["merged_0.99_units"] <= r["p"] and r["gap_ratio"] > 0 and r["dist_ref"] >= 0
        assert ("rare_stored_fraction" in r) == (r["dataset"] == "hybrid")


def test_the_committed_results_file_has_the_full_design():
    path = ROOT / "book" / "results" / "recipe_ablation.json"
    result = json.loads(path.read_text())
    assert result["provenance"]["command"] == "python -m utils.recipe_ablation --seeds=3"
    runs = result["runs"]
    assert {r["dataset"] for r in runs} == {"digits", "faces", "mixture", "all digits", "hybrid"}
    assert len([r for r in runs if r["recipe"] == "fit_dae" and r["regime"] == "memorization"]) == 2 * 3 * 8
    assert {r["steps"] for r in runs if r["recipe"] == "official"} == {1000, 5000, 20000, 50000}
    assert len([r for r in runs if r["recipe"] == "anatomy"]) == 3 * 9
    mem = [r for r in runs if r["regime"] == "memorization"]
    assert {r["dataset"] for r in mem} == {"digits", "faces"}
    reg = [r for r in runs if r["regime"] in ("generalization", "hybrid")]
    assert len(reg) == 3 * 3 * len(ra.REGIME_RECIPES) and {r["steps"] for r in reg} == {1500}
    cells = {(r["dataset"], r["penalty"], r["optimizer"], r["init"]) for r in reg}
    assert len(cells) == 3 * len(ra.REGIME_RECIPES)
    assert result["settings"]["regimes"]["n_eval"] == 1000


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


def test_class_gaussian_params_fit_means_covariances_and_frequencies():
    rng = np.random.default_rng(0)
    A = torch.tensor(rng.normal(size=(3, 3)), dtype=torch.float64)
    X = torch.cat([torch.tensor(rng.normal(size=(400, 3))) @ A + 5, torch.tensor(rng.normal(size=(100, 3)))])
    lab = \
        torch.cat([torch.zeros(400, dtype=torch.long), torch.ones(100, dtype=torch.long)])
    prm = ra.class_gaussian_params(X, lab)
    assert torch.allclose(prm.weights, torch.tensor([0.8, 0.2]))
    assert torch.allclose(prm.means[0].double(), X[:400].mean(0), atol=1e-5)
    cov0 = prm.bases[0].double() @ torch.diag(prm.scales[0].double() ** 2) @ prm.bases[0].double().T
    assert torch.allclose(cov0, torch.cov(X[:400].T), atol=1e-4)
    # its plug-in denoiser removes noise: error well below the noise's on noisy training points
    x = X.float()
    y = x + 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    assert (mixture_denoiser(y, prm, 0.5) - x).pow(2).sum(1).mean() < 0.7 * (y - x).pow(2).sum(1).mean()
    with pytest.raises(ValueError, match="at least 2"):
        ra.class_gaussian_params(X[:401], torch.cat([lab[:400], torch.ones(1, dtype=torch.long)]))
    with pytest.raises(ValueError, match="labels must have shape"):
        ra.class_gaussian_params(X, lab[:10])


def test_regime_sets_and_the_hybrid_measures():
    hy, mix = ra.regime_sets("hybrid"), ra.regime_sets("mixture")
    assert hy["X"].shape == (2000 + 8 * 30, 64) and torch.equal(hy["bulk"], mix["X"])   # mixture = bulk
    assert hy["rare"].shape == (8, 64)
    # a model whose weights are the rare samples stores every rare sample and no bulk one
    m = ReLUDAE(64, 48, seed=0)
    with torch.no_grad():
        m.encoder_weight.mul_(0.01)
        m.encoder_weight[:8] = hy["rare"] / hy["rare"].norm(dim=1, keepdim=True)
    out = ra.measure_regime(m.eval(), hy, n_eval=100)
    assert out["rare_stored_fraction"] == 1.0 and out["stored_fraction"] == 0.0
    assert out["rare_best_cosine_min"] > 0.999 and out["rare_top1_share"] > out["top1_share"]
    with pytest.raises(ValueError, match="unknown regime dataset"):
        ra.regime_sets("cifar")


def test_seed_intervals_resample_seeds():
    d = seed_mean_draws([1.0, 2.0, 3.0], draws=500)
    assert d.min() >= 1.0 and d.max() <= 3.0 and abs(d.mean() - 2.0) < 0.1
    mean, lo, hi = seed_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and lo < 2.0 < hi
    assert seed_interval([4.0, 4.0, 4.0]) == (4.0, 4.0, 4.0)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        seed_mean_draws([1.0])
    with pytest.raises(ValueError, match="NaN"):
        seed_mean_draws([1.0, float("nan")])


def test_summarize_seeds_groups_recipes_and_gives_seed_intervals():
    runs = [{"dataset": "m", "penalty": "off", "optimizer": o, "init": "default", "seed": s,
             "gap_ratio": 1.0 + s + (o == "sgd")} for o in ("adam", "sgd") for s in range(3)]
    out = ra.summarize_seeds(runs, measures=("gap_ratio",))
    assert [r["optimizer"] for r in out] == ["adam", "sgd"] and out[0]["seeds"] == 3
    mean, lo, hi, mn, mx = out[1]["gap_ratio"]
    assert (mean, mn, mx) == (3.0, 2.0, 4.0) and mn <= lo < mean < hi <= mx
    with pytest.raises(ValueError, match="repeated seeds"):
        ra.summarize_seeds(runs + runs[:1], measures=("gap_ratio",))
