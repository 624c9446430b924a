"""Experiments on the regimes of the ReLU DAE: hybrid (imbalanced) training sets, regime
summaries, per-sample memorization measures, and the sweep over the training-set size n.

Shapes: training set X (n, d); a model maps (m, d) -> (m, d) and has ``encode`` (m, d) -> (m, p)
and ``encoder_weight`` (p, d) (see :class:`utils.models.ReLUDAE`). A *reference* denoiser is any
callable ``ref(y) -> x_hat`` on (m, d) batches, e.g. the Bayes-optimal denoiser of the mixture.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from . import metrics
from .checks import as_float_tensor, check_positive_int, check_sigma


@dataclass
class HybridData:
    """A training set in which a few samples are repeated many times.

    Attributes:
        X: (N, d) the training set (every unique sample once, then the extra copies).
        labels: (N,) int64 component labels, or None when none were given.
        source: (N,) int64 index into ``base`` of the sample each row is a copy of.
        base: (n_base, d) the unique samples; ``X[:n_base]`` equals ``base``.
        repeated: (m,) int64 indices into ``base`` of the repeated samples.
        is_repeated: (N,) bool, True for every row that is (a copy of) a repeated sample.
    """
    X: torch.Tensor
    labels: torch.Tensor | None
    source: torch.Tensor
    base: torch.Tensor
    repeated: torch.Tensor
    is_repeated: torch.Tensor

    @property
    def n_base(self) -> int:
        return self.base.shape[0]

    @property
    def base_is_repeated(self) -> torch.Tensor:
        """(n_base,) bool: which unique samples are repeated."""
        flag = torch.zeros(self.n_base, dtype=torch.bool)
        flag[self.repeated] = True
        return flag


def hybrid_dataset(X, labels=None, *, copies: int, n_repeated: int | None = None, extra=None,
                   extra_labels=None, seed: int = 0) -> HybridData:
    """An imbalanced training set: a few samples appear ``copies`` times, the rest once.

    Either ``n_repeated`` randomly chosen rows of ``X`` (n, d) are repeated, or the rows of
    ``extra`` (m, d) (e.g. samples of rare modes, see :func:`imbalanced_mixture`) are appended and
    repeated. Copies are exact duplicates, like the duplicated training images that diffusion
    models are known to memorize. Returns a :class:`HybridData` with
    N = n + m * copies (extra) or n + n_repeated * (copies - 1) rows.
    """
    Xt = as_float_tensor(X, "X", ndim=2).float()
    copies = check_positive_int(copies, "copies", minimum=2)
    lab = None
    if labels is not None:
        lab = torch.as_tensor(labels).long()
        if lab.shape != (len(Xt),):
            raise ValueError(f"labels must have shape ({len(Xt)},), got {tuple(lab.shape)}")
    if (extra is None) == (n_repeated is None):
        raise ValueError("give exactly one of n_repeated (repeat rows of X) and extra (append rows)")
    if extra is not None:
        E = as_float_tensor(extra, "extra", ndim=2).float()
        if E.shape[1] != Xt.shape[1]:
            raise ValueError(f"extra has {E.shape[1]} features but X has {Xt.shape[1]}")
        if lab is not None:
            if extra_labels is None:
                raise ValueError("labels were given for X, so give extra_labels for extra too")
            el = torch.as_tensor(extra_labels).long()
            if el.shape != (len(E),):
                raise ValueError(f"extra_labels must have shape ({len(E)},), got {tuple(el.shape)}")
            lab = torch.cat([lab, el])
        base = torch.cat([Xt, E])
        rep = torch.arange(len(Xt), len(base))
        extra_copies = copies - 1
    else:
        n_repeated = check_positive_int(n_repeated, "n_repeated")
        if n_repeated > len(Xt):
            raise ValueError(f"n_repeated ({n_repeated}) cannot exceed the number of rows of X ({len(Xt)})")
        base = Xt
        gen = torch.Generator().manual_seed(int(seed))
        rep = torch.randperm(len(Xt), generator=gen)[:n_repeated].sort().values
        extra_copies = copies - 1
    source = torch.cat([torch.arange(len(base)), rep.repeat_interleave(extra_copies)])
    flag = torch.zeros(len(base), dtype=torch.bool)
    flag[rep] = True
    return HybridData(X=base[source].clone(), labels=None if lab is None else lab[source].clone(),
                      source=source, base=base.clone(), repeated=rep, is_repeated=flag[source])


def imbalanced_mixture(n: int, d: int, k: int, rank: int, *, n_rare: int, seed: int = 0,
                       sample_seed: int | None = None, **mixture_kwargs):
    """n samples of a k-component low-rank mixture plus one sample from each of ``n_rare`` rare
    components of the same family (``utils.data.mixture_params`` with k + n_rare components).

    Returns ``(X (n, d), labels (n,), X_rare (n_rare, d), rare_labels (n_rare,), params)``, where
    ``params`` is the (k + n_rare)-component :class:`utils.data.MixtureParams` whose weights are
    the frequencies of this sample (n/k per main component, 1 per rare one, normalized), so
    ``utils.gmm.mixture_denoiser(y, params, sigma)`` is the Bayes denoiser of the imbalanced data.
    Extra keyword arguments (``scale``, ``mean_scale``, ``noise_std``) go to ``mixture_params``.
    """
    from .data import MixtureParams, mixture_params
    n = check_positive_int(n, "n")
    k = check_positive_int(k, "k")
    n_rare = check_positive_int(n_rare, "n_rare")
    w = np.r_[np.full(k, n / k), np.ones(n_rare)]
    params = mixture_params(d, k + n_rare, rank, weights=w / w.sum(), seed=seed, **mixture_kwargs)
    main = MixtureParams(params.means[:k], params.bases[:k], params.scales[:k],
                         torch.full((k,), 1.0 / k), params.noise_std)
    s = seed if sample_seed is None else int(sample_seed)
    X, labels = main.sample(n, seed=s)
    rare = MixtureParams(params.means[k:], params.bases[k:], params.scales[k:],
                         torch.full((n_rare,), 1.0 / n_rare), params.noise_std)
    rng = np.random.default_rng([s, 2])
    rare_labels = torch.from_numpy(rng.permutation(n_rare)).long()   # one per rare component
    Xr = []
    for j in rare_labels.tolist():
        comp = MixtureParams(rare.means[j:j + 1], rare.bases[j:j + 1], rare.scales[j:j + 1],
                             torch.ones(1), params.noise_std)
        Xr.append(comp.sample(1, seed=s * 1000 + j)[0])
    order = torch.argsort(rare_labels)
    return X, labels, torch.cat(Xr)[order], rare_labels[order] + k, params


def noisy(X, sigma: float, *, copies: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``copies`` noisy versions y = x + sigma * eps of every row of ``X`` (n, d).

    Returns (Y (n * copies, d) float32, source (n * copies,) int64 row index of X), rows grouped
    by copy (all of X once, then all of X again, ...)."""
    Xt = as_float_tensor(X, "X", ndim=2).float()
    s = float(check_sigma(sigma))
    copies = check_positive_int(copies, "copies")
    gen = torch.Generator().manual_seed(int(seed))
    Xr = Xt.repeat(copies, 1)
    return Xr + s * torch.randn(Xr.shape, generator=gen), torch.arange(len(Xt)).repeat(copies)


