"""Training-free representation steering: add a direction to chosen modules' outputs."""
from __future__ import annotations

from contextlib import contextmanager

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
