"""Tests of chapter 9's ground truth and statistics: per-generation labels (copy test + SSIM),
prompt-level aggregation, the prompt-clustered bootstrap, and planted data with several
ordinary captions per class."""
import numpy as np
import pytest
import torch

from utils import detection, metrics


def test_planted_dataset_with_styles():
    X = torch.rand(24, 1, 4, 4) * 2 - 1
    y = torch.arange(24) % 3                       # 8 images per class
    d = detection.planted_dataset(X, y, n_planted=2, copies=3, seed=0, captions_per_class=4)
    assert d.n_classes == 12 and d.null_label == 14 and d.captions_per_class == 4
    assert torch.equal(d.base_classes // 4, y)                       # the class is kept
    assert torch.equal(torch.bincount(d.base_classes), torch.full((12,), 2))
    assert torch.equal(d.labels[24:], torch.tensor([12, 12, 12, 13, 13, 13]))
    assert d.caption(5) == "digit 1, style 1" and d.caption(12) == "planted #0" and d.caption(14) == "(empty)"
    plain = detection.planted_dataset(X, y, n_planted=2, copies=3, seed=0)
    assert plain.caption(2) == "digit 2" and torch.equal(plain.planted, d.planted)
    with pytest.raises(ValueError, match="captions_per_class"):
        detection.planted_dataset(X, y, n_planted=2, copies=3, captions_per_class=0)


def test_ssim_and_generation_labels():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(20, 1, 8, 8, generator=g) * 2 - 1
    assert np.allclose(detection.ssim_to(X, X), 1.0)
    noisy = (X + 0.5 * torch.randn(X.shape, generator=g)).clamp(-1, 1)
    s = detection.ssim_to(noisy, X)
    assert (s < 0.9).all() and (s > -1).all()
    lab = detection.generation_labels(torch.cat([X[:5], torch.rand(5, 1, 8, 8, generator=g) * 2 - 1]), X)
    assert lab.copy.tolist() == [1] * 5 + [0] * 5 and lab.ssim_copy.tolist() == [1] * 5 + [0] * 5
    assert lab.agreement == 1.0 and lab.nearest[:5].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="same shape"):
        detection.ssim_to(X[:2], X[:3])
    with pytest.raises(ValueError, match="7 x 7"):
        detection.ssim_to(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="ssim_min"):
        detection.generation_labels(X, X, ssim_min=0)


def test_per_prompt():
    ids, m = detection.per_prompt([1.0, 3.0, 10.0, 5.0], [7, 7, 2, 7])
    assert ids.tolist() == [2, 7] and np.allclose(m, [10.0, 3.0])
    with pytest.raises(ValueError, match="one length"):
        detection.per_prompt([1.0, 2.0], [1])
    with pytest.raises(ValueError, match="NaN"):
        detection.per_prompt([np.nan], [1])


@pytest.mark.parametrize("fpr", [0.0, 0.1, 0.3])
def test_weighted_metrics_equal_replicated_data(fpr):
    rng = np.random.default_rng(1)
    s = rng.integers(0, 6, 40).astype(float)        # many ties
    y = rng.random(40) < 0.4
    for _ in range(5):
        w = rng.integers(0, 3, 40)
        if not (w[y].sum() and w[~y].sum()):
            continue
        idx = np.repeat(np.arange(40), w)
        W = w[None].astype(float)
        assert np.isclose(detection._weighted_auroc(s, y, W)[0], metrics.roc_auc(s[idx], y[idx].astype(int)))
        assert np.isclose(detection._weighted_tpr_at_fpr(s, y, W, fpr)[0],
                          metrics.tpr_at_fpr(s[idx], y[idx].astype(int), fpr))


