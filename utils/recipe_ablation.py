"""Where does the spiky representation of a memorizing ReLU DAE come from? The recipe as a factor.

    python -m utils.recipe_ablation                       # writes book/results/recipe_ablation.json
    python -m utils.recipe_ablation --quick --out F.json  # a few steps, one seed (the test runs this)

Five training images, p = 100 hidden units, sigma = 0.2, the memorization setting of chapter 3, on
two bundled datasets: chapter 3's five mutually least-aligned digits (mean removed, d = 64) and five
LFW faces in [-1, 1] (d = 625, as the official code's CelebA images). Every recipe is run for
several seeds:

* the book's ``fit_dae`` as a 2 x 2 x 2 factorial: neuron-norm penalty on (its default
  0.1 min(1, p/n)) or off, Adam or RMSprop, initialisation std 1/sqrt(d) or 0.1/sqrt(d);
* the official recipe (``utils.official_recipe``: RMSprop 1e-3, weight decay 1e-2, mean loss,
  50,000 full-batch steps), measured after 1k, 5k, 20k and 50k steps;
* on the digits, the anatomy of the optimizer (penalty off): Adam with and without momentum and
  with a shorter second-moment average, RMSprop with and without momentum, plain SGD at fit_dae's
  step size and at lr 0.1 (1500 and 5000 steps).

For each model it records weight storage (each sample's best cosine to a neuron), the neuron-level
and the merged (``utils.metrics.merge_parallel_units``) top-1 share and participation ratio on
noisy training inputs, live neurons, neurons per sample, errors and the distance to the empirical
denoiser. The results file carries its provenance (command, date, versions, machine, seconds).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .data import load_images
from .diffusion import empirical_denoiser
from .metrics import cosine_matrix, least_aligned, merge_parallel_units, participation_ratio, spikiness
from .models import ReLUDAE
from .official_recipe import fit_dae_official
from .train import fit_dae

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "book" / "results" / "recipe_ablation.json"
N, P, SIGMA = 5, 100, 0.2
OFFICIAL_SNAPSHOTS = (1_000, 5_000, 20_000, 50_000)
FACTORS = [(penalty, opt, init) for penalty in (True, False) for opt in ("adam", "rmsprop")
           for init in ("default", "small")]
# which part of the optimizer decides? penalty off, default init, digits: Adam's two averages and
# RMSprop with momentum, against plain SGD at fit_dae's step size and at a larger one, for longer
# (label -> (optimizer, options, lr or None for fit_dae's, steps or None for fit_dae's))
ANATOMY = {
    "adam(0.9, 0.999)": ("adam", {}, None, None),
    "adam(0, 0.999)": ("adam", {"betas": (0.0, 0.999)}, None, None),
    "adam(0.9, 0.99)": ("adam", {"betas": (0.9, 0.99)}, None, None),
    "adam(0, 0.99)": ("adam", {"betas": (0.0, 0.99)}, None, None),
    "rmsprop(0.99)": ("rmsprop", {}, None, None),
    "rmsprop(0.99), momentum 0.9": ("rmsprop", {"momentum": 0.9}, None, None),
    "sgd": ("sgd", {}, None, None),
    "sgd, lr 0.1": ("sgd", {}, 0.1, None),
    "sgd, lr 0.1, 5000 steps": ("sgd", {}, 0.1, 5000),
}


def memorization_sets(dataset: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(training set (5, d), held-out images (5, d)) of the two ablation datasets."""
    if dataset == "digits":
        digits, labels = load_images("digits", return_labels=True)
        flat = digits.reshape(len(digits), -1)
        Z = flat - flat.mean(0)
        chosen = least_aligned(Z, N)
        held = [next(i for i in range(300, len(flat)) if labels[i] == labels[c]) for c in chosen]
        return Z[chosen], Z[held]
    if dataset == "faces":
        faces = load_images("lfw")
        flat = faces.reshape(len(faces), -1)
        return flat[:N], flat[N:2 * N]
    raise ValueError(f"unknown ablation dataset {dataset!r}; choose 'digits' or 'faces'")


def measure(model: ReLUDAE, X: torch.Tensor, held: torch.Tensor, *, draws: int = 40) -> dict:
    """Storage, neuron-level and merged spikiness, and errors of one trained model (floats)."""
    gen = torch.Generator().manual_seed(1234)
    n, d = X.shape
    Y = X.repeat(draws, 1) + SIGMA * torch.randn(draws * n, d, generator=gen)
    Yh = held + SIGMA * torch.randn(held.shape, generator=gen)
    W = model.encoder_weight.detach()
    H = model.encode(Y).detach()
    C = cosine_matrix(X, W)                                    # (n, p)
    norms = W.norm(dim=1)
    out = {
        "best_cosine_min": float(C.max(1).min()),
        "samples_stored_cos_0.9": int((C.max(1) >= 0.9).sum()),
        "neurons_per_sample_cos_0.9": float((C > 0.9).sum(1).mean()),
        "live_neurons_5pct": int((norms > 0.05 * norms.max()).sum()),
        "top1_share": float(np.median(spikiness(H, "top1_share"))),
        "participation_ratio": float(np.median(participation_ratio(H))),
    }
    for c in (0.99, 0.9):
        M = merge_parallel_units(H, W, min_cosine=c)
        out[f"merged_{c}_units"] = int(M.shape[1])
        out[f"merged_{c}_top1_share"] = float(np.median(spikiness(M, "top1_share")))
        out[f"merged_{c}_participation_ratio"] = float(np.median(participation_ratio(M)))
    f = model(Y).detach()
    f_emp = empirical_denoiser(Y, X, SIGMA)
    out["train_mse"] = float((f - X.repeat(draws, 1)).pow(2).sum(1).mean())
    out["heldout_mse"] = float((model(Yh).detach() - held).pow(2).sum(1).mean())
    out["rel_dist_to_f_emp"] = float(np.median(((f - f_emp).norm(dim=1) / f_emp.norm(dim=1)).numpy()))
    return out


