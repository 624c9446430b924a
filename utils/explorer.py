"""Widgets that keep working in the static HTML book: every state is precomputed and embedded.

A notebook renders one figure per parameter value, turns each into PNG bytes
(:func:`figure_png`), and :func:`png_stepper` shows them behind a slider (and a play button).
The slider switches images through a JavaScript link (``widgets.jslink``) instead of a Python
callback, so the page needs no kernel: the saved widget state holds all the images.
Keep the states few and the PNGs small (80 dpi), since every one is stored in the notebook.

Each image is an ``<img>`` with alternative text inside an ``ipywidgets.HTML`` (:func:`png_html`):
``ipywidgets.Image`` has no ``alt`` trait, so a screen reader would meet an unnamed image.
"""
from __future__ import annotations

import base64
import html
import io


def figure_png(fig, *, dpi: int = 80, close: bool = True, colors: int | None = None) -> bytes:
    """PNG bytes of a matplotlib figure (closed afterwards unless ``close=False``).

    colors: if given (2..256), quantize to a palette of that many colours, which makes line plots
    about 3x smaller (useful when many states are embedded in a widget).
    """
    import matplotlib.pyplot as plt
    if colors is not None and (isinstance(colors, bool) or not isinstance(colors, int)
                               or not 2 <= colors <= 256):
        raise ValueError(f"colors must be an int between 2 and 256 or None, got {colors!r}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    if close:
        plt.close(fig)
    if colors is None:
        return buf.getvalue()
    from PIL import Image
    buf.seek(0)
    out = io.BytesIO()
    Image.open(buf).convert("RGB").quantize(colors).save(out, format="PNG", optimize=True)
    return out.getvalue()


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MIN_ALT_WORDS = 8   # as tests/test_accessibility.py asks of figure cells


def check_alt(alt, where: str = "alt") -> str:
    """``alt`` stripped, or a ValueError if it is not a sentence of at least MIN_ALT_WORDS words."""
    if not isinstance(alt, str):
        raise TypeError(f"{where} must be a str, got {type(alt).__name__}")
    alt = " ".join(alt.split())
    if len(alt.split()) < MIN_ALT_WORDS:
        raise ValueError(f"{where} must describe the image in at least {MIN_ALT_WORDS} words, "
                         f"got {alt!r}")
    return alt


def png_html(png: bytes, alt: str) -> str:
    """An ``<img>`` tag that embeds ``png`` as a data URI, with ``alt`` as its alternative text
    (escaped). No request leaves the page."""
    if not isinstance(png, (bytes, bytearray)) or bytes(png[:8]) != PNG_MAGIC:
        raise TypeError("png is not PNG bytes (use figure_png(fig))")
    data = base64.b64encode(bytes(png)).decode("ascii")
    return (f'<img src="data:image/png;base64,{data}" alt="{html.escape(check_alt(alt), quote=True)}"'
            ' style="max-width:100%; height:auto">')


def png_image(png: bytes, alt: str):
    """An ``ipywidgets.HTML`` showing ``png`` with alternative text ``alt`` (see :func:`png_html`)."""
    import ipywidgets as widgets
    return widgets.HTML(value=png_html(png, alt))


def _alts(alt, labels: list[str]) -> list[str]:
    """One alt text per state: a list of them, or one str in which ``{label}`` is replaced."""
    if isinstance(alt, str):
        if "{label}" not in alt:
            raise ValueError("a single alt text must contain '{label}' so that each state's "
                             "image is told apart, or give a list with one text per state")
        return [alt.replace("{label}", lab) for lab in labels]
    alts = list(alt)
    if len(alts) != len(labels):
        raise ValueError(f"got {len(alts)} alt texts but {len(labels)} labels")
    return alts


def png_stepper(pngs, labels, *, alt, description: str = "value", play: bool = True,
                interval_ms: int = 900):
    """A widget that shows ``pngs[i]`` when the slider is at ``labels[i]``.

    Args:
        pngs: list of PNG byte strings, one per state.
        labels: list of the same length, shown on the slider (converted to str).
        alt: alternative text of the images, at least 8 words each: a list with one text per
            state, or one str containing ``{label}`` (replaced by each state's label).
        description: the slider's label.
        play: add a play button that steps through the states.
    Returns:
        an ``ipywidgets.VBox`` (slider row above an ``ipywidgets.Stack`` of ``ipywidgets.HTML``
        images, see :func:`png_image`).
    """
    import ipywidgets as widgets
    pngs, labels = list(pngs), [str(v) for v in labels]
    if not pngs:
        raise ValueError("pngs is empty: give at least one image")
    if len(pngs) != len(labels):
        raise ValueError(f"got {len(pngs)} images but {len(labels)} labels")
    if len(set(labels)) != len(labels):
        raise ValueError("labels must be distinct")
    for i, b in enumerate(pngs):
        if not isinstance(b, (bytes, bytearray)) or not bytes(b[:8]) == PNG_MAGIC:
            raise TypeError(f"pngs[{i}] is not PNG bytes (use figure_png(fig))")
    alts = [check_alt(a, f"alt of state {lab!r}") for a, lab in zip(_alts(alt, labels), labels)]
    images = [png_image(b, a) for b, a in zip(pngs, alts)]
    stack = widgets.Stack(images, selected_index=0)
    slider = widgets.SelectionSlider(options=labels, value=labels[0], description=description,
                                     continuous_update=True)
    widgets.jslink((slider, "index"), (stack, "selected_index"))
    row = [slider]
    if play and len(pngs) > 1:
        player = widgets.Play(min=0, max=len(pngs) - 1, step=1, interval=int(interval_ms),
                              value=0, description="play")
        widgets.jslink((player, "value"), (slider, "index"))
        row.insert(0, player)
    return widgets.VBox([widgets.HBox(row), stack])
