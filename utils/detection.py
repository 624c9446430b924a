"""Memorization detection in a caption-conditional diffusion model (chapter 9).

A miniature of the text-to-image setting: images come with integer *captions* (labels). Every
training image has the caption of its class; a few *planted* images are also repeated many times
with a caption of their own, like the duplicated image-caption pairs that Stable Diffusion is known
to reproduce. One extra label is the empty caption, used for classifier-free guidance.

Three detectors score a generated image (higher = more likely memorized):

* :func:`representation_score`: re-noise the image at a small training timestep, run one U-Net
  pass with the empty caption, pool a feature map over space and measure how spiky the channel
  vector is (one forward pass; needs neither the prompt nor the training data). The official
  code's probe site is ``site="post_norm2"`` on the resnets of ``up_blocks.0``;
* :func:`noise_gap`: the text-conditional noise magnitude of Wen et al. (ICLR 2024),
  ||eps(x_t, t, c) - eps(x_t, t, empty)||, at the first sampling step (two passes; needs the prompt);
* :func:`nearest_neighbor_score`: an oracle that compares the image with the training set
  (no forward pass, but it needs the whole training data).

Ground truth and statistics: :func:`generation_labels` labels every generation as a copy or not
(copy test and SSIM), :func:`per_prompt` aggregates scores to prompt level, and
:func:`clustered_bootstrap` gives intervals that resample whole prompts.
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
        base_classes: (n,) int64 their ordinary captions (the class, or with
            ``captions_per_class`` = s > 1 the caption k * s + j of style j of class k).
        planted: (m,) int64 indices into ``base`` of the planted images; planted image i has the
            caption ``n_classes + i``.
        n_classes: number of ordinary captions (classes times ``captions_per_class``).
        copies: how many times each planted image appears with its own caption.
        captions_per_class: ordinary captions per class (1: the caption is the class).
    """
    images: torch.Tensor
    labels: torch.Tensor
    base: torch.Tensor
    base_classes: torch.Tensor
    planted: torch.Tensor
    n_classes: int
    copies: int
    captions_per_class: int = 1

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
            s = self.captions_per_class
            return f"digit {label}" if s == 1 else f"digit {label // s}, style {label % s}"
        if self.n_classes <= label < self.null_label:
            return f"planted #{label - self.n_classes}"
        if label == self.null_label:
            return "(empty)"
        raise ValueError(f"label must be in [0, {self.null_label}], got {label}")


