"""utils.sd, utils.prompts, utils.sharding and utils.sd_experiment, offline on tiny models."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from utils import data, prompts, sd, sd_experiment, sharding
from utils.representations import capture_post_norm2

ROOT = Path(__file__).resolve().parents[1]

# Stable Diffusion v1.4's UNet configuration (unet/config.json of CompVis/stable-diffusion-v1-4),
# written here so that the test needs no download: it guards against diffusers renaming modules.
SD14_UNET = {"act_fn": "silu", "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280],
             "center_input_sample": False, "cross_attention_dim": 768,
             "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                  "DownBlock2D"],
             "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4,
             "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32,
             "out_channels": 4, "sample_size": 64,
             "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]}


@pytest.fixture(scope="module")
def pipe():
    torch.set_num_threads(1)
    return sd.tiny_pipeline(seed=0)


@pytest.fixture
def no_network(monkeypatch):
    """Every socket connection fails at once, as on a machine without internet."""
    def refuse(*args, **kwargs):
        raise OSError("network blocked by the test")
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_sd14_unet_has_every_hooked_module_with_the_expected_shapes():
    from diffusers import UNet2DConditionModel
    from utils.representations import capture
    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD14_UNET)
    names = dict(unet.named_modules())
    for layer in list(sd.STEER_LAYERS) + [sd.PROBE_LAYER]:
        assert layer in names, layer
    assert [n for n in names if n.startswith("up_blocks.0.resnets.") and n.count(".") == 3] == \
        ["up_blocks.0.resnets.0", "up_blocks.0.resnets.1", "up_blocks.0.resnets.2"]
    assert names[sd.PROBE_LAYER].norm2.num_channels == 1280
    x = torch.empty(1, 4, 64, 64, device="meta")
    enc = torch.empty(1, 77, 768, device="meta")
    with capture_post_norm2(unet, [sd.PROBE_LAYER]) as reps, capture(unet, list(sd.STEER_LAYERS)) as outs:
        unet(x, torch.tensor([10], device="meta"), encoder_hidden_states=enc)
    assert tuple(reps[sd.PROBE_LAYER].shape) == (1, 1280, 8, 8)
    assert {k: tuple(v.shape[1:]) for k, v in outs.items()} == {
        "up_blocks.0.resnets.0": (1280, 8, 8), "up_blocks.0.resnets.1": (1280, 8, 8),
        "up_blocks.0.resnets.2": (1280, 8, 8), "up_blocks.1.resnets.0": (1280, 16, 16),
        "up_blocks.1.resnets.1": (1280, 16, 16)}


def test_tiny_pipeline_mirrors_the_hooked_layout(pipe):
    names = dict(pipe.unet.named_modules())
    for layer in list(sd.STEER_LAYERS) + [sd.PROBE_LAYER]:
        assert layer in names
    with pytest.raises(ValueError, match="multiple of 8"):
        sd.tiny_pipeline(image_size=12)


def test_generate_is_seeded_per_image_and_returns_wen(pipe):
    imgs, wen = sd.generate(pipe, ["a", "b", "a"], [0, 1, 0], steps=3, batch_size=2, progress=False)
    assert imgs.shape == (3, 3, 16, 16) and imgs.min() >= -1 and imgs.max() <= 1
    assert wen.shape == (3,) and np.all(wen > 0)
    one, wen1 = sd.generate(pipe, ["a"], [0], steps=3, progress=False)
    torch.testing.assert_close(one[0], imgs[0], atol=1e-5, rtol=0)      # independent of batching
    np.testing.assert_allclose(wen1[0], wen[0], rtol=1e-5)
    assert not torch.allclose(imgs[0], imgs[1])
    with pytest.raises(ValueError, match="one seed per image"):
        sd.generate(pipe, ["a", "b"], [0], steps=3, progress=False)
    with pytest.raises(ValueError, match="guidance must be > 1"):
        sd.generate(pipe, ["a"], [0], steps=3, guidance=1.0, progress=False)
    with pytest.raises(ValueError, match="non-empty list of strings"):
        sd.generate(pipe, [], [], steps=3, progress=False)


def test_wen_statistic_is_the_first_step_guidance_gap(pipe):
    prompt, seed = "a fox", 3
    _, wen = sd.generate(pipe, [prompt], [seed], steps=4, progress=False)
    pipe.scheduler.set_timesteps(4)
    t = pipe.scheduler.timesteps[0]
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(seed)) * pipe.scheduler.init_noise_sigma
    x = pipe.scheduler.scale_model_input(x, t)
    with torch.no_grad():
        e_c = pipe.unet(x, t, encoder_hidden_states=sd.encode_prompts(pipe, [prompt])).sample
        e_u = pipe.unet(x, t, encoder_hidden_states=sd.encode_prompts(pipe, [""])).sample
    np.testing.assert_allclose(wen[0], float((e_c - e_u).norm()), rtol=1e-4)


def test_probe_reads_the_post_norm2_site_max_pooled(pipe):
    imgs = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    reps = sd.probe_representations(pipe, imgs, seed=5)
    assert list(reps) == ["up_blocks.0.resnets.0", "up_blocks.0.resnets.1", "up_blocks.0.resnets.2"]
    # by hand: the same latents and noise, one pass with the empty prompt
    z = sd.encode_images(pipe, imgs, seed=5)
    noise = torch.stack([torch.randn(z.shape[1:], generator=torch.Generator().manual_seed(5 + k + sd.PROBE_OFFSET))
                         for k in range(3)])
    t = torch.full((3,), sd.PROBE_TIMESTEP)
    zt = pipe.scheduler.add_noise(z, noise, t)
    with capture_post_norm2(pipe.unet, [sd.PROBE_LAYER]) as want, torch.no_grad():
        pipe.unet(zt, t, encoder_hidden_states=sd.encode_prompts(pipe, [""] * 3))
    torch.testing.assert_close(reps[sd.PROBE_LAYER], want[sd.PROBE_LAYER].amax(dim=(2, 3)))
    with pytest.raises(ValueError, match="3 channels"):
        sd.probe_representations(pipe, torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        sd.probe_representations(pipe, torch.full((1, 3, 16, 16), 3.0))
    with pytest.raises(ValueError, match="NaN|nan"):
        sd.probe_representations(pipe, torch.full((1, 3, 16, 16), float("nan")))
    with pytest.raises(ValueError, match="timestep"):
        sd.probe_representations(pipe, imgs, timestep=5000)


def test_steering_window_and_zero_alpha(pipe):
    assert sd.steering_window() == (20, 38)          # the last 20 of 40 steps except the final 2
    with pytest.raises(ValueError):
        sd.steering_window(10, 20, 2)
    imgs = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    ref = sd.reference_representations(pipe, imgs, ["old"] * 2 + ["young"] * 2)
    d = sd.steering_directions({k: v[:2] for k, v in ref.items()}, {k: v[2:] for k, v in ref.items()})
    assert set(d) == set(sd.STEER_LAYERS) and all(v.shape == (pipe.unet.config.block_out_channels[-1],)
                                                  for k, v in d.items() if k.startswith("up_blocks.0"))
    base, _ = sd.generate(pipe, ["a"], [0], steps=6, progress=False)
    zero = sd.generate_steered(pipe, ["a"], [0], d, 0.0, steps=6, last=4, skip_final=1, progress=False)
    torch.testing.assert_close(zero, base)
    # the direction is added exactly on the window's steps (2, 3, 4 of 0..5), on every batch
    seen = []
    h = pipe.unet.up_blocks[0].resnets[0].register_forward_hook(lambda m, a, o: seen.append(o.detach().clone()))
    try:
        sd.generate_steered(pipe, ["a", "b"], [0, 1], d, 2.0, steps=6, last=4, skip_final=1,
                            batch_size=1, progress=False)
    finally:
        h.remove()
    assert len(seen) == 12
    big = sd.generate_steered(pipe, ["a"], [0], {k: v * 50 for k, v in d.items()}, 1.0, steps=6,
                              last=4, skip_final=1, progress=False)
    assert (big - base).abs().max() > 1e-3


def test_load_sd_names_what_is_missing(no_network, monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(sd.SDUnavailableError, match="CUDA GPU"):
        sd.load_sd()
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(sd.SDUnavailableError, match="network is unreachable"):
        sd.load_sd(device="cpu")


def _jsonl(k=prompts.WEN_COUNT):
    return "\n".join(json.dumps({"caption": f"caption {i}", "url": f"http://x/{i}.jpg", "index": i})
                     for i in range(k)) + "\n"


def test_parse_memorized_validates_structure():
    rows = prompts.parse_memorized(_jsonl())
    assert len(rows) == 500 and rows[3] == {"caption": "caption 3", "url": "http://x/3.jpg", "index": 3}
    with pytest.raises(prompts.PromptFileError, match="should have 500"):
        prompts.parse_memorized(_jsonl(499))
    with pytest.raises(prompts.PromptFileError, match="line 2 .* not JSON"):
        prompts.parse_memorized('{"caption": "a"}\n{oops\n')
    with pytest.raises(prompts.PromptFileError, match="line 1 .*caption"):
        prompts.parse_memorized('{"text": "a"}\n')
    assert prompts.parse_ordinary(["  a ", "", None, "b"], 2) == ["a", "b"]
    with pytest.raises(prompts.PromptFileError, match="only 1"):
        prompts.parse_ordinary(["a"], 2)


def test_prompt_downloads_fail_fast_offline_and_use_the_cache(no_network, monkeypatch, tmp_path):
    import time
    monkeypatch.setenv("BOOK_DATA_DIR", str(tmp_path))
    t0 = time.perf_counter()
    with pytest.raises(data.DatasetUnavailableError, match="network is unreachable"):
        prompts.memorized_prompts()
    with pytest.raises(data.DatasetUnavailableError, match="network is unreachable"):
        prompts.ordinary_prompts(10)
    assert time.perf_counter() - t0 < 10
    cached = tmp_path / "prompts" / f"sdv1_500_memorized-{prompts.WEN_COMMIT[:12]}.jsonl"
    cached.parent.mkdir(parents=True)
    cached.write_text(_jsonl())
    rows, prov = prompts.memorized_prompts(5)
    assert [r["caption"] for r in rows] == [f"caption {i}" for i in range(5)] and prov["count"] == 500
    cached.write_text(_jsonl().replace("caption 7", "caption 8"))       # a changed file is caught
    with pytest.raises(prompts.PromptFileError, match="changed since"):
        prompts.memorized_prompts()


def test_shard_and_merge_are_complete_and_idempotent(tmp_path):
    items = list(range(11))
    parts = [sharding.shard(items, r, 3) for r in range(3)]
    assert sorted(i for p in parts for i, _ in p) == items
    meta = {"mode": "test"}
    for r, p in enumerate(parts[:2]):
        sharding.write_rank_results(tmp_path, [{"index": i, "v": x * x} for i, x in p], meta, rank=r, world_size=3)
    with pytest.raises(ValueError, match=r"ranks \[2\] of 3"):
        sharding.merge_results(tmp_path)
    sharding.write_rank_results(tmp_path, [{"index": i, "v": x * x} for i, x in parts[2]], meta, rank=2, world_size=3)
    out = sharding.merge_results(tmp_path)
    first = out.read_bytes()
    assert [r["v"] for r in json.loads(first)["records"]] == [x * x for x in items]
    assert sharding.merge_results(tmp_path).read_bytes() == first              # idempotent
    sharding.write_rank_results(tmp_path, [], {"mode": "other"}, rank=0, world_size=3)
    with pytest.raises(ValueError, match="different settings"):
        sharding.merge_results(tmp_path)
    sharding.write_rank_results(tmp_path, [], meta, rank=0, world_size=2)
    with pytest.raises(ValueError, match="different world sizes"):
        sharding.merge_results(tmp_path)
    with pytest.raises(ValueError, match="rank"):
        sharding.shard(items, 3, 3)
    with pytest.raises(ValueError, match="index"):
        sharding.write_rank_results(tmp_path, [{"v": 1}], meta, rank=0, world_size=1)


def test_cross_seed_consistency():
    E = torch.tensor([[1.0, 0], [1.0, 0], [0, 1.0], [0.6, 0.8]])
    c = sd_experiment.cross_seed_consistency(E, [0, 0, 1, 2])
    np.testing.assert_allclose(c[:2], [1.0, 1.0])
    assert np.isnan(c[2]) and np.isnan(c[3])
    with pytest.raises(ValueError, match="disagree"):
        sd_experiment.cross_seed_consistency(E, [0, 0])


def _launch(world: int, out: Path):
    """Run the experiment command on ``world`` CPU processes with ``accelerate launch`` (its
    ``--multi_gpu`` mode starts torchrun workers, on CPUs too, each with RANK / WORLD_SIZE)."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(world),
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "utils.sd_experiment", "run", "--mode", "smoke", "--n", "2", "--seeds", "2",
           "--steps", "2", "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    env.pop("RANK", None), env.pop("WORLD_SIZE", None)
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert len(list(out.glob("results.rank*-of-*.json"))) == world


