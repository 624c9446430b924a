"""The Stable Diffusion experiment as a command: generate, probe, score, and write results.

    python -m utils.sd_experiment run --mode smoke --out runs/smoke            # CPU, offline, ~1 min
    python -m utils.sd_experiment run --mode sd --n 100 --seeds 4 --out runs/sd # one GPU
    accelerate launch --multi_gpu --num_processes 4 -m utils.sd_experiment run --mode sd --n 500 --out runs/sd
    python -m utils.sd_experiment merge runs/sd                                 # after every rank
    python -m utils.sd_experiment steer --mode sd --out runs/sd_steering.json   # steering, one GPU

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


def clip_model(mode: str, device: str = "cpu"):
    """(CLIP model, tokenizer, image size) for ``mode``: CLIP ViT-L/14 for ``"sd"``, a tiny
    random-weight CLIP with the byte-level tokenizer of the tiny stack for ``"smoke"``."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer
    if mode == "sd":
        model = CLIPModel.from_pretrained(CLIP_VISION_ID, use_safetensors=True)
        tok = CLIPTokenizer.from_pretrained(CLIP_VISION_ID)
    elif mode == "smoke":
        tok, vocab = sd._tiny_tokenizer()
        torch.manual_seed(0)
        model = CLIPModel(CLIPConfig(
            text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                             num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
                             bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
                             pad_token_id=vocab["<|endoftext|>"]),
            vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                               num_attention_heads=4, image_size=16, patch_size=4),
            projection_dim=16))
    else:
        raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
    return model.to(device).eval(), tok, model.config.vision_config.image_size


def _clip_pixels(images, size, device, dtype):
    mean = torch.tensor([0.4815, 0.4578, 0.4082]).view(1, 3, 1, 1)     # CLIP's normalization
    std = torch.tensor([0.2686, 0.2613, 0.2758]).view(1, 3, 1, 1)
    x = (torch.as_tensor(images).float().cpu() + 1) / 2
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False,
                                        antialias=True).clamp(0, 1)
    return ((x - mean) / std).to(device, dtype)


def image_embedder(mode: str, device: str = "cpu"):
    """A function images (n, 3, H, W) in [-1, 1] -> unit-norm CLIP image embeddings (n, D)."""
    model, _, size = clip_model(mode, device)
    dtype = next(model.parameters()).dtype

    @torch.no_grad()
    def embed(images):
        e = model.get_image_features(pixel_values=_clip_pixels(images, size, device, dtype))
        e = getattr(e, "pooler_output", e).float().cpu()
        return e / e.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return embed


def attribute_scorer(mode: str, positive: str, negative: str, device: str = "cpu"):
    """A function images (n, 3, H, W) in [-1, 1] -> (n,) CLIP attribute score
    cos(image, ``positive``) - cos(image, ``negative``) (e.g. "an old person" vs "a young person")."""
    model, tok, size = clip_model(mode, device)
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        ids = tok([positive, negative], padding="max_length", max_length=77, truncation=True,
                  return_tensors="pt").input_ids.to(device)
        t = model.get_text_features(input_ids=ids)
        t = getattr(t, "pooler_output", t).float().cpu()
        t = t / t.norm(dim=1, keepdim=True)

    @torch.no_grad()
    def score(images):
        e = model.get_image_features(pixel_values=_clip_pixels(images, size, device, dtype))
        e = getattr(e, "pooler_output", e).float().cpu()
        e = e / e.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return (e @ t.T).numpy() @ np.array([1.0, -1.0])
    return score


def random_like(directions: dict, seed: int) -> dict:
    """Random directions with the same norm per layer as ``directions`` (the control)."""
    gen = torch.Generator().manual_seed(int(seed))
    out = {}
    for k, v in directions.items():
        r = torch.randn(v.shape, generator=gen)
        out[k] = r * (v.norm() / r.norm())
    return out


