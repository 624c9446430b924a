"""Tests of chapter 8's additions: data splits and held-out losses of utils.train_unet, early
stopping, stored samples (utils.unet_samples) and chapter 8's new checkpoints."""
import json
from pathlib import Path

import pytest
import torch

from utils import train_unet, unet, unet_samples

CHECKPOINTS = Path(__file__).resolve().parents[1] / "book" / "checkpoints"
CH8 = {"digits-generalized-long": "unet_digits_generalized_long",
       "digits-mem-pair-a": "unet_digits_mem_pair_a", "digits-mem-pair-b": "unet_digits_mem_pair_b",
       "digits-half-a": "unet_digits_half_a", "digits-half-b": "unet_digits_half_b"}


def test_split_indices_are_disjoint_and_cover():
    a_tr, a_ho = train_unet.split_indices(11, parts=2, index=0, holdout=2, seed=3)
    b_tr, b_ho = train_unet.split_indices(11, parts=2, index=1, seed=3)
    allidx = torch.cat([a_tr, a_ho, b_tr, b_ho])
    assert sorted(allidx.tolist()) == list(range(11))          # a partition of range(11)
    assert len(a_tr) + len(a_ho) == 6 and len(a_ho) == 2 and len(b_ho) == 0
    same = train_unet.split_indices(11, parts=2, index=0, holdout=2, seed=3)
    assert torch.equal(same[0], a_tr) and torch.equal(same[1], a_ho)
    with pytest.raises(ValueError, match="index"):
        train_unet.split_indices(11, parts=2, index=2)
    with pytest.raises(ValueError, match="no training image"):
        train_unet.split_indices(4, parts=2, holdout=2)
    with pytest.raises(ValueError, match="parts"):
        train_unet.split_indices(3, parts=4)


def test_configs_give_disjoint_training_sets():
    ha, _ = train_unet.data_from_config("digits-half-a")
    hb, _ = train_unet.data_from_config("digits-half-b")
    assert ha.shape[0] + hb.shape[0] == 1797 and abs(ha.shape[0] - hb.shape[0]) <= 1
    d = torch.cdist(ha.flatten(1), hb.flatten(1))
    # disjoint as index sets; the digits set holds no exact duplicate across the halves
    assert float(d.min()) > 0
    ma, _ = train_unet.data_from_config("digits-mem-pair-a")
    mb, _ = train_unet.data_from_config("digits-mem-pair-b")
    assert ma.shape[0] == mb.shape[0] == 16
    assert float(torch.cdist(ma.flatten(1), mb.flatten(1)).min()) > 0
    tr, ho = train_unet.data_from_config("digits-generalized-long")
    assert (tr.shape[0], ho.shape[0]) == (1500, 297)
    assert float(torch.cdist(tr.flatten(1), ho.flatten(1)).min()) > 0
    full, none = train_unet.data_from_config("digits-memorized")
    assert full.shape[0] == 16 and none.shape[0] == 0
    with pytest.raises(ValueError, match="planted"):
        train_unet.data_from_config("digits-planted")


def test_eval_loss_is_paired_and_checks_input():
    torch.manual_seed(0)
    model = unet.build_unet().eval()
    X, _ = train_unet.data_from_config("digits-memorized")
    a = train_unet.eval_loss(model, X[:4], seed=1)
    assert a == train_unet.eval_loss(model, X[:4], seed=1) and a > 0
    assert a != train_unet.eval_loss(model, X[:4], seed=2)
    with pytest.raises(ValueError, match="empty"):
        train_unet.eval_loss(model, X[:0])


def test_callback_can_stop_training():
    torch.manual_seed(0)
    model = unet.build_unet()
    X, _ = train_unet.data_from_config("digits-memorized")
    seen = []
    losses = train_unet.fit_unet(model, X, steps=6, batch_size=2, callback_every=1,
                                 callback=lambda k, m: seen.append(k) or k == 2)
    assert len(losses) == 2 and seen == [1, 2]


