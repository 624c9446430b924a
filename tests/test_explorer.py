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


def test_png_stepper_links_slider_to_images():
    pngs = _pngs(3)
    w = explorer.png_stepper(pngs, [10, 20, 30], description="n")
    row, stack = w.children
    player, slider = row.children
    assert slider.options == ("10", "20", "30")
    assert [im.value for im in stack.children] == pngs
    assert stack.selected_index == 0 and player.max == 2


def test_png_stepper_rejects_bad_input():
    pngs = _pngs(2)
    with pytest.raises(ValueError, match="labels"):
        explorer.png_stepper(pngs, [1])
    with pytest.raises(ValueError, match="distinct"):
        explorer.png_stepper(pngs, [1, 1])
    with pytest.raises(TypeError, match="PNG"):
        explorer.png_stepper([b"abc", pngs[0]], [1, 2])
    with pytest.raises(ValueError, match="empty"):
        explorer.png_stepper([], [])


def test_figure_png_quantized_is_smaller_png_and_validates_colors():
    fig, ax = plt.subplots(figsize=(3, 3))
    for i in range(20):
        ax.plot([0, 1], [0, i], lw=2)
    full = explorer.figure_png(fig, close=False)
    small = explorer.figure_png(fig, colors=32)
    assert small[:8] == b"\x89PNG\r\n\x1a\n" and len(small) < len(full)
    with pytest.raises(ValueError, match="colors"):
        explorer.figure_png(plt.figure(), colors=1)
