"""Train the book's small U-Net diffusion models and write their checkpoints.

    python -m utils.train_unet --config digits-memorized   --out book/checkpoints/unet_digits_memorized.safetensors
    python -m utils.train_unet --config digits-generalized --out book/checkpoints/unet_digits_generalized.safetensors
    python -m utils.train_unet --config digits-planted     --out book/checkpoints/unet_digits_planted.safetensors --threads 1
    python -m utils.train_unet --config digits-generalized-long --out book/checkpoints/unet_digits_generalized_long.safetensors --threads 1
    python -m utils.train_unet --config digits-half-a      --out book/checkpoints/unet_digits_half_a.safetensors --threads 1

A config may hold out images (``holdout``) and record the held-out loss every ``eval_every`` steps
in the sidecar (``loss_curve``), stopping after ``patience`` evaluations without a new best; or
train on a disjoint ``part`` of its dataset (Kadkhodaie et al.'s pairs). See :func:`data_from_config`.

Configs live in :data:`utils.unet.CONFIGS`. The command writes the weights (safetensors) and a JSON
sidecar beside them with the sha256 of the weights, the full config, the number of steps, the
measured training time and the torch / diffusers versions. ``--steps`` overrides the config's
number of optimizer steps (the tests use a few); ``--threads`` fixes torch's CPU threads.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

from .checks import as_float_tensor, check_positive_int
from .unet import CONFIGS, build_unet, diffusion_loss, get_config, make_scheduler, save_checkpoint

CONFIG_STEPS = {k: v["steps"] for k, v in CONFIGS.items()}


def fit_unet(model, X, *, steps: int, batch_size: int = 32, lr: float = 2e-3, warmup: int = 100,
             seed: int = 0, log_every: int = 0, callback=None, callback_every: int = 0,
             losses: list | None = None, labels=None, cond_drop: float = 0.0,
             null_label: int | None = None) -> list:
    """Train ``model`` (eps-prediction) on images ``X`` (n, C, H, W) with AdamW.

    A caption-conditional model also needs ``labels`` (n,); with ``cond_drop`` > 0 each drawn
    label is replaced by the empty caption ``null_label`` with that probability (classifier-free
    guidance training).

    Each step draws ``batch_size`` training images uniformly with replacement, one timestep and
    one noise per image. The learning rate rises linearly over ``warmup`` steps, then decays as
    lr * sqrt(warmup / step). The schedule does not depend on ``steps``, so the model after k
    steps of a long run equals the model of a k-step run (same seed). Everything random comes from one generator seeded with ``seed``.
    ``callback(step, model)``, if given, runs every ``callback_every`` steps (snapshots, held-out
    losses); when it returns ``True`` training stops there.
    Returns the list of losses (one per step), appended to ``losses`` when one is given.
    """
    from .unet import check_labels
    X = as_float_tensor(X, "X", ndim=4).float()
    lab = check_labels(model, labels, X.shape[0], "labels")
    if isinstance(cond_drop, bool) or not isinstance(cond_drop, (int, float)) or not 0 <= cond_drop < 1:
        raise ValueError(f"cond_drop must be a number in [0, 1), got {cond_drop!r}")
    if cond_drop > 0:
        if lab is None:
            raise ValueError("cond_drop needs a conditional model and labels")
        null = int(check_labels(model, null_label, 1, "null_label")[0])
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    warmup = check_positive_int(warmup, "warmup", minimum=0)
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    gen = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    sched = make_scheduler("ddpm")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)

    def lr_at(i):   # depends on i only, not on `steps`: a run of k steps is a prefix of a longer one
        if i < warmup:
            return lr * (i + 1) / warmup
        return lr * math.sqrt(max(warmup, 1) / (i + 1))

    model.train()
    losses = [] if losses is None else losses
    for i in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(i)
        idx = torch.randint(0, X.shape[0], (batch_size,), generator=gen)
        lb = None
        if lab is not None:
            lb = lab[idx]
            if cond_drop > 0:
                lb = torch.where(torch.rand(batch_size, generator=gen) < cond_drop, null, lb)
        loss = diffusion_loss(model, sched, X[idx], generator=gen, class_labels=lb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if log_every and (i + 1) % log_every == 0:
            recent = sum(losses[-log_every:]) / log_every
            print(f"step {i + 1}/{steps}  loss {recent:.4f}", flush=True)
        if callback is not None and callback_every and (i + 1) % callback_every == 0 and i + 1 < steps:
            stop = callback(i + 1, model)
            model.train()
            if stop is True:        # the callback asks to stop early (held-out loss stopped improving)
                break
    model.eval()
    return losses


def split_indices(n: int, *, parts: int = 1, index: int = 0, holdout: int = 0,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Which of ``n`` images a config trains on and which it holds out.

    A random permutation (seeded with ``seed``) of range(n) is cut into ``parts`` disjoint,
    near-equal parts; part ``index`` is kept, and its last ``holdout`` images are held out.
    Returns ``(train_idx, heldout_idx)``, two disjoint sorted int64 tensors.
    """
    n = check_positive_int(n, "n")
    parts = check_positive_int(parts, "parts")
    holdout = check_positive_int(holdout, "holdout", minimum=0)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < parts:
        raise ValueError(f"index must be an int in [0, {parts - 1}], got {index!r}")
    if parts > n:
        raise ValueError(f"cannot cut {n} images into {parts} parts")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    part = perm.tensor_split(parts)[index]
    if holdout >= len(part):
        raise ValueError(f"holdout={holdout} leaves no training image in a part of {len(part)}")
    keep = len(part) - holdout
    return part[:keep].sort().values, part[keep:].sort().values


