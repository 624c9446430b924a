"""One consistent, legible figure style and image grids for the whole book."""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch

from .checks import as_float_tensor

PALETTE = {"memorized": "#d62728", "generalized": "#1f77b4", "hybrid": "#9467bd",
           "empirical": "#2ca02c", "optimal": "#7f7f7f"}


def set_style() -> None:
    """Small, legible figures: 80 dpi inline PNG, 10 pt text, light grid, no top/right spines."""
    matplotlib.rcParams.update({
        "figure.dpi": 80, "savefig.dpi": 80, "figure.figsize": (6.0, 3.2),
        "font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10, "legend.fontsize": 9,
        "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.grid": True, "grid.alpha": 0.3,
        "axes.spines.top": False, "axes.spines.right": False, "image.cmap": "gray",
        "figure.constrained_layout.use": True,
    })


def to_display(images) -> np.ndarray:
    """(n, C, H, W) in [-1, 1] -> (n, H, W) or (n, H, W, 3) in [0, 1] for imshow."""
    t = as_float_tensor(images, "images", ndim=4).float()
    if t.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels (dimension 1), got shape {tuple(t.shape)}")
    t = ((t.clamp(-1, 1) + 1) / 2).cpu()
    return t[:, 0].numpy() if t.shape[1] == 1 else t.permute(0, 2, 3, 1).numpy()


def image_grid(images, *, ncols: int = 8, titles=None, axes=None, scale: float = 0.9,
               suptitle: str | None = None, normalize: bool = False):
    """Show images (n, C, H, W) in [-1, 1] on a grid; returns the figure.

    normalize: rescale each image to its own [min, max] (for weights, which are not images in
    [-1, 1]); otherwise values are clipped to [-1, 1] and shown on a fixed grey scale.
    titles: optional list of n short strings drawn above the images.
    """
    t = as_float_tensor(images, "images", ndim=4).float()
    if normalize:
        flat = t.reshape(len(t), -1)
        lo, hi = flat.min(1).values, flat.max(1).values
        t = (2 * (t - lo.view(-1, 1, 1, 1)) / (hi - lo).clamp_min(1e-12).view(-1, 1, 1, 1) - 1)
    disp = to_display(t)
    n = len(disp)
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    if axes is None:
        fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, scale * nrows + (0.25 if titles is not None else 0)),
                                 squeeze=False, constrained_layout=True)
    else:
        axes = np.atleast_2d(axes)
        fig = axes.flat[0].figure
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(disp[k], cmap="gray" if disp.ndim == 3 else None, vmin=0, vmax=1,
                      interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[k], fontsize=7, pad=2)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig


def vectors_as_images(W, image_shape) -> torch.Tensor:
    """Reshape rows of ``W`` (p, d) to images (p, C, H, W) with C*H*W = d."""
    w = as_float_tensor(W, "W", ndim=2)
    if int(np.prod(image_shape)) != w.shape[1]:
        raise ValueError(f"image_shape {tuple(image_shape)} has {int(np.prod(image_shape))} pixels "
                         f"but W rows have {w.shape[1]} entries")
    return w.reshape(w.shape[0], *image_shape)
