"""Tests of utils.detection (chapter 9) and the caption-conditional paths of utils.unet / train_unet."""
import numpy as np
import pytest
import torch

from utils import detection, train_unet, unet

TINY = dict(unet.SMALL_UNET, sample_size=8, block_out_channels=(8, 16, 16), num_class_embeds=5)


@pytest.fixture(scope="module")
def cond_model():
    torch.manual_seed(0)
    return unet.build_unet(TINY).eval()


@pytest.fixture(scope="module")
def sched():
    return unet.make_scheduler()


def test_planted_dataset_layout_and_captions():
    X = torch.rand(30, 1, 4, 4) * 2 - 1
    y = torch.arange(30) % 3
    d = detection.planted_dataset(X, y, n_planted=4, copies=5, seed=1)
    assert d.images.shape == (30 + 20, 1, 4, 4) and d.labels.shape == (50,)
    assert torch.equal(d.images[:30], X) and torch.equal(d.labels[:30], y)
    assert d.n_classes == 3 and d.null_label == 7 and d.num_labels == 8
    assert torch.equal(d.planted_labels, torch.tensor([3, 4, 5, 6]))
    for i, b in enumerate(d.planted.tolist()):          # each planted image: 5 copies, own caption
        rows = (d.labels == 3 + i).nonzero().flatten()
        assert len(rows) == 5 and all(torch.equal(d.images[r], X[b]) for r in rows)
    assert d.caption(1) == "digit 1" and d.caption(4) == "planted #1" and d.caption(7) == "(empty)"
    with pytest.raises(ValueError, match="label"):
        d.caption(8)
    again = detection.planted_dataset(X, y, n_planted=4, copies=5, seed=1)
    assert torch.equal(again.planted, d.planted)


def test_planted_dataset_rejects_bad_input():
    X = torch.zeros(5, 1, 2, 2)
    with pytest.raises(ValueError, match="integers"):
        detection.planted_dataset(X, torch.zeros(5), n_planted=1, copies=2)
    with pytest.raises(ValueError, match="exceeds"):
        detection.planted_dataset(X, torch.zeros(5, dtype=torch.long), n_planted=6, copies=2)
    with pytest.raises(ValueError, match="n_classes"):
        detection.planted_dataset(X, torch.arange(5), n_planted=1, copies=2, n_classes=3)
    with pytest.raises(ValueError, match="NaN|finite"):
        detection.planted_dataset(X * float("nan"), torch.arange(5), n_planted=1, copies=2)