def test_clustered_bootstrap():
    rng = np.random.default_rng(0)
    clusters = np.repeat(np.arange(30), 4)
    y = (clusters < 12).astype(int)
    good = y + 0.3 * rng.normal(size=120)
    bad = rng.normal(size=120)
    res = detection.clustered_bootstrap({"good": good, "bad": bad}, y, clusters, draws=300, seed=1)
    assert res["good"]["auroc"] == metrics.roc_auc(good, y)
    assert res["good"]["tpr"] == metrics.tpr_at_fpr(good, y, 0.01)
    lo, hi = detection.ci(res["good"]["auroc_draws"])
    assert 0.9 < lo <= res["good"]["auroc"] <= hi <= 1.0
    lo, hi = detection.ci(res["bad"]["auroc_draws"])
    assert lo < 0.5 < hi and hi - lo > 0.1
    again = detection.clustered_bootstrap({"good": good}, y, clusters, draws=300, seed=1)
    assert np.array_equal(again["good"]["auroc_draws"], res["good"]["auroc_draws"])   # same seed, same draws
    # whole clusters are resampled: a score constant within clusters varies more than row resampling says
    const = np.repeat(rng.normal(size=30), 4) + 0.5 * y
    by_cluster = detection.clustered_bootstrap({"c": const}, y, clusters, draws=400, seed=2)["c"]["auroc_draws"]
    by_row = detection.clustered_bootstrap({"c": const}, y, np.arange(120), draws=400, seed=2)["c"]["auroc_draws"]
    assert by_cluster.std() > 1.5 * by_row.std()
    with pytest.raises(ValueError, match="both classes"):
        detection.clustered_bootstrap({"a": good}, np.ones(120), clusters)
    with pytest.raises(ValueError, match="shape"):
        detection.clustered_bootstrap({"a": good[:5]}, y, clusters)
    with pytest.raises(ValueError, match="clusters"):
        detection.clustered_bootstrap({"a": good}, y, clusters[:5])
    with pytest.raises(ValueError, match="NaN"):
        detection.clustered_bootstrap({"a": np.full(120, np.nan)}, y, clusters)
    assert detection.ci([np.nan, 0.0, 1.0]) == (0.025, 0.975)


def test_planted_samples_quick_roundtrip_and_verification(tmp_path):
    from pathlib import Path

    from utils import planted_samples, unet
    from utils.train_unet import planted_from_config
    ck = Path(__file__).resolve().parents[1] / "book" / "checkpoints" / "unet_digits_planted_many.safetensors"
    out = tmp_path / "ps.safetensors"
    side = planted_samples.main(["--checkpoint", str(ck), "--out", str(out), "--quick"])
    got, side2 = planted_samples.load(out, checkpoint=ck)
    assert side2 == side and side["command"].endswith("--quick")
    q = planted_samples.QUICK
    model, meta = unet.load_checkpoint(ck)
    data = planted_from_config(meta["config"])
    lab = planted_samples.prompts(data, q["generations"], q["grid_generations"])
    assert set(got) == {"all"} | {f"{k}_w{w:g}" for k in ("planted", "grid") for w in q["w_grid"]}
    assert len(got["all"]) == len(lab["all"]) == 72 * q["generations"]
    assert len(got["planted_w2"]) == 32 * q["grid_generations"] and (lab["planted"] >= data.n_classes).all()
    fresh = unet.sample(model, unet.make_scheduler(), len(lab["grid"]), steps=q["steps"], seed=q["seed"],
                        class_labels=lab["grid"], guidance=2.0, null_label=data.null_label)
    assert torch.equal(fresh, got["grid_w2"])
    out.write_bytes(out.read_bytes()[:-4] + b"\0\0\0\0")          # tamper with the file
    with pytest.raises(ValueError, match="sha256"):
        planted_samples.load(out)
    with pytest.raises(ValueError, match="grid_generations"):
        planted_samples.prompts(data, 2, 3)
    with pytest.raises(ValueError, match="safetensors"):
        planted_samples.write(ck, tmp_path / "x.pt")


def test_shipped_planted_samples_verify():
    from pathlib import Path

    from utils import planted_samples
    book = Path(__file__).resolve().parents[1] / "book"
    got, side = planted_samples.load(book / "results" / "planted_samples.safetensors",
                                     checkpoint=book / "checkpoints" / "unet_digits_planted_many.safetensors")
    assert side["protocol"] == planted_samples.PROTOCOL and got["all"].shape == (432, 1, 16, 16)
