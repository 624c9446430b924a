"""The Stable Diffusion experiment as a command: generate, probe, score, and write results.

    python -m utils.sd_experiment run --mode smoke --out runs/smoke            # CPU, offline, ~1 min
    python -m utils.sd_experiment run --mode sd --n 100 --seeds 4 --out runs/sd # one GPU
    accelerate launch --num_processes 4 -m utils.sd_experiment run --mode sd --n 500 --out runs/sd
    python -m utils.sd_experiment merge runs/sd                                 # after every rank

Each prompt gets ``--seeds`` generations. For each generation the command records Wen et al.'s
first-step statistic (free during generation), the paper's probe statistics at every resnet of
``up_blocks.0`` (std as in the official code, and the scale-invariant measures of chapter 5), and
its cross-seed consistency: the largest cosine between its image embedding and those of the other
generations of the same prompt (a memorized prompt regenerates the same image from any seed, so
this labels generations without the training images). Prompts are sharded round-robin across the
ranks that ``accelerate launch`` starts; each rank writes its own file and ``merge`` combines them.

Smoke mode runs the same functions on a tiny random-weight Stable Diffusion stack, a tiny random
image encoder and built-in prompts; its numbers carry no scientific meaning.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import date

import numpy as np
import torch

from . import metrics, prompts as prompt_sets, sd, sharding

MODES = ("smoke", "sd")
STATISTICS = ("std", "hoyer", "l4_over_l2", "top1_share")
CLIP_VISION_ID = "openai/clip-vit-large-patch14"


def image_embedder(mode: str, device: str = "cpu"):
    """A function images (n, 3, H, W) in [-1, 1] -> unit-norm embeddings (n, D).

    ``"sd"``: CLIP ViT-L/14's vision tower (transformers, safetensors); ``"smoke"``: a tiny
    random-weight CLIP vision model built in code, same code path."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
    if mode == "sd":
        model = CLIPVisionModelWithProjection.from_pretrained(CLIP_VISION_ID, use_safetensors=True)
        size = model.config.image_size
    elif mode == "smoke":
        torch.manual_seed(0)
        model = CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            image_size=16, patch_size=4, projection_dim=16))
        size = 16
    else:
        raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
    model = model.to(device).eval()
    mean = torch.tensor([0.4815, 0.4578, 0.4082]).view(1, 3, 1, 1)     # CLIP's normalization
    std = torch.tensor([0.2686, 0.2613, 0.2758]).view(1, 3, 1, 1)

    @torch.no_grad()
    def embed(images):
        x = (torch.as_tensor(images).float() + 1) / 2
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
        x = ((x - mean) / std).to(device, next(model.parameters()).dtype)
        e = model(pixel_values=x).image_embeds.float().cpu()
        return e / e.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return embed


def cross_seed_consistency(embeddings: torch.Tensor, groups) -> np.ndarray:
    """For each row of ``embeddings`` (n, D, unit norm), the largest cosine to another row of the
    same group (its prompt) -> (n,). A group with one member gets NaN (no other seed)."""
    E = torch.as_tensor(embeddings).float()
    g = np.asarray(groups)
    if E.ndim != 2 or len(E) != len(g):
        raise ValueError(f"embeddings (n, D) and groups (n,) disagree: {tuple(E.shape)} vs {g.shape}")
    C = (E @ E.T).numpy()
    out = np.full(len(g), np.nan)
    for i in range(len(g)):
        others = (g == g[i]) & (np.arange(len(g)) != i)
        if others.any():
            out[i] = C[i, others].max()
    return out


def load_model(mode: str):
    """The pipeline of ``mode`` and a short description for the provenance."""
    if mode == "smoke":
        return sd.tiny_pipeline(), "tiny random-weight Stable Diffusion stack (smoke mode)"
    if mode == "sd":
        return sd.load_sd(), sd.SD_MODEL_ID
    raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")


def prompt_list(mode: str, n: int) -> tuple[list[dict], dict]:
    """``n`` memorized and ``n`` ordinary prompts as ``{"prompt", "memorized"}`` dicts, + provenance."""
    if mode == "smoke":
        mem, ordi = prompt_sets.SMOKE_PROMPTS["memorized"][:n], prompt_sets.SMOKE_PROMPTS["ordinary"][:n]
        prov = {"prompts": "built-in smoke-mode prompts (utils.prompts.SMOKE_PROMPTS)"}
    else:
        rows, prov_m = prompt_sets.memorized_prompts(n)
        ordi, prov_o = prompt_sets.ordinary_prompts(n)
        mem = [r["caption"] for r in rows]
        prov = {"memorized_prompts": prov_m, "ordinary_prompts": prov_o}
    items = [{"prompt": p, "memorized": 1} for p in mem] + [{"prompt": p, "memorized": 0} for p in ordi]
    return items, prov


