"""The static-friendly PNG stepper widget (utils.explorer)."""
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from utils import explorer  # noqa: E402


def _pngs(k):
    out = []
    for i in range(k):
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, i])
        out.append(explorer.figure_png(fig))
    return out


ALT = "A line plot of the test curve drawn for the state n = {label}"


def _embedded(html_value):
    """(PNG bytes, alt text) of the one <img> in an ipywidgets.HTML value."""
    import base64
    import html
    import re
    m = re.fullmatch(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]*)"[^>]*>',
                     html_value)
    assert m, html_value[:80]
    return base64.b64decode(m.group(1)), html.unescape(m.group(2))


def test_png_stepper_links_slider_to_images():
    pngs = _pngs(3)
    w = explorer.png_stepper(pngs, [10, 20, 30], alt=ALT, description="n")
    row, stack = w.children
    player, slider = row.children
    assert slider.options == ("10", "20", "30")
    shown = [_embedded(im.value) for im in stack.children]
    assert [b for b, _ in shown] == pngs
    assert [a for _, a in shown] == [ALT.replace("{label}", v) for v in ("10", "20", "30")]
    assert stack.selected_index == 0 and player.max == 2


def test_png_stepper_takes_one_alt_text_per_state_and_escapes_it():
    pngs = _pngs(2)
    alts = ['Panel one shows "quoted" words & a <tag> in its text', "Panel two shows the same "
            "curve with a steeper slope than panel one"]
    w = explorer.png_stepper(pngs, ["a", "b"], alt=alts, play=False)
    assert [_embedded(im.value)[1] for im in w.children[1].children] == alts
    assert "<tag>" not in w.children[1].children[0].value


def test_png_stepper_requires_alt_text_that_tells_states_apart():
    pngs = _pngs(2)
    with pytest.raises(TypeError, match="alt"):
        explorer.png_stepper(pngs, [1, 2])
    with pytest.raises(ValueError, match="label"):
        explorer.png_stepper(pngs, [1, 2], alt="the same text for every state of this widget")
    with pytest.raises(ValueError, match="8 words"):
        explorer.png_stepper(pngs, [1, 2], alt="plot {label}")
    with pytest.raises(ValueError, match="alt texts"):
        explorer.png_stepper(pngs, [1, 2], alt=[ALT])
    with pytest.raises(TypeError, match="PNG"):
        explorer.png_html(b"abc", ALT)


def test_png_stepper_rejects_bad_input():
    pngs = _pngs(2)
    with pytest.raises(ValueError, match="labels"):
        explorer.png_stepper(pngs, [1], alt=ALT)
    with pytest.raises(ValueError, match="distinct"):
        explorer.png_stepper(pngs, [1, 1], alt=ALT)
    with pytest.raises(TypeError, match="PNG"):
        explorer.png_stepper([b"abc", pngs[0]], [1, 2], alt=ALT)
    with pytest.raises(ValueError, match="empty"):
        explorer.png_stepper([], [], alt=ALT)


def test_figure_png_quantized_is_smaller_png_and_validates_colors():
    fig, ax = plt.subplots(figsize=(3, 3))
    for i in range(20):
        ax.plot([0, 1], [0, i], lw=2)
    full = explorer.figure_png(fig, close=False)
    small = explorer.figure_png(fig, colors=32)
    assert small[:8] == b"\x89PNG\r\n\x1a\n" and len(small) < len(full)
    with pytest.raises(ValueError, match="colors"):
        explorer.figure_png(plt.figure(), colors=1)
