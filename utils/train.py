"""Training loops for the book's models (denoising score matching at one or many noise levels).

Everything here is seeded, runs on the CPU in seconds for the book's sizes, and returns the
list of training losses so a chapter can plot them.
"""
from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

from .checks import as_float_tensor, check_positive_int, check_sigma

# ---------------------------------------------------------------------------------------------
# helpers shared by the training loops
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _threads(flops_per_step: float):
    """Use one thread for steps below 1e9 FLOPs: on a busy 2-core machine, OpenMP threads
    spinning on small matrix products were measured 6x (d=1024, p=256, batch 256) to 25x
    (d=256, p=100) slower than one thread. The setting is restored on exit."""
    old = torch.get_num_threads()
    if flops_per_step < 1e9 and old > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _check_nonneg(value, name):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def _resolve(dflt: dict, steps, batch_size, lr, weight_decay, seed) -> tuple:
    """Fill unset hyper-parameters from ``dflt`` and validate all of them (shared by the fits)."""
    steps = dflt["steps"] if steps is None else check_positive_int(steps, "steps")
    bs = dflt["batch_size"] if batch_size is None else check_positive_int(batch_size, "batch_size")
    lr = dflt["lr"] if lr is None else _check_nonneg(lr, "lr")
    if lr == 0:
        raise ValueError("lr must be positive")
    wd = dflt["weight_decay"] if weight_decay is None else _check_nonneg(weight_decay, "weight_decay")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return steps, bs, lr, wd


def _optimizer_step(opt, objective: torch.Tensor, loss: torch.Tensor, step: int, lr: float) -> float:
    """One optimizer step on ``objective``; returns ``loss`` (the reported part) as a float and
    fails loudly when it is no longer finite."""
    opt.zero_grad(set_to_none=True)
    objective.backward()
    opt.step()
    lv = float(loss.detach())
    if not math.isfinite(lv):
        raise FloatingPointError(f"the loss became {lv} at step {step}; lower lr "
                                 f"(now {lr:.3g}) or check the scale of X")
    return lv


def _warmup_cosine(step: int, steps: int, warmup: float = 0.05) -> float:
    """Learning-rate factor: linear warm-up over the first 5% of steps, then cosine decay to 0."""
    w = max(1, int(warmup * steps))
    if step < w:
        return (step + 1) / w
    return 0.5 * (1 + math.cos(math.pi * (step - w) / max(1, steps - w)))


def _progress(steps: int, progress: bool, desc: str):
    if progress:
        from tqdm.auto import trange
        return trange(steps, desc=desc, leave=False)
    return range(steps)


# ---------------------------------------------------------------------------------------------
# the ReLU DAE at one noise level
# ---------------------------------------------------------------------------------------------
DAE_BATCH = 256          # rows per step (small training sets are repeated up to this size)
DAE_SPARSITY_FRAC = 0.5  # fraction of the steps during which the neuron-norm penalty is on
DAE_GEN_DIM = 64         # generalization regime: the schedule grows with d / DAE_GEN_DIM above this d
DAE_GEN_MAX_FACTOR = 4.0  # ... by at most this factor (4x the steps, 2x the step size)
DAE_FLOP_BUDGET = 3e11   # ... and within this many training FLOPs (6 * batch * d * p per step)


def dae_defaults(n: int, d: int, p: int) -> dict:
    """The hyper-parameters :func:`fit_dae` uses when they are left as None.

    * batch_size: 256 rows; a training set smaller than that is repeated (each copy gets its
      own noise), a larger one is sampled with replacement.
    * lr: Adam step 0.16 / sqrt(d) (about 1% of a weight entry of an image-like model), warm-up
      over 5% of the steps, then cosine decay to 0.
    * steps: 1500, fewer (down to 600) when one step costs more than 2e8 FLOPs, so that the
      largest sizes of the book (n = 20000, d = 1024, p = 256) stay within budget.
    * generalization regime (n >= 2p) in more than DAE_GEN_DIM = 64 dimensions: with
      g = min(4, d / 64), steps = max(the above, min(1500 g, 3e11 FLOPs / cost of a step)) and
      lr = 0.16 sqrt(g / d). Measured on issue 10's mixture (d = 300, 5 clusters of rank 6,
      n = 10000, p = 100, sigma = 0.2; ``python -m utils.defaults_sweep``): 1500 steps stop
      early (test/Bayes 1.7 at cluster spread 0.25, 2.8 at 0.35); 6000 steps at twice the step
      reach 1.4 and 1.7 in 13-15 s of one core. The growth with d is a rule of thumb checked at
      d = 300 (and for time up to d = 1024), not derived. The memorization and hybrid regimes
      (n < 2p) and every d <= 64 keep the values above; of the book's settings only chapter 6's
      augmented faces (n = 4000, d = 625, p = 100: 3125 steps) and chapter 4's d = 300 section
      get the longer schedule (tests/test_dae_defaults.py lists them).
    * weight_decay: 1e-3 (coefficient of ||W||_F^2, added to the loss).
    * sparsity: 0.1 * min(1, p / n) (coefficient of sum_j ||w_j||, on during the first half of
      training only). It matters when there are more neurons than training samples (n < p),
      where the tied loss cannot choose between one neuron and several sharing a sample; it
      fades smoothly as n grows, so sweeps over n see no switch in the recipe.
    """
    bs = DAE_BATCH
    flops = 6.0 * bs * d * p
    steps = int(min(1500, max(600, 1500 * 2e8 / flops)))
    lr = 0.16 / math.sqrt(d)
    g = min(DAE_GEN_MAX_FACTOR, d / DAE_GEN_DIM)
    if n >= 2 * p and g > 1:
        steps = max(steps, int(min(1500 * g, DAE_FLOP_BUDGET / flops)))
        lr = lr * math.sqrt(g)
    return {"steps": steps, "lr": lr, "weight_decay": 1e-3,
            "batch_size": bs, "sparsity": 0.1 * min(1.0, p / n)}


