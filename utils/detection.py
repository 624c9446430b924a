"""Memorization detection in a caption-conditional diffusion model (chapter 9).

A miniature of the text-to-image setting: images come with integer *captions* (labels). Every
training image has the caption of its class; a few *planted* images are also repeated many times
with a caption of their own, like the duplicated image-caption pairs that Stable Diffusion is known
to reproduce. One extra label is the empty caption, used for classifier-free guidance.

Three detectors score a generated image (higher = more likely memorized):

* :func:`representation_score`: re-noise the image at a small training timestep, run one U-Net
  pass with the empty caption, pool a block's feature map over space and measure how spiky the
  channel vector is (one forward pass; needs neither the prompt nor the training data);
* :func:`noise_gap`: the text-conditional noise magnitude of Wen et al. (ICLR 2024),
  ||eps(x_t, t, c) - eps(x_t, t, empty)||, at the first sampling step (two passes; needs the prompt);
* :func:`nearest_neighbor_score`: an oracle that compares the image with the training set
  (no forward pass, but it needs the whole training data).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import metrics
from .checks import as_float_tensor, check_positive_int


@dataclass
class PlantedData:
    """A captioned training set with planted duplicates.

    Attributes:
        images: (N, C, H, W) training rows: every base image once, then the planted copies.
        labels: (N,) int64 caption of each row: the class (0..n_classes-1) or a planted caption.
        base: (n, C, H, W) the base images; ``images[:n]`` equals ``base``.
        base_classes: (n,) int64 their classes.
        planted: (m,) int64 indices into ``base`` of the planted images; planted image i has the
            caption ``n_classes + i``.
        n_classes: number of class captions.
        copies: how many times each planted image appears with its own caption.
    """
    images: torch.Tensor
    labels: torch.Tensor
    base: torch.Tensor
    base_classes: torch.Tensor
    planted: torch.Tensor
    n_classes: int
    copies: int

    @property
    def planted_labels(self) -> torch.Tensor:
        """(m,) the planted captions n_classes, ..., n_classes + m - 1."""
        return torch.arange(len(self.planted)) + self.n_classes

    @property
    def null_label(self) -> int:
        """The empty caption (classifier-free guidance): the label after the planted ones."""
        return self.n_classes + len(self.planted)

    @property
    def num_labels(self) -> int:
        """Labels a conditional model needs (``num_class_embeds``): classes, planted, empty."""
        return self.null_label + 1

    def caption(self, label: int) -> str:
        """A readable caption for ``label``."""
        label = int(label)
        if 0 <= label < self.n_classes:
            return f"digit {label}"
        if self.n_classes <= label < self.null_label:
            return f"planted #{label - self.n_classes}"
        if label == self.null_label:
            return "(empty)"
        raise ValueError(f"label must be in [0, {self.null_label}], got {label}")


def planted_dataset(X, classes, *, n_planted: int, copies: int, seed: int = 0,
                    n_classes: int | None = None) -> PlantedData:
    """Caption every image of ``X`` (n, C, H, W) with its class from ``classes`` (n,), and plant
    ``n_planted`` randomly chosen images (seeded) ``copies`` times each with a caption of their own.

    Returns a :class:`PlantedData` with N = n + n_planted * copies rows.
    """
    Xt = as_float_tensor(X, "X", ndim=4).float()
    cls = torch.as_tensor(classes)
    if cls.is_floating_point() or cls.shape != (len(Xt),):
        raise ValueError(f"classes must be integers of shape ({len(Xt)},), got {cls.dtype} {tuple(cls.shape)}")
    cls = cls.long()
    if len(cls) and int(cls.min()) < 0:
        raise ValueError("classes must be >= 0")
    k = int(cls.max()) + 1 if n_classes is None else check_positive_int(n_classes, "n_classes")
    if len(cls) and int(cls.max()) >= k:
        raise ValueError(f"classes go up to {int(cls.max())} but n_classes = {k}")
    m = check_positive_int(n_planted, "n_planted")
    copies = check_positive_int(copies, "copies")
    if m > len(Xt):
        raise ValueError(f"n_planted ({m}) exceeds the number of images ({len(Xt)})")
    gen = torch.Generator().manual_seed(int(seed))
    planted = torch.randperm(len(Xt), generator=gen)[:m].sort().values
    rep = planted.repeat_interleave(copies)
    images = torch.cat([Xt, Xt[rep]])
    labels = torch.cat([cls, k + torch.arange(m).repeat_interleave(copies)])
    return PlantedData(images, labels, Xt, cls, planted, k, copies)


def _model_labels(model, labels, n):
    from .unet import check_labels
    lab = check_labels(model, labels, n)
    if lab is None:
        raise ValueError("this detector needs a caption-conditional model (num_class_embeds)")
    return lab


@torch.no_grad()
def noise_gap(model, scheduler, x_t, timestep: int, labels, null_label: int) -> np.ndarray:
    """Wen et al.'s detection signal: ||eps(x_t, t, c) - eps(x_t, t, empty)|| per image -> (n,).

    ``x_t``: (n, C, H, W) noisy images at ``timestep``; ``labels``: the prompts (int or (n,)).
    Two U-Net passes per image (one batched call).
    """
    x = as_float_tensor(x_t, "x_t", ndim=4).float()
    lab = _model_labels(model, labels, len(x))
    null = _model_labels(model, null_label, len(x))
    T = scheduler.config.num_train_timesteps
    if isinstance(timestep, bool) or not 0 <= int(timestep) < T:
        raise ValueError(f"timestep must be an integer in [0, {T - 1}], got {timestep!r}")
    was_training = model.training
    model.eval()
    out = model(torch.cat([x, x]), int(timestep), class_labels=torch.cat([lab, null])).sample
    model.train(was_training)
    cond, uncond = out.chunk(2)
    return (cond - uncond).flatten(1).norm(dim=1).double().numpy()


def first_step_noise_gap(model, scheduler, labels, *, null_label: int, seed: int = 0,
                         steps: int = 50) -> np.ndarray:
    """:func:`noise_gap` at the first step of :func:`utils.unet.sample` for the same ``seed`` and
    ``steps``: computed on the sampler's own starting noise, so it scores the generation *before*
    it runs. ``labels``: (n,) prompts. Returns (n,)."""
    from .unet import initial_noise
    lab = torch.as_tensor(labels)
    if lab.ndim != 1:
        raise ValueError(f"labels must have shape (n,), got {tuple(lab.shape)}")
    x_T = initial_noise(model, len(lab), seed=seed)
    scheduler.set_timesteps(check_positive_int(steps, "steps", minimum=2))
    return noise_gap(model, scheduler, x_T, int(scheduler.timesteps[0]), lab, null_label)


def pooled_representation(model, scheduler, images, *, layer: str, null_label: int | None = None,
                          timestep: int = 10, pooling: str = "max", seed: int = 0,
                          prompts=None, site: str = "output") -> torch.Tensor:
    """A block's representation of each image, pooled over space -> (n, channels).

    Adds noise at training ``timestep`` to ``images`` (n, C, H, W), runs one U-Net pass and pools
    the feature map of ``layer`` (``"max"`` or ``"mean"``). A conditional model is run with the
    empty caption ``null_label`` (the paper's choice: the detector never sees the prompt), or
    with ``prompts`` (an int or (n,) labels) when given. ``site="post_norm2"`` with ``layer`` a
    resnet (``"up_blocks.0.resnets.0"``) reads the official code's probe site, the SiLU after norm2.
    """
    from .unet import num_labels, pool, probe
    x0 = as_float_tensor(images, "images", ndim=4).float()
    labels = None
    if prompts is not None:
        labels = prompts
    elif num_labels(model):
        if null_label is None:
            raise ValueError("the model is conditional: give null_label (the empty caption) or prompts")
        labels = int(null_label)
    feats = probe(model, scheduler, x0, [layer], timestep=timestep, seed=seed, class_labels=labels,
                  site=site)[layer]
    return pool(feats, pooling)


def representation_score(model, scheduler, images, *, layer: str, kind: str = "std", **kwargs) -> np.ndarray:
    """:func:`utils.metrics.spikiness` (``kind``: "std" as in the paper's Stable Diffusion
    detector, or a scale-invariant measure such as "hoyer") of :func:`pooled_representation`
    (same keyword arguments) -> (n,)."""
    return metrics.spikiness(pooled_representation(model, scheduler, images, layer=layer, **kwargs), kind)


def nearest_neighbor_score(images, X_train) -> np.ndarray:
    """The oracle: minus the ratio (nearest / second-nearest) training distance of each image
    -> (n,). A copy of a training image has a ratio near 0, so a score near 0 (the highest)."""
    return -metrics.copy_test(images, X_train).ratio


def detection_summary(scores: dict, labels, *, fpr: float = 0.01) -> dict:
    """{detector: {"auroc": ..., "tpr_at_fpr": ...}} for ``scores`` = {detector: (n,) scores},
    ``labels`` (n,) with 1 = memorized (positive)."""
    y = np.asarray(labels)
    out = {}
    for name, s in scores.items():
        s = np.asarray(s, dtype=np.float64)
        if s.shape != y.shape:
            raise ValueError(f"scores[{name!r}] has shape {s.shape}, labels have {y.shape}")
        out[name] = {"auroc": metrics.roc_auc(s, y), "tpr_at_fpr": metrics.tpr_at_fpr(s, y, fpr)}
    return out
