"""Read intermediate activations ("representations") of any torch model with forward hooks."""
from __future__ import annotations

import difflib
from contextlib import contextmanager

import torch


def resolve_modules(model: torch.nn.Module, names) -> dict:
    """Map each requested module name to the module; unknown names raise ``ValueError`` that
    lists close matches. ``names`` is a string or a list of strings (``model.named_modules()``)."""
    if isinstance(names, str):
        names = [names]
    names = list(names)
    if not names:
        raise ValueError("names is empty: give at least one module name")
    available = dict(model.named_modules())
    out = {}
    for name in names:
        if name not in available:
            close = difflib.get_close_matches(name, [k for k in available if k], n=5, cutoff=0.5)
            hint = f"; close matches: {', '.join(close)}" if close else \
                f"; the model has {len(available) - 1} named modules, e.g. {', '.join(list(available)[1:6])}"
            raise ValueError(f"unknown module name {name!r}{hint}")
        out[name] = available[name]
    return out


def _first_tensor(output):
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    if hasattr(output, "sample") and isinstance(output.sample, torch.Tensor):
        return output.sample
    raise TypeError(f"cannot take a tensor from a module output of type {type(output).__name__}")


@contextmanager
def capture(model: torch.nn.Module, names):
    """Context manager yielding ``{name: last output}`` for the named submodules.

    The dict is filled on every forward pass (the last pass wins); outputs are detached.
    Hooks are removed on exit, also when the body raises.

        with capture(unet, ["mid_block", "up_blocks.0"]) as reps:
            unet(x, t)
        reps["mid_block"].shape
    """
    modules = resolve_modules(model, names)
    store: dict = {}
    handles = []
    try:
        for name, module in modules.items():
            def hook(_m, _inp, output, name=name):
                store[name] = _first_tensor(output).detach()
            handles.append(module.register_forward_hook(hook))
        yield store
    finally:
        for h in handles:
            h.remove()
