"""Which cells of a chapter are solutions, and the tag that keeps them collapsed online.

A solution is a markdown cell that opens a ``{solution}`` directive (sphinx-exercise, shown as a
dropdown), and the code cells that directly follow it, up to the next markdown cell, are its
solution code. Online those code cells carry the tag ``hide-cell``, so that input and output stay
collapsed until the reader clicks, like the dropdown above them.

    python -m utils.solution_cells            # tag every chapter's solution code cells
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTION_OPEN = re.compile(r"^\s*(`{3,}|~{3,})\s*\{solution\}\s*(\S+)", re.M)
HIDE_TAG = "hide-cell"


def solution_label(cell) -> str | None:
    """The exercise label of a solution markdown cell (``ex-...``), else None."""
    if cell.get("cell_type") != "markdown":
        return None
    m = SOLUTION_OPEN.search("".join(cell.get("source", "")))
    return m.group(2) if m else None


def solution_code_cells(nb) -> dict:
    """{cell index: exercise label} for every code cell that follows a solution cell directly
    (a chain of code cells up to the next markdown cell)."""
    out, current = {}, None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            current = solution_label(cell)
        elif current is not None:
            out[i] = current
    return out


def tag_solution_code(nb) -> int:
    """Add :data:`HIDE_TAG` to every solution code cell of ``nb``; returns how many changed."""
    changed = 0
    for i in solution_code_cells(nb):
        tags = nb.cells[i].metadata.setdefault("tags", [])
        if HIDE_TAG not in tags:
            tags.append(HIDE_TAG)
            changed += 1
    return changed


def main(paths=None) -> int:
    import nbformat
    paths = [Path(p) for p in paths] if paths else sorted((ROOT / "book").glob("*.ipynb"))
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        n = tag_solution_code(nb)
        if n:
            nbformat.write(nb, path)
        print(f"{path.name}: {n} solution code cell(s) tagged")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
