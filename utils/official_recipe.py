"""The official code's recipe for the memorizing ReLU DAE, reproduced as that code does it.

Source: la0ka1/diffusion-gen-from-rep, ``1-Theory/ReLU_DAE.ipynb``, cells "ReLU-DAE model" and
"Train a memorized model (5 samples)":

* ``nn.Linear(d, p, bias=False)`` encoder with PyTorch's default initialisation,
  U(-1/sqrt(d), 1/sqrt(d)); the decoder is tied by ``decoder.weight = nn.Parameter(encoder.weight.t())``,
  which makes a *second* leaf parameter sharing the encoder's storage, so the optimizer keeps
  separate state for the encoder's and the decoder's gradient and updates the shared weights twice
  per step (reproduced here, since it changes the dynamics);
* ``RMSprop(lr=1e-3, weight_decay=1e-2)`` (coupled L2, alpha 0.99), no scheduler, no other penalty;
* ``MSELoss()`` (mean over the batch and the coordinates), full batch of the training images, fresh
  noise ``sigma * randn`` every step; 50,000 steps in the official notebook.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .checks import as_float_tensor, check_positive_int, check_sigma
from .models import ReLUDAE

OFFICIAL = {"lr": 1e-3, "weight_decay": 1e-2, "steps": 50_000}


def fit_dae_official(X, *, sigma: float, p: int = 100, steps: int = OFFICIAL["steps"],
                     lr: float = OFFICIAL["lr"], weight_decay: float = OFFICIAL["weight_decay"],
                     seed: int = 1, snapshots=()) -> tuple[dict[int, ReLUDAE], list[float]]:
    """Train a tied ReLU DAE on ``X`` (n, d) with the official memorization recipe.

    Args:
        X: training images (n, d), trained on as one full batch.
        sigma: noise level.  p: hidden units.  steps, lr, weight_decay: the recipe (defaults official).
        seed: seeds the initialisation and the noise.
        snapshots: steps (1..steps) after which to keep a copy of the weights; ``steps`` always is.
    Returns:
        ({step: ReLUDAE with those weights}, the training loss at every step (mean over coordinates)).
    """
    Xt = as_float_tensor(X, "X", ndim=2).float()
    n, d = Xt.shape
    sig = float(check_sigma(sigma))
    p = check_positive_int(p, "p")
    steps = check_positive_int(steps, "steps")
    keep = {check_positive_int(s, "snapshot step") for s in snapshots} | {steps}
    if max(keep) > steps:
        raise ValueError(f"snapshot steps must be <= steps={steps}, got {max(keep)}")
    gen = torch.Generator().manual_seed(int(seed))
    bound = 1 / math.sqrt(d)
    enc = nn.Parameter(torch.empty(p, d).uniform_(-bound, bound, generator=gen))
    dec = nn.Parameter(enc.data.t())          # shares enc's storage, as in the official tie
    opt = torch.optim.RMSprop([enc, dec], lr=lr, weight_decay=weight_decay, foreach=False)
    out: dict[int, ReLUDAE] = {}
    losses = []
    old = torch.get_num_threads()
    torch.set_num_threads(1)                  # tiny products: one thread is fastest (utils.train)
    try:
        for step in range(1, steps + 1):
            y = Xt + sig * torch.randn(Xt.shape, generator=gen)
            loss = ((torch.relu(y @ enc.T) @ dec.T - Xt) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            lv = float(loss.detach())
            if not math.isfinite(lv):
                raise FloatingPointError(f"the loss became {lv} at step {step}")
            losses.append(lv)
            if step in keep:
                m = ReLUDAE(d, p, seed=0)
                with torch.no_grad():
                    m.encoder_weight.copy_(enc.detach())
                out[step] = m.eval()
    finally:
        torch.set_num_threads(old)
    return out, losses