def test_labels_are_checked(cond_model, sched):
    plain = unet.build_unet(dict(TINY, num_class_embeds=None))
    with pytest.raises(ValueError, match="unconditional"):
        unet.sample(plain, sched, 2, steps=2, class_labels=[0, 1])
    with pytest.raises(ValueError, match="give class_labels"):
        unet.sample(cond_model, sched, 2, steps=2)
    with pytest.raises(ValueError, match=r"\[0, 4\]"):
        unet.sample(cond_model, sched, 2, steps=2, class_labels=[0, 5])
    with pytest.raises(TypeError, match="integers"):
        unet.sample(cond_model, sched, 2, steps=2, class_labels=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        unet.sample(cond_model, sched, 2, steps=2, class_labels=[0, 1, 2])
    with pytest.raises(ValueError, match="null_label"):
        unet.sample(cond_model, sched, 2, steps=2, class_labels=[0, 1], guidance=3.0)


def test_guided_sampling_is_seeded_and_guidance_one_is_conditional(cond_model, sched):
    a = unet.sample(cond_model, sched, 3, steps=3, class_labels=[0, 1, 2], guidance=2.0, null_label=4, seed=3)
    b = unet.sample(cond_model, sched, 3, steps=3, class_labels=[0, 1, 2], guidance=2.0, null_label=4, seed=3)
    assert a.shape == (3, 1, 8, 8) and torch.equal(a, b)
    c = unet.sample(cond_model, sched, 3, steps=3, class_labels=[0, 1, 2], guidance=1.0, null_label=4, seed=3)
    d = unet.sample(cond_model, sched, 3, steps=3, class_labels=[0, 1, 2], seed=3)
    assert torch.equal(c, d) and not torch.equal(a, c)
    assert torch.equal(unet.initial_noise(cond_model, 3, seed=3), unet.initial_noise(cond_model, 3, seed=3))


def test_noise_gap_vanishes_when_the_caption_embeds_like_the_empty_one(sched):
    torch.manual_seed(1)
    model = unet.build_unet(TINY).eval()
    with torch.no_grad():
        model.class_embedding.weight[2] = model.class_embedding.weight[4]   # caption 2 == empty
    x = torch.randn(4, 1, 8, 8)
    gap = detection.noise_gap(model, sched, x, 500, [2, 2, 1, 1], null_label=4)
    assert gap.shape == (4,)
    np.testing.assert_allclose(gap[:2], 0.0, atol=1e-6)
    assert (gap[2:] > 1e-3).all()
    with pytest.raises(ValueError, match="timestep"):
        detection.noise_gap(model, sched, x, 1000, 1, null_label=4)
    first = detection.first_step_noise_gap(model, sched, torch.tensor([1, 2]), null_label=4, seed=7, steps=4)
    sched.set_timesteps(4)
    direct = detection.noise_gap(model, sched, unet.initial_noise(model, 2, seed=7),
                                 int(sched.timesteps[0]), [1, 2], null_label=4)
    np.testing.assert_allclose(first, direct)


def test_representation_score_and_oracle(cond_model, sched):
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    with pytest.raises(ValueError, match="null_label"):
        detection.representation_score(cond_model, sched, x, layer="up_blocks.1")
    s = detection.representation_score(cond_model, sched, x, layer="up_blocks.1", null_label=4)
    h = detection.representation_score(cond_model, sched, x, layer="up_blocks.1", null_label=4,
                                       pooling="mean", kind="hoyer")
    assert s.shape == h.shape == (5,) and np.isfinite(s).all() and ((h >= 0) & (h <= 1)).all()
    v = detection.pooled_representation(cond_model, sched, x, layer="up_blocks.1", prompts=[0, 1, 2, 3, 0])
    assert v.shape == (5, 16)
    w = detection.pooled_representation(cond_model, sched, x, layer="up_blocks.1", null_label=4)
    assert not torch.allclose(v, w)                  # the caption changes the representation
    with pytest.raises(ValueError, match=r"\[0, 4\]"):
        detection.pooled_representation(cond_model, sched, x, layer="up_blocks.1", prompts=9)
    with pytest.raises(ValueError, match="up_blocks"):
        detection.representation_score(cond_model, sched, x, layer="up_block.9", null_label=4)
    train = torch.rand(10, 1, 8, 8)
    q = torch.cat([train[:1], torch.rand(3, 1, 8, 8)])
    nn = detection.nearest_neighbor_score(q, train)
    assert nn[0] == pytest.approx(0.0) and (nn[1:] < 0).all()


def test_detection_summary():
    res = detection.detection_summary({"good": [3, 2, 1, 0], "bad": [0, 1, 2, 3]}, [1, 1, 0, 0])
    assert res["good"] == {"auroc": 1.0, "tpr_at_fpr": 1.0}
    assert res["bad"]["auroc"] == 0.0
    with pytest.raises(ValueError, match="shape"):
        detection.detection_summary({"x": [1, 2]}, [1, 0, 0])


def test_fit_unet_with_captions_and_condition_dropout():
    torch.manual_seed(0)
    model = unet.build_unet(TINY)
    X = torch.rand(6, 1, 8, 8) * 2 - 1
    lab = torch.tensor([0, 1, 2, 3, 0, 1])
    losses = train_unet.fit_unet(model, X, steps=3, batch_size=4, labels=lab, cond_drop=0.5, null_label=4)
    assert len(losses) == 3 and all(np.isfinite(losses))
    with pytest.raises(ValueError, match="cond_drop"):
        train_unet.fit_unet(model, X, steps=1, labels=lab, cond_drop=1.0, null_label=4)
    with pytest.raises(ValueError, match="null_label"):
        train_unet.fit_unet(model, X, steps=1, labels=lab, cond_drop=0.1)
    with pytest.raises(ValueError, match="give labels"):
        train_unet.fit_unet(model, X, steps=1)