def run(*, seeds: int = 3, book_steps: int | None = None, official_steps: int = OFFICIAL_SNAPSHOTS[-1],
        datasets=("digits", "faces"), progress=print) -> list[dict]:
    """Every recipe x seed x dataset; one dict per trained model (or official snapshot)."""
    rows = []
    for dataset in datasets:
        X, held = memorization_sets(dataset)
        d = X.shape[1]
        for seed in range(seeds):
            for penalty, opt, init in FACTORS:
                t0 = time.perf_counter()
                scale = (1 if init == "default" else 0.1) / math.sqrt(d)
                model = ReLUDAE(d, P, seed=seed, init_scale=scale)
                fit_dae(model, X, sigma=SIGMA, seed=seed, steps=book_steps,
                        sparsity=None if penalty else 0.0, optimizer=opt)
                row = {"dataset": dataset, "recipe": "fit_dae", "penalty": penalty, "optimizer": opt,
                       "init": init, "seed": seed, "steps": book_steps or 1500,
                       "seconds": round(time.perf_counter() - t0, 2)}
                row.update(measure(model, X, held))
                rows.append(row)
                progress(f"{dataset} seed {seed} fit_dae penalty={penalty} {opt} init={init}: "
                         f"top-1 {row['top1_share']:.2f}, merged {row['merged_0.99_top1_share']:.2f}, "
                         f"best cos {row['best_cosine_min']:.2f}")
            t0 = time.perf_counter()
            snaps = tuple(s for s in OFFICIAL_SNAPSHOTS if s <= official_steps)
            models, _ = fit_dae_official(X, sigma=SIGMA, p=P, steps=official_steps, seed=seed,
                                         snapshots=snaps)
            seconds = round(time.perf_counter() - t0, 2)
            for step, model in sorted(models.items()):
                row = {"dataset": dataset, "recipe": "official", "penalty": False, "optimizer": "rmsprop",
                       "init": "uniform 1/sqrt(d)", "seed": seed, "steps": step, "seconds": seconds}
                row.update(measure(model, X, held))
                rows.append(row)
            progress(f"{dataset} seed {seed} official, {official_steps} steps in {seconds:.0f} s: top-1 "
                     f"{rows[-1]['top1_share']:.2f}, merged {rows[-1]['merged_0.99_top1_share']:.2f}")
            if dataset != "digits":
                continue
            for label, (opt, options, lr, steps) in ANATOMY.items():
                t0 = time.perf_counter()
                model = ReLUDAE(d, P, seed=seed)
                steps = book_steps if book_steps else steps
                fit_dae(model, X, sigma=SIGMA, seed=seed, steps=steps, sparsity=0.0, lr=lr,
                        optimizer=opt, optimizer_options=options)
                row = {"dataset": dataset, "recipe": "anatomy", "penalty": False, "optimizer": label,
                       "init": "default", "seed": seed, "steps": steps or 1500,
                       "seconds": round(time.perf_counter() - t0, 2)}
                row.update(measure(model, X, held))
                rows.append(row)
                progress(f"{dataset} seed {seed} anatomy {label}: top-1 {row['top1_share']:.2f}, "
                         f"live {row['live_neurons_5pct']}")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="results file (JSON)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a few steps and one seed, to test the command")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    kw = dict(seeds=1, book_steps=30, official_steps=40, datasets=("digits",)) if args.quick \
        else dict(seeds=args.seeds)
    rows = run(**kw)
    argv_shown = ["--quick"] if args.quick else [f"--seeds={args.seeds}"]
    result = {
        "provenance": {
            "command": "python -m utils.recipe_ablation " + " ".join(argv_shown),
            "date": time.strftime("%Y-%m-%d"), "seconds": round(time.perf_counter() - start, 1),
            "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
        },
        "settings": {"n": N, "p": P, "sigma": SIGMA, "official_snapshots": list(OFFICIAL_SNAPSHOTS),
                     **{k: v for k, v in kw.items() if k != "datasets"},
                     "datasets": list(kw.get("datasets", ("digits", "faces")))},
        "runs": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {len(rows)} runs to {out.name} in {result['provenance']['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())


# ---------------------------------------------------------------------------------------------
# reading the results file (used by the chapter)
# ---------------------------------------------------------------------------------------------
SUMMARY_MEASURES = ("best_cosine_min", "live_neurons_5pct", "top1_share", "merged_0.99_top1_share",
                    "merged_0.9_top1_share", "participation_ratio", "train_mse", "heldout_mse",
                    "rel_dist_to_f_emp")


def load_results(path=DEFAULT_OUT) -> dict:
    """The results file written by this command, validated (its runs and provenance)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no results file {path.name}; make it with python -m utils.recipe_ablation")
    result = json.loads(path.read_text())
    if not {"provenance", "settings", "runs"} <= set(result):
        raise ValueError(f"{path.name} is not a recipe-ablation results file")
    return result


def summarize(runs: list[dict], measures=SUMMARY_MEASURES) -> list[dict]:
    """Group runs by (dataset, recipe, penalty, optimizer, init, steps) and give, per measure, the
    mean and the min and max over seeds: [{"dataset", ..., "seeds", measure: (mean, min, max)}]."""
    keys = ("dataset", "recipe", "penalty", "optimizer", "init", "steps")
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, rs in groups.items():
        row = dict(zip(keys, key), seeds=len(rs))
        for m in measures:
            v = np.array([r[m] for r in rs], dtype=float)
            row[m] = (float(v.mean()), float(v.min()), float(v.max()))
        out.append(row)
    return out