DAE_OPTIMIZERS = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop, "sgd": torch.optim.SGD}


def fit_dae(model: nn.Module, X, *, sigma, steps=None, lr=None, weight_decay=None,
            batch_size=None, seed: int = 0, progress: bool = False, sparsity=None,
            optimizer: str = "adam", optimizer_options: dict | None = None) -> list[float]:
    """Train a :class:`utils.models.ReLUDAE` (tied or untied) to denoise ``X`` at one noise level.

    Objective (minimized with Adam, fresh noise every step):

        L(W) = mean_i E_eps || f(x_i + sigma eps) - x_i ||^2  +  weight_decay * sum ||W||_F^2
               [ + sparsity * sum_j ||w_j||   during the first half of training ]

    The squared error is summed over the d coordinates and averaged over the batch; the weight
    decay covers every weight matrix of the model (W1, and W2 when untied). The optional
    neuron-norm term (w_j = row j of each weight matrix) breaks an exact symmetry of the tied
    loss: k neurons pointing the same way with norms a_1..a_k act like one neuron with norm
    sqrt(a_1^2 + ... + a_k^2) and pay the same weight decay, so the plain objective cannot tell
    one neuron storing a sample from several sharing it. The term prefers the single neuron,
    kills neurons that carry nothing, and is switched off for the second half of the run, so the
    returned weights are (approximately) a stationary point of the plain weight-decay objective.

    Args:
        model: a ReLUDAE (anything with ``.d``, ``parameters()`` and ``forward``), trained in place.
        X: training data (n, d), finite.
        sigma: the noise level, a positive float.
        steps, lr, weight_decay, batch_size, sparsity: None picks the defaults of
            :func:`dae_defaults` from n, d and p.
        seed: seeds the noise and the mini-batches (the model's initialisation has its own seed).
        progress: show a tqdm progress bar.
        optimizer: "adam" (the default), "rmsprop" or "sgd" (plain, no momentum), all with the
            same learning rate and schedule, so that the optimizer can be ablated on its own.
        optimizer_options: further keyword arguments of the optimizer (for example
            ``{"betas": (0.0, 0.99)}`` for Adam without momentum); ``lr`` is set by fit_dae.
    Returns:
        The training loss (the data term only, per sample, summed over coordinates) at every step.
    """
    if optimizer not in DAE_OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {sorted(DAE_OPTIMIZERS)}")
    if not isinstance(model, nn.Module) or not hasattr(model, "d"):
        raise TypeError(f"model must be a ReLUDAE-like torch module with attribute d, got {type(model).__name__}")
    Xt = as_float_tensor(X, "X", ndim=2).float()
    n, d = Xt.shape
    if d != model.d:
        raise ValueError(f"X has {d} columns but the model expects d={model.d}")
    sig = float(check_sigma(sigma))
    p = int(getattr(model, "p", 1))
    dflt = dae_defaults(n, d, p)
    steps, bs, lr, wd = _resolve(dflt, steps, batch_size, lr, weight_decay, seed)
    mu = dflt["sparsity"] if sparsity is None else _check_nonneg(sparsity, "sparsity")
    mats = [prm for prm in model.parameters() if prm.requires_grad]
    if not mats:
        raise ValueError("the model has no trainable parameters")
    gen = torch.Generator().manual_seed(seed)
    options = dict(optimizer_options or {})
    if "lr" in options:
        raise ValueError("optimizer_options must not set lr; pass lr= to fit_dae")
    try:
        opt = DAE_OPTIMIZERS[optimizer](mats, lr=lr, **options)
    except TypeError as exc:
        raise TypeError(f"optimizer_options {options} do not fit {optimizer}: {exc}") from None
    reps = max(1, bs // n) if n < bs else 1
    Xrep = Xt.repeat(reps, 1) if reps > 1 else Xt
    mu_steps = int(DAE_SPARSITY_FRAC * steps)
    losses: list[float] = []
    model.train()
    with _threads(6.0 * min(bs, Xrep.shape[0]) * d * p):
        for step in _progress(steps, progress, "fit_dae"):
            for group in opt.param_groups:
                group["lr"] = lr * _warmup_cosine(step, steps)
            if n <= bs:
                xb = Xrep
            else:
                xb = Xt[torch.randint(0, n, (bs,), generator=gen)]
            y = xb + sig * torch.randn(xb.shape, generator=gen)
            loss = ((model(y) - xb) ** 2).sum(1).mean()
            total = loss
            if wd > 0:
                total = total + wd * sum((w ** 2).sum() for w in mats)
            if mu > 0 and step < mu_steps:
                total = total + mu * sum(w.norm(dim=-1).sum() for w in mats)
            losses.append(_optimizer_step(opt, total, loss, step, lr))
    model.eval()
    return losses


# ---------------------------------------------------------------------------------------------
# the time-conditioned ReLU DAE (ReLU diffusion)
# ---------------------------------------------------------------------------------------------
DIFFUSION_DEFAULTS = {"steps": 3000, "lr": 2e-2, "weight_decay": 0.0, "batch_size": 256}


def fit_diffusion(model: nn.Module, X, *, sigma_min: float = 0.02, sigma_max: float = 2.0,
                  steps=None, lr=None, weight_decay=None, batch_size=None, seed: int = 0,
                  progress: bool = False) -> list[float]:
    """Train a :class:`utils.models.ReLUDiffusion` by denoising score matching over noise levels.

    Each step draws ``batch_size`` training rows (with replacement), one sigma per row
    log-uniform in [sigma_min, sigma_max], and minimizes the x0-prediction error

        L = mean_i || model(x_i + sigma_i eps_i, sigma_i) - x_i ||^2   (summed over coordinates)

    with AdamW (decoupled ``weight_decay``), a 5% linear warm-up and cosine decay of the
    learning rate. A fresh model (``center`` all zero) gets its centre set to the data mean first.

    Defaults (None): steps 3000, lr 2e-2, weight_decay 0, batch_size 256: 15-30 s for d = 64,
    p = 128 on a busy 2-core CPU (one thread). They give copies on a handful of well-separated
    images and new samples on thousands (chapter 7 and tests/test_relu_diffusion.py check both;
    memorization is most reliable for about 5 images and weakens towards 10).

    Args:
        model: a ReLUDiffusion (anything with ``.d`` and ``forward(x, sigma)``), trained in place.
        X: training data (n, d) or images (n, C, H, W) with C*H*W = d.
        sigma_min, sigma_max: the noise range, 0 < sigma_min < sigma_max.
        seed: seeds mini-batches, noise levels and noise (the initialisation has its own seed).
        progress: show a tqdm progress bar.
    Returns:
        The training loss at every step (per row, summed over coordinates).
    """
    if not isinstance(model, nn.Module) or not hasattr(model, "d"):
        raise TypeError(f"model must be a ReLUDiffusion-like torch module with attribute d, "
                        f"got {type(model).__name__}")
    Xt = as_float_tensor(X, "X", ndim=(2, 3, 4)).float()
    Xt = Xt.reshape(Xt.shape[0], -1)
    n, d = Xt.shape
    if d != model.d:
        raise ValueError(f"X has {d} features per row but the model expects d={model.d}")
    smin = float(check_sigma(sigma_min, "sigma_min"))
    smax = float(check_sigma(sigma_max, "sigma_max"))
    if smin >= smax:
        raise ValueError(f"sigma_min ({smin}) must be smaller than sigma_max ({smax})")
    dflt = DIFFUSION_DEFAULTS
    steps, bs, lr, wd = _resolve(dflt, steps, batch_size, lr, weight_decay, seed)
    params = [prm for prm in model.parameters() if prm.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    center = getattr(model, "center", None)
    if isinstance(center, torch.Tensor) and center.shape == (d,) and not bool(center.detach().any()):
        with torch.no_grad():
            center.copy_(Xt.mean(0))
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    lmin, lmax = math.log(smin), math.log(smax)
    fast = getattr(model, "_predict", None)   # ReLUDiffusion's unchecked path: inputs are valid
    losses: list[float] = []
    model.train()
    with _threads(6.0 * bs * d * int(getattr(model, "p", 1))):
        for step in _progress(steps, progress, "fit_diffusion"):
            for group in opt.param_groups:
                group["lr"] = lr * _warmup_cosine(step, steps)
            xb = Xt[torch.randint(0, n, (bs,), generator=gen)]
            sig = torch.exp(lmin + (lmax - lmin) * torch.rand(bs, generator=gen))
            y = xb + sig[:, None] * torch.randn(xb.shape, generator=gen)
            pred = fast(y, torch.log(sig)) if fast is not None else model(y, sig)
            loss = ((pred - xb) ** 2).sum(1).mean()
            losses.append(_optimizer_step(opt, loss, loss, step, lr))
    model.eval()
    return losses