STEER_REF_SEED, STEER_TARGET_SEED = 9_000_000, 9_500_000   # apart from 1000 * prompt + seed


def run_steering(pipe, score, embed=None, *, targets: dict, positive: list, negative: list, n_ref: int,
                 seeds: int, alphas=sd.ALPHAS, random_draws: int = 1, batch_size: int = 4,
                 steps: int | None = None, progress: bool = True) -> dict:
    """The steering experiment of ``SD_steering.ipynb``, measured.

    Reference sets: ``n_ref`` generations of each of the ``positive`` and ``negative`` prompts
    (e.g. "old" and "young" descriptions), probed at t = 10 with their prompts; the direction is
    the difference of means at :data:`utils.sd.STEER_LAYERS`. ``targets``: ``{group: [prompts]}``
    (e.g. "generalized" and "memorized", several prompts each). For every prompt, seed and alpha
    the row records the steered image's attribute ``score`` and its RMS pixel distance to the
    unsteered image of the same seed; the control, ``random_draws`` random directions with the
    same norm at every layer, is run at the largest alpha. With ``embed``, each row also carries
    the unsteered generation's cross-seed consistency (the per-generation copy label).
    ``steps`` (default the official 40) scales the window with it: the last half of the steps
    except the final twentieth. -> a JSON-ready dict.
    """
    sched = sd.STEERING_SCHEDULE
    steps = sched["steps"] if steps is None else int(steps)
    window = dict(steps=steps, last=steps * sched["last"] // sched["steps"],
                  skip_final=max(1, steps * sched["skip_final"] // sched["steps"]))
    if not isinstance(targets, dict) or not all(isinstance(v, (list, tuple)) and v for v in targets.values()):
        raise ValueError("targets must be {group: [prompt, ...]} with at least one prompt per group")
    ref_prompts = [positive[k % len(positive)] for k in range(n_ref)] + \
                  [negative[k % len(negative)] for k in range(n_ref)]
    ref_seeds = list(range(STEER_REF_SEED, STEER_REF_SEED + 2 * n_ref))
    refs, _ = sd.generate(pipe, ref_prompts, ref_seeds, steps=steps, batch_size=batch_size, progress=progress)
    reps = sd.reference_representations(pipe, refs, ref_prompts, seeds=ref_seeds, batch_size=batch_size)
    del refs
    direction = sd.steering_directions({k: v[:n_ref] for k, v in reps.items()},
                                       {k: v[n_ref:] for k, v in reps.items()})
    top = max(alphas)
    runs = [("attribute", direction, a) for a in alphas if a != 0]
    runs += [(f"random{j}", random_like(direction, seed=j), top) for j in range(random_draws)]
    rows = []
    for group, prompts in targets.items():
        for prompt in prompts:
            ss = [STEER_TARGET_SEED + s for s in range(seeds)]
            ps = [prompt] * seeds
            base = sd.generate_steered(pipe, ps, ss, direction, 0.0, batch_size=batch_size,
                                       progress=progress, **window)
            base_score = score(base)
            cons = (cross_seed_consistency(embed(base), np.zeros(seeds, dtype=int)) if embed is not None
                    else np.full(seeds, np.nan))
            common = lambda s: {"target": group, "prompt": prompt, "seed": ss[s],    # noqa: E731
                                "consistency_unsteered": float(cons[s])}
            for s in range(seeds):
                rows.append({**common(s), "kind": "attribute", "alpha": 0.0, "score": float(base_score[s]),
                             "distance": 0.0})
            for kind, d, a in runs:
                imgs = sd.generate_steered(pipe, ps, ss, d, float(a), batch_size=batch_size,
                                           progress=progress, **window)
                sc = score(imgs)
                dist = ((imgs - base) ** 2).flatten(1).mean(1).sqrt().numpy()
                for s in range(seeds):
                    rows.append({**common(s), "kind": kind, "alpha": float(a), "score": float(sc[s]),
                                 "distance": float(dist[s])})
    return {"rows": rows, "direction_norms": {k: float(v.norm()) for k, v in direction.items()},
            "n_ref": n_ref, "steps": steps, "random_alpha": float(top),
            "window": list(sd.steering_window(window["steps"], window["last"], window["skip_final"]))}


def steering_generations(targets_per_group: int, seeds: int, alphas=sd.ALPHAS, random_draws: int = 1) -> int:
    """How many images :func:`run_steering` generates per group besides the references."""
    return targets_per_group * seeds * (1 + sum(a != 0 for a in alphas) + random_draws)


CURVE_POINTS = 64


def representation_curve(H, points: int = CURVE_POINTS) -> np.ndarray:
    """Each row of pooled activations ``H`` (n, C), sorted in decreasing order and divided by its
    largest value, sampled at ``points`` evenly spaced ranks -> (n, points). A spiky
    representation drops fast from 1; a balanced one stays high (the paper's representation
    curves, in a form that fits in a results file)."""
    h = torch.as_tensor(H).float()
    if h.ndim != 2:
        raise ValueError(f"H must be (n, C), got shape {tuple(h.shape)}")
    srt = h.sort(dim=1, descending=True).values
    top = srt[:, :1].abs().clamp_min(1e-12)
    idx = torch.linspace(0, h.shape[1] - 1, min(points, h.shape[1])).round().long()
    return (srt[:, idx] / top).numpy()


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
        urls = [r["url"] for r in rows]
        prov = {"memorized_prompts": prov_m, "ordinary_prompts": prov_o}
        return ([{"prompt": p, "memorized": 1, "url": u} for p, u in zip(mem, urls)] +
                [{"prompt": p, "memorized": 0} for p in ordi]), prov
    items = [{"prompt": p, "memorized": 1} for p in mem] + [{"prompt": p, "memorized": 0} for p in ordi]
    return items, prov


def training_cosines(embed, generations, url) -> list:
    """Cosine of each generation's CLIP embedding to the prompt's LAION training image (the
    generation-level ground truth of a memorized prompt, when its link still works) -> list of
    floats, or ``None`` for a dead link."""
    img = prompt_sets.fetch_training_image(url)
    if img is None:
        return None
    e_train = embed(img[None])
    return [float(x) for x in (embed(generations) @ e_train.T)[:, 0]]


def run_prompts(pipe, embed, items, *, seeds: int, steps: int, guidance: float, batch_size: int = 4,
                progress: bool = True) -> list[dict]:
    """Generate ``seeds`` images per item, probe and score them -> one record per item:
    ``{"index", "prompt", "memorized", "wen": [...], "probe": {layer: {stat: [...]}},
    "consistency": [...], "curve": {layer: (points,) mean over seeds of representation_curve},
    "has_url", "training_cosine": [...] per seed to the LAION training image (None: no URL or a
    dead link), "seconds_generate", "seconds_probe"}`` (lists over the seeds).

    Items are processed one prompt at a time and only statistics are kept, so memory does not grow
    with the number of prompts (500 prompts x 4 seeds of 512-pixel images would not fit)."""
    from tqdm.auto import tqdm
    seeds = int(seeds)
    if seeds < 2:
        raise ValueError("seeds must be >= 2: cross-seed consistency needs two generations per prompt")
    records = []
    for i, it in tqdm(items, desc="prompts", disable=not progress, leave=False):
        ps, ss = [it["prompt"]] * seeds, [1000 * int(i) + s for s in range(seeds)]
        t0 = time.perf_counter()
        images, wen = sd.generate(pipe, ps, ss, steps=steps, guidance=guidance, batch_size=batch_size,
                                  progress=False)
        t_gen = time.perf_counter() - t0
        t0 = time.perf_counter()
        reps = sd.probe_representations(pipe, images, seeds=ss, batch_size=batch_size)
        t_probe = time.perf_counter() - t0
        emb = torch.cat([embed(images[k:k + batch_size]) for k in range(0, seeds, batch_size)])
        consistency = cross_seed_consistency(emb, np.zeros(seeds, dtype=int))
        url = it.get("url")
        records.append({
            "index": int(i), "prompt": it["prompt"], "memorized": int(it["memorized"]),
            "wen": [float(x) for x in wen],
            "probe": {k: {st: [float(x) for x in metrics.spikiness(v, st)] for st in STATISTICS}
                      for k, v in reps.items()},
            "consistency": [float(x) for x in consistency],
            "curve": {k: np.round(representation_curve(v).mean(0), 5).tolist() for k, v in reps.items()},
            "has_url": bool(url),
            "training_cosine": training_cosines(embed, images, url) if url else None,
            "seconds_generate": t_gen / seeds, "seconds_probe": t_probe / seeds})
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


STEER_POSITIVE = ["a photo of an old man", "a photo of an old woman", "a portrait of an elderly person"]
STEER_NEGATIVE = ["a photo of a young man", "a photo of a young woman", "a portrait of a young person"]
STEER_ATTRIBUTE = ("a photo of an old person", "a photo of a young person")


def steer_to_file(mode: str, out: str, *, n_ref: int, seeds: int, n_targets: int = 2, batch_size: int = 4,
                  progress: bool = True):
    """Run :func:`run_steering` on ``n_targets`` generalized (ordinary) and memorized prompts of
    ``mode`` and write the rows with provenance to the JSON file ``out``."""
    import json
    from pathlib import Path
    pipe, model_name = load_model(mode)
    device = str(next(pipe.unet.parameters()).device)
    score = attribute_scorer(mode, *STEER_ATTRIBUTE, device=device)
    items, prov = prompt_list(mode, n_targets)
    targets = {"memorized": [i["prompt"] for i in items if i["memorized"]],
               "generalized": [i["prompt"] for i in items if not i["memorized"]]}
    embed = image_embedder(mode, device=device)
    res = run_steering(pipe, score, embed, targets=targets, positive=STEER_POSITIVE, negative=STEER_NEGATIVE,
                       n_ref=n_ref, seeds=seeds, batch_size=batch_size, progress=progress)
    res["meta"] = provenance(mode, model_name, n_targets, seeds, sd.STEERING_SCHEDULE["steps"],
                             sd.GENERATION_DEFAULTS["guidance"], prov)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    return out


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
    st = sub.add_parser("steer", help="the steering experiment (old vs young), one process")
    st.add_argument("--mode", choices=MODES, default="smoke")
    st.add_argument("--out", required=True, help="JSON file to write")
    st.add_argument("--n-ref", type=int, default=None, help="reference images per side (default 50; smoke 2)")
    st.add_argument("--seeds", type=int, default=4, help="sampling seeds per target prompt")
    st.add_argument("--targets", type=int, default=2, help="target prompts per group")
    st.add_argument("--batch-size", type=int, default=4)
    m = sub.add_parser("merge", help="merge the rank files of a folder into results.json")
    m.add_argument("folder")
    args = ap.parse_args(argv)
    if args.cmd == "merge":
        print(sharding.merge_results(args.folder))
        return 0
    if args.cmd == "steer":
        print(steer_to_file(args.mode, args.out, n_ref=args.n_ref or (2 if args.mode == "smoke" else 50),
                            seeds=args.seeds, n_targets=args.targets, batch_size=args.batch_size,
                            progress=sys.stderr.isatty()))
        return 0
    steps = args.steps or (10 if args.mode == "smoke" else sd.GENERATION_DEFAULTS["steps"])
    path = run(args.mode, args.out, n=args.n, seeds=args.seeds, steps=steps, guidance=args.guidance,
               batch_size=args.batch_size, progress=sys.stderr.isatty())
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
