"""Generate and store chapter 9's generations of the planted-caption U-Net, so that the chapter
analyses them without spending its time budget on sampling.

    python -m utils.planted_samples --checkpoint book/checkpoints/unet_digits_planted_many.safetensors \\
        --out book/results/planted_samples.safetensors
    python -m utils.planted_samples ... --quick      # a tiny version (tests)

Every prompt of the chapter, in its order, ``prompt_order(data)``: the planted captions, then the
ordinary ones. Stored tensors (float32, (n, C, H, W), DDIM, deterministic, initial noise of
``seed``):

- ``"all"``: ``generations`` images of every prompt at guidance 1 (``prompts("all")``);
- ``"planted_w<w>"``: the first ``grid_generations`` images of every planted prompt at guidance w;
- ``"grid_w<w>"``: the first ``grid_generations`` images of every prompt at guidance w;

for every w of ``w_grid``. Each is exactly ``unet.sample(model, sched, len(labels), steps=steps,
seed=seed, class_labels=labels, guidance=w, null_label=data.null_label)``. A JSON sidecar records
the file's sha256, the checkpoint's name and sha256, the protocol, the seconds it took and the
library versions; :func:`load` verifies both hashes.
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

PROTOCOL = dict(generations=6, grid_generations=3, steps=25, seed=1, w_grid=[1.0, 1.5, 2.0, 3.0])
QUICK = dict(generations=2, grid_generations=1, steps=3, seed=1, w_grid=[1.0, 2.0])


def prompt_order(data) -> torch.Tensor:
    """The chapter's prompts, one per caption: the planted captions, then the ordinary ones -> (k,)."""
    return torch.cat([data.planted_labels, torch.arange(data.n_classes)])


def prompts(data, generations: int, grid_generations: int) -> dict:
    """``{"all", "planted", "grid"}`` -> (n,) int64 labels of the stored sets (see the module)."""
    generations = check_positive_int(generations, "generations")
    grid_generations = check_positive_int(grid_generations, "grid_generations")
    if grid_generations > generations:
        raise ValueError(f"grid_generations ({grid_generations}) must be at most generations ({generations})")
    allp = prompt_order(data).repeat_interleave(generations)
    first = torch.arange(len(allp)) % generations < grid_generations
    planted = allp >= data.n_classes
    return {"all": allp, "planted": allp[first & planted], "grid": allp[first]}


def write(checkpoint, out, *, protocol: dict = PROTOCOL) -> dict:
    """Draw every set of the module docstring from ``checkpoint`` and write ``out`` (.safetensors)
    with its sidecar. Returns the sidecar dict."""
    import diffusers
    from safetensors.torch import save_file

    from .train_unet import planted_from_config
    out = Path(out)
    if out.suffix != ".safetensors":
        raise ValueError(f"out must end in .safetensors, got {out.name!r}")
    p = dict(PROTOCOL, **protocol)
    steps = check_positive_int(p["steps"], "steps", minimum=2)
    w_grid = [float(w) for w in p["w_grid"]]
    if not w_grid or len(set(w_grid)) != len(w_grid) or min(w_grid) < 0:
        raise ValueError(f"w_grid must be distinct non-negative numbers, got {p['w_grid']}")
    model, meta = load_checkpoint(checkpoint)
    data = planted_from_config(meta["config"])
    labels = prompts(data, p["generations"], p["grid_generations"])
    sched = make_scheduler()
    draw = lambda lab, w: sample(model, sched, len(lab), steps=steps, seed=int(p["seed"]), class_labels=lab,
                                 guidance=w, null_label=data.null_label).contiguous()
    start = time.perf_counter()
    tensors = {"all": draw(labels["all"], 1.0)}
    for w in w_grid:
        tensors[f"planted_w{w:g}"] = draw(labels["planted"], w)
        tensors[f"grid_w{w:g}"] = draw(labels["grid"], w)
    seconds = round(time.perf_counter() - start, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out))
    side = dict(file=out.name, sha256=sha256_file(out), checkpoint=Path(checkpoint).name,
                checkpoint_sha256=meta["sha256"], protocol=dict(p, w_grid=w_grid), sample_seconds=seconds,
                torch_threads=torch.get_num_threads(),
                versions=dict(torch=torch.__version__, diffusers=diffusers.__version__,
                              python=platform.python_version()),
                command=f"python -m utils.planted_samples --checkpoint {Path(checkpoint).name} --out {out.name}"
                        + (" --quick" if p == dict(PROTOCOL, **QUICK) else ""))
    sidecar_path(out).write_text(json.dumps(side, indent=1, sort_keys=True) + "\n")
    return side


def load(path, checkpoint=None) -> tuple[dict, dict]:
    """``({name: images (n, C, H, W)}, sidecar)`` of a file written by :func:`write`. Raises
    ``ValueError`` when the file's sha256 differs from its sidecar, or when ``checkpoint`` (a path)
    is given and is not the checkpoint the samples came from."""
    from .unet_samples import load_verified
    return load_verified(path, checkpoint)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m utils.planted_samples", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", required=True, help="output .safetensors path")
    parser.add_argument("--quick", action="store_true", help="a tiny protocol, for tests")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(check_positive_int(args.threads, "threads"))
    side = write(args.checkpoint, args.out, protocol=QUICK if args.quick else PROTOCOL)
    print(f"wrote {args.out}: {side['protocol']} in {side['sample_seconds']} s")
    return side


if __name__ == "__main__":
    main(sys.argv[1:])