def test_experiment_command_on_one_and_two_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert sd_experiment.main(["run", "--mode", "smoke", "--n", "2", "--seeds", "2", "--steps", "2",
                               "--out", str(tmp_path / "one")]) == 0          # one process, in place
    _launch(2, tmp_path / "two")                                                # two processes
    a = json.loads(sharding.merge_results(tmp_path / "one").read_text())
    b = json.loads(sharding.merge_results(tmp_path / "two").read_text())
    assert [r["index"] for r in b["records"]] == [0, 1, 2, 3]
    assert [r["memorized"] for r in b["records"]] == [1, 1, 0, 0]
    for ra, rb in zip(a["records"], b["records"]):                 # sharding changes no result
        np.testing.assert_allclose(ra["wen"], rb["wen"], rtol=1e-4)
        np.testing.assert_allclose(ra["probe"][sd.PROBE_LAYER]["std"], rb["probe"][sd.PROBE_LAYER]["std"], rtol=1e-4)


def test_random_control_matches_norms_and_attribute_score_shape():
    d = {"a": torch.tensor([3.0, 4.0]), "b": torch.ones(5)}
    r = sd_experiment.random_like(d, seed=1)
    for k in d:
        assert r[k].shape == d[k].shape
        torch.testing.assert_close(r[k].norm(), d[k].norm())
    assert not torch.allclose(r["a"], d["a"])
    score = sd_experiment.attribute_scorer("smoke", "an old person", "a young person")
    imgs = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    s = score(imgs)
    assert s.shape == (3,) and np.all(np.abs(s) <= 2)
    e = sd_experiment.image_embedder("smoke")(imgs)
    torch.testing.assert_close(e.norm(dim=1), torch.ones(3))
    with pytest.raises(ValueError, match="unknown mode"):
        sd_experiment.clip_model("large")


