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


def _check_resnet(name: str, module: torch.nn.Module) -> None:
    for attr in ("norm2", "nonlinearity", "dropout", "conv2"):
        if not hasattr(module, attr):
            raise ValueError(f"module {name!r} ({type(module).__name__}) is not a diffusers ResnetBlock2D: "
                             f"it has no {attr!r}; name a resnet such as 'up_blocks.0.resnets.0'")


@contextmanager
def capture_post_norm2(model: torch.nn.Module, resnet_names):
    """Context manager yielding ``{name: post-norm2 activation}`` of the named diffusers resnets.

    This is the probe site of the official code (``2-Application/rep_extraction_utils.py``, used by
    ``SD_compare_reps.ipynb``), which hooks ``up_blocks.0.resnets.{0,1,2}.nonlinearity``: the SiLU
    module is shared by a resnet's three activations, and the last call of a forward pass is the
    one after ``norm2`` (and the time embedding), so the official hook keeps
    ``SiLU(norm2(conv1(SiLU(norm1(x))) + temb))``, a nearly non-negative (n, C, h, w) map.

    Here the same tensor is read without relying on call order: a forward pre-hook on the
    resnet's ``dropout``, whose input is by construction that activation (``dropout`` is called
    exactly once, right after it). Tensors are detached; hooks are removed on exit.

        with capture_post_norm2(unet, ["up_blocks.0.resnets.0"]) as reps:
            unet(x, t)
        reps["up_blocks.0.resnets.0"].shape        # (n, C, h, w)
    """
    modules = resolve_modules(model, resnet_names)
    for name, module in modules.items():
        _check_resnet(name, module)
    store: dict = {}
    handles = []
    try:
        for name, module in modules.items():
            def pre_hook(_m, args, name=name):
                store[name] = args[0].detach()
            handles.append(module.dropout.register_forward_pre_hook(pre_hook))
        yield store
    finally:
        for h in handles:
            h.remove()


def resnet_names(model: torch.nn.Module, block: str = "up_blocks.0") -> list:
    """The names of the resnets of ``block`` (e.g. ``["up_blocks.0.resnets.0", ...]``): the
    official probe reads all of them (three in Stable Diffusion v1.4, two in the book's U-Nets)."""
    mods = resolve_modules(model, block)
    resnets = getattr(mods[block], "resnets", None)
    if resnets is None or len(resnets) == 0:
        raise ValueError(f"module {block!r} has no resnets")
    return [f"{block}.resnets.{i}" for i in range(len(resnets))]
