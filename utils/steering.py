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
