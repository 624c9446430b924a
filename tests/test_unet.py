"""Tests of utils.unet, utils.train_unet (the checkpoint command) and utils.dropdown_explorer."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from utils import train_unet, unet

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = ROOT / "book" / "checkpoints"
SHIPPED = {"digits-memorized": CHECKPOINTS / "unet_digits_memorized.safetensors",
           "digits-generalized": CHECKPOINTS / "unet_digits_generalized.safetensors",
           "digits-planted": CHECKPOINTS / "unet_digits_planted.safetensors",
           "digits-planted-many": CHECKPOINTS / "unet_digits_planted_many.safetensors",
           "digits-generalized-long": CHECKPOINTS / "unet_digits_generalized_long.safetensors",
           "digits-mem-pair-a": CHECKPOINTS / "unet_digits_mem_pair_a.safetensors",
           "digits-mem-pair-b": CHECKPOINTS / "unet_digits_mem_pair_b.safetensors",
           "digits-half-a": CHECKPOINTS / "unet_digits_half_a.safetensors",
           "digits-half-b": CHECKPOINTS / "unet_digits_half_b.safetensors"}


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return unet.build_unet().eval()


def test_configs_and_errors():
    assert set(unet.CONFIGS) == set(SHIPPED)
    with pytest.raises(ValueError, match="valid configs"):
        unet.get_config("nope")
    with pytest.raises(ValueError, match="invalid model_config"):
        unet.build_unet({"not_an_argument": 1})
    with pytest.raises(ValueError, match="scheduler kind"):
        unet.make_scheduler("euler")


def test_model_layout_and_loss(small_model):
    names = dict(small_model.named_modules())
    for name in ("mid_block", "up_blocks.0", "up_blocks.1", "up_blocks.2", "up_blocks.0.resnets.1"):
        assert name in names
    n_params = sum(p.numel() for p in small_model.parameters())
    assert 4 * n_params <= 5 * 2**20          # float32 checkpoint within 5 MB
    sched = unet.make_scheduler()
    x0 = torch.rand(4, 1, 16, 16) * 2 - 1
    loss = unet.diffusion_loss(small_model, sched, x0, generator=torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0
    s = unet.noise_std(sched, torch.tensor([0, 10, 500, 999]))
    assert (s[1:] > s[:-1]).all() and s[0] < 0.05
    with pytest.raises(ValueError, match="4 dimensions"):
        unet.diffusion_loss(small_model, sched, torch.zeros(4, 256))


def test_sample_and_probe(small_model):
    sched = unet.make_scheduler()
    a = unet.sample(small_model, sched, 3, steps=3, seed=5)
    b = unet.sample(small_model, sched, 3, steps=3, seed=5, batch_size=2)
    assert a.shape == (3, 1, 16, 16) and a.min() >= -1 and a.max() <= 1
    assert torch.allclose(a, b, atol=1e-5)
    reps = unet.probe(small_model, sched, a, ["mid_block", "up_blocks.2"], timestep=10)
    assert reps["mid_block"].shape == (3, 64, 4, 4) and reps["up_blocks.2"].shape == (3, 16, 16, 16)
    again = unet.probe(small_model, sched, a, ["mid_block"], timestep=10)
    assert torch.equal(reps["mid_block"], again["mid_block"])
    f = reps["mid_block"]
    assert torch.equal(unet.pool(f, "max"), f.amax((2, 3)))
    assert torch.allclose(unet.pool(f, "mean"), f.mean((2, 3)))
    with pytest.raises(ValueError, match="pooling"):
        unet.pool(f, "median")
    with pytest.raises(ValueError, match="timestep"):
        unet.probe(small_model, sched, a, ["mid_block"], timestep=1000)
    with pytest.raises(ValueError, match="unknown module name"):
        unet.probe(small_model, sched, a, ["mid_blok"], timestep=10)


def test_training_command_runs_and_is_a_prefix(tmp_path):
    """The documented checkpoint command, for a few steps; a k-step run equals the k-step
    snapshot of a longer run (the property the shipped checkpoints rely on)."""
    out = tmp_path / "m.safetensors"
    meta = train_unet.main(["--config", "digits-memorized", "--out", str(out), "--steps", "2",
                            "--snapshot-every", "1", "--threads", "1"])
    side = json.loads(out.with_suffix(".json").read_text())
    assert side == meta and side["steps"] == 2 and side["config"]["steps"] == 2
    assert side["sha256"] == unet.sha256_file(out)
    for key in ("train_seconds", "versions", "config", "command", "parameters", "final_loss"):
        assert key in side
    assert side["versions"]["torch"] == torch.__version__
    short = tmp_path / "one.safetensors"
    train_unet.main(["--config", "digits-memorized", "--out", str(short), "--steps", "1",
                     "--threads", "1"])
    assert unet.sha256_file(short) == unet.sha256_file(tmp_path / "m.step1.safetensors")
    model, _ = unet.load_checkpoint(out)
    assert not model.training


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_checkpoint_verifies_and_loads(name, tmp_path):
    path = SHIPPED[name]
    assert path.exists(), f"missing shipped checkpoint {path.name}"
    assert path.stat().st_size <= 5 * 2**20
    meta = unet.verify_checkpoint(path)
    assert meta["config_name"] == name
    cfg = unet.get_config(name)
    assert meta["config"] == cfg, "the checkpoint was made with a different config than CONFIGS"
    assert meta["steps"] == cfg["steps"] and meta["train_seconds"] > 0
    model, _ = unet.load_checkpoint(path)
    assert sum(p.numel() for p in model.parameters()) == meta["parameters"]
    # a corrupted copy is refused
    bad = tmp_path / path.name
    shutil.copy(path, bad)
    shutil.copy(path.with_suffix(".json"), bad.with_suffix(".json"))
    data = bytearray(bad.read_bytes())
    data[-1] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match"):
        unet.load_checkpoint(bad)


def test_dropdown_explorer():
    pytest.importorskip("ipywidgets")
    from utils.dropdown_explorer import png_dropdowns
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 10
    opts = {"layer": ["a", "b"], "t": [1, 2, 3]}
    pngs = {(l, t): png for l in opts["layer"] for t in opts["t"]}
    alt = "Histogram of the probe's activations at layer {layer} and timestep {t}"
    box = png_dropdowns(pngs, opts, alt=alt)
    dropdowns, root = box.children[0].children, box.children[1]
    assert [d.description for d in dropdowns] == ["layer", "t"]
    assert len(root.children) == 2 and len(root.children[0].children) == 3
    assert 'alt="Histogram of the probe&#x27;s activations at layer b and timestep 2"' \
        in root.children[1].children[1].value
    with pytest.raises(ValueError, match="{t}"):
        png_dropdowns(pngs, opts, alt="Histogram of the probe's activations at layer {layer} here")
    del pngs[("b", 3)]
    with pytest.raises(ValueError, match="no image"):
        png_dropdowns(pngs, opts, alt=alt)
    with pytest.raises(TypeError, match="PNG"):
        png_dropdowns({(l, t): b"nope" for l in opts["layer"] for t in opts["t"]}, opts, alt=alt)
