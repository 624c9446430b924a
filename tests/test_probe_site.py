"""The official probe site (post-norm2 SiLU of up_blocks.0's resnets) against a hand computation."""
import pytest
import torch
import torch.nn.functional as F

from utils import detection, representations, unet


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = unet.build_unet().eval()
    with torch.no_grad():                      # non-trivial norms so that a wrong site shows
        for m in model.modules():
            if isinstance(m, torch.nn.GroupNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model


def _hand_post_norm2(resnet, x, temb):
    """SiLU(norm2(conv1(SiLU(norm1(x))) + time_emb_proj(SiLU(temb)))), written out by hand."""
    h = F.silu(F.group_norm(x, resnet.norm1.num_groups, resnet.norm1.weight, resnet.norm1.bias,
                            resnet.norm1.eps))
    h = resnet.conv1(h)
    h = h + resnet.time_emb_proj(F.silu(temb))[:, :, None, None]
    h = F.group_norm(h, resnet.norm2.num_groups, resnet.norm2.weight, resnet.norm2.bias,
                     resnet.norm2.eps)
    return F.silu(h)


@torch.no_grad()
def test_post_norm2_matches_a_hand_computation_and_the_official_hook(tiny):
    names = representations.resnet_names(tiny, "up_blocks.0")
    assert names == ["up_blocks.0.resnets.0", "up_blocks.0.resnets.1"]
    x = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([10, 10, 10])
    inputs, official = {}, {}
    handles = []
    for name in names:
        res = dict(tiny.named_modules())[name]
        handles.append(res.register_forward_pre_hook(
            lambda m, a, k, name=name: inputs.__setitem__(name, (a[0], a[1] if len(a) > 1 else k["temb"])),
            with_kwargs=True))
        # the official code's hook: forward hook on the shared SiLU; the last call wins
        handles.append(res.nonlinearity.register_forward_hook(
            lambda m, a, out, name=name: official.__setitem__(name, out)))
    with representations.capture_post_norm2(tiny, names) as reps, \
            representations.capture(tiny, ["up_blocks.0"]) as block:
        tiny(x, t)
    for h in handles:
        h.remove()
    for name in names:
        res = dict(tiny.named_modules())[name]
        want = _hand_post_norm2(res, *inputs[name])
        torch.testing.assert_close(reps[name], want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(reps[name], official[name], rtol=0, atol=0)
        assert reps[name].min() >= -0.2785                 # SiLU's minimum: nearly non-negative
    # the block output (the book's former probe site) is a different, signed tensor
    assert block["up_blocks.0"].shape != reps[names[-1]].shape or \
        not torch.allclose(block["up_blocks.0"], reps[names[-1]])
    assert block["up_blocks.0"].min() < -0.3


def test_probe_site_errors(tiny):
    with pytest.raises(ValueError, match="not a diffusers ResnetBlock2D"):
        with representations.capture_post_norm2(tiny, ["up_blocks.0"]):
            pass
    with pytest.raises(ValueError, match="unknown module name"):
        with representations.capture_post_norm2(tiny, ["up_blocks.0.resnets.9"]):
            pass
    with pytest.raises(ValueError, match="no resnets"):
        representations.resnet_names(tiny, "conv_in")
    sched = unet.make_scheduler()
    with pytest.raises(ValueError, match="unknown probe site"):
        unet.probe(tiny, sched, torch.zeros(1, 1, 16, 16), ["up_blocks.0"], site="inside")


@torch.no_grad()
def test_detector_reads_the_post_norm2_site(tiny):
    sched = unet.make_scheduler()
    imgs = torch.rand(4, 1, 16, 16) * 2 - 1
    name = "up_blocks.0.resnets.1"
    feats = unet.probe(tiny, sched, imgs, [name], site="post_norm2")[name]
    pooled = detection.pooled_representation(tiny, sched, imgs, layer=name, site="post_norm2")
    torch.testing.assert_close(pooled, feats.amax(dim=(2, 3)))
    score = detection.representation_score(tiny, sched, imgs, layer=name, site="post_norm2")
    torch.testing.assert_close(torch.as_tensor(score), pooled.std(dim=1, unbiased=False).double(),
                               rtol=1e-6, atol=1e-7)
