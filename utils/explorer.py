"""Widgets that keep working in the static HTML book: every state is precomputed and embedded.

A notebook renders one figure per parameter value, turns each into PNG bytes
(:func:`figure_png`), and :func:`png_stepper` shows them behind a slider (and a play button).
The slider switches images through a JavaScript link (``widgets.jslink``) instead of a Python
callback, so the page needs no kernel: the saved widget state holds all the images.
Keep the states few and the PNGs small (80 dpi), since every one is stored in the notebook.
"""
from __future__ import annotations

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


def png_stepper(pngs, labels, *, description: str = "value", play: bool = True,
                interval_ms: int = 900):
    """A widget that shows ``pngs[i]`` when the slider is at ``labels[i]``.

    Args:
        pngs: list of PNG byte strings, one per state.
        labels: list of the same length, shown on the slider (converted to str).
        description: the slider's label.
        play: add a play button that steps through the states.
    Returns:
        an ``ipywidgets.VBox`` (slider row above an ``ipywidgets.Stack`` of images).
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
        if not isinstance(b, (bytes, bytearray)) or not bytes(b[:8]) == b"\x89PNG\r\n\x1a\n":
            raise TypeError(f"pngs[{i}] is not PNG bytes (use figure_png(fig))")
    images = [widgets.Image(value=bytes(b), format="png") for b in pngs]
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
