"""Every figure of the book has alternative text.

A code cell whose outputs include an ``image/png`` (a matplotlib figure) must carry cell metadata
``{"mystnb": {"image": {"alt": "..."}}}`` with a non-empty text: MyST-NB's cell-level
``render_image_options`` sets it as the ``alt`` of every image the cell renders. Images that
widgets draw (``utils/explorer.py``) are not cell outputs of this kind and are not checked here.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))


def figure_cells(nb: dict) -> list[int]:
    """Indices of the code cells with an ``image/png`` output."""
    return [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
            and any("image/png" in o.get("data", {}) for o in c.get("outputs", []))]


def alt_text(cell: dict) -> str:
    alt = cell.get("metadata", {}).get("mystnb", {}).get("image", {}).get("alt", "")
    return alt.strip() if isinstance(alt, str) else ""


def test_chapters_found():
    assert CHAPTERS, "no notebooks under book/"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_figure_has_alt_text(path):
    nb = json.loads(path.read_text())
    missing = [i for i in figure_cells(nb) if not alt_text(nb["cells"][i])]
    assert not missing, (f"{path.name}: code cells {missing} show a figure without alt text; set cell "
                         'metadata {"mystnb": {"image": {"alt": "what is plotted, axes, message"}}}')


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_alt_texts_are_sentences_not_placeholders(path):
    nb = json.loads(path.read_text())
    short = [i for i in figure_cells(nb) if 0 < len(alt_text(nb["cells"][i]).split()) < 8]
    assert not short, f"{path.name}: cells {short} have an alt text under 8 words"


def test_alt_text_helpers_fail_on_a_bare_figure():
    bare = {"cells": [{"cell_type": "code", "metadata": {},
                       "outputs": [{"data": {"image/png": "iVBOR"}}]}]}
    assert figure_cells(bare) == [0] and alt_text(bare["cells"][0]) == ""
