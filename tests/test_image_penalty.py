"""The chapter 6 penalty-factor command (utils.image_penalty) and its helpers."""
from pathlib import Path

import pytest
import torch

from utils import image_penalty as ip
from utils.models import ReLUDAE

from conftest import run_results_command

ROOT = Path(__file__).resolve().parent.parent


def test_the_command_writes_results_with_provenance(tmp_path):
    out = tmp_path / "penalty.json"
    run_results_command("image_penalty", out)
    result = ip.load_results(out)
    assert {"command", "date", "torch", "seconds", "machine"} <= set(result["provenance"])
    runs = result["runs"]
    assert {(r["arm"], r["penalty"]) for r in runs} == {
        (a, p) for a in ("memorizing", "generalizing", "80 faces", "digits memorizing", "digits generalizing")
        for p in ip.PENALTIES}
    for r in runs:
        assert 0 <= r["merged_top1_share"] <= 1 and 0 <= r["top1_share"] <= r["merged_top1_share"] + 1e-9
        assert 0 <= r["stored_fraction"] <= 1 and 0 <= r["live_neurons"] <= ip.P
        assert -1 <= r["maxcos_live_median"] <= 1 and -1 <= r["maxcos_top10_median"] <= 1
    by = {(r["arm"], r["penalty"]): r for r in runs}
    assert by["memorizing", "equal"]["sparsity"] == by["memorizing", "default"]["sparsity"] == 0.1
    assert by["generalizing", "default"]["sparsity"] < 0.01 and by["generalizing", "off"]["sparsity"] == 0
    assert by["digits generalizing", "default"]["sparsity"] == pytest.approx(0.1 * 100 / 1692)
    assert by["digits memorizing", "default"]["n"] == 5 and by["digits generalizing", "off"]["n"] == 1692


def test_the_committed_results_file_has_the_full_design():
    result = ip.load_results()
    assert result["provenance"]["command"] == "python -m utils.image_penalty --seeds=3"
    assert len(result["runs"]) == 5 * 3 * 3


def test_split_and_references():
    split = ip.face_split()
    assert split["mem"].shape == (5, 625) and split["test"].shape == (20, 625)
    assert split["aug"].shape == (80 * 2 * 25, 625)
    assert torch.equal(split["aug"][:80], split["faces"]) and torch.equal(split["mem"], split["faces"][:5])
    held = {tuple(x.tolist()) for x in split["test"]}
    assert not held & {tuple(x.tolist()) for x in split["faces"]}       # held-out faces never trained on
    # the linear reference is the Wiener filter: on data spanning one direction it shrinks that
    # direction by s/(s + sigma^2) and removes the others
    X = torch.zeros(4, 3, dtype=torch.float64)
    X[:, 0] = torch.tensor([1.0, -1.0, 1.0, -1.0])
    A = ip.linear_reference(X, 0.5)
    assert torch.allclose(A, torch.diag(torch.tensor([1 / 1.25, 0.0, 0.0], dtype=torch.float64)))
    X2 = torch.zeros(4, 3, dtype=torch.float64)
    X2[:, 0], X2[:, 1] = torch.tensor([2.0, -2.0, 2.0, -2.0]), torch.tensor([1.0, 1.0, -1.0, -1.0])
    A1 = ip.linear_reference(X2, 0.5, rank=1)                # keeps the stronger direction only
    assert torch.allclose(A1, torch.diag(torch.tensor([4 / 4.25, 0.0, 0.0], dtype=torch.float64)))
    with pytest.raises(ValueError, match=r"shape \(n, d\)"):
        ip.linear_reference(torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match="unknown penalty level 'half'"):
        ip.penalty_value("half", 5, 625)


def test_digit_split_is_disjoint():
    ds = ip.digit_split()
    assert ds["mem"].shape == (5, 64) and ds["test"].shape == (100, 64) and ds["gen"].shape == (1692, 64)
    held = {tuple(x.tolist()) for x in ds["test"]}
    assert not held & {tuple(x.tolist()) for x in ds["mem"]}


def test_arm_measures_of_a_model_that_stores_its_samples():
    X = torch.eye(6)[:3] * 2.0                    # three orthogonal samples
    m = ReLUDAE(6, 4, seed=0)
    with torch.no_grad():
        m.encoder_weight.zero_()
        m.encoder_weight[:3] = torch.eye(6)[:3]   # one neuron per sample: an exact store
    res = ip.arm_measures(m, X, X, sigma=0.01)
    assert res["stored_fraction"] == 1.0 and res["live_neurons"] == 3 and res["merged_units"] == 4
    assert res["top1_share"] > 0.99
    assert res["maxcos_live_median"] == pytest.approx(1.0)
