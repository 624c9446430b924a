"""Train the book's small U-Net diffusion models and write their checkpoints.

    python -m utils.train_unet --config digits-memorized   --out book/checkpoints/unet_digits_memorized.safetensors
    python -m utils.train_unet --config digits-generalized --out book/checkpoints/unet_digits_generalized.safetensors
    python -m utils.train_unet --config digits-planted     --out book/checkpoints/unet_digits_planted.safetensors --threads 1

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
    ``callback(step, model)``, if given, runs every ``callback_every`` steps (snapshots).
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
            callback(i + 1, model)
            model.train()
    model.eval()
    return losses


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
    else:
        X = load_images(cfg["dataset"], cfg["n"], size=cfg["size"], seed=cfg["data_seed"])
    torch.manual_seed(cfg["seed"])
    model = build_unet(cfg["model"])
    out = Path(out)
    load = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    start = time.perf_counter()
    losses: list = []

    def write(path, k, m):
        tail = losses[max(0, k - 100):k]
        c = dict(cfg, steps=k)
        meta = dict(
            config_name=name, config=c, steps=k, n_train=int(X.shape[0]),
            parameters=int(sum(p.numel() for p in m.parameters())),
            train_seconds=round(time.perf_counter() - start, 1),
            torch_threads=torch.get_num_threads(), load_average_at_start=load,
            final_loss=round(sum(tail) / max(1, len(tail)), 5),
            versions=dict(torch=torch.__version__, diffusers=diffusers.__version__,
                          python=platform.python_version()),
            command=f"python -m utils.train_unet --config {name} --out {out.name}"
                    + (f" --steps {k}" if k != CONFIG_STEPS.get(name) else ""),
        )
        return save_checkpoint(m, path, meta)

    def snapshot(k, m):
        folder = Path(snapshot_dir) if snapshot_dir is not None else out.parent
        write(folder / f"{out.stem}.step{k}.safetensors", k, m)

    fit_unet(model, X, steps=cfg["steps"], batch_size=cfg["batch_size"], lr=cfg["lr"],
             warmup=cfg["warmup"], seed=cfg["seed"], log_every=log_every, losses=losses,
             callback=snapshot, callback_every=snapshot_every, labels=labels,
             cond_drop=cfg.get("cond_drop", 0.0), null_label=null)
    return write(out, cfg["steps"], model)


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
