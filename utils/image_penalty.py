"""Chapter 6's faces: the data split, the references, and the neuron-norm penalty as a factor.

    python -m utils.image_penalty                       # writes book/results/image_penalty.json
    python -m utils.image_penalty --quick --out F.json  # a few steps, one seed (the test runs this)

**The two arms** (:func:`face_split`), on the 100 LFW faces bundled with scikit-image (d = 625,
p = 100, sigma = 0.2): the 100 faces are permuted with seed 0, the first ``N_TEST`` = 20 are held
out; *memorizing* trains on the first 5 of the remaining 80; *generalizing* trains on all 80 and
their mirror images shifted by up to 2 pixels (``utils.data.augment_images``): 80 x 2 x 25 = 4,000
images, so n >> p. A third arm, *80 faces*, trains on the 80 faces without augmentation (the
chapter's control for too few images).

**The digit arms** (:func:`digit_split`), on the 1,797 8x8 digits of scikit-learn (d = 64, same p
and sigma): *digits memorizing* trains on the first 5, the next 100 are held out, *digits
generalizing* trains on the other 1,692 (no augmentation).

**The factor**: fit_dae's neuron-norm penalty (coefficient of sum_j ||w_j||, first half of training)
at three levels, ``"off"`` (0), ``"equal"`` (0.1 for both arms, the memorizing arm's default) and
``"default"`` (fit_dae's 0.1 min(1, p/n): 0.1 for n = 5, 0.0025 for n = 4,000, 0.0059 for
n = 1,692), each for ``--seeds``
seeds (the seed sets the initialisation and the noise of training); where two levels give the same
coefficient (the memorizing arm's "equal" and "default") the model is trained once and both rows
carry it. Every other hyper-parameter is
left to fit_dae's defaults (``utils.train.dae_defaults``), which depend on (n, d, p): the
generalizing face arm (n = 4,000 >= 2p, d = 625 > 64) gets the longer schedule of the
generalization regime, 3,125 steps at Adam step 0.0128; every other arm 1,500 steps (at 0.0064 for
the faces, 0.02 for the digits).

**Measures** (:func:`arm_measures`): neuron-level and merged (``utils.metrics.merge_parallel_units``,
cosine >= 0.99) top-1 share, mean over noisy training inputs (at most 200); live neurons (norm above
10% of the largest); the median over the live rows, and over the 10 rows of largest norm, of
each row's largest cosine to the training images (``utils.metrics.weight_data_cosine``); the stored fraction of the training images (``utils.metrics.stored_mask``, the
book's cos >= 0.9); mean PSNR of the noisy input, the model on noisy training images and on the 20
noisy held-out images, and the held-out PSNR of the optimal linear denoiser fitted on the training
images (:func:`linear_reference`).

The results file carries its provenance (command, date, versions, machine, seconds).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .data import augment_images, load_images
from .linear_dae import optimal_linear_denoiser
from .metrics import merge_parallel_units, psnr, spikiness, stored_mask, weight_data_cosine
from .models import ReLUDAE
from .train import dae_defaults, fit_dae
from .results_file import provenance

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "book" / "results" / "image_penalty.json"
P, SIGMA, N_MEM, N_TEST, SHIFTS, N_TEST_DIGITS = 100, 0.2, 5, 20, 2, 100
PENALTIES = ("off", "equal", "default")
EQUAL_PENALTY = 0.1
ALIVE_FRACTION = 0.1


def face_split(*, n_test: int = N_TEST, n_mem: int = N_MEM, shifts: int = SHIFTS, seed: int = 0) -> dict:
    """The faces of chapter 6, flattened to (n, 625):

    ``{"mem": (n_mem, d), "faces": (100 - n_test, d), "aug": (2 (2 shifts + 1)^2 (100 - n_test), d),
    "test": (n_test, d), "shape": (1, 25, 25)}``. ``mem`` is the first n_mem of ``faces``, and
    ``aug`` starts with ``faces`` (see ``utils.data.augment_images``).
    """
    imgs = load_images("lfw")
    perm = torch.randperm(len(imgs), generator=torch.Generator().manual_seed(seed))
    test, train = imgs[perm[:n_test]], imgs[perm[n_test:]]
    flat = lambda a: a.reshape(len(a), -1)  # noqa: E731
    return {"mem": flat(train[:n_mem]), "faces": flat(train), "test": flat(test),
            "aug": flat(augment_images(train, flips=True, shifts=shifts)),
            "shape": tuple(imgs.shape[1:])}


def digit_split(*, n_mem: int = N_MEM, n_test: int = N_TEST_DIGITS) -> dict:
    """The digits of chapter 6, flattened to (n, 64), in the bundled order:
    ``{"mem": the first n_mem, "test": the next n_test, "gen": the rest (1,797 - n_mem - n_test)}``."""
    X = load_images("digits")
    X = X.reshape(len(X), -1)
    return {"mem": X[:n_mem], "test": X[n_mem:n_mem + n_test], "gen": X[n_mem + n_test:]}


def noisy(X: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """X + sigma * N(0, I), drawn from a generator seeded with ``seed``; shape of X."""
    return X + sigma * torch.randn(X.shape, generator=torch.Generator().manual_seed(seed))


def linear_reference(X_train, sigma: float, *, rank: int | None = None) -> torch.Tensor:
    """The optimal bias-free linear denoiser y -> A y for the training images (n, d): the Wiener
    filter A = S (S + sigma^2 I)^{-1} of their second moment S = X^T X / n, or with ``rank`` the best
    such map of rank <= rank (the top eigenvectors of S, same shrinkage; a tied linear autoencoder
    with ``rank`` units), from ``utils.linear_dae.optimal_linear_denoiser``. Returns A (d, d)
    float64 (symmetric; apply as ``y @ A``)."""
    X = torch.as_tensor(X_train).double()
    if X.ndim != 2:
        raise ValueError(f"X_train must have shape (n, d), got {tuple(X.shape)}")
    return torch.from_numpy(optimal_linear_denoiser(X.T @ X / len(X), sigma, rank=rank))


def penalty_value(level: str, n: int, d: int, p: int = P) -> float:
    """The penalty coefficient of a level: "off" 0, "equal" 0.1, "default" fit_dae's 0.1 min(1, p/n)."""
    if level == "off":
        return 0.0
    if level == "equal":
        return EQUAL_PENALTY
    if level == "default":
        return float(dae_defaults(n, d, p)["sparsity"])
    raise ValueError(f"unknown penalty level {level!r}; choose one of {PENALTIES}")


