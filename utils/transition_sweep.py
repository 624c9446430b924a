"""Where does memorization give way to generalization? A sweep over n, p and sigma, with seeds.

    python -m utils.transition_sweep                       # writes book/results/transition_sweep.json
    python -m utils.transition_sweep --quick --out F.json  # a few steps, one seed (the test runs this)

Chapter 4's mixture (K = 4 clusters of rank 6 in d = 64, ``utils.data.gaussian_mixture``, mixture
seed = run seed). For every seed the training sets are nested: the first n rows of one pool.

* **transition**: a tied ReLU DAE (``utils.models.ReLUDAE``) trained by ``utils.train.fit_dae``
  with the neuron-norm penalty off (``sparsity=0``, so that the recipe does not change with p/n)
  and otherwise its defaults, for n in NS, p in PS at sigma = 0.2 and for n in NS at p = 64 and
  sigma in SIGMAS; summarised by ``utils.regimes.regime_summary`` against the Bayes denoiser.
  Beside every trained network the *gated local-statistics predictor* of the same training set
  (:func:`gated_wiener_predictor`: per cluster, the rank-min(p/K, r+1) Wiener filter of the
  cluster's empirical second moment, switched by the true label) is evaluated the same way; it
  needs no training and is the prediction the chapter tests.
* **units per cluster**: the same runs at the largest n also record the number of active units per
  test input, for the top-1 share against the number of units per cluster.
* **hybrid copies**: chapter 4's hybrid data (2000 typical samples, 16 rare ones) with the rare
  samples repeated c times, c in COPIES, fit_dae's defaults as in the chapter; per rare sample the
  best cosine to a weight row, and on the single-copy network the quantities of the chapter's
  unit-addition proposition (:func:`unit_addition_terms`).

The results file carries its provenance (command, date, versions, machine, seconds, config).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .results_file import provenance

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "book" / "results" / "transition_sweep.json"
D, K, RANK = 64, 4, 6
SIGMA = 0.2
NS = (8, 16, 32, 64, 128, 256, 512, 1024)
PS = (8, 16, 32, 64, 128)
SIGMAS = (0.1, 0.4)                 # extra noise levels, at p = P_SIGMA
P_SIGMA = 64
COPIES = (1, 2, 4, 8, 16, 30)
N_TYPICAL, N_RARE, P_HYBRID = 2000, 16, 48
WEIGHT_DECAY = 1e-3                 # fit_dae's default weight decay (the proposition's lambda)


# ---------------------------------------------------------------------------------------------
# the gated local-statistics predictor (no training)
# ---------------------------------------------------------------------------------------------
def empirical_wiener(X_cluster, sigma: float, rank: int) -> np.ndarray:
    """The rank-``rank`` Wiener filter of the empirical second moment of ``X_cluster`` (m, d).

    This is the minimizer of the *training* loss mean_k E||A(x_k + sigma eps) - x_k||^2 over
    (d, d) matrices of rank <= ``rank`` (chapter 4, thm-wiener with S = the empirical second
    moment). An empty cluster (m = 0) gives the zero matrix. Returns (d, d) float64.
    """
    from .linear_dae import optimal_linear_denoiser
    Xc = torch.as_tensor(X_cluster).double()
    if Xc.ndim != 2:
        raise ValueError(f"X_cluster must be (m, d), got shape {tuple(Xc.shape)}")
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    if len(Xc) == 0:
        return np.zeros((Xc.shape[1], Xc.shape[1]))
    S = (Xc.T @ Xc / len(Xc)).numpy()
    return optimal_linear_denoiser(S, sigma, rank=rank)


class GatedPredictor:
    """A denoiser that applies the empirical Wiener filter A_j of the input's cluster j.

    ``maps`` (K, d, d); calling it needs the cluster labels of the inputs: ``f(y, labels)``.
    """

    def __init__(self, maps: np.ndarray):
        self.maps = torch.as_tensor(maps).double()

    def __call__(self, y, labels) -> torch.Tensor:
        yd = torch.as_tensor(y).double()
        lab = torch.as_tensor(labels).long()
        return torch.einsum("nij,nj->ni", self.maps[lab], yd).float()


def gated_wiener_predictor(X, labels, k: int, sigma: float, units: int, rank: int = RANK) -> GatedPredictor:
    """The local-statistics solution with ``units`` tied units: each of the ``k`` clusters gets
    q = min(units // k, rank + 1) units (at least 1) and the rank-q empirical Wiener filter of
    its training samples (rows of ``X`` (n, d) with ``labels`` (n,))."""
    Xt = torch.as_tensor(X).double()
    lab = torch.as_tensor(labels).long()
    if Xt.ndim != 2 or lab.shape != (len(Xt),):
        raise ValueError(f"X must be (n, d) and labels (n,), got {tuple(Xt.shape)} and {tuple(lab.shape)}")
    q = max(1, min(units // k, rank + 1))
    return GatedPredictor(np.stack([empirical_wiener(Xt[lab == j], sigma, q) for j in range(k)]))


def predictor_summary(pred: GatedPredictor, X, labels, X_test, labels_test, sigma: float, bayes,
                      *, n_eval: int = 1000, seed: int = 0) -> dict:
    """The numbers of ``utils.regimes.regime_summary`` that the transition uses, for the gated
    predictor: train_mse, test_mse, gap_ratio, mse_over_ref, dist_emp, dist_ref (same noise draws
    and the same subsampling of the training set as regime_summary)."""
    from .diffusion import empirical_denoiser
    from .regimes import _sq_err, noisy
    Xtr, Xte = torch.as_tensor(X).float(), torch.as_tensor(X_test).float()
    gen = torch.Generator().manual_seed(int(seed))
    idx = torch.randperm(len(Xtr), generator=gen)[:n_eval]
    tr, te = Xtr[idx], Xte[:n_eval]
    y_tr, _ = noisy(tr, sigma, seed=seed)
    y_te, _ = noisy(te, sigma, seed=seed + 1)
    out_te = pred(y_te, torch.as_tensor(labels_test)[:n_eval])
    res = {"train_mse": float(_sq_err(pred(y_tr, torch.as_tensor(labels)[idx]), tr).mean()),
           "test_mse": float(_sq_err(out_te, te).mean())}
    res["gap_ratio"] = res["test_mse"] / res["train_mse"]
    ref = torch.as_tensor(bayes(y_te)).float()
    res["mse_over_ref"] = res["test_mse"] / float(_sq_err(ref, te).mean())
    res["dist_emp"] = float(_sq_err(out_te, empirical_denoiser(y_te, Xtr, sigma)).mean())
    res["dist_ref"] = float(_sq_err(out_te, ref).mean())
    return res


# ---------------------------------------------------------------------------------------------
# the crossover of a curve, and its bootstrap over seeds
# ---------------------------------------------------------------------------------------------
def crossover(ns, values, level: float = 1.0) -> float:
    """The n at which ``values`` (one per n in increasing ``ns``) first falls from >= ``level`` to
    < ``level``, interpolated linearly in (log n, log value). Returns ns[0] if it starts below the
    level and inf if it never falls below it."""
    n = np.asarray(ns, dtype=float)
    v = np.asarray(values, dtype=float)
    if n.shape != v.shape or n.ndim != 1 or len(n) < 2:
        raise ValueError(f"ns and values must be 1-D of the same length >= 2, got {n.shape} and {v.shape}")
    if np.any(np.diff(n) <= 0) or np.any(n <= 0):
        raise ValueError("ns must be positive and increasing")
    if np.any(~np.isfinite(v)) or np.any(v <= 0) or level <= 0:
        raise ValueError("values and level must be positive and finite")
    below = v < level
    if below[0]:
        return float(n[0])
    if not below.any():
        return float("inf")
    i = int(np.argmax(below))
    x0, x1 = np.log(n[i - 1]), np.log(n[i])
    y0, y1 = np.log(v[i - 1]) - np.log(level), np.log(v[i]) - np.log(level)
    return float(np.exp(x0 + (x1 - x0) * y0 / (y0 - y1)))


def seed_bootstrap(per_seed, draws: int = 2000, seed: int = 0, stat=np.mean) -> tuple[float, float, float]:
    """(statistic, 2.5%, 97.5%) of ``stat`` over per-seed values, resampling the seeds with
    replacement (the seed is the sampled unit: data, initialisation and noise). Infinite values
    are kept (they move the percentiles, as they should)."""
    v = np.asarray(per_seed, dtype=float)
    if v.ndim != 1 or len(v) == 0:
        raise ValueError(f"per_seed must be a non-empty 1-D sequence, got shape {v.shape}")
    rng = np.random.default_rng(seed)
    boots = np.array([stat(v[rng.integers(0, len(v), len(v))]) for _ in range(draws)])
    return float(stat(v)), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


# ---------------------------------------------------------------------------------------------
# the unit-addition test of the hybrid proposition
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def unit_addition_terms(model, X_rows, u, sigma: float, *, draws: int = 64, seed: int = 0) -> dict:
    """The two moments that decide whether adding a tied unit t*u (||u|| = 1) to ``model`` lowers
    the per-row training loss: for y = x + sigma eps over the rows x of ``X_rows`` (m, d),

        C = mean_x E[[u^T y]_+ u^T (x - f(y))]   and   B = mean_x E[[u^T y]_+^2],

    so that the data loss changes by -2 C t^2 + B t^4 (exactly). Monte Carlo over ``draws``
    noise draws per row. Returns {"C": float, "B": float, "per_row_C": (m,) array}.
    """
    X = torch.as_tensor(X_rows).float()
    uu = torch.as_tensor(u).float().reshape(-1)
    if X.ndim != 2 or uu.shape != (X.shape[1],):
        raise ValueError(f"X_rows must be (m, d) and u (d,), got {tuple(X.shape)} and {tuple(uu.shape)}")
    nu = float(uu.norm())
    if not np.isfinite(nu) or nu == 0:
        raise ValueError("u must be a finite non-zero vector")
    uu = uu / nu
    gen = torch.Generator().manual_seed(int(seed))
    Y = X.repeat(draws, 1) + sigma * torch.randn(draws * len(X), X.shape[1], generator=gen)
    Xr = X.repeat(draws, 1)
    a = torch.clamp(Y @ uu, min=0).double()
    r = ((Xr - model(Y)) @ uu).double()
    per = (a * r).reshape(draws, len(X)).mean(0).numpy()
    return {"C": float(per.mean()), "B": float((a ** 2).mean()), "per_row_C": per}


def predicted_copies(a: float, b: float, n_typical: int, n_rare: int, lam: float = WEIGHT_DECAY) -> float:
    """The number of copies c above which a unit along a rare sample lowers the objective
    (chapter 4's hybrid proposition): 2 (c a + n_typical b) / (n_typical + n_rare c) > lam, with
    a = E[[u^T y]_+ u^T(x - f(y))] on the rare sample and b the mean of the same over typical rows.
    Returns the smallest real c solving it (0 if every c does, inf if none does)."""
    num = n_typical * (lam - 2 * b)
    den = 2 * a - n_rare * lam
    if den > 0:
        return float(max(0.0, num / den))
    return 0.0 if num < 0 else float("inf")


# ---------------------------------------------------------------------------------------------
# the sweep
# ---------------------------------------------------------------------------------------------
def _active_units(model, Y) -> np.ndarray:
    """Per input: the number of live units (norm >= 10% of the largest) with h_i > 0."""
    W = model.encoder_weight.detach()
    live = W.norm(dim=1) >= 0.1 * W.norm(dim=1).max()
    return ((model.encode(Y).detach()[:, live] > 0).sum(1)).numpy()


def _transition_data(seed: int, n_pool: int, n_eval: int):
    """(X_pool, labels_pool, params, X_test, labels_test) of one seed: the mixture seeded by
    ``seed``, a pool of ``n_pool`` training rows (nested training sets are its first n rows) and
    ``n_eval`` test rows from another sample seed."""
    from .data import gaussian_mixture
    X_pool, lab_pool, params = gaussian_mixture(n_pool, D, K, RANK, seed=seed, return_params=True)
    X_test, lab_test = gaussian_mixture(n_eval, D, K, RANK, seed=seed, sample_seed=10_000 + seed)
    return X_pool, lab_pool, params, X_test, lab_test


def _trained_row(X_pool, X_test, params, *, seed, p, sigma, n, steps, n_eval) -> dict:
    from .gmm import mixture_denoiser
    from .metrics import spikiness
    from .models import ReLUDAE
    from .regimes import noisy, regime_summary
    from .train import fit_dae
    t0 = time.perf_counter()
    model = ReLUDAE(D, p, seed=seed)
    fit_dae(model, X_pool[:n], sigma=sigma, seed=seed, sparsity=0.0, steps=steps)
    bayes = lambda y: mixture_denoiser(y, params, sigma)  # noqa: E731
    summ = regime_summary(model, X_pool[:n], X_test, sigma, reference=bayes, n_eval=n_eval, seed=seed)
    Yt, _ = noisy(X_test, sigma, seed=seed + 1)
    act = _active_units(model, Yt)
    H = model.encode(Yt).detach()
    row = {"seed": seed, "p": p, "sigma": sigma, "n": n, "family": "trained",
           "seconds": round(time.perf_counter() - t0, 2),
           "median_active_units": float(np.median(act)),
           "mean_top1_share": float(spikiness(H, "top1_share").mean()),
           "mean_inverse_active": float(np.mean(1.0 / np.maximum(act, 1)))}
    row.update(summ)
    return row


def rerun_point(*, seed: int, p: int, sigma: float, n: int, n_pool: int = max(NS), steps=None,
                n_eval: int = 1000) -> dict:
    """One trained network of the sweep, re-run: the row :func:`transition_runs` records for it
    (``n_pool`` must be the sweep's largest n, so that the training set is the same)."""
    X_pool, _, params, X_test, _ = _transition_data(seed, n_pool, n_eval)
    return _trained_row(X_pool, X_test, params, seed=seed, p=p, sigma=sigma, n=n, steps=steps, n_eval=n_eval)


def transition_runs(*, seeds, ns=NS, ps=PS, sigmas=SIGMAS, p_sigma=P_SIGMA, steps=None,
                    n_eval: int = 1000, progress=print) -> list[dict]:
    """The trained networks and their gated solutions (one row each) for every seed, setting and n."""
    from .gmm import mixture_denoiser
    rows = []
    settings = [(p, SIGMA) for p in ps] + [(p_sigma, s) for s in sigmas]
    for seed in seeds:
        X_pool, lab_pool, params, X_test, lab_test = _transition_data(seed, max(ns), n_eval)
        for p, sigma in settings:
            bayes = lambda y, s=sigma: mixture_denoiser(y, params, s)  # noqa: E731
            for n in ns:
                row = _trained_row(X_pool, X_test, params, seed=seed, p=p, sigma=sigma, n=n, steps=steps,
                                   n_eval=n_eval)
                rows.append(row)
                pred = gated_wiener_predictor(X_pool[:n], lab_pool[:n], K, sigma, p)
                prow = {"seed": seed, "p": p, "sigma": sigma, "n": n, "family": "gated"}
                prow.update(predictor_summary(pred, X_pool[:n], lab_pool[:n], X_test, lab_test, sigma, bayes,
                                              n_eval=n_eval, seed=seed))
                rows.append(prow)
                progress(f"seed {seed} p {p} sigma {sigma} n {n}: test/train {row['gap_ratio']:.2f} "
                         f"(gated {prow['gap_ratio']:.2f}), emp/ref {row['dist_emp'] / row['dist_ref']:.2f} "
                         f"(gated {prow['dist_emp'] / prow['dist_ref']:.2f}), {row['seconds']:.1f} s")
    return rows


def hybrid_runs(*, seeds, copies=COPIES, steps=None, progress=print) -> list[dict]:
    from .metrics import cosine_matrix
    from .models import ReLUDAE
    from .regimes import imbalanced_mixture
    from .train import fit_dae
    rows = []
    for seed in seeds:
        Xs, _, Xr, _, _ = imbalanced_mixture(N_TYPICAL, D, K, RANK, n_rare=N_RARE, seed=seed)
        for c in copies:
            t0 = time.perf_counter()
            net = ReLUDAE(D, P_HYBRID, seed=seed)
            fit_dae(net, torch.cat([Xs] + [Xr] * c), sigma=SIGMA, seed=seed, steps=steps)
            W = net.encoder_weight.detach()
            best = cosine_matrix(Xr, W).max(1)
            norms = W.norm(dim=1)
            row = {"seed": seed, "copies": c, "rows": N_TYPICAL + N_RARE * c,
                   "seconds": round(time.perf_counter() - t0, 2),
                   "rare_best_cosine": [float(v) for v in best],
                   "dead_units": int((norms < 0.1 * norms.max()).sum())}
            if c == 1:
                a = [unit_addition_terms(net, Xr[i:i + 1], Xr[i], SIGMA, draws=256, seed=i)["C"]
                     for i in range(N_RARE)]
                b = [unit_addition_terms(net, Xs, Xr[i], SIGMA, draws=4, seed=i)["C"] for i in range(N_RARE)]
                row["a"], row["b"] = a, b
                row["predicted_copies"] = [predicted_copies(ai, bi, N_TYPICAL, N_RARE) for ai, bi in zip(a, b)]
            rows.append(row)
            progress(f"hybrid seed {seed} copies {c}: median rare best cosine {np.median(best):.3f}, "
                     f"{row['seconds']:.1f} s")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="results file (JSON)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a few steps, one seed, a small grid, to test the command")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    if args.quick:
        tkw = dict(seeds=(0,), ns=(8, 64), ps=(8, 16), sigmas=(0.4,), p_sigma=16, steps=20, n_eval=200)
        hkw = dict(seeds=(0,), copies=(1, 4), steps=20)
    else:
        tkw = dict(seeds=tuple(range(args.seeds)))
        hkw = dict(seeds=tuple(range(args.seeds)))
    trans = transition_runs(**tkw)
    hyb = hybrid_runs(**hkw)
    argv_shown = ["--quick"] if args.quick else [f"--seeds={args.seeds}"]
    config = {"d": D, "k": K, "rank": RANK, "sigma": SIGMA, "ns": list(tkw.get("ns", NS)),
              "ps": list(tkw.get("ps", PS)), "sigmas": list(tkw.get("sigmas", SIGMAS)),
              "p_sigma": tkw.get("p_sigma", P_SIGMA), "steps": tkw.get("steps") or "fit_dae default",
              "sparsity": 0.0, "n_eval": tkw.get("n_eval", 1000), "seeds": list(tkw["seeds"]),
              "hybrid": {"n_typical": N_TYPICAL, "n_rare": N_RARE, "p": P_HYBRID, "copies": list(hkw.get("copies", COPIES)),
                         "recipe": "fit_dae defaults", "steps": hkw.get("steps") or "fit_dae default",
                         "weight_decay": WEIGHT_DECAY}}
    result = {
        "provenance": provenance("python -m utils.transition_sweep " + " ".join(argv_shown), start),
        "config": config,
        "transition": trans,
        "hybrid": hyb,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {len(trans)} transition rows and {len(hyb)} hybrid rows to {out.name} "
          f"in {result['provenance']['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())


# ---------------------------------------------------------------------------------------------
# reading the results file (used by the chapter)
# ---------------------------------------------------------------------------------------------
def load_results(path=DEFAULT_OUT) -> dict:
    """The results file written by this command, validated."""
    from .results_file import load_results as load
    return load(path, command="python -m utils.transition_sweep",
                keys=("provenance", "config", "transition", "hybrid"), kind="transition-sweep results")


def curves(rows: list[dict], *, p: int, sigma: float, family: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(ns (m,), values (seeds, m)) of one measure (``key``, or ``"emp_over_ref"`` =
    dist_emp / dist_ref) for one (p, sigma, family), seeds in increasing order."""
    sel = [r for r in rows if r["p"] == p and r["sigma"] == sigma and r["family"] == family]
    if not sel:
        raise ValueError(f"no rows for p={p}, sigma={sigma}, family={family!r}")
    ns = sorted({r["n"] for r in sel})
    seeds = sorted({r["seed"] for r in sel})
    val = lambda r: r["dist_emp"] / r["dist_ref"] if key == "emp_over_ref" else r[key]  # noqa: E731
    table = {(r["seed"], r["n"]): val(r) for r in sel}
    return np.array(ns), np.array([[table[s, n] for n in ns] for s in seeds])


def seed_crossovers(rows: list[dict], *, p: int, sigma: float, family: str, key: str,
                    level: float) -> np.ndarray:
    """Per seed, the n at which the measure ``key`` (see :func:`curves`; also ``"ref_over_emp"`` =
    dist_ref / dist_emp) first falls below ``level`` (:func:`crossover`) -> (seeds,)."""
    if key == "ref_over_emp":
        ns, emp = curves(rows, p=p, sigma=sigma, family=family, key="emp_over_ref")
        vals = 1.0 / emp
    else:
        ns, vals = curves(rows, p=p, sigma=sigma, family=family, key=key)
    return np.array([crossover(ns, v, level) for v in vals])
