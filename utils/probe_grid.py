"""Many representation probes of a U-Net at once, and choosing one of them without reading the
test set (chapter 8).

A *probe* is a key ``(site, timestep, pooling, statistic)``: ``site`` is ``"output:<module>"``
(the module's output, e.g. the ``up_blocks.0`` block output) or ``"post_norm2:<resnet>"`` (the
SiLU after norm2 inside a diffusers resnet, the official code's site, see
:func:`utils.representations.capture_post_norm2`); the feature map is pooled over space
(``"max"``/``"mean"``) and scored by :func:`utils.metrics.spikiness` (higher = spikier).

    feats = probe_features(model, sched, images, outputs=["up_blocks.0"],
                           resnets=["up_blocks.0.resnets.0"], timesteps=[10])
    scores = score_grid(feats)                      # {probe key: (n,) scores}
    key = select_probe(scores_on_split_A, labels_A)  # choose on one split ...
    roc_auc(scores_on_split_B[key], labels_B)        # ... report on another
"""
from __future__ import annotations

from contextlib import ExitStack

import numpy as np
import torch

from .checks import as_float_tensor
from .metrics import SPIKINESS_KINDS, roc_auc, spikiness

#: The official probe of ``2-Application/rep_extraction_utils.py``: training timestep 10, max
#: pooling over space, standard deviation over channels, at the post-norm2 SiLU of each resnet of
#: ``up_blocks.0`` (``OFFICIAL_SITE.format(i)`` gives the site of resnet i).
OFFICIAL_SITE = "post_norm2:up_blocks.0.resnets.{}"
OFFICIAL_RECIPE = (10, "max", "std")


def official_key(resnet: int = 0) -> tuple:
    """The probe key of the official recipe at resnet ``resnet`` of ``up_blocks.0``."""
    return (OFFICIAL_SITE.format(int(resnet)), *OFFICIAL_RECIPE)


@torch.no_grad()
def probe_features(model, scheduler, images, *, outputs=(), resnets=(), timesteps=(10,),
                   seed: int = 0, class_labels=None) -> dict:
    """Feature maps of every site at every timestep, one U-Net pass per timestep.

    ``images`` (n, C, H, W) in [-1, 1]; ``outputs``: module names whose outputs are read;
    ``resnets``: resnet names whose post-norm2 SiLU is read. The noise is that of
    :func:`utils.unet.probe` with the same ``seed`` (so results agree with it site by site).
    Returns ``{(site, t): (n, C', h, w)}`` with ``site`` = ``"output:<name>"`` or
    ``"post_norm2:<name>"``.
    """
    from .representations import capture, capture_post_norm2
    from .unet import check_labels
    x0 = as_float_tensor(images, "images", ndim=4).float()
    outputs, resnets = list(outputs), list(resnets)
    if not outputs and not resnets:
        raise ValueError("name at least one site: outputs or resnets")
    labels = check_labels(model, class_labels, x0.shape[0])
    T = scheduler.config.num_train_timesteps
    ts = list(timesteps)
    for t in ts:
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < T:
            raise ValueError(f"timesteps must be integers in [0, {T - 1}], got {t!r}")
    was_training = model.training
    model.eval()
    out = {}
    for t in ts:
        gen = torch.Generator().manual_seed(int(seed))
        eps = torch.randn(x0.shape, generator=gen)
        tt = torch.full((x0.shape[0],), t, dtype=torch.long)
        xt = scheduler.add_noise(x0, eps, tt)
        with ExitStack() as stack:
            a = stack.enter_context(capture(model, outputs)) if outputs else {}
            b = stack.enter_context(capture_post_norm2(model, resnets)) if resnets else {}
            model(xt, tt, class_labels=labels)
        out.update({(f"output:{k}", t): v for k, v in a.items()})
        out.update({(f"post_norm2:{k}", t): v for k, v in b.items()})
    model.train(was_training)
    return out


def score_grid(features: dict, *, pools=("max", "mean"), kinds=SPIKINESS_KINDS) -> dict:
    """``{(site, t, pool, kind): (n,) scores}`` for every feature map of :func:`probe_features`,
    every pooling and every spikiness kind."""
    from .unet import pool
    scores = {}
    for (site, t), f in features.items():
        for how in pools:
            P = pool(f, how)
            for kind in kinds:
                scores[site, t, how, kind] = spikiness(P, kind)
    return scores


def select_probe(scores: dict, labels) -> tuple:
    """The key of ``scores`` with the largest AUROC against ``labels`` (1 = memorized); ties go to
    the first key in the dict's order. Use it on a selection split only."""
    if not scores:
        raise ValueError("scores is empty")
    best, best_auc = None, -1.0
    for key, s in scores.items():
        a = roc_auc(s, labels)
        if a > best_auc:
            best, best_auc = key, a
    return best


def describe(key) -> str:
    """A probe key as text: ``'post-norm2 SiLU of up_blocks.0.resnets.0, t=10, max, std'``."""
    site, t, how, kind = key
    where, name = site.split(":", 1)
    place = f"post-norm2 SiLU of {name}" if where == "post_norm2" else f"output of {name}"
    return f"{place}, t={t}, {how}, {kind}"


def auroc_table(scores: dict, labels) -> dict:
    """``{key: AUROC}`` of every probe against ``labels``."""
    y = np.asarray(labels)
    return {k: roc_auc(s, y) for k, s in scores.items()}