def data_from_config(cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """The training images and held-out images (n, C, H, W) of an unconditional config (a dict or a
    name): the dataset of ``dataset``/``n``/``size``/``data_seed``, then the optional ``part``
    (dict(parts, index, seed): a disjoint part of it) and ``holdout`` (images kept out of
    training) of :func:`split_indices`. Without either, the held-out tensor is empty."""
    from .data import load_images
    cfg = get_config(cfg) if isinstance(cfg, str) else cfg
    if "planted" in cfg:
        raise ValueError("a planted config is conditional: use planted_from_config")
    X = load_images(cfg["dataset"], cfg["n"], size=cfg["size"], seed=cfg["data_seed"])
    part = dict(cfg.get("part") or {})
    if not part and not cfg.get("holdout"):
        return X, X[:0]
    tr, ho = split_indices(X.shape[0], parts=part.get("parts", 1), index=part.get("index", 0),
                           holdout=cfg.get("holdout", 0), seed=part.get("seed", cfg["data_seed"]))
    return X[tr], X[ho]


@torch.no_grad()
def eval_loss(model, X, *, draws: int = 2, seed: int = 0, batch_size: int = 512) -> float:
    """The diffusion loss of ``model`` on images ``X`` (n, C, H, W) with a fixed draw of timesteps
    and noises (``draws`` per image, from ``seed``), so that evaluations at different training
    steps are paired. Returns the mean squared noise-prediction error (float)."""
    X = as_float_tensor(X, "X", ndim=4).float()
    if X.shape[0] == 0:
        raise ValueError("X is empty")
    draws = check_positive_int(draws, "draws")
    sched = make_scheduler("ddpm")
    gen = torch.Generator().manual_seed(int(seed))
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for _ in range(draws):
        t = torch.randint(0, sched.config.num_train_timesteps, (X.shape[0],), generator=gen)
        eps = torch.randn(X.shape, generator=gen)
        for a in range(0, X.shape[0], batch_size):
            sl = slice(a, a + batch_size)
            xt = sched.add_noise(X[sl], eps[sl], t[sl])
            err = (model(xt, t[sl]).sample - eps[sl]).pow(2).flatten(1).mean(1)
            total += float(err.double().sum())
            count += err.shape[0]
    model.train(was_training)
    return total / count


def planted_from_config(cfg):
    """The :class:`utils.detection.PlantedData` training set of a config with a ``planted`` entry
    (a config dict or name)."""
    from .data import load_images
    from .detection import planted_dataset
    cfg = get_config(cfg) if isinstance(cfg, str) else cfg
    if "planted" not in cfg:
        raise ValueError(f"config {cfg.get('config_name', '')!r} has no planted duplicates")
    X, y = load_images(cfg["dataset"], cfg["n"], size=cfg["size"], seed=cfg["data_seed"], return_labels=True)
    return planted_dataset(X, y, **cfg["planted"])


def train_from_config(name: str, out, *, steps: int | None = None, log_every: int = 0,
                      snapshot_every: int = 0, snapshot_dir=None) -> dict:
    """Load the config's data, build and train the model, save the checkpoint; returns the sidecar.

    ``snapshot_every`` > 0 also writes the checkpoint after every that many steps to
    ``snapshot_dir`` as ``<out stem>.step<k>.safetensors`` (+ sidecar), each one identical to
    the final checkpoint of ``--steps k`` (the learning-rate schedule does not depend on steps).
    """
    import diffusers

    from .data import load_images
    cfg = get_config(name)
    if steps is not None:
        cfg["steps"] = check_positive_int(steps, "steps")
    labels, null = None, None
    if "planted" in cfg:        # caption-conditional with planted duplicates (chapter 9)
        data = planted_from_config(cfg)
        X, labels, null = data.images, data.labels, data.null_label
        X_held = X[:0]
    else:
        X, X_held = data_from_config(cfg)
    eval_every = int(cfg.get("eval_every", 0) or 0)
    patience = cfg.get("patience")
    if eval_every and X_held.shape[0] == 0:
        raise ValueError(f"config {name!r}: eval_every needs held-out images (holdout > 0)")
    X_eval_train = X[:X_held.shape[0]] if eval_every else None   # as many training images as held out
    curve = dict(step=[], train=[], heldout=[])
    torch.manual_seed(cfg["seed"])
    model = build_unet(cfg["model"])
    out = Path(out)
    load = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    start = time.perf_counter()
    losses: list = []

    def write(path, k, m, final=False):
        tail = losses[max(0, k - 100):k]
        c = dict(cfg, steps=k) if not final else dict(cfg)
        meta = dict(
            config_name=name, config=c, steps=k, n_train=int(X.shape[0]),
            parameters=int(sum(p.numel() for p in m.parameters())),
            train_seconds=round(time.perf_counter() - start, 1),
            torch_threads=torch.get_num_threads(), load_average_at_start=load,
            final_loss=round(sum(tail) / max(1, len(tail)), 5),
            versions=dict(torch=torch.__version__, diffusers=diffusers.__version__,
                          python=platform.python_version()),
            command=f"python -m utils.train_unet --config {name} --out {out.name}"
                    + (f" --steps {c['steps']}" if c["steps"] != CONFIG_STEPS.get(name) else ""),
        )
        if final and X_held.shape[0]:
            meta["n_heldout"] = int(X_held.shape[0])
        if eval_every:      # the curve so far (a snapshot's sidecar has the curve up to its step)
            meta["loss_curve"] = {key: v[:sum(st <= k for st in curve["step"])] for key, v in curve.items()}
        if final and eval_every:
            best = min(range(len(curve["heldout"])), key=curve["heldout"].__getitem__)
            meta["best_heldout_step"] = curve["step"][best]
            meta["stopped_early"] = bool(k < cfg["steps"])
            meta["stopping_rule"] = (f"stop when the held-out loss (fixed noise, {X_held.shape[0]} images x 2 "
                                     f"draws, every {eval_every} steps) has not improved for {patience} "
                                     f"evaluations" if patience else "none (all steps)")
        return save_checkpoint(m, path, meta)

    def evaluate(k, m):
        curve["step"].append(k)
        curve["train"].append(round(eval_loss(m, X_eval_train, seed=1), 6))
        curve["heldout"].append(round(eval_loss(m, X_held, seed=1), 6))
        if log_every:
            print(f"step {k}: train {curve['train'][-1]:.5f}  held-out {curve['heldout'][-1]:.5f}", flush=True)
        best = min(range(len(curve["heldout"])), key=curve["heldout"].__getitem__)
        return bool(patience) and len(curve["heldout"]) - 1 - best >= int(patience)

    every = [e for e in (snapshot_every, eval_every) if e]
    tick = math.gcd(*every) if every else 0
    state = dict(step=0)

    def callback(k, m):
        state["step"] = k
        stop = bool(eval_every and k % eval_every == 0 and evaluate(k, m))
        if snapshot_every and k % snapshot_every == 0:
            folder = Path(snapshot_dir) if snapshot_dir is not None else out.parent
            write(folder / f"{out.stem}.step{k}.safetensors", k, m)
        return stop

    fit_unet(model, X, steps=cfg["steps"], batch_size=cfg["batch_size"], lr=cfg["lr"],
             warmup=cfg["warmup"], seed=cfg["seed"], log_every=log_every, losses=losses,
             callback=callback, callback_every=tick, labels=labels,
             cond_drop=cfg.get("cond_drop", 0.0), null_label=null)
    k_end = len(losses)
    if eval_every and (not curve["step"] or curve["step"][-1] != k_end):
        evaluate(k_end, model)
    meta = write(out, k_end, model, final=True)
    return meta


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m utils.train_unet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="one of utils.unet.CONFIGS")
    parser.add_argument("--out", required=True, help="output .safetensors path")
    parser.add_argument("--steps", type=int, default=None, help="override the number of steps")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--log-every", type=int, default=0, help="print the loss every k steps")
    parser.add_argument("--snapshot-every", type=int, default=0,
                        help="also write the checkpoint after every k steps")
    parser.add_argument("--snapshot-dir", default=None, help="folder for the snapshots")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(check_positive_int(args.threads, "threads"))
    meta = train_from_config(args.config, args.out, steps=args.steps, log_every=args.log_every,
                              snapshot_every=args.snapshot_every, snapshot_dir=args.snapshot_dir)
    print(f"wrote {args.out}: {meta['steps']} steps in {meta['train_seconds']} s, "
          f"sha256 {meta['sha256'][:16]}..., final loss {meta['final_loss']}")
    return meta


if __name__ == "__main__":
    main(sys.argv[1:])
