"""Training-free representation steering: add a direction to chosen modules' outputs."""
from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import torch

from .checks import as_float_tensor
from .representations import resolve_modules


def _add(output, vec, alpha):
    if isinstance(output, torch.Tensor):
        if output.ndim < 2 or output.shape[1] != vec.shape[0]:
            raise ValueError(f"steering vector has {vec.shape[0]} channels but the module output "
                             f"has shape {tuple(output.shape)} (channels are dimension 1)")
        v = vec.to(output.dtype).to(output.device).view(1, -1, *([1] * (output.ndim - 2)))
        return output + alpha * v
    if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
        return (_add(output[0], vec, alpha),) + tuple(output[1:])
    raise TypeError(f"cannot steer a module output of type {type(output).__name__}")


@contextmanager
def steer(model: torch.nn.Module, directions: dict, alpha: float, *, active=None):
    """Add ``alpha * v`` to each named module's output while the context is open.

    Args:
        directions: ``{module name: vector (C,)}``; the vector is broadcast over every dimension
            of the output except the channel dimension 1 (batch, and space for images).
        alpha: steering strength (float).
        active: optional zero-argument callable; steering applies only on forward passes where it
            returns True (e.g. a time window during sampling).
    Hooks are removed on exit, also when the body raises.
    """
    if not isinstance(directions, dict) or not directions:
        raise ValueError("directions must be a non-empty dict {module name: vector}")
    alpha = float(alpha)
    modules = resolve_modules(model, list(directions))
    vecs = {k: as_float_tensor(v, f"directions[{k!r}]", ndim=1) for k, v in directions.items()}
    handles = []
    try:
        for name, module in modules.items():
            def hook(_m, _inp, output, name=name):
                if active is not None and not active():
                    return output
                return _add(output, vecs[name], alpha)
            handles.append(module.register_forward_hook(hook))
        yield model
    finally:
        for h in handles:
            h.remove()


def mean_difference(positive, negative) -> torch.Tensor:
    """The steering direction mean(positive) - mean(negative) of two sets of pooled
    representations (n+, C) and (n-, C) -> (C,)."""
    pos = as_float_tensor(positive, "positive", ndim=2).float()
    neg = as_float_tensor(negative, "negative", ndim=2).float()
    if pos.shape[1] != neg.shape[1]:
        raise ValueError(f"positive has {pos.shape[1]} channels but negative has {neg.shape[1]}")
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("positive and negative need at least one row each")
    return pos.mean(0) - neg.mean(0)


@contextmanager
def timestep_window(model: torch.nn.Module, *, t_max: int, t_min: int = 0):
    """Yield a zero-argument callable that is True while the model runs a forward pass at a
    timestep t with ``t_min <= t < t_max``; pass it as ``active=`` to :func:`steer`.

    The timestep is read from the second positional argument or the ``timestep`` keyword of
    ``model.forward`` (diffusers UNets), through a pre-hook removed on exit. Sampling runs from
    large t to small t, so ``t_max=500`` steers the second half of a 1000-step schedule.
    """
    if isinstance(t_max, bool) or isinstance(t_min, bool) or not (
            isinstance(t_max, int) and isinstance(t_min, int)) or not 0 <= t_min < t_max:
        raise ValueError(f"need integers 0 <= t_min < t_max, got t_min={t_min!r}, t_max={t_max!r}")
    state = {"t": None}

    def pre(_module, args, kwargs):
        t = args[1] if len(args) > 1 else kwargs.get("timestep")
        if t is None:
            raise ValueError("timestep_window: the model was called without a timestep")
        t = torch.as_tensor(t)
        state["t"] = int(t.flatten()[0]) if t.numel() else None

    handle = model.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        yield lambda: state["t"] is not None and t_min <= state["t"] < t_max
    finally:
        handle.remove()


