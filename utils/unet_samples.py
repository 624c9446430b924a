"""Generate and store samples of a U-Net checkpoint, so that a chapter can analyse hundreds of
generations without spending its time budget on sampling.

    python -m utils.unet_samples --checkpoint book/checkpoints/unet_digits_memorized.safetensors \\
        --n 192 --seeds 1 2 --out book/results/unet_samples_memorized.safetensors

For each seed the command draws ``unet.sample(model, sched, n, steps=steps, seed=seed)`` (DDIM,
deterministic), stores it as tensor ``"seed<k>"`` (n, C, H, W) float32 in a safetensors file, and
writes a JSON sidecar beside it with the file's sha256, the checkpoint's name and sha256, n, seeds,
steps, the seconds it took and the library versions. :func:`load_samples` verifies both hashes.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from .checks import check_positive_int
from .unet import load_checkpoint, make_scheduler, sample, sha256_file, sidecar_path


def write_samples(checkpoint, out, *, n: int, seeds, steps: int = 50) -> dict:
    """Sample ``n`` images per seed from ``checkpoint`` and write ``out`` (.safetensors) with its
    sidecar. Returns the sidecar dict."""
    import diffusers
    from safetensors.torch import save_file
    n = check_positive_int(n, "n")
    steps = check_positive_int(steps, "steps", minimum=2)
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"seeds must be distinct non-negative integers, got {seeds}")
    out = Path(out)
    if out.suffix != ".safetensors":
        raise ValueError(f"out must end in .safetensors, got {out.name!r}")
    model, meta = load_checkpoint(checkpoint)
    sched = make_scheduler()
    start = time.perf_counter()
    tensors = {f"seed{s}": sample(model, sched, n, steps=steps, seed=s).contiguous() for s in seeds}
    seconds = round(time.perf_counter() - start, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out))
    side = dict(file=out.name, sha256=sha256_file(out), checkpoint=Path(checkpoint).name,
                checkpoint_sha256=meta["sha256"], n=n, seeds=seeds, steps=steps,
                sample_seconds=seconds, torch_threads=torch.get_num_threads(),
                versions=dict(torch=torch.__version__, diffusers=diffusers.__version__,
                              python=platform.python_version()),
                command=f"python -m utils.unet_samples --checkpoint {Path(checkpoint).name} --n {n} "
                        f"--seeds {' '.join(map(str, seeds))} --steps {steps} --out {out.name}")
    sidecar_path(out).write_text(json.dumps(side, indent=1, sort_keys=True) + "\n")
    return side


def load_samples(path, checkpoint=None) -> tuple[dict, dict]:
    """``({seed: samples (n, C, H, W)}, sidecar)`` of a file written by :func:`write_samples`.
    Raises ``ValueError`` when the file's sha256 differs from its sidecar, or when ``checkpoint``
    (a path) is given and is not the checkpoint the samples came from."""
    data, side = load_verified(path, checkpoint)
    return {int(k[4:]): v for k, v in data.items()}, side


def load_verified(path, checkpoint=None) -> tuple[dict, dict]:
    """``(tensors, sidecar)`` of a samples file (safetensors + JSON sidecar). Raises
    ``ValueError`` when the file's sha256 differs from its sidecar, or when ``checkpoint`` (a path)
    is given and is not the checkpoint the samples came from."""
    from safetensors.torch import load_file
    path = Path(path)
    side = json.loads(sidecar_path(path).read_text())
    if sha256_file(path) != side["sha256"]:
        raise ValueError(f"samples {path.name}: sha256 does not match the sidecar; re-create them "
                         f"with: {side['command']}")
    if checkpoint is not None and sha256_file(checkpoint) != side["checkpoint_sha256"]:
        raise ValueError(f"samples {path.name} were drawn from another checkpoint than "
                         f"{Path(checkpoint).name}; re-create them with: {side['command']}")
    return load_file(str(path)), side


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m utils.unet_samples", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--n", type=int, required=True, help="samples per seed")
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps")
    parser.add_argument("--out", required=True, help="output .safetensors path")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(check_positive_int(args.threads, "threads"))
    side = write_samples(args.checkpoint, args.out, n=args.n, seeds=args.seeds, steps=args.steps)
    print(f"wrote {args.out}: {len(side['seeds'])} x {side['n']} samples in {side['sample_seconds']} s")
    return side


if __name__ == "__main__":
    main(sys.argv[1:])