def _sq_err(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row squared error summed over the d coordinates -> (m,) (the convention of
    ``utils.train.fit_dae`` and ``utils.gmm``; divide by d for a per-pixel MSE)."""
    return ((a.double() - b.double()) ** 2).sum(1)


@torch.no_grad()
def regime_summary(model, X_train, X_test, sigma: float, *, reference: Callable | None = None,
                   n_eval: int = 2000, seed: int = 0) -> dict:
    """The numbers that tell the regimes apart, as a dict of floats.

    Errors are E||f(x + sigma eps) - x||^2 per sample, summed over the d coordinates (as in
    ``utils.train.fit_dae`` and ``utils.gmm``), on up to ``n_eval`` rows of each set (one noise
    draw each). Keys:

    * ``train_mse``, ``test_mse``, ``gap_ratio`` = test / train;
    * ``ref_mse`` (reference on the test inputs) and ``mse_over_ref`` = test / ref, if ``reference``;
    * ``top1_share``, ``participation_ratio``: medians over the noisy test inputs;
    * ``weight_cosine``: median over the live neurons (norm >= 10% of the largest; their number
      is ``live_neurons``) of the largest cosine to a training sample, and ``weight_cosine_max``
      its maximum; ``data_cosine``: median over training samples of the largest cosine to
      *another* training sample (the baseline a weight is compared with);
    * ``stored_fraction``: fraction of (evaluated) training samples x that some live neuron stores,
      i.e. cos(w, x) >= metrics.STORED_COSINE (0.9);
    * ``dist_emp``, ``dist_ref``: mean squared distance E||f(y) - g(y)||^2 of the model's outputs on
      noisy test inputs to the empirical denoiser g = f_emp and to the reference g.
    """
    from .diffusion import empirical_denoiser
    Xtr = as_float_tensor(X_train, "X_train", ndim=2).float()
    Xte = as_float_tensor(X_test, "X_test", ndim=2).float()
    if Xtr.shape[1] != Xte.shape[1]:
        raise ValueError(f"X_train has {Xtr.shape[1]} features but X_test has {Xte.shape[1]}")
    s = float(check_sigma(sigma))
    n_eval = check_positive_int(n_eval, "n_eval")
    gen = torch.Generator().manual_seed(int(seed))
    tr = Xtr[torch.randperm(len(Xtr), generator=gen)[:n_eval]]
    te = Xte[:n_eval]
    y_tr, _ = noisy(tr, s, seed=seed)
    y_te, _ = noisy(te, s, seed=seed + 1)
    out_te = model(y_te)
    res = {"train_mse": float(_sq_err(model(y_tr), tr).mean()), "test_mse": float(_sq_err(out_te, te).mean())}
    res["gap_ratio"] = res["test_mse"] / res["train_mse"]
    H = model.encode(y_te)
    res["top1_share"] = float(np.median(metrics.spikiness(H, "top1_share")))
    res["participation_ratio"] = float(np.median(metrics.participation_ratio(H)))
    W = model.encoder_weight.detach()
    norms = W.norm(dim=1)
    live = norms >= 0.1 * norms.max()                  # neurons that carry something
    wc = metrics.weight_data_cosine(W[live], Xtr)
    res["weight_cosine"], res["weight_cosine_max"] = float(np.median(wc)), float(wc.max())
    res["live_neurons"] = float(live.sum())
    res["stored_fraction"] = float(metrics.stored_mask(W[live], tr).mean())
    C = metrics.cosine_matrix(tr[:500], Xtr)
    C[C > 1 - 1e-6] = -np.inf          # a sample itself and its exact duplicates do not count
    best = C.max(1)
    res["data_cosine"] = float(np.median(best[np.isfinite(best)])) if np.isfinite(best).any() else float("nan")
    res["dist_emp"] = float(_sq_err(out_te, empirical_denoiser(y_te, Xtr, s)).mean())
    if reference is not None:
        ref = torch.as_tensor(reference(y_te)).float()
        res["ref_mse"] = float(_sq_err(ref, te).mean())
        res["mse_over_ref"] = res["test_mse"] / res["ref_mse"]
        res["dist_ref"] = float(_sq_err(out_te, ref).mean())
    return res


@torch.no_grad()
def per_sample_measures(model, X, sigma: float, *, copies: int = 4, reference: Callable | None = None,
                        seed: int = 0) -> dict:
    """Memorization measures for each row x of ``X`` (n, d), averaged over ``copies`` noisy
    inputs y = x + sigma eps. Returns a dict of (n,) float64 arrays:

    * ``top1_share``, ``participation_ratio``, ``hoyer``: spikiness of h(y) (mean over copies);
    * ``weight_cosine``: the largest cosine between x and any neuron's weight (encoder row);
    * ``error``: ||f(y) - x||^2 (summed over coordinates), mean over copies;
    * with ``reference``: ``ref_error`` likewise and ``pull_ratio`` = error / ref_error. A ratio
      well below 1 means the model pulls noisy inputs back onto this very sample better than any
      denoiser that only knows the distribution can: it has stored the sample.
    """
    Xt = as_float_tensor(X, "X", ndim=2).float()
    n = len(Xt)
    Y, src = noisy(Xt, sigma, copies=copies, seed=seed)
    H = model.encode(Y)

    def avg(v):
        return np.bincount(src.numpy(), weights=np.asarray(v, dtype=np.float64), minlength=n) / copies

    res = {"top1_share": avg(metrics.spikiness(H, "top1_share")),
           "participation_ratio": avg(metrics.participation_ratio(H)),
           "hoyer": avg(metrics.spikiness(H, "hoyer")),
           "weight_cosine": metrics.cosine_matrix(Xt, model.encoder_weight).max(1)}
    Xr = Xt[src]
    res["error"] = avg(_sq_err(model(Y), Xr).numpy())
    if reference is not None:
        res["ref_error"] = avg(_sq_err(torch.as_tensor(reference(Y)).float(), Xr).numpy())
        res["pull_ratio"] = res["error"] / res["ref_error"]
    return res


def phase_sweep(ns, X_pool, X_test, *, p: int, sigma: float, reference: Callable | None = None,
                fit_kwargs: dict | None = None, seed: int = 0, n_eval: int = 1000,
                keep_models: bool = False, tied: bool = True) -> dict:
    """Train one ReLU DAE (``utils.models.ReLUDAE(d, p)``, fitted by ``utils.train.fit_dae``) on
    the first n rows of ``X_pool`` for each n in ``ns`` and summarise it with
    :func:`regime_summary` on ``X_test``.

    Returns a dict: ``"n"`` (len(ns),) int array, one (len(ns),) float array per key of
    :func:`regime_summary`, and ``"models"`` (a list) when ``keep_models``.
    """
    from .models import ReLUDAE
    from .train import fit_dae
    ns = [check_positive_int(int(v), "n") for v in ns]
    Xp = as_float_tensor(X_pool, "X_pool", ndim=2).float()
    if max(ns) > len(Xp):
        raise ValueError(f"the largest n ({max(ns)}) exceeds the rows of X_pool ({len(Xp)})")
    rows, models = [], []
    for n in ns:
        model = ReLUDAE(Xp.shape[1], p, tied=tied, seed=seed)
        fit_dae(model, Xp[:n], sigma=sigma, seed=seed, **(fit_kwargs or {}))
        model.eval()
        rows.append(regime_summary(model, Xp[:n], X_test, sigma, reference=reference,
                                   n_eval=n_eval, seed=seed))
        if keep_models:
            models.append(model)
    out = {"n": np.array(ns)}
    for key in rows[0]:
        out[key] = np.array([r[key] for r in rows])
    if keep_models:
        out["models"] = models
    return out


@dataclass
class ConeFit:
    """Result of :func:`cone_fit` for m query rows.

    Attributes:
        distance: (m,) distance ||x - sum_i lambda_i x_i|| from x to the cone spanned by the
            reference rows used (0 = inside the cone).
        residual: (m,) the same relative to ||x||.
        weights: (m, k) the non-negative coefficients lambda_i.
        index: (m, k) int64 rows of the reference set the coefficients belong to.
    """
    distance: np.ndarray
    residual: np.ndarray
    weights: np.ndarray
    index: np.ndarray


def cone_fit(Q, X_ref, *, neighbors: int = 200) -> ConeFit:
    """Write each row x of ``Q`` (m, d) as a non-negative combination of rows of ``X_ref`` (n, d).

    Solves min_{lambda >= 0} ||x - sum_i lambda_i x_i|| (non-negative least squares) over the
    ``neighbors`` nearest reference rows of x, leaving out exact copies of x itself. The
    distance is an upper bound on the distance to the cone of *all* reference rows (fewer rows
    can only raise it), so a distance of about 0 certifies that x lies inside that cone. A unit
    w (||w|| = 1) that is silent on all the reference rows has w^T x <= that distance (chapter 5):
    a sample inside the cone can have no private bias-free ReLU neuron.
    """
    from scipy.optimize import nnls
    q = as_float_tensor(Q, "Q", ndim=2).double()
    x = as_float_tensor(X_ref, "X_ref", ndim=2).double()
    if q.shape[1] != x.shape[1]:
        raise ValueError(f"Q rows have {q.shape[1]} features but X_ref rows have {x.shape[1]}")
    k = check_positive_int(neighbors, "neighbors")
    dist = torch.cdist(q, x, compute_mode="donot_use_mm_for_euclid_dist")
    dist[dist <= 1e-9 * (1 + q.norm(dim=1, keepdim=True))] = float("inf")   # leave out copies of x
    if not torch.isfinite(dist).any(1).all():
        raise ValueError("X_ref has no row that differs from a query row")
    vals, idx = torch.topk(dist, min(k, x.shape[0]), dim=1, largest=False)
    dist_out = np.empty(len(q))
    lam = np.empty(tuple(idx.shape))
    for row in range(len(q)):
        A = x[idx[row]].numpy().T                      # (d, k): the neighbours as columns
        A[:, ~torch.isfinite(vals[row]).numpy()] = 0.0  # copies of x itself take no part
        lam[row], dist_out[row] = nnls(A, q[row].numpy(), maxiter=50 * k)
    norms = np.maximum(q.norm(dim=1).numpy(), 1e-300)
    return ConeFit(dist_out, dist_out / norms, lam, idx.numpy())


def paired_auroc_difference_draws(per_seed_a, per_seed_b, draws: int = 1000, seed: int = 0) -> np.ndarray:
    """Seed-paired two-stage bootstrap draws (draws,) of mean_seed[AUROC_b - AUROC_a].

    Args:
        per_seed_a, per_seed_b: lists, one entry per training seed, of (scores (n,), labels (n,)
            with 1 for the positives), for two networks (conditions a and b) scored on the *same*
            samples in the same order, so the labels of a seed must agree between a and b.
    Each draw resamples the seeds, then the positives and the negatives within each drawn seed,
    with the same multiplicities for a and b, so what the two conditions share (the seed's data
    and its samples) cancels in the difference. With 3 seeds the seed stage can take only a few
    values; the interval is a coarse statement about seeds.
    """
    from .intervals import _wins, two_stage_win_draws
    draws = check_positive_int(draws, "draws")
    if len(per_seed_a) != len(per_seed_b) or not per_seed_a:
        raise ValueError(f"need the same number (>= 1) of seeds for a and b, got {len(per_seed_a)} and {len(per_seed_b)}")
    groups = []
    for i, ((sa, ya), (sb, yb)) in enumerate(zip(per_seed_a, per_seed_b)):
        sa, sb = np.asarray(sa, dtype=float), np.asarray(sb, dtype=float)
        ya, yb = np.asarray(ya).astype(bool), np.asarray(yb).astype(bool)
        if sa.ndim != 1 or sa.shape != ya.shape or sb.shape != sa.shape or yb.shape != ya.shape:
            raise ValueError(f"seed {i}: need 1-D scores and labels of one length for both conditions")
        if not np.array_equal(ya, yb):
            raise ValueError(f"seed {i}: the labels of a and b differ; the samples must be the same")
        if not ya.any() or ya.all():
            raise ValueError(f"seed {i}: need both classes")
        if not (np.isfinite(sa).all() and np.isfinite(sb).all()):
            raise ValueError(f"seed {i}: scores contain NaN or infinite entries")
        groups.append(_wins(sb[yb], sb[~yb]) - _wins(sa[ya], sa[~ya]))
    return two_stage_win_draws(groups, draws, seed)