def test_heldout_curve_in_the_sidecar(tmp_path):
    out = tmp_path / "g.safetensors"
    meta = train_unet.main(["--config", "digits-generalized-long", "--out", str(out), "--steps", "2",
                            "--threads", "1"])
    assert meta["n_train"] == 1500 and meta["n_heldout"] == 297
    curve = meta["loss_curve"]
    assert curve["step"] == [2] and len(curve["train"]) == len(curve["heldout"]) == 1
    assert meta["stopped_early"] is False and "--steps 2" in meta["command"]


def test_stored_samples_equal_fresh_samples_and_are_verified(tmp_path):
    ck = tmp_path / "m.safetensors"
    train_unet.main(["--config", "digits-memorized", "--out", str(ck), "--steps", "1", "--threads", "1"])
    out = tmp_path / "s.safetensors"
    side = unet_samples.main(["--checkpoint", str(ck), "--n", "3", "--seeds", "4", "5",
                              "--steps", "2", "--out", str(out)])
    got, side2 = unet_samples.load_samples(out, checkpoint=ck)
    assert side == side2 and sorted(got) == [4, 5]
    model, _ = unet.load_checkpoint(ck)
    assert torch.equal(got[5], unet.sample(model, unet.make_scheduler(), 3, steps=2, seed=5))
    other = tmp_path / "o.safetensors"
    train_unet.main(["--config", "digits-memorized", "--out", str(other), "--steps", "2", "--threads", "1"])
    with pytest.raises(ValueError, match="another checkpoint"):
        unet_samples.load_samples(out, checkpoint=other)
    out.write_bytes(out.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ValueError, match="sha256"):
        unet_samples.load_samples(out)
    with pytest.raises(ValueError, match="seeds"):
        unet_samples.write_samples(ck, tmp_path / "x.safetensors", n=2, seeds=[1, 1], steps=2)


@pytest.mark.parametrize("name", sorted(CH8))
def test_chapter8_checkpoints_verify(name):
    path = CHECKPOINTS / f"{CH8[name]}.safetensors"
    if not path.exists():
        pytest.skip(f"{path.name} not shipped")
    assert path.stat().st_size <= 5 * 2**20
    meta = unet.verify_checkpoint(path)
    cfg = unet.get_config(name)
    assert meta["config_name"] == name
    # a checkpoint is either the full run or its k-step prefix (a snapshot of the same command)
    assert meta["config"] == cfg or meta["config"] == dict(cfg, steps=meta["steps"])
    assert meta["command"].startswith(f"python -m utils.train_unet --config {name} ")
    json.dumps(meta)