def train_arm(X_train, *, penalty: str = "default", seed: int = 0, steps: int | None = None) -> ReLUDAE:
    """A tied ``ReLUDAE(d, 100, seed=seed)`` trained with fit_dae at sigma 0.2 and the given penalty level."""
    n, d = X_train.shape
    model = ReLUDAE(d, P, seed=seed)
    fit_dae(model, X_train, sigma=SIGMA, seed=seed, steps=steps, sparsity=penalty_value(penalty, n, d))
    return model


def arm_measures(model: ReLUDAE, X_train, X_test, *, sigma: float = SIGMA, A_lin=None) -> dict:
    """Spikiness, storage and PSNR of one trained model (see the module docstring); floats and ints."""
    W = model.encoder_weight.detach()
    norms = W.norm(dim=1)
    live = norms > ALIVE_FRACTION * norms.max()
    top = torch.argsort(norms, descending=True)[:10]
    Xs = X_train[:200]
    y_tr, y_te = noisy(Xs, sigma, 3), noisy(X_test, sigma, 4)
    with torch.no_grad():
        H = model.encode(y_tr)
        out_tr, out_te = model(y_tr), model(y_te)
    merged = merge_parallel_units(H, W, min_cosine=0.99)
    res = {
        "top1_share": float(spikiness(H, "top1_share").mean()),
        "merged_top1_share": float(spikiness(merged, "top1_share").mean()),
        "merged_units": int(merged.shape[1]),
        "live_neurons": int(live.sum()),
        "maxcos_live_median": float(np.median(weight_data_cosine(W[live], X_train))),
        "maxcos_top10_median": float(np.median(weight_data_cosine(W[top], X_train))),
        "stored_fraction": float(stored_mask(W, X_train).mean()),
        "psnr_noisy_heldout": float(psnr(y_te, X_test).mean()),
        "psnr_train": float(psnr(out_tr, Xs).mean()),
        "psnr_heldout": float(psnr(out_te, X_test).mean()),
    }
    if A_lin is not None:
        res["psnr_linear_heldout"] = float(psnr((y_te.double() @ A_lin).float(), X_test).mean())
    return res


def run(*, seeds: int = 3, steps: int | None = None) -> list[dict]:
    """Every (arm, penalty level, seed); one dict per trained model."""
    split, dsplit = face_split(), digit_split()
    arms = {"memorizing": (split["mem"], split["test"]), "generalizing": (split["aug"], split["test"]),
            "80 faces": (split["faces"], split["test"]),
            "digits memorizing": (dsplit["mem"], dsplit["test"]),
            "digits generalizing": (dsplit["gen"], dsplit["test"])}
    rows = []
    for arm, (Xt, Xte) in arms.items():
        A_lin = linear_reference(Xt, SIGMA)
        done = {}                                     # (sparsity, seed) -> measures: levels that coincide
        for level in PENALTIES:
            for seed in range(seeds):
                t0 = time.perf_counter()
                mu = penalty_value(level, *Xt.shape)
                row = {"arm": arm, "n": int(len(Xt)), "penalty": level, "sparsity": mu, "seed": seed}
                if (mu, seed) not in done:
                    model = train_arm(Xt, penalty=level, seed=seed, steps=steps)
                    done[mu, seed] = arm_measures(model, Xt, Xte, A_lin=A_lin)
                    done[mu, seed]["seconds"] = round(time.perf_counter() - t0, 1)
                row.update(done[mu, seed])
                rows.append(row)
                print(f"{arm:19s} {level:8s} seed {seed}: top-1 {row['top1_share']:.3f} merged "
                      f"{row['merged_top1_share']:.3f} stored {row['stored_fraction']:.3f} PSNR train "
                      f"{row['psnr_train']:.2f} held-out {row['psnr_heldout']:.2f}", flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="20 steps, one seed (for the test)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    start = time.perf_counter()
    seeds, steps = (1, 20) if args.quick else (args.seeds, None)
    rows = run(seeds=seeds, steps=steps)
    shown = ["--quick"] if args.quick else [f"--seeds={args.seeds}"]
    result = {
        "provenance": provenance("python -m utils.image_penalty " + " ".join(shown), start),
        "settings": {"p": P, "sigma": SIGMA, "n_mem": N_MEM, "n_test": N_TEST, "n_test_digits": N_TEST_DIGITS, "shifts": SHIFTS,
                     "penalties": list(PENALTIES), "equal_penalty": EQUAL_PENALTY, "steps": steps,
                     "alive_fraction": ALIVE_FRACTION, "seeds": seeds},
        "runs": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {len(rows)} runs to {args.out.name} in {result['provenance']['seconds']:.0f} s")
    return 0


def load_results(path=DEFAULT_OUT) -> dict:
    """The results file written by this command, validated (provenance, settings, runs)."""
    from .results_file import load_results as load
    return load(path, command="python -m utils.image_penalty", keys=("provenance", "settings", "runs"),
                kind="image-penalty results")


if __name__ == "__main__":
    sys.exit(main())
