"""Summaries of the Stable Diffusion experiment's records (:mod:`utils.sd_experiment`): detection
at the prompt level and at the generation level with prompt-clustered intervals, cost, curves, and
the steering measurements. The chapter calls these on a live run or on a GPU run's results file.
"""
from __future__ import annotations

import numpy as np

from . import detection
from .sd import PROBE_LAYER

CONSISTENCY_COPY = 0.95
"""A generation counts as a copy (generation-level label) when its CLIP image embedding has cosine
>= 0.95 with another seed's generation of the same prompt: memorized prompts regenerate the same
image from any seed. Fixed before looking at any result; the chapter shows the distribution."""


def load_results(path) -> dict:
    """A merged results file (``python -m utils.sd_experiment merge``) -> dict with ``meta`` and
    ``records``; a missing file raises ``FileNotFoundError`` naming it."""
    from .results_file import load_results as load
    return load(path, command="python -m utils.sd_experiment", keys=("meta", "records"),
                kind="merged results")


def generation_table(records, layer: str = PROBE_LAYER) -> dict:
    """Flatten records to one row per generation -> dict of (m,) arrays: ``prompt`` (cluster id),
    ``prompt_label`` (1 = on the memorized list), ``copy`` (1 = consistency >= CONSISTENCY_COPY),
    ``consistency``, ``wen``, and ``probe_<stat>`` at ``layer``."""
    if not records:
        raise ValueError("no records")
    rows = {"prompt": [], "prompt_label": [], "consistency": [], "wen": []}
    stats = list(records[0]["probe"][layer])
    for s in stats:
        rows[f"probe_{s}"] = []
    for r in records:
        k = len(r["wen"])
        rows["prompt"] += [r["index"]] * k
        rows["prompt_label"] += [r["memorized"]] * k
        rows["consistency"] += r["consistency"]
        rows["wen"] += r["wen"]
        for s in stats:
            rows[f"probe_{s}"] += r["probe"][layer][s]
    out = {k: np.asarray(v, dtype=float) for k, v in rows.items()}
    out["prompt"] = out["prompt"].astype(int)
    out["prompt_label"] = out["prompt_label"].astype(int)
    out["copy"] = (out["consistency"] >= CONSISTENCY_COPY).astype(int)
    return out


DETECTORS = {"probe std (official)": "probe_std", "probe Hoyer": "probe_hoyer",
             "probe top-1 share": "probe_top1_share", "Wen et al. (first step)": "wen"}


def detection_results(records, *, level: str, layer: str = PROBE_LAYER, draws: int = 1000,
                      fpr: float = 0.01, seed: int = 0):
    """AUROC and TPR@``fpr`` of every detector with prompt-clustered bootstrap draws.

    ``level="prompt"``: one score per prompt (the mean over its seeds) against the prompt list;
    ``level="generation"``: one score per generation against the copy label, clustered by prompt.
    Returns (:func:`utils.detection.clustered_bootstrap`'s dict, labels, scores, n_units) or raises
    ``ValueError`` when the labels hold a single class (e.g. no generation is a copy)."""
    g = generation_table(records, layer)
    if level == "prompt":
        keys, _ = np.unique(g["prompt"], return_index=True)
        labels = np.array([g["prompt_label"][g["prompt"] == k][0] for k in keys])
        scores = {name: np.array([g[col][g["prompt"] == k].mean() for k in keys])
                  for name, col in DETECTORS.items()}
        clusters = keys
    elif level == "generation":
        labels, clusters = g["copy"], g["prompt"]
        scores = {name: g[col] for name, col in DETECTORS.items()}
    else:
        raise ValueError(f"level must be 'prompt' or 'generation', got {level!r}")
    if labels.min() == labels.max():
        raise ValueError(f"at the {level} level every label is {labels[0]}: no AUROC can be computed")
    res = detection.clustered_bootstrap(scores, labels, clusters, draws=draws, fpr=fpr, seed=seed)
    return res, labels, scores, len(np.unique(clusters))


def cost_table(records) -> dict:
    """Per detector: (extra UNet passes per image, VAE encodes, measured seconds per image).

    Wen et al.'s statistic is read from the first sampling step, whose two guided predictions the
    generation computes anyway (0 extra passes; 1 batched pass if run on its own); the probe needs
    one VAE encode and one UNet pass after generation."""
    gen = float(np.mean([r["seconds_generate"] for r in records]))
    probe = float(np.mean([r["seconds_probe"] for r in records]))
    return {"probe (official)": (1, 1, probe), "Wen et al. (first step)": (0, 0, 0.0),
            "generation itself": (None, None, gen)}


def mean_curves(records, layer: str = PROBE_LAYER) -> dict:
    """{1: mean curve of prompts on the memorized list, 0: of the others} -> (points,) each."""
    out = {}
    for lab in (1, 0):
        cs = [r["curve"][layer] for r in records if r["memorized"] == lab]
        if cs:
            out[lab] = np.mean(cs, axis=0)
    return out


def steering_summary(rows, *, draws: int = 1000, seed: int = 0) -> dict:
    """{(group, kind, alpha): (mean score change, (lo, hi), mean distance, (lo, hi), prompts)}: the
    change of the CLIP attribute score from the unsteered image of the same seed, and the RMS pixel
    distance to it; 95% intervals resample whole prompts (the unit that was sampled; a prompt's
    seeds go together). Random-direction draws are pooled as kind "random"."""
    from .clustered import mean_draws
    base = {(r["prompt"], r["seed"]): r["score"] for r in rows if r["alpha"] == 0.0 and r["kind"] == "attribute"}
    groups: dict = {}
    for r in rows:
        kind = "random" if r["kind"].startswith("random") else r["kind"]
        groups.setdefault((r["target"], kind, r["alpha"]), []).append(
            (r["score"] - base[(r["prompt"], r["seed"])], r["distance"], r["prompt"]))
    out = {}
    for key, vals in sorted(groups.items()):
        change = np.array([v[0] for v in vals])
        dist = np.array([v[1] for v in vals])
        prompts = np.array([v[2] for v in vals])
        d_change = mean_draws(change, prompts, draws=draws, seed=seed)
        d_dist = mean_draws(dist, prompts, draws=draws, seed=seed)
        out[key] = (float(change.mean()), tuple(np.percentile(d_change, [2.5, 97.5]).tolist()),
                    float(dist.mean()), tuple(np.percentile(d_dist, [2.5, 97.5]).tolist()),
                    len(set(prompts.tolist())))
    return out


def training_image_summary(records) -> dict:
    """How many memorized prompts have a live training-image link, and the per-generation cosines
    to it -> {"with_url", "dead", "cosines": (m,) array over the generations of live links}."""
    mem = [r for r in records if r["memorized"]]
    with_url = [r for r in mem if r.get("has_url")]
    live = [r for r in with_url if r["training_cosine"] is not None]
    cos = np.asarray([c for r in live for c in r["training_cosine"]], dtype=float)
    return {"with_url": len(with_url), "dead": len(with_url) - len(live), "cosines": cos}

