"""Print what the text claims, as a verdict, and quantities that are zero up to round-off, as bounds.

A number measured on a trained model moves a little from one CPU to another, so nbval compares it
within a declared tolerance (``# NBVAL_TOLERANCE``). The *claim* made from it ("test/Bayes is
below 2") must not move at all: :func:`verdict` prints it with its outcome, and nbval compares
that line exactly. :func:`bound` prints a difference that is zero up to floating-point error as
``< 1e-12`` instead of round-off digits, which differ on every machine and are not data.
"""
from __future__ import annotations

import math
from numbers import Real


def verdict(claim: str, holds) -> bool:
    """Print ``claim`` with the outcome of the check that backs it; return the outcome.

    Args:
        claim: the statement as the text makes it, for example ``"test/Bayes < 2 for every seed"``.
        holds: the check, a bool (or a NumPy / torch boolean scalar).
    Prints ``"[holds] claim"`` or ``"[FAILS] claim"``.
    """
    if not isinstance(claim, str) or not claim.strip():
        raise ValueError("claim must be a non-empty string that states what is checked")
    if hasattr(holds, "item"):
        holds = holds.item()
    if not isinstance(holds, bool):
        raise TypeError(f"holds must be a bool (the outcome of a check), got {type(holds).__name__}")
    print(f"[{'holds' if holds else 'FAILS'}] {claim}")
    return holds


def bound(value, below: float) -> str:
    """Format ``|value|`` as ``"< below"`` when it is smaller, else as the value itself (``.2e``).

    Use it for quantities that are zero in exact arithmetic (a formula against autograd, an
    identity): the printed bound is the same on every machine, and a real error still shows.
    """
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"value must be a real number, got {type(value).__name__}")
    if isinstance(below, bool) or not isinstance(below, Real) or not below > 0:
        raise ValueError(f"below must be a positive number, got {below!r}")
    value = float(value)
    if math.isnan(value):
        raise ValueError("value is NaN")
    return f"< {below:.0e}" if abs(value) < below else f"{value:.2e}"
