"""Where does the spiky representation of a memorizing ReLU DAE come from? The recipe as a factor,
in the three regimes (memorization, generalization, hybrid).

    python -m utils.recipe_ablation                       # writes book/results/recipe_ablation.json
    python -m utils.recipe_ablation --quick --out F.json  # a few steps, one seed (the test runs this)

**Memorization** (rows with ``"regime": "memorization"``). Five training images, p = 100 hidden units, sigma = 0.2, the memorization setting of chapter 3, on
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
denoiser.

**Generalization and hybrid** (``"regime": "generalization"`` / ``"hybrid"``), n >> p, sigma = 0.2:

* ``mixture``: the 2000 samples of chapter 5's low-rank Gaussian mixture (d = 64, 4 clusters of
  rank 6, the bulk of ``utils.regimes.imbalanced_mixture``, i.e. the hybrid without its rare
  samples), p = 48; test set 500 fresh samples; reference the Bayes denoiser of the 4-cluster
  mixture (``utils.gmm.mixture_denoiser``);
* ``all digits``: the 1797 digits (mean of the training part removed), 1500 for training and 297
  held out, p = 100; reference the plug-in denoiser of a class-conditional Gaussian fitted on the
  1500 training digits (:func:`class_gaussian_params`), which is not Bayes-optimal;
* ``hybrid``: the mixture's 2000 samples plus 8 samples of rare components, each 30 times
  (``utils.regimes.imbalanced_mixture``, ``hybrid_dataset``), p = 48, reference the Bayes
  denoiser that knows the rare components.

Recipes (``fit_dae`` at its defaults otherwise, explicit arguments): the same 2 x 2 x 2 factorial
(penalty at fit_dae's default 0.1 min(1, p/n), which is small at n >> p, or off; Adam or RMSprop;
init std 1/sqrt(d) or a tenth), plus the penalty at the memorization strength 0.1 with either
optimizer, and plain SGD (penalty off) at fit_dae's step size. Each model gets
``utils.regimes.regime_summary`` (errors, test/train, test/reference, distances to f_emp and to the
reference, stored fraction with the book's ``utils.metrics.stored_mask``), neuron-level and merged
top-1 share and PR on noisy test inputs, the stored fraction of *test* samples (the control: a
weight that is merely typical of the data is as close to unseen samples), and for the hybrid the
rare samples' storage, spikiness, error and distances against the bulk's, and the AUROC of every
spikiness measure of chapter 5 as a detector of the rare inputs (one value per seed).

The results file carries its provenance (command, date, versions, machine, seconds).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .data import MixtureParams, load_images
from .diffusion import empirical_denoiser
from .gmm import mixture_denoiser
from .metrics import (cosine_matrix, least_aligned, merge_parallel_units, participation_ratio, roc_auc,
                      spikiness, stored_mask)
from .models import ReLUDAE
from .official_recipe import fit_dae_official
from .regimes import hybrid_dataset, imbalanced_mixture, noisy, per_sample_measures, regime_summary
from .train import fit_dae
from .results_file import provenance

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


def _seed_list(seeds) -> list[int]:
    """``seeds`` as a list: an int s means seeds 0..s-1; a list or tuple is taken as given."""
    return list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]


def _task(args) -> list[dict]:
    """One (part, dataset, seed) of the design, for a worker process (single-threaded)."""
    part, dataset, seed, kw = args
    torch.set_num_threads(1)
    if part == "memorization":
        return [dict(regime="memorization", **r) for r in run(seeds=[seed], datasets=(dataset,), **kw)]
    return run_regimes(seeds=[seed], datasets=(dataset,), **kw)


def run_all(kw_memorization: dict, kw_regimes: dict, *, jobs: int = 1) -> list[dict]:
    """Every part of the design, in the order a single process would run it, on ``jobs``
    processes (each (part, dataset, seed) is seeded on its own, so the rows do not depend on jobs)."""
    kw_m = dict(kw_memorization)
    seeds_m, datasets_m = kw_m.pop("seeds"), kw_m.pop("datasets", ("digits", "faces"))
    kw_r = dict(kw_regimes)
    seeds_r, datasets_r = kw_r.pop("seeds"), kw_r.pop("datasets", tuple(REGIME_DATASETS))
    tasks = [("memorization", ds, s, kw_m) for ds in datasets_m for s in _seed_list(seeds_m)]
    tasks += [("regimes", ds, s, kw_r) for ds in datasets_r for s in _seed_list(seeds_r)]
    if jobs <= 1:
        parts = [_task(t) for t in tasks]
    else:
        import multiprocessing as mp
        with mp.get_context("spawn").Pool(jobs) as pool:
            parts = pool.map(_task, tasks, chunksize=1)
    return [r for part in parts for r in part]


def run(*, seeds: int = 3, book_steps: int | None = None, official_steps: int = OFFICIAL_SNAPSHOTS[-1],
        datasets=("digits", "faces"), progress=print) -> list[dict]:
    """Every recipe x seed x dataset; one dict per trained model (or official snapshot)."""
    rows = []
    for dataset in datasets:
        X, held = memorization_sets(dataset)
        d = X.shape[1]
        for seed in _seed_list(seeds):
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


# ---------------------------------------------------------------------------------------------
# the generalization and hybrid regimes
# ---------------------------------------------------------------------------------------------
GEN_D, GEN_K, GEN_RANK, GEN_N, GEN_TEST, GEN_P = 64, 4, 6, 2000, 500, 48
DIGITS_TRAIN, DIGITS_P = 1500, 100
N_RARE, RARE_COPIES = 8, 30
STRONG_PENALTY = 0.1          # the penalty's strength at n <= p (the memorization regime)
# (label, penalty: None = fit_dae's default / 0.0 off / a number, optimizer, init)
REGIME_RECIPES = [(("default" if pen is None else "off"), pen, opt, init)
                  for pen in (None, 0.0) for opt in ("adam", "rmsprop") for init in ("default", "small")] + [
    ("0.1", STRONG_PENALTY, "adam", "default"), ("0.1", STRONG_PENALTY, "rmsprop", "default"),
    ("off", 0.0, "sgd", "default")]
REGIME_DATASETS = {"mixture": "generalization", "all digits": "generalization", "hybrid": "hybrid"}
DETECTOR_KINDS = ("std", "l4_over_l2", "hoyer", "gini", "top1_share", "participation_ratio")  # PR as -PR


def class_gaussian_params(X, labels) -> MixtureParams:
    """A Gaussian per class fitted to ``X`` (n, d) with integer ``labels`` (n,): means, full-rank
    covariances (eigen-decomposed, negative round-off eigenvalues set to 0) and class frequencies,
    as a :class:`utils.data.MixtureParams` with r = d, so ``utils.gmm.mixture_denoiser`` gives
    its plug-in denoiser. Every class needs at least 2 rows."""
    Xt = torch.as_tensor(X).double()
    if Xt.ndim != 2 or not torch.isfinite(Xt).all():
        raise ValueError(f"X must be a finite (n, d) array, got shape {tuple(Xt.shape)}")
    lab = torch.as_tensor(labels).long()
    if lab.shape != (len(Xt),):
        raise ValueError(f"labels must have shape ({len(Xt)},), got {tuple(lab.shape)}")
    classes = torch.unique(lab)
    means, bases, scales, weights = [], [], [], []
    for c in classes.tolist():
        Xc = Xt[lab == c]
        if len(Xc) < 2:
            raise ValueError(f"class {c} has {len(Xc)} row; a covariance needs at least 2")
        mu = Xc.mean(0)
        evals, evecs = torch.linalg.eigh(torch.cov((Xc - mu).T, correction=1))
        means.append(mu)
        bases.append(evecs)
        scales.append(evals.clamp_min(0).sqrt())
        weights.append(len(Xc) / len(Xt))
    f = lambda v: torch.stack(v).float()   # noqa: E731
    return MixtureParams(f(means), f(bases), f(scales), torch.tensor(weights, dtype=torch.float32), 0.0)


def regime_sets(dataset: str) -> dict:
    """The training set, test set and reference denoiser of one generalization / hybrid dataset.

    Returns a dict: ``X`` (n, d) training rows, ``test`` (m, d), ``reference`` (callable on (k, d)
    noisy inputs), ``p`` (hidden units), ``regime``; for the hybrid also ``rare`` (8, d), the
    duplicated rare samples, and ``bulk`` (2000, d), the samples included once."""
    if dataset == "mixture":      # the hybrid's bulk alone: its control
        X, _, _, _, params = imbalanced_mixture(GEN_N, GEN_D, GEN_K, GEN_RANK, n_rare=N_RARE, seed=0)
        test, *_ = imbalanced_mixture(GEN_TEST, GEN_D, GEN_K, GEN_RANK, n_rare=N_RARE, seed=0, sample_seed=1)
        k = GEN_K
        main = MixtureParams(params.means[:k], params.bases[:k], params.scales[:k],
                             torch.full((k,), 1.0 / k), params.noise_std)
        return {"X": X, "test": test, "p": GEN_P, "regime": "generalization",
                "reference": lambda y: mixture_denoiser(y, main, SIGMA)}
    if dataset == "all digits":
        digits, labels = load_images("digits", return_labels=True)
        flat = digits.reshape(len(digits), -1)
        order = torch.randperm(len(flat), generator=torch.Generator().manual_seed(0))
        tr, te = order[:DIGITS_TRAIN], order[DIGITS_TRAIN:]
        mean = flat[tr].mean(0)
        X, test = flat[tr] - mean, flat[te] - mean
        params = class_gaussian_params(X, labels[tr])
        return {"X": X, "test": test, "p": DIGITS_P, "regime": "generalization",
                "reference": lambda y: mixture_denoiser(y, params, SIGMA)}
    if dataset == "hybrid":
        Xm, lab, X_rare, lab_rare, params = imbalanced_mixture(GEN_N, GEN_D, GEN_K, GEN_RANK, n_rare=N_RARE, seed=0)
        test, *_ = imbalanced_mixture(GEN_TEST, GEN_D, GEN_K, GEN_RANK, n_rare=N_RARE, seed=0, sample_seed=1)
        hy = hybrid_dataset(Xm, lab, copies=RARE_COPIES, extra=X_rare, extra_labels=lab_rare)
        return {"X": hy.X, "test": test, "p": GEN_P, "regime": "hybrid", "rare": X_rare, "bulk": Xm,
                "reference": lambda y: mixture_denoiser(y, params, SIGMA)}
    raise ValueError(f"unknown regime dataset {dataset!r}; choose one of {sorted(REGIME_DATASETS)}")


def _spikes(H, W, prefix: str = "") -> dict:
    """Median neuron-level and merged (cosine 0.99) top-1 share and PR of the rows of H."""
    M = merge_parallel_units(H, W, min_cosine=0.99)
    return {prefix + "top1_share": float(np.median(spikiness(H, "top1_share"))),
            prefix + "participation_ratio": float(np.median(participation_ratio(H))),
            prefix + "merged_0.99_top1_share": float(np.median(spikiness(M, "top1_share"))),
            prefix + "merged_0.99_participation_ratio": float(np.median(participation_ratio(M))),
            prefix + "merged_0.99_units": int(M.shape[1])}


@torch.no_grad()
def measure_regime(model: ReLUDAE, sets: dict, *, n_eval: int = 1000) -> dict:
    """Everything recorded for one model of the generalization / hybrid regimes (floats).

    ``regime_summary`` (its spikiness is replaced by the neuron-level and merged medians on the
    same noisy test inputs), the stored fraction of test samples (same live neurons), and for the
    hybrid the rare samples' storage, spikiness, error and distances (4 noisy copies each), and the
    AUROC of each spikiness measure (``DETECTOR_KINDS``, PR as -PR) as a detector of the noisy rare
    inputs among the noisy test inputs."""
    X, test, ref = sets["X"], sets["test"], sets["reference"]
    bulk = sets.get("bulk", X)
    out = regime_summary(model, bulk, test, SIGMA, reference=ref, n_eval=n_eval, seed=0)
    y_te, _ = noisy(test[:n_eval], SIGMA, seed=1)                 # the inputs regime_summary used
    W = model.encoder_weight.detach()
    out.update(_spikes(model.encode(y_te), W))
    norms = W.norm(dim=1)
    live = norms >= 0.1 * norms.max()
    out["test_stored_fraction"] = float(stored_mask(W[live], test[:n_eval]).mean())
    if "rare" in sets:
        # f_emp and the errors use the whole training set (rare copies included)
        rare = sets["rare"]
        out["dist_emp"] = float(((model(y_te) - empirical_denoiser(y_te, X, SIGMA)) ** 2).sum(1).mean())
        y_r, _ = noisy(rare, SIGMA, copies=4, seed=2)
        out.update(_spikes(model.encode(y_r), W, "rare_"))
        out["rare_stored_fraction"] = float(stored_mask(W[live], rare).mean())
        out["rare_best_cosine_min"] = float(cosine_matrix(rare, W[live]).max(1).min())
        ps = per_sample_measures(model, rare, SIGMA, copies=4, reference=ref, seed=2)
        out["rare_mse"] = float(ps["error"].mean())
        out["rare_ref_mse"] = float(ps["ref_error"].mean())
        out["rare_pull_ratio"] = float(np.median(ps["pull_ratio"]))
        # each measure as a detector: noisy rare inputs (positives) against noisy fresh inputs
        H_pos, H_neg = model.encode(y_r).double(), model.encode(y_te).double()
        labels = np.r_[np.ones(len(H_pos)), np.zeros(len(H_neg))]
        H_all = torch.cat([H_pos, H_neg])
        for kind in DETECTOR_KINDS:
            score = -participation_ratio(H_all) if kind == "participation_ratio" else spikiness(H_all, kind)
            out[f"rare_auroc_{kind}"] = roc_auc(score, labels)
        f = model(y_r)
        out["rare_dist_emp"] = float(((f - empirical_denoiser(y_r, X, SIGMA)) ** 2).sum(1).mean())
        out["rare_dist_ref"] = float(((f - torch.as_tensor(ref(y_r)).float()) ** 2).sum(1).mean())
    return {k: (float(v) if not isinstance(v, int) else v) for k, v in out.items()}


def run_regimes(*, seeds: int = 3, steps: int | None = None, datasets=tuple(REGIME_DATASETS),
                n_eval: int = 1000, progress=print) -> list[dict]:
    """Every recipe of ``REGIME_RECIPES`` x seed x dataset; one dict per trained model."""
    rows = []
    for dataset in datasets:
        sets = regime_sets(dataset)
        X = sets["X"]
        n, d = X.shape
        for seed in _seed_list(seeds):
            for label, pen, opt, init in REGIME_RECIPES:
                t0 = time.perf_counter()
                scale = (1 if init == "default" else 0.1) / math.sqrt(d)
                model = ReLUDAE(d, sets["p"], seed=seed, init_scale=scale)
                fit_dae(model, X, sigma=SIGMA, seed=seed, steps=steps, sparsity=pen, optimizer=opt)
                row = {"regime": sets["regime"], "dataset": dataset, "recipe": "fit_dae", "penalty": label,
                       "penalty_value": 0.1 * min(1.0, sets["p"] / n) if pen is None else pen,
                       "optimizer": opt, "init": init, "seed": seed, "steps": steps or 1500,
                       "n": n, "d": d, "p": sets["p"], "seconds": round(time.perf_counter() - t0, 2)}
                row.update(measure_regime(model.eval(), sets, n_eval=n_eval))
                rows.append(row)
                progress(f"{dataset} seed {seed} penalty={label} {opt} init={init}: top-1 "
                         f"{row['top1_share']:.2f} (merged {row['merged_0.99_top1_share']:.2f}), "
                         f"test/train {row['gap_ratio']:.3f}, stored {row['stored_fraction']:.3f}")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="results file (JSON)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a few steps and one seed, to test the command")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="worker processes, one thread each (the results do not depend on it)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)          # single thread per run: tiny products, a shared machine
    start = time.perf_counter()
    kw = dict(seeds=1, book_steps=30, official_steps=40, datasets=("digits",)) if args.quick \
        else dict(seeds=args.seeds)
    kw_regimes = dict(seeds=1, steps=30, n_eval=200) if args.quick else dict(seeds=args.seeds, n_eval=1000)
    rows = run_all(kw, kw_regimes, jobs=args.jobs)
    argv_shown = ["--quick"] if args.quick else [f"--seeds={args.seeds}"]
    result = {
        "provenance": provenance("python -m utils.recipe_ablation " + " ".join(argv_shown), start,
                                 jobs=args.jobs),
        "settings": {"n": N, "p": P, "sigma": SIGMA, "official_snapshots": list(OFFICIAL_SNAPSHOTS),
                     **{k: v for k, v in kw.items() if k != "datasets"},
                     "datasets": list(kw.get("datasets", ("digits", "faces"))),
                     "regimes": {"datasets": REGIME_DATASETS, "n_mixture": GEN_N, "d_mixture": GEN_D,
                                 "clusters": GEN_K, "rank": GEN_RANK, "p_mixture": GEN_P,
                                 "digits_train": DIGITS_TRAIN, "p_digits": DIGITS_P, "n_rare": N_RARE,
                                 "rare_copies": RARE_COPIES, "n_eval": kw_regimes["n_eval"],
                                 "steps": kw_regimes.get("steps") or 1500,
                                 "recipes": [list(r[:1]) + [r[1], r[2], r[3]] for r in REGIME_RECIPES]}},
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
    from .results_file import load_results as load
    return load(path, command="python -m utils.recipe_ablation", keys=("provenance", "settings", "runs"),
                kind="recipe-ablation results")


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


REGIME_MEASURES = ("top1_share", "merged_0.99_top1_share", "participation_ratio", "merged_0.99_participation_ratio",
                   "stored_fraction", "test_stored_fraction", "train_mse", "test_mse", "gap_ratio",
                   "mse_over_ref", "dist_emp", "dist_ref", "live_neurons")
HYBRID_MEASURES = ("rare_top1_share", "rare_merged_0.99_top1_share", "rare_participation_ratio",
                   "rare_stored_fraction", "rare_best_cosine_min", "rare_mse", "rare_ref_mse", "rare_pull_ratio",
                   "rare_dist_emp", "rare_dist_ref") + tuple(f"rare_auroc_{k}" for k in DETECTOR_KINDS)


def summarize_seeds(runs: list[dict], measures=REGIME_MEASURES, draws: int = 1000) -> list[dict]:
    """Group runs of the generalization / hybrid regimes by (dataset, penalty, optimizer, init) and
    give, per measure, (mean over seeds, 95% bootstrap interval of that mean over seeds (lo, hi),
    min, max): [{"dataset", "penalty", "optimizer", "init", "seeds", measure: (mean, lo, hi, min,
    max)}], in the order the groups first appear. Every group needs at least 2 seeds."""
    from .intervals import seed_interval
    keys = ("dataset", "penalty", "optimizer", "init")
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, rs in groups.items():
        if len({r["seed"] for r in rs}) != len(rs):
            raise ValueError(f"group {key} has repeated seeds; pass the runs of one design")
        row = dict(zip(keys, key), seeds=len(rs))
        for m in measures:
            v = np.array([r[m] for r in rs], dtype=float)
            row[m] = (*seed_interval(v, draws=draws), float(v.min()), float(v.max()))
        out.append(row)
    return out
