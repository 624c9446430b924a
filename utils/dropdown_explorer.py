"""A kernel-free widget over several discrete parameters: one dropdown per parameter, every
combination's figure precomputed as PNG and embedded.

Companion of :func:`utils.explorer.png_stepper` (one parameter, a slider). Here the states form a
grid (for example layer x timestep x pooling). The images sit in nested ``ipywidgets.Stack``s, one
nesting level per parameter, and each dropdown's ``index`` is ``jslink``-ed to the
``selected_index`` of every stack at its level. The links run in the browser, so the static HTML
page switches figures without a kernel; the notebook's saved widget state holds all PNGs. Each
image carries alternative text (:func:`utils.explorer.png_image`).
"""
from __future__ import annotations

import itertools


def png_dropdowns(pngs: dict, options: dict, *, alt: str):
    """A widget showing ``pngs[(v1, v2, ...)]`` for the values chosen in the dropdowns.

    Args:
        pngs: ``{(value of parameter 1, value of parameter 2, ...): PNG bytes}``, one entry for
            every combination of the values in ``options`` (make them with
            :func:`utils.explorer.figure_png`).
        options: ``{parameter name: list of its values}`` in key order; names label the dropdowns.
        alt: the images' alternative text, at least 8 words, in which ``{name}`` (each parameter
            name of ``options``) is replaced by that image's value, e.g. ``"... at layer {layer}"``.
    Returns:
        an ``ipywidgets.VBox``: a row of dropdowns above the nested stacks of images.
    """
    import ipywidgets as widgets
    from utils.explorer import PNG_MAGIC, check_alt, png_image
    if not isinstance(options, dict) or not options:
        raise ValueError("options must be a non-empty dict {name: list of values}")
    names = list(options)
    check_alt(alt)
    missing = [k for k in names if "{" + str(k) + "}" not in alt]
    if missing:
        raise ValueError(f"alt must name every parameter's value so that each image is told "
                         f"apart: add {', '.join('{' + str(k) + '}' for k in missing)}")
    values = [list(options[k]) for k in names]
    for k, v in zip(names, values):
        if not v:
            raise ValueError(f"options[{k!r}] is empty")
        if len({str(x) for x in v}) != len(v):
            raise ValueError(f"options[{k!r}] has repeated values")
    for combo in itertools.product(*values):
        if combo not in pngs:
            raise ValueError(f"pngs has no image for {dict(zip(names, combo))}")
        b = pngs[combo]
        if not isinstance(b, (bytes, bytearray)) or bytes(b[:8]) != PNG_MAGIC:
            raise TypeError(f"pngs[{combo!r}] is not PNG bytes (use utils.explorer.figure_png)")
    stacks_at_level = [[] for _ in names]

    def build(level, prefix):
        if level == len(names):
            text = alt
            for k, v in zip(names, prefix):
                text = text.replace("{" + str(k) + "}", str(v))
            return png_image(pngs[tuple(prefix)], text)
        stack = widgets.Stack([build(level + 1, prefix + [v]) for v in values[level]],
                              selected_index=0)
        stacks_at_level[level].append(stack)
        return stack

    root = build(0, [])
    dropdowns = []
    for level, (name, vals) in enumerate(zip(names, values)):
        dd = widgets.Dropdown(options=[(str(v), i) for i, v in enumerate(vals)], value=0,
                              description=name, layout=widgets.Layout(width="220px"))
        for stack in stacks_at_level[level]:
            widgets.jslink((dd, "index"), (stack, "selected_index"))
        dropdowns.append(dd)
    return widgets.VBox([widgets.HBox(dropdowns), root])