def test_probe_grid_matches_unet_probe_and_selects_the_best():
    from utils import probe_grid
    torch.manual_seed(0)
    model = unet.build_unet().eval()
    sched = unet.make_scheduler()
    x = torch.rand(5, 1, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
    feats = probe_grid.probe_features(model, sched, x, outputs=["up_blocks.0"],
                                      resnets=["up_blocks.0.resnets.0"], timesteps=[10, 200], seed=4)
    assert set(feats) == {(s, t) for s in ("output:up_blocks.0", "post_norm2:up_blocks.0.resnets.0")
                          for t in (10, 200)}
    ref_out = unet.probe(model, sched, x, ["up_blocks.0"], timestep=200, seed=4)["up_blocks.0"]
    ref_pn2 = unet.probe(model, sched, x, ["up_blocks.0.resnets.0"], timestep=10, seed=4,
                         site="post_norm2")["up_blocks.0.resnets.0"]
    assert torch.equal(feats["output:up_blocks.0", 200], ref_out)
    assert torch.equal(feats["post_norm2:up_blocks.0.resnets.0", 10], ref_pn2)
    scores = probe_grid.score_grid(feats, pools=("max",), kinds=("std", "hoyer"))
    assert len(scores) == 8 and probe_grid.official_key(0) in scores
    y = [1, 1, 0, 0, 0]
    good = {"a": [0.1, 0.2, 0.3, 0.4, 0.5], "b": [0.9, 0.8, 0.1, 0.2, 0.3], "c": [0.9, 0.8, 0.1, 0.2, 0.3]}
    assert probe_grid.select_probe(good, y) == "b"            # ties go to the first key
    assert "post-norm2 SiLU of up_blocks.0.resnets.0, t=10, max, std" == probe_grid.describe(probe_grid.official_key(0))
    with pytest.raises(ValueError, match="site"):
        probe_grid.probe_features(model, sched, x)
    with pytest.raises(ValueError, match="timesteps"):
        probe_grid.probe_features(model, sched, x, outputs=["mid_block"], timesteps=[1000])
    with pytest.raises(ValueError, match="empty"):
        probe_grid.select_probe({}, y)


def test_pair_distances_and_median_interval():
    import numpy as np
    from utils import pair_test
    g = torch.Generator().manual_seed(0)
    A = torch.randn(6, 1, 4, 4, generator=g)
    B = A + 0.01                                   # the "generalizing" pair: nearly the same images
    ta, tb = A[:3] + 0.5, torch.randn(5, 1, 4, 4, generator=g)
    d = pair_test.pair_distances(A, B, ta, tb)
    assert np.allclose(d["paired"], 0.01 * 4)      # 16 pixels, each off by 0.01
    assert (d["unpaired"] > d["paired"]).all()     # a derangement never pairs a row with itself
    assert np.allclose(d["nearest_a"][:3], 0.5 * 4)
    assert d["nearest_b"].shape == (6,)
    med, lo, hi = pair_test.median_interval(np.arange(11.0))
    assert med == 5.0 and lo <= med <= hi and lo < hi
    with pytest.raises(ValueError, match="same shape"):
        pair_test.pair_distances(A, B[:5], ta, tb)
    with pytest.raises(ValueError, match="finite"):
        pair_test.median_interval([1.0, float("nan")])



def test_per_image_loss_matches_eval_loss_and_loss_gap():
    import numpy as np
    from utils import pair_test
    torch.manual_seed(0)
    model = unet.build_unet().eval()
    sched = unet.make_scheduler("ddpm")
    X, _ = train_unet.data_from_config("digits-memorized")
    per = pair_test.per_image_loss(model, sched, X[:5], seed=3, batch_size=2)
    assert per.shape == (5,) and (per > 0).all()
    assert np.isclose(per.mean(), train_unet.eval_loss(model, X[:5], seed=3), rtol=1e-5)
    g = pair_test.loss_gap(model, sched, X[:5], X[:5], seed=3)
    assert g["gap"] == 0.0 and g["lo"] <= 0.0 <= g["hi"]           # same images, same draws: no gap
    noisy = (X[5:10] + 0.8 * torch.randn(X[5:10].shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    h = pair_test.loss_gap(model, sched, X[5:10], noisy, seed=3)
    assert np.isclose(h["gap"], h["other"] - h["own"]) and np.isclose(h["relative"], h["gap"] / h["own"])
    assert h["lo"] <= h["gap"] <= h["hi"]
    with pytest.raises(ValueError, match="empty"):
        pair_test.per_image_loss(model, sched, X[:0])
    with pytest.raises(ValueError, match="draws"):
        pair_test.per_image_loss(model, sched, X[:2], draws=0)


RESULTS = CHECKPOINTS.parent / "results"


@pytest.mark.parametrize("stem", ["memorized", "generalized", "generalized_long", "mem_pair_a",
                                  "mem_pair_b", "half_a", "half_b"])
def test_shipped_samples_verify_against_their_checkpoints(stem):
    path = RESULTS / f"unet_samples_{stem}.safetensors"
    if not path.exists():
        pytest.skip(f"{path.name} not shipped")
    samples, side = unet_samples.load_samples(path, checkpoint=CHECKPOINTS / f"unet_digits_{stem}.safetensors")
    assert sorted(samples) == side["seeds"]
    for s in samples.values():
        assert s.shape == (side["n"], 1, 16, 16) and float(s.abs().max()) <= 1.0
