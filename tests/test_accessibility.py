"""Every figure of the book has alternative text.

A code cell whose outputs include an ``image/png`` (a matplotlib figure) must carry cell metadata
``{"mystnb": {"image": {"alt": "..."}}}`` with a non-empty text: MyST-NB's cell-level
``render_image_options`` sets it as the ``alt`` of every image the cell renders.

Images that widgets draw (``utils/explorer.py``) live in the notebook's saved widget state: each
must be an ``<img>`` with alternative text inside an ``HTMLModel``, never an ``ImageModel``
(which has no ``alt``). tests/test_browser.py checks the same on the built pages.
"""
from __future__ import annotations

import html
import json
import re
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


WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
IMG_TAG = re.compile(r"<img\b[^>]*>", re.I)
ALT_ATTR = re.compile(r'\balt="([^"]*)"', re.I)


def widget_images(nb: dict) -> list[tuple[str, str, str | None]]:
    """(model id, model name, alt text or None) of every image a saved widget shows."""
    state = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    out = []
    for mid, m in state.items():
        name = m.get("model_name", "")
        if name == "ImageModel":
            out.append((mid, name, None))
        value = m.get("state", {}).get("value")
        if isinstance(value, str):
            for tag in IMG_TAG.findall(value):
                alt = ALT_ATTR.search(tag)
                out.append((mid, name, html.unescape(alt.group(1)).strip() if alt else None))
    return out


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_widget_image_has_alt_text(path):
    nb = json.loads(path.read_text())
    bad = [(mid[:8], name) for mid, name, alt in widget_images(nb)
           if alt is None or len(alt.split()) < 8]
    assert not bad, (f"{path.name}: {len(bad)} widget images without an alt text of 8 words or "
                     f"more (ImageModel has none: build widgets with utils.explorer): {bad[:5]}")


def test_widget_image_check_fails_on_an_image_model_and_a_bare_img():
    nb = {"metadata": {"widgets": {WIDGET_STATE: {"state": {
        "a": {"model_name": "ImageModel", "state": {}},
        "b": {"model_name": "HTMLModel", "state": {"value": '<img src="data:image/png;base64,AA">'}},
        "c": {"model_name": "HTMLModel", "state": {"value": '<img alt="one two three four five six '
                                                              'seven &amp; eight" src="x">'}}}}}}}
    assert widget_images(nb) == [("a", "ImageModel", None), ("b", "HTMLModel", None),
                                 ("c", "HTMLModel", "one two three four five six seven & eight")]
