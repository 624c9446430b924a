"""Do ``fit_dae``'s defaults generalize on a mixture the book never uses? (issue 10, section 3)

    python -m utils.defaults_sweep                       # writes book/results/defaults_sweep.json
    python -m utils.defaults_sweep --quick --out F.json  # a few steps, one seed (the test runs this)

Data: ``utils.data.gaussian_mixture`` with d = 300, 5 clusters of rank 6 (means with
per-coordinate RMS 0.5, within-cluster std ``scale`` per coordinate, 0.25 by default and 0.35 for
a harder variant), sigma = 0.2, p = 100; training sets of n = 2500 ... 20000 samples (each n is the
first n rows of one pool, so the sets are nested), a test set of 4000 fresh samples, the Bayes
denoiser ``utils.gmm.mixture_denoiser`` as reference. Recipes: ``fit_dae`` at its defaults
(``utils.train.dae_defaults``), and the previous defaults (1500 steps, lr 0.16 / sqrt(d)) given
explicitly.

For each model (one per recipe x scale x n x seed) it records the errors on every evaluated
training sample and on the test samples (2 noise draws each), test/train and test/Bayes, the
error the network leaves outside the span of the data (the directions the data never visit), the
training time (wall clock and CPU of this process, which runs single-threaded), and per sample:
the *pull ratio* error / Bayes error on the same noisy inputs, whose distribution on training and
on test samples shows whether the train-test gap is carried by a few samples (partial
memorization) or by all of them, and each sample's best cosine to a weight.

The results file carries its provenance (command, date, versions, machine, seconds).
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

from . import data, gmm, metrics, models, regimes
from .train import fit_dae

D, K, RANK, P, SIGMA = 300, 5, 6, 100, 0.2
NS = (2500, 5000, 10000, 20000)
N_TEST = 4000
OUT = Path(__file__).resolve().parent.parent / "book" / "results" / "defaults_sweep.json"
RECIPES = {"defaults": {}, "previous defaults": {"steps": 1500, "lr": 0.16 / math.sqrt(D)}}


def per_sample_summary(train: dict, test: dict) -> dict:
    """Where the train-test gap sits, from :func:`utils.regimes.per_sample_measures` of training
    and test samples (both with a reference). Floats:

    * ``pull_q10``, ``pull_q50``, ``pull_q90`` (train) and ``pull_test_q10`` ... : quantiles of the
      pull ratio error / reference error;
    * ``auroc_pull``: AUROC of a low pull ratio as a detector of training samples against test
      samples (0.5: the model treats both alike);
    * ``frac_below_test_q01``: fraction of training samples whose pull ratio is below the 1%
      quantile of the test samples' (0.01 if they are alike);
    * ``gap_share_top10``: share of the mean error gap (test - train) that the 10% of quantile
      levels with the largest train-test difference carry (0.1 if the gap is spread evenly,
      1 if it sits in one tenth of the samples);
    * ``auroc_cosine``: AUROC of the best weight cosine as a detector of training samples.
    """
    pr, pt = train["pull_ratio"], test["pull_ratio"]
    lab = np.r_[np.ones(len(pr), int), np.zeros(len(pt), int)]
    out = {f"pull_q{int(q * 100)}": float(np.quantile(pr, q)) for q in (0.1, 0.5, 0.9)}
    out.update({f"pull_test_q{int(q * 100)}": float(np.quantile(pt, q)) for q in (0.1, 0.5, 0.9)})
    out["auroc_pull"] = metrics.roc_auc(-np.r_[pr, pt], lab)
    out["frac_below_test_q01"] = float((pr < np.quantile(pt, 0.01)).mean())
    levels = np.linspace(0.0005, 0.9995, 1000)
    diff = np.quantile(test["error"], levels) - np.quantile(train["error"], levels)
    out["gap_share_top10"] = float(np.sort(diff)[::-1][:100].sum() / diff.sum()) if diff.sum() > 0 else float("nan")
    out["auroc_cosine"] = metrics.roc_auc(np.r_[train["weight_cosine"], test["weight_cosine"]], lab)
    return out


def run_one(n: int, seed: int, *, recipe: str = "defaults", scale: float = 0.25, steps=None,
            n_eval: int = 4000) -> dict:
    """Train one model and measure it (see the module docstring); returns a dict of numbers."""
    torch.set_num_threads(1)
    pool, _, params = data.gaussian_mixture(max(NS), D, K, RANK, seed=0, sample_seed=100 + seed,
                                            scale=scale, return_params=True)
    X = pool[:n]
    X_test, _ = data.gaussian_mixture(N_TEST, D, K, RANK, seed=0, sample_seed=999, scale=scale)
    kw = dict(RECIPES[recipe])
    if steps is not None:
        kw["steps"] = steps
    model = models.ReLUDAE(D, P, seed=seed)
    t0, c0 = time.perf_counter(), time.process_time()
    fit_dae(model, X, sigma=SIGMA, seed=seed, **kw)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    bayes = lambda y: gmm.mixture_denoiser(y, params, SIGMA)  # noqa: E731
    with torch.no_grad():
        tr = regimes.per_sample_measures(model, X[:n_eval], SIGMA, copies=2, reference=bayes, seed=seed + 7)
        te = regimes.per_sample_measures(model, X_test, SIGMA, copies=2, reference=bayes, seed=seed + 8)
        V = torch.cat([params.means.T, params.bases.permute(1, 0, 2).reshape(D, -1)], 1).double()
        Q, _ = torch.linalg.qr(V)                                  # (d, K (r + 1)) span of the data
        Y, _ = regimes.noisy(X_test, SIGMA, seed=seed + 9)
        F = model(Y).double()
        off = float(((F - (F @ Q) @ Q.T) ** 2).sum(1).mean())
    row = {"recipe": recipe, "scale": scale, "n": n, "seed": seed, "d": D, "p": P, "sigma": SIGMA,
           "wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
           "train_mse": float(tr["error"].mean()), "test_mse": float(te["error"].mean()),
           "bayes_mse": float(te["ref_error"].mean()), "off_span_mse": off,
           "off_span_bound_dim": D - Q.shape[1]}
    row["gap_ratio"] = row["test_mse"] / row["train_mse"]
    row["mse_over_bayes"] = row["test_mse"] / row["bayes_mse"]
    row.update(per_sample_summary(tr, te))
    return row


def _task(args):
    n, seed, recipe, scale, steps = args
    return run_one(n, seed, recipe=recipe, scale=scale, steps=steps)


def design(quick: bool = False) -> list[tuple]:
    """(n, seed, recipe, scale, steps) of every run."""
    if quick:
        return [(2500, 0, "defaults", 0.25, 20), (2500, 0, "previous defaults", 0.25, 20)]
    runs = [(n, s, "defaults", 0.25, None) for n in NS for s in (0, 1)]
    runs += [(10000, s, "previous defaults", 0.25, None) for s in (0, 1)]
    runs += [(10000, s, r, 0.35, None) for r in RECIPES for s in (0, 1)]
    return runs


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20 steps, 2 runs (a smoke test)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (single-threaded each)")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    tasks = design(a.quick)
    t0 = time.perf_counter()
    if a.jobs <= 1:
        rows = [_task(t) for t in tasks]
    else:
        import multiprocessing as mp
        with mp.get_context("spawn").Pool(a.jobs) as pool:
            rows = pool.map(_task, tasks, chunksize=1)
    result = {"provenance": {"command": "python -m utils.defaults_sweep" + (" --quick" if a.quick else ""),
                             "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                             "seconds": round(time.perf_counter() - t0, 1), "torch": torch.__version__,
                             "python": platform.python_version(), "machine": platform.machine(),
                             "cpus": os.cpu_count(), "jobs": a.jobs,
                             "note": "wall seconds are on a shared machine; cpu_seconds is this "
                                     "process's CPU time (one thread)"},
              "runs": rows}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {len(rows)} runs to {a.out.name} in {result['provenance']['seconds']:.0f} s", file=sys.stderr)
    return result


def load_results(path: Path = OUT) -> dict:
    """The results file written by :func:`main`."""
    from .results_file import load_results as load
    return load(path, command="python -m utils.defaults_sweep")


if __name__ == "__main__":
    main()
