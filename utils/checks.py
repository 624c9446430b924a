"""Input validation shared by every module: clear errors that name the problem.

Each helper returns a cleaned value or raises ``ValueError`` / ``TypeError`` whose message names
the argument, what was expected and what was received. Nothing here ever coerces a bad input
into a silently wrong answer.
"""
from __future__ import annotations

import math
from numbers import Real

import numpy as np
import torch

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def as_float_tensor(x, name: str, *, ndim: int | tuple[int, ...] | None = None,
                    allow_empty: bool = False, dtype=torch.float32) -> torch.Tensor:
    """Convert an array-like of real numbers to a floating tensor and validate it.

    Args:
        x: torch tensor, NumPy array or nested list of real numbers.
        name: the argument's name, used in error messages.
        ndim: required number of dimensions (or a tuple of allowed ones).
        allow_empty: whether a tensor with zero elements is acceptable.
        dtype: the floating dtype to return when ``x`` is not already floating.
    Raises:
        TypeError: for non-numeric, boolean or complex input.
        ValueError: for a wrong number of dimensions, an empty input, or NaN / inf entries.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            arr = np.asarray(x)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{name} must be an array of real numbers, got {type(x).__name__}") from exc
        if arr.dtype == object or arr.dtype.kind in "USV":
            raise TypeError(f"{name} must be an array of real numbers, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {t.dtype}")
    if t.dtype not in _FLOAT_DTYPES:
        t = t.to(dtype)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if t.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name} must have {want} dimensions, got shape {tuple(t.shape)}")
    if t.numel() == 0 and not allow_empty:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)})")
    if t.numel() and not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")
    return t


def as_numpy_1d(x, name: str, *, allow_empty: bool = False) -> np.ndarray:
    """Validate a 1-D array-like of real numbers and return it as float64 NumPy."""
    return as_float_tensor(x, name, ndim=1, allow_empty=allow_empty).double().cpu().numpy()


def check_sigma(sigma, name: str = "sigma", *, n: int | None = None) -> torch.Tensor:
    """Validate a noise level: a positive finite float, or an (n,) tensor of them.

    Returns a float64 tensor of shape () or (n,).
    """
    if isinstance(sigma, bool):
        raise TypeError(f"{name} must be a positive number, got a bool")
    if isinstance(sigma, Real):
        if not math.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"{name} must be a positive finite number (not NaN or inf), got {sigma}")
        return torch.tensor(float(sigma), dtype=torch.float64)
    s = as_float_tensor(sigma, name, ndim=(0, 1)).double()
    if s.ndim == 1 and n is not None and s.shape[0] != n:
        raise ValueError(f"{name} has {s.shape[0]} entries but the batch has {n} rows")
    if (s <= 0).any():
        raise ValueError(f"{name} must be positive, got minimum {float(s.min()):.3g}")
    return s


def check_positive_int(value, name: str, *, minimum: int = 1) -> int:
    """Validate an integer >= ``minimum`` (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_same_width(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """Require two (n, d) batches to share d."""
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"{name_a} has feature shape {tuple(a.shape[1:])} but {name_b} has "
                         f"{tuple(b.shape[1:])}; they must match")