def step_window(timesteps, *, last: int, skip_final: int = 0) -> tuple[int, int]:
    """The ``(t_min, t_max)`` for :func:`timestep_window` that steers exactly the last ``last``
    steps of a sampling schedule except its final ``skip_final`` ones.

    ``timesteps``: the sampler's timesteps in the order they run (strictly decreasing integers,
    ``scheduler.timesteps`` after ``set_timesteps``). The official Stable Diffusion recipe is
    ``last=20, skip_final=2`` for 40 DDIM steps (steps 21-38); :func:`scaled_window` scales it to
    another number of steps.
    """
    t = [int(v) for v in torch.as_tensor(timesteps).flatten().tolist()]
    if len(t) < 2 or any(a <= b for a, b in zip(t, t[1:])):
        raise ValueError(f"timesteps must be at least two strictly decreasing integers, got {t}")
    for name, v in (("last", last), ("skip_final", skip_final)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    if not skip_final < last <= len(t):
        raise ValueError(f"need skip_final < last <= number of steps ({len(t)}), got "
                         f"last={last}, skip_final={skip_final}")
    steered = t[len(t) - last:len(t) - skip_final]
    return steered[-1], steered[0] + 1


def scaled_window(steps: int, *, reference_steps: int = 40, last: int = 20,
                  skip_final: int = 2) -> tuple[int, int]:
    """Scale a window of ``last`` steps minus the final ``skip_final`` (of ``reference_steps``,
    the official recipe's 40 DDIM steps) to a sampler of ``steps`` steps, keeping the fractions
    and rounding half up; at least one final step stays unsteered when the reference skips any.
    Returns ``(last, skip_final)`` for :func:`step_window`."""
    for name, v in (("steps", steps), ("reference_steps", reference_steps), ("last", last)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if isinstance(skip_final, bool) or not isinstance(skip_final, int) or not 0 <= skip_final < last <= reference_steps:
        raise ValueError(f"need 0 <= skip_final < last <= reference_steps, got {skip_final}, {last}, {reference_steps}")
    new_last = max(1, int(math.floor(last * steps / reference_steps + 0.5)))
    new_skip = int(math.floor(skip_final * steps / reference_steps + 0.5))
    if skip_final > 0:
        new_skip = max(1, new_skip)
    if not new_skip < new_last:
        raise ValueError(f"{steps} steps are too few to scale this window")
    return new_last, new_skip


def random_directions(directions: dict, *, seed: int = 0) -> dict:
    """Control directions: for each module, a Gaussian random vector rescaled to the norm of
    that module's steering vector in ``directions`` ({name: (C,)}). Same ``seed``, same draw."""
    if not isinstance(directions, dict) or not directions:
        raise ValueError("directions must be a non-empty dict {module name: vector}")
    gen = torch.Generator().manual_seed(int(seed))
    out = {}
    for name, v in directions.items():
        v = as_float_tensor(v, f"directions[{name!r}]", ndim=1).float()
        r = torch.randn(v.shape, generator=gen)
        out[name] = r * (v.norm() / r.norm())
    return out


def knn_class(images, reference, reference_classes, *, k: int = 5) -> np.ndarray:
    """The class of each image by a majority vote of its ``k`` nearest reference images
    (Euclidean; ties go to the smaller class). ``images`` (m, ...), ``reference`` (n, ...),
    ``reference_classes`` (n,) integers -> (m,) int64. Chapter 10 uses it as its content measure:
    does a steered generation keep the class of the unsteered one?"""
    from .metrics import nearest_neighbors
    cls = np.asarray(torch.as_tensor(reference_classes)).astype(np.int64)
    if cls.ndim != 1 or len(cls) != len(reference):
        raise ValueError(f"reference_classes must have shape ({len(reference)},), got {cls.shape}")
    if len(cls) and cls.min() < 0:
        raise ValueError("reference_classes must be non-negative integers")
    _, idx = nearest_neighbors(images, reference, k=k)
    votes = cls[idx]                                                     # (m, k)
    counts = np.stack([np.bincount(v, minlength=cls.max() + 1) for v in votes])
    return counts.argmax(1).astype(np.int64)


def shuffled_directions(positive: dict, negative: dict, like: dict, *, seed: int = 0) -> dict:
    """Shuffled-reference control directions: pool each module's positive (n+, C) and negative
    (n-, C) reference representations, split the pooled references at random into groups of n+
    and n- (one split, the same references for every module: ``seed``), and take the difference
    of the two groups' means, rescaled to the norm of ``like[module]`` (the steering vector).

    Unlike :func:`random_directions`, the result lies along directions in which the references'
    representations actually vary, but it carries no attribute by construction.
    ``positive``, ``negative``, ``like``: dicts with the same module names -> {name: (C,)}."""
    for name, d in (("positive", positive), ("negative", negative), ("like", like)):
        if not isinstance(d, dict) or not d:
            raise ValueError(f"{name} must be a non-empty dict {{module name: tensor}}")
    if not set(positive) == set(negative) == set(like):
        raise ValueError(f"positive, negative and like must name the same modules, got "
                         f"{sorted(positive)}, {sorted(negative)}, {sorted(like)}")
    sizes = {(len(positive[k]), len(negative[k])) for k in positive}
    if len(sizes) != 1:
        raise ValueError(f"every module needs the same numbers of references, got {sorted(sizes)}")
    n_pos, n_neg = sizes.pop()
    perm = torch.randperm(n_pos + n_neg, generator=torch.Generator().manual_seed(int(seed)))
    out = {}
    for name in positive:
        pos = as_float_tensor(positive[name], f"positive[{name!r}]", ndim=2).float()
        neg = as_float_tensor(negative[name], f"negative[{name!r}]", ndim=2).float()
        ref = as_float_tensor(like[name], f"like[{name!r}]", ndim=1).float()
        if pos.shape[1] != ref.shape[0]:
            raise ValueError(f"{name}: references have {pos.shape[1]} channels but like has {ref.shape[0]}")
        both = torch.cat([pos, neg])[perm]
        d = mean_difference(both[:n_pos], both[n_pos:])
        if float(d.norm()) == 0:
            raise ValueError(f"{name}: the shuffled difference is zero; cannot rescale it")
        out[name] = d * (ref.norm() / d.norm())
    return out
