"""Checkers for the book's coding exercises.

Each ``check_*`` function takes the reader's function, calls it on fresh random inputs, compares
the answer with a reference computed here, and either returns ``True`` (printing a short
confirmation) or raises ``AssertionError`` that says what went wrong. The checkers never reveal
the reference code; they are meant for the hidden-solution exercises of the chapters.
"""
from __future__ import annotations

import numpy as np
import torch


def _as_numpy(x, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{what} must return an array of numbers, got {type(x).__name__}") from exc


def _close(got, want, what: str, rtol: float = 1e-6, atol: float = 1e-8) -> None:
    got = _as_numpy(got, what)
    if got.shape != want.shape:
        raise AssertionError(f"{what} returned shape {got.shape}, expected {want.shape}")
    if not np.allclose(got, want, rtol=rtol, atol=atol):
        k = int(np.argmax(np.abs(got - want)))
        raise AssertionError(f"{what} is wrong: at flat index {k} it gives {got.flat[k]:.6g}, "
                             f"expected {want.flat[k]:.6g}")


def check_empirical_denoiser(fn) -> bool:
    """Check a reader's empirical denoiser ``fn(y, X, sigma) -> (m, d)`` (chapter 1).

    ``fn`` receives float64 NumPy arrays y (m, d), X (n, d) and a float sigma and must return
    f_emp(y) = sum_i softmax_i(-||y - x_i||^2 / (2 sigma^2)) x_i for every row of y, as a NumPy array
    or a torch tensor. Four cases are tried: a moderate noise level, a tiny one in high dimension
    (where exp() of the raw logits underflows to 0/0 = NaN, even in float64), an exact tie between
    two training points, and a huge noise level (the answer tends to the mean of X). Raises
    ``AssertionError`` naming the failing case; prints a confirmation and returns True on success.
    """
    from .diffusion import empirical_denoiser

    if not callable(fn):
        raise TypeError("pass your function itself, e.g. check_empirical_denoiser(my_f_emp)")
    rng = np.random.default_rng(1234)
    cases = []
    X = rng.uniform(-1, 1, (30, 16))
    cases.append(("moderate noise (sigma=0.5, d=16)", X[:6] + 0.5 * rng.standard_normal((6, 16)), X, 0.5))
    X = rng.uniform(-1, 1, (40, 2048))
    cases.append(("tiny noise in high dimension (sigma=0.01, d=2048)",
                  X[:5] + 0.01 * rng.standard_normal((5, 2048)), X, 0.01))
    X = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    cases.append(("an exact tie (y halfway between two training points, sigma=0.05)",
                  np.array([[0.0, 0.0]]), X, 0.05))
    X = rng.uniform(-1, 1, (25, 8))
    cases.append(("huge noise (sigma=1e4)", rng.uniform(-1, 1, (4, 8)), X, 1e4))
    hints = {
        0: "check that the weights are softmax(-||y - x_i||^2 / (2 sigma^2)) over the training points "
           "i (each row of the weight matrix sums to 1) and that you return weights @ X",
        1: "exp() of logits near -d/2 underflows to 0 and 0/0 gives NaN: subtract each row's largest "
           "logit before exponentiating (log-sum-exp), and compute ||y - x_i||^2 from differences",
        2: "at an exact tie the two nearest points must get weight 1/2 each",
        3: "for sigma -> infinity all weights tend to 1/n, so f_emp(y) tends to the mean of X",
    }
    for k, (name, y, X, sigma) in enumerate(cases):
        want = empirical_denoiser(torch.from_numpy(y), torch.from_numpy(X), sigma).numpy()
        try:
            got = fn(y.copy(), X.copy(), sigma)
        except Exception as exc:
            raise AssertionError(f"case '{name}': your function raised {type(exc).__name__}: {exc}") from exc
        got = _as_numpy(got, "your empirical denoiser")
        if got.shape != want.shape:
            raise AssertionError(f"case '{name}': returned shape {got.shape}, expected {want.shape} "
                                 "(one denoised row per row of y)")
        if not np.isfinite(got).all():
            raise AssertionError(f"case '{name}': the output contains NaN or inf. Hint: {hints[1]}")
        try:
            _close(got, want, f"case '{name}'", rtol=1e-6, atol=1e-6)
        except AssertionError as exc:
            raise AssertionError(f"{exc}. Hint: {hints[k]}") from None
    print(f"Correct: your empirical denoiser matches the reference on all {len(cases)} cases "
          "(moderate noise, tiny noise in d=2048, a tie, huge noise).")
    return True