def test_steering_experiment_rows(pipe):
    score = sd_experiment.attribute_scorer("smoke", "an old person", "a young person")
    embed = sd_experiment.image_embedder("smoke")
    res = sd_experiment.run_steering(pipe, score, embed, targets={"generalized": ["a fox", "a cat"],
                                                                  "memorized": ["a cover"]},
                                     positive=["old"], negative=["young"], n_ref=1, seeds=2,
                                     alphas=(0.0, 0.3, 0.5), random_draws=1, steps=4, progress=False)
    assert res["window"] == [2, 3] and res["random_alpha"] == 0.5
    rows = res["rows"]
    per = sd_experiment.steering_generations(1, 2, alphas=(0.0, 0.3, 0.5), random_draws=1)
    assert len(rows) == 3 * per == 3 * 2 * 4          # prompts x seeds x (base, 2 alphas, 1 random)
    assert all(r["distance"] == 0.0 for r in rows if r["alpha"] == 0.0)
    assert {(r["kind"], r["alpha"]) for r in rows} == {("attribute", 0.0), ("attribute", 0.3),
                                                       ("attribute", 0.5), ("random0", 0.5)}
    assert all(0.9 < r["consistency_unsteered"] <= 1.0001 for r in rows)
    with pytest.raises(ValueError, match="targets"):
        sd_experiment.run_steering(pipe, score, targets={"generalized": "a fox"}, positive=["o"],
                                   negative=["y"], n_ref=1, seeds=1, steps=4, progress=False)


def test_representation_curve():
    H = torch.tensor([[0.0, 4.0, 1.0, 2.0], [1.0, 1.0, 1.0, 1.0]])
    c = sd_experiment.representation_curve(H, points=4)
    np.testing.assert_allclose(c, [[1.0, 0.5, 0.25, 0.0], [1, 1, 1, 1]])
    assert sd_experiment.representation_curve(torch.rand(2, 100), points=64).shape == (2, 64)
    with pytest.raises(ValueError, match=r"\(n, C\)"):
        sd_experiment.representation_curve(torch.rand(3))


def test_training_image_links(no_network):
    assert prompts.fetch_training_image("https://example.invalid/x.jpg") is None     # dead: no network
    assert prompts.fetch_training_image("not a url") is None
    embed = sd_experiment.image_embedder("smoke")
    assert sd_experiment.training_cosines(embed, torch.zeros(2, 3, 16, 16), "https://example.invalid/x.jpg") is None
