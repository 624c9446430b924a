"""nbval with declared numeric tolerances, for cells whose numbers come from training or sampling.

nbval compares every output of a re-executed notebook with the committed one, character by
character. That is right for deterministic cells, and wrong for cells that train a model: on a
CPU of another make (or with other MKL / ATen kernels) float32 sums run in another order, and
training amplifies that to the third printed digit. This plugin keeps nbval's exact comparison
everywhere except in cells that declare a tolerance, next to the numbers they print::

    # NBVAL_TOLERANCE abs=0.01 rel=0.02
    print(f"test/Bayes {ratio:.2f}")

In such a cell, and only there:

* every *decimal* number of a text output (``0.971``, ``-3.2e-05``) may differ from the committed
  one by at most ``abs + rel * |committed|``;
* integers (counts, sizes, ``52/64``), words and verdicts (``True``, ``holds``) must still match
  exactly, and so must the number of numeric tokens and everything between them (runs of spaces
  may change width, so that padded columns survive a number growing a digit). Add ``ints`` to
  the declaration to let integers move within the same tolerance as well
  (``# NBVAL_TOLERANCE abs=2 ints``); use it only for counts that are themselves estimates.

The mechanism: before nbval's own comparison, each number of the new output that lies within the
tolerance of its committed counterpart is replaced by the committed text. Whatever still differs is
then reported by nbval as usual, so a failure shows exactly the numbers that moved too far.
"""
from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass

import nbval.plugin as nbval_plugin

_MARKER = re.compile(r"^[ \t]*#[ \t]*NBVAL_TOLERANCE\b(?P<args>[^\n]*)$", re.M)
# a number not glued to a word or a dotted name (so ``conv1``, ``up_blocks.0`` and ``x2`` are text)
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.])")
_SPACES = re.compile(r"[ \t]+")


@dataclass(frozen=True)
class Tolerance:
    """``|new - committed| <= abs_ + rel * |committed|`` for decimals (and integers if ``ints``)."""
    abs_: float = 0.0
    rel: float = 0.0
    ints: bool = False

    def allows(self, committed: str, new: str) -> bool:
        """Whether the token ``new`` may stand for the committed token ``committed``."""
        if committed == new:
            return True
        if not self.ints and not (is_decimal(committed) and is_decimal(new)):
            return False
        a, b = float(committed), float(new)
        return abs(a - b) <= self.abs_ + self.rel * abs(a) + 1e-12 * abs(a)


def is_decimal(token: str) -> bool:
    """A token with a decimal point or an exponent (``0.5``, ``2e-3``), as opposed to an integer."""
    return "." in token or "e" in token.lower()


def parse_tolerance(source: str) -> Tolerance | None:
    """The tolerance a cell declares with ``# NBVAL_TOLERANCE ...``, or None when it declares none.

    Raises:
        ValueError: for an unknown key, a value that is not a non-negative number, a declaration
            that allows nothing, or more than one declaration in the cell.
    """
    found = _MARKER.findall(source)
    if not found:
        return None
    if len(found) > 1:
        raise ValueError("a cell may declare NBVAL_TOLERANCE only once")
    values, ints = {}, False
    for item in found[0].split("#", 1)[0].split():
        if item == "ints":
            ints = True
            continue
        key, sep, value = item.partition("=")
        if not sep or key not in ("abs", "rel"):
            raise ValueError(f"NBVAL_TOLERANCE: unknown item {item!r}; use abs=X, rel=X and ints")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"NBVAL_TOLERANCE: {key}={value!r} is not a number") from None
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"NBVAL_TOLERANCE: {key} must be a finite number >= 0, got {value}")
        values[key] = number
    tol = Tolerance(values.get("abs", 0.0), values.get("rel", 0.0), ints)
    if tol.abs_ == 0 and tol.rel == 0:
        raise ValueError("NBVAL_TOLERANCE declares no tolerance: give abs=X and/or rel=X")
    return tol


def _split(text: str) -> tuple[list[str], list[str]]:
    """Split ``text`` into the text between numbers (len k + 1) and the numbers (len k)."""
    numbers = NUMBER.findall(text)
    between = NUMBER.split(text)
    return between, numbers


def snap(new: str, committed: str, tol: Tolerance) -> str:
    """Return ``new`` with each number that lies within ``tol`` of its committed counterpart
    replaced by the committed text. When the two texts differ in anything but such numbers (and
    the width of runs of spaces), ``new`` is returned unchanged, so the comparison still fails."""
    if new == committed:
        return new
    new_between, new_numbers = _split(new)
    old_between, old_numbers = _split(committed)
    if len(new_numbers) != len(old_numbers):
        return new
    if [_SPACES.sub(" ", s) for s in new_between] != [_SPACES.sub(" ", s) for s in old_between]:
        return new
    out = [old_between[0]]
    for i, (a, b) in enumerate(zip(old_numbers, new_numbers)):
        out.append(a if tol.allows(a, b) else b)
        out.append(old_between[i + 1])
    return "".join(out)


def _snap_output(new: dict, committed: dict, tol: Tolerance) -> None:
    """Snap, in place, the text fields of one output (stream text or each text MIME type)."""
    if new.get("output_type") != committed.get("output_type"):
        return
    if isinstance(new.get("text"), str) and isinstance(committed.get("text"), str):
        new["text"] = snap(new["text"], committed["text"], tol)
    new_data, old_data = new.get("data"), committed.get("data")
    if isinstance(new_data, dict) and isinstance(old_data, dict):
        for key, value in new_data.items():
            old = old_data.get(key)
            if key.startswith("text/") and isinstance(value, str) and isinstance(old, str):
                new_data[key] = snap(value, old, tol)


_exact_compare = nbval_plugin.IPyNbCell.compare_outputs


def compare_with_tolerance(self, test, ref, skip_compare=None):
    """nbval's ``IPyNbCell.compare_outputs``, with the cell's declared tolerance applied first."""
    try:
        tol = parse_tolerance(self.cell.source)
    except ValueError as exc:
        self.comparison_traceback = [f"{self.name}: {exc}"]
        return False
    if tol is not None and len(test) == len(ref):
        test = copy.deepcopy(test)
        for new, committed in zip(test, ref):
            _snap_output(new, committed, tol)
    return _exact_compare(self, test, ref, skip_compare)


# nbval's own class refers to itself by its module-level name, so it is patched rather than
# subclassed; the exact comparison stays nbval's and runs for every cell
nbval_plugin.IPyNbCell.compare_outputs = compare_with_tolerance