def planted_dataset(X, classes, *, n_planted: int, copies: int, seed: int = 0,
                    n_classes: int | None = None, captions_per_class: int = 1) -> PlantedData:
    """Caption every image of ``X`` (n, C, H, W) with its class from ``classes`` (n,), and plant
    ``n_planted`` randomly chosen images (seeded) ``copies`` times each with a caption of their own.

    ``captions_per_class`` = s > 1 splits every class into s ordinary captions ("digit k, style j"):
    the i-th image of class k (in the order of ``X``) gets caption k * s + (i mod s), so there are
    n_classes * s ordinary captions, each shared by about n / (n_classes * s) images (more ordinary
    prompts for the statistics, each still a caption of many images).

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
    s = check_positive_int(captions_per_class, "captions_per_class")
    if s > 1:
        rank = torch.zeros_like(cls)
        for c in range(k):
            idx = torch.nonzero(cls == c).flatten()
            rank[idx] = torch.arange(len(idx))
        cls, k = cls * s + rank % s, k * s
    m = check_positive_int(n_planted, "n_planted")
    copies = check_positive_int(copies, "copies")
    if m > len(Xt):
        raise ValueError(f"n_planted ({m}) exceeds the number of images ({len(Xt)})")
    gen = torch.Generator().manual_seed(int(seed))
    planted = torch.randperm(len(Xt), generator=gen)[:m].sort().values
    rep = planted.repeat_interleave(copies)
    images = torch.cat([Xt, Xt[rep]])
    labels = torch.cat([cls, k + torch.arange(m).repeat_interleave(copies)])
    return PlantedData(images, labels, Xt, cls, planted, k, copies, s)


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


# ------------------------------------------------------------------------------------------
# ground truth per generation, prompt-level aggregation, prompt-clustered bootstrap
# ------------------------------------------------------------------------------------------
def ssim_to(images, refs) -> np.ndarray:
    """Structural similarity (SSIM, Wang et al. 2004; scikit-image, 7 x 7 window, data range 2)
    of each image (m, C, H, W) in [-1, 1] to the paired reference ``refs`` (m, C, H, W) -> (m,).
    Channels are averaged. 1 means identical."""
    from skimage.metrics import structural_similarity
    a = as_float_tensor(images, "images", ndim=4).double().numpy()
    b = as_float_tensor(refs, "refs", ndim=4).double().numpy()
    if a.shape != b.shape:
        raise ValueError(f"images {a.shape} and refs {b.shape} must have the same shape")
    if min(a.shape[2:]) < 7:
        raise ValueError(f"SSIM needs images of at least 7 x 7 pixels, got {a.shape[2:]}")
    return np.array([np.mean([structural_similarity(x[c], y[c], data_range=2.0, win_size=7)
                              for c in range(a.shape[1])]) for x, y in zip(a, b)])


@dataclass
class GenerationLabels:
    """Per-generation ground truth (every field (m,)): ``copy`` by the nearest-neighbour copy test
    (ratio < 1/3), ``ssim_copy`` by the perceptual criterion (SSIM to the nearest training image
    >= ``ssim_min``), and the raw ``ratio``, ``ssim`` and ``nearest`` index behind them."""
    copy: np.ndarray
    ssim_copy: np.ndarray
    ratio: np.ndarray
    ssim: np.ndarray
    nearest: np.ndarray

    @property
    def agreement(self) -> float:
        """Fraction of generations on which the two criteria agree."""
        return float((self.copy == self.ssim_copy).mean())


def generation_labels(images, X_train, *, ssim_min: float = 0.9) -> GenerationLabels:
    """Label each generated image (m, C, H, W) as a copy of the training set ``X_train`` (n, C, H, W)
    or not, by two criteria: the copy test of :func:`utils.metrics.copy_test` and SSIM (:func:`ssim_to`)
    to the nearest training image (Euclidean) of at least ``ssim_min``."""
    if not 0 < ssim_min <= 1:
        raise ValueError(f"ssim_min must be in (0, 1], got {ssim_min}")
    ct = metrics.copy_test(images, X_train)
    train = as_float_tensor(X_train, "X_train", ndim=4)
    s = ssim_to(images, train[torch.as_tensor(ct.nearest)])
    return GenerationLabels(copy=ct.is_copy.astype(int), ssim_copy=(s >= ssim_min).astype(int),
                            ratio=ct.ratio, ssim=s, nearest=ct.nearest)


def per_prompt(values, prompts):
    """Aggregate per-generation ``values`` (m,) to one value per prompt (the mean over that prompt's
    generations, as Wen et al. average over a prompt's images). ``prompts`` (m,) integer ids.
    Returns (ids (k,) sorted, means (k,))."""
    v = np.asarray(values, dtype=np.float64)
    p = np.asarray(prompts)
    if v.ndim != 1 or v.shape != p.shape:
        raise ValueError(f"values {v.shape} and prompts {p.shape} must be 1-D of one length")
    if not np.isfinite(v).all():
        raise ValueError("values contain NaN or infinity")
    ids, inv = np.unique(p, return_inverse=True)
    return ids, np.bincount(inv, weights=v) / np.bincount(inv)


def _weighted_auroc(s, y, W):
    """AUROC for each row of multiplicities W (draws, n); ties count 1/2."""
    sp, sn = s[y], s[~y]
    wins = (sp[:, None] > sn[None, :]) + 0.5 * (sp[:, None] == sn[None, :])
    wp, wn = W[:, y], W[:, ~y]
    den = wp.sum(1) * wn.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, ((wp @ wins) * wn).sum(1) / den, np.nan)


def _weighted_tpr_at_fpr(s, y, W, fpr):
    """:func:`utils.metrics.tpr_at_fpr` for each row of multiplicities W (draws, n)."""
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    ends = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), len(s) - 1]     # last index of each tie group
    Wp = np.cumsum(W[:, order] * y_sorted, axis=1)[:, ends]
    Wn = np.cumsum(W[:, order] * ~y_sorted, axis=1)[:, ends]
    P, N = Wp[:, -1:], Wn[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr, f = Wp / P, Wn / N
        best = np.where(f <= fpr + 1e-12, tpr, 0.0).max(1)
    return np.where((P[:, 0] > 0) & (N[:, 0] > 0), best, np.nan)


def clustered_bootstrap(scores: dict, labels, clusters, *, draws: int = 1000, fpr: float = 0.01,
                        seed: int = 0) -> dict:
    """AUROC and TPR at ``fpr`` of each detector with bootstrap draws that resample whole clusters.

    ``scores``: {detector: (n,) scores}; ``labels`` (n,) 1 = memorized; ``clusters`` (n,) the unit
    that was sampled (the prompt): every draw takes as many clusters as there are, with
    replacement, and all rows of a drawn cluster together. All detectors share the same draws, so
    differences between them can be read draw by draw. Returns
    {detector: {"auroc", "tpr": point values, "auroc_draws", "tpr_draws": (draws,) arrays}}.
    """
    draws = check_positive_int(draws, "draws")
    y = np.asarray(labels)
    if y.ndim != 1 or not np.isin(y, (0, 1)).all() or y.min() == y.max():
        raise ValueError("labels must be a 1-D array of 0 and 1 containing both classes")
    y = y.astype(bool)
    c = np.asarray(clusters)
    if c.shape != y.shape:
        raise ValueError(f"clusters {c.shape} and labels {y.shape} must have one length")
    if not 0 <= fpr <= 1:
        raise ValueError(f"fpr must be in [0, 1], got {fpr}")
    _, inv = np.unique(c, return_inverse=True)
    k = inv.max() + 1
    rng = np.random.default_rng(seed)
    W = np.stack([np.bincount(rng.integers(0, k, k), minlength=k)[inv] for _ in range(draws)]).astype(float)
    out = {}
    for name, s in scores.items():
        s = np.asarray(s, dtype=np.float64)
        if s.shape != y.shape:
            raise ValueError(f"scores[{name!r}] has shape {s.shape}, labels have {y.shape}")
        if not np.isfinite(s).all():
            raise ValueError(f"scores[{name!r}] contain NaN or infinity")
        out[name] = dict(auroc=metrics.roc_auc(s, y.astype(int)), tpr=metrics.tpr_at_fpr(s, y.astype(int), fpr),
                         auroc_draws=_weighted_auroc(s, y, W), tpr_draws=_weighted_tpr_at_fpr(s, y, W, fpr))
    return out


def ci(draws) -> tuple:
    """The 95% percentile interval (lo, hi) of bootstrap draws, ignoring NaN draws (a draw
    without positives or without negatives)."""
    d = np.asarray(draws, dtype=np.float64)
    lo, hi = np.nanpercentile(d, [2.5, 97.5])
    return float(lo), float(hi)