def run_prompts(pipe, embed, items, *, seeds: int, steps: int, guidance: float, batch_size: int = 4,
                progress: bool = True) -> list[dict]:
    """Generate ``seeds`` images per item, probe and score them -> one record per item:
    ``{"index", "prompt", "memorized", "wen": [...], "probe": {layer: {stat: [...]}},
    "consistency": [...], "seconds_generate", "seconds_probe"}`` (lists over the seeds)."""
    seeds = int(seeds)
    if seeds < 2:
        raise ValueError("seeds must be >= 2: cross-seed consistency needs two generations per prompt")
    prompts_flat = [it["prompt"] for _, it in items for _ in range(seeds)]
    seeds_flat = [1000 * i + s for i, _ in items for s in range(seeds)]
    t0 = time.perf_counter()
    images, wen = sd.generate(pipe, prompts_flat, seeds_flat, steps=steps, guidance=guidance,
                              batch_size=batch_size, progress=progress)
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    reps = sd.probe_representations(pipe, images, seeds=seeds_flat, batch_size=batch_size)
    t_probe = time.perf_counter() - t0
    stats = {k: {s: metrics.spikiness(v, s) for s in STATISTICS} for k, v in reps.items()}
    groups = np.repeat(np.arange(len(items)), seeds)
    consistency = cross_seed_consistency(embed(images), groups)
    records = []
    for j, (i, it) in enumerate(items):
        sl = slice(j * seeds, (j + 1) * seeds)
        records.append({
            "index": int(i), "prompt": it["prompt"], "memorized": int(it["memorized"]),
            "wen": [float(x) for x in wen[sl]],
            "probe": {k: {s: [float(x) for x in v[s][sl]] for s in STATISTICS} for k, v in stats.items()},
            "consistency": [float(x) for x in consistency[sl]],
            "seconds_generate": t_gen * seeds / len(prompts_flat),
            "seconds_probe": t_probe * seeds / len(prompts_flat)})
    return records


def provenance(mode: str, model: str, n: int, seeds: int, steps: int, guidance: float, extra: dict) -> dict:
    import diffusers
    import transformers
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"mode": mode, "model": model, "n_per_set": n, "seeds": seeds, "steps": steps,
            "guidance": guidance, "date": date.today().isoformat(), "gpu": gpu,
            "machine": platform.machine(), "python": platform.python_version(),
            "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                         "transformers": transformers.__version__}, **extra}


def run(mode: str, out: str, *, n: int, seeds: int, steps: int, guidance: float, batch_size: int = 4,
        progress: bool = True):
    """One rank's share of the experiment, written with :func:`utils.sharding.write_rank_results`."""
    rank, world = sharding.current_rank()
    pipe, model_name = load_model(mode)
    device = str(next(pipe.unet.parameters()).device)
    embed = image_embedder(mode, device=device)
    items, prov = prompt_list(mode, n)
    mine = sharding.shard(items, rank, world)
    records = run_prompts(pipe, embed, mine, seeds=seeds, steps=steps, guidance=guidance,
                          batch_size=batch_size, progress=progress) if mine else []
    meta = provenance(mode, model_name, n, seeds, steps, guidance, prov)
    return sharding.write_rank_results(out, records, meta, rank=rank, world_size=world)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m utils.sd_experiment", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="generate, probe and score (one rank's share)")
    r.add_argument("--mode", choices=MODES, default="smoke")
    r.add_argument("--out", required=True, help="folder for the rank files")
    r.add_argument("--n", type=int, default=4, help="prompts per set (memorized and ordinary)")
    r.add_argument("--seeds", type=int, default=4, help="generations per prompt")
    r.add_argument("--steps", type=int, default=None, help="sampling steps (default 50; smoke 10)")
    r.add_argument("--guidance", type=float, default=sd.GENERATION_DEFAULTS["guidance"])
    r.add_argument("--batch-size", type=int, default=4)
    m = sub.add_parser("merge", help="merge the rank files of a folder into results.json")
    m.add_argument("folder")
    args = ap.parse_args(argv)
    if args.cmd == "merge":
        print(sharding.merge_results(args.folder))
        return 0
    steps = args.steps or (10 if args.mode == "smoke" else sd.GENERATION_DEFAULTS["steps"])
    path = run(args.mode, args.out, n=args.n, seeds=args.seeds, steps=steps, guidance=args.guidance,
               batch_size=args.batch_size, progress=sys.stderr.isatty())
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
