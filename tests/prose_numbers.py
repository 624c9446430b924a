"""Numbers typed into a chapter's text, checked against the numbers its code printed.

    python -m tests.prose_numbers                      # every chapter: list the disagreements
    python -m tests.prose_numbers book/04_*.ipynb

A number in a markdown cell *agrees* when some text output of the same notebook prints a number
that equals it up to the rounding of the typed number (0.97 stands for [0.965, 0.975]) widened by
the tolerance that the printing cell declares (``# NBVAL_TOLERANCE``, tests/nbval_tolerance.py), so
the text stays right on every machine where nbval passes. ``57%`` also agrees with a printed 0.57,
and magnitudes are compared ("1.4 standard deviations below" agrees with a printed -1.4).

What it cannot see: which printed number a sentence means. Any matching number of the notebook
backs it, so a coincidental match can hide a wrong sentence; the test catches numbers that match
nothing, and a reader (or referee) still checks the rest.

The simple rule for what is not a measurement, and so is exempt:

* a number that appears as a literal in the notebook's own code: a constant of the setup
  (sigma = 0.2, n = 5, p = 100, 1500 steps);
* an integer up to 10 (small counts and ordinals), a year (1900-2099), and a number right after
  a word that makes it a reference (chapter 3, Figure 6, Table 2, arXiv 2512.20963, ICLR 2026,
  step 1, v1.4, SHA-256, a heading's "# 11.");
* an integer inside LaTeX math (exponents, indices, 1/2); decimals in math are checked;
* anything in code spans, roles (``{cite}`...```), link targets, directive options and HTML.
"""
from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from tests.nbval_tolerance import Tolerance, parse_tolerance

ROOT = Path(__file__).resolve().parent.parent
# a number in prose: 1,797 and 1797, 0.97, .5, 4e-15, -3.2; not glued to a word or a dotted name
PROSE_NUMBER = re.compile(r"(?<![\w.,^])[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+−]?\d+)?(?![\w]|\.\d)")
CODE_NUMBER = re.compile(r"(?<![\w.])(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.])")
OUTPUT_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w])")
REFERENCE_WORDS = re.compile(
    r"(?i)(chapter|chapters|ch\.?|section|sections|figure|figures|fig\.|table|exercise|theorem|lemma|"
    r"proposition|corollary|definition|appendix|part|step|arxiv|iclr|neurips|icml|cvpr|v|version|"
    r"equation|eq\.|row|rows|cell|cells|item|issue|sha-|#)\s*$")
_STRIP = [
    re.compile(r"```.*?```", re.S),                  # fenced blocks' fences and code (directive bodies kept below)
    re.compile(r"`[^`\n]*`"),                        # code spans and the argument of roles
    re.compile(r"\]\([^)]*\)"),                      # link targets
    re.compile(r"<[^>\n]+>"),                        # HTML tags
    re.compile(r"^\s*:[\w-]+:.*$", re.M),            # directive options (:label:, :class:)
    re.compile(r"https?://\S+"),                     # bare URLs
]
_MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$", re.S)


@dataclass
class Printed:
    value: float
    tol: Tolerance


_CODE_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})[ \t]*(python|ipython3?|bash|text|console|)[ \t]*\n.*?^\1\2[ \t]*$",
                         re.S | re.M)


def _directive_bodies(src: str) -> str:
    """Keep the text inside ```{directive} fences (proofs, exercises, notes), drop code blocks."""
    src = _CODE_FENCE.sub(" ", src)
    def keep(m):
        head, body = m.group(1), m.group(2)
        return body if head.startswith("{") else " "
    return re.sub(r"```([^\n]*)\n(.*?)```", keep, src, flags=re.S)


def _to_float(token: str) -> float:
    return float(token.replace(",", "").replace("−", "-"))


def _decimals(token: str) -> int:
    mantissa = re.split(r"[eE]", token)[0]
    return len(mantissa.split(".")[1]) if "." in mantissa else 0


def prose_numbers(markdown: str):
    """Yield (token, is_in_math, text before it) for every number of a markdown cell."""
    text = _directive_bodies(markdown)
    for pattern in _STRIP:
        text = pattern.sub(" ", text)
    spans = [(m.start(), m.end()) for m in _MATH.finditer(text)]
    for m in PROSE_NUMBER.finditer(text):
        token = m.group(0)
        if not re.search(r"\d", token):
            continue
        in_math = any(a <= m.start() < b for a, b in spans)
        yield token, in_math, text[max(0, m.start() - 30):m.start()]


def printed_numbers(nb) -> list[Printed]:
    """Every number of every text output, with the tolerance its cell declares (exact if none)."""
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tol = parse_tolerance(cell.source) or Tolerance()
        for o in cell.get("outputs", []):
            texts = [o.get("text", "")] + [v for k, v in o.get("data", {}).items() if k.startswith("text/")]
            for t in texts:
                t = "".join(t) if isinstance(t, list) else t
                out.extend(Printed(float(x), tol) for x in OUTPUT_NUMBER.findall(t))
    return out


def code_literals(nb) -> set[float]:
    """Numeric literals of the notebook's code cells: the constants of its setup."""
    values = set()
    for cell in nb.cells:
        if cell.cell_type == "code":
            src = re.sub(r"(?<=\d)_(?=\d)", "", cell.source)
            values.update(float(x) for x in CODE_NUMBER.findall(src))
    return values


def _exempt(token: str, in_math: bool, before: str, literals: set[float]) -> bool:
    value = _to_float(token)
    is_int = _decimals(token) == 0 and "e" not in token.lower()
    if value in literals or abs(value) in literals:
        return True
    if is_int and (abs(value) <= 10 or 1900 <= value <= 2099 or in_math):
        return True
    return bool(REFERENCE_WORDS.search(before))


def _agrees(token: str, percent: bool, printed: list[Printed]) -> bool:
    q = _to_float(token)
    half = 0.5 * 10 ** (-_decimals(token)) if "e" not in token.lower() else abs(q) * 0.05
    candidates = [q] + ([q / 100] if percent else [])
    for c, h in zip(candidates, [half, half / 100]):
        for p in printed:
            slack = h + p.tol.abs_ + p.tol.rel * abs(p.value) + 1e-12
            # magnitudes: the text says "1.4 standard deviations below" for a printed -1.4
            if abs(abs(p.value) - abs(c)) <= slack:
                return True
    return False


def disagreements(path: Path) -> list[str]:
    """The numbers typed into ``path``'s markdown that no printed number backs, one line each."""
    nb = nbformat.read(path, as_version=4)
    printed, literals = printed_numbers(nb), code_literals(nb)
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        src = cell.source
        for token, in_math, before in prose_numbers(src):
            if _exempt(token, in_math, before, literals):
                continue
            after = src[src.find(token) + len(token):][:2] if token in src else ""
            if not _agrees(token, after.lstrip().startswith("%"), printed):
                context = re.sub(r"\s+", " ", before)[-30:]
                found.append(f"{path.name} markdown cell {i}: {token!r} (after '...{context}')")
    return found


def main(argv=None) -> int:
    paths = [Path(p) for p in (argv or [])] or sorted((ROOT / "book").glob("*.ipynb"))
    lines = [line for p in paths for line in disagreements(p)]
    print("\n".join(lines) if lines else "no disagreement")
    print(f"{len(lines)} number(s) in the text that no printed number backs")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
