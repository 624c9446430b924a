"""Small models studied in the book.

``ReLUDAE``: the two-layer ReLU denoising autoencoder f(x) = W2 [W1^T x]_+ (no biases) of the paper,
at one noise level. Shapes: x (n, d) -> h (n, p) -> f(x) (n, d).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .checks import as_float_tensor, check_positive_int


class ReLUDAE(nn.Module):
    """f(x) = W2 relu(W1^T x) with W1, W2 of shape (d, p); tied means W2 = W1.

    Stored as ``encoder_weight`` (p, d), one row per hidden neuron (the row is W1's column), and,
    when untied, ``decoder_weight`` (p, d) (rows are W2's columns).

    Args:
        d: input dimension.  p: number of hidden neurons.
        tied: share encoder and decoder weights (the paper's default).
        init_scale: std of the i.i.d. Gaussian initialisation (default 1/sqrt(d)).
        seed: seed of the initialisation (independent of the global RNG).
    """

    def __init__(self, d: int, p: int, *, tied: bool = True, init_scale: float | None = None,
                 seed: int = 0):
        super().__init__()
        self.d = check_positive_int(d, "d")
        self.p = check_positive_int(p, "p")
        self.tied = bool(tied)
        scale = 1 / math.sqrt(d) if init_scale is None else float(init_scale)
        gen = torch.Generator().manual_seed(int(seed))
        self.encoder_weight = nn.Parameter(torch.randn(p, d, generator=gen) * scale)
        if self.tied:
            self.register_parameter("_decoder_weight", None)
        else:
            self._decoder_weight = nn.Parameter(torch.randn(p, d, generator=gen) * scale)

    @property
    def decoder_weight(self) -> torch.Tensor:
        """(p, d): row i is what neuron i writes to the output."""
        return self.encoder_weight if self.tied else self._decoder_weight

    def _check(self, x) -> torch.Tensor:
        x = as_float_tensor(x, "x", ndim=2)
        if x.shape[1] != self.d:
            raise ValueError(f"x has {x.shape[1]} features but the model expects d={self.d}")
        return x.to(self.encoder_weight.dtype)

    def encode(self, x) -> torch.Tensor:
        """The representation h(x) = relu(W1^T x), shape (n, p), entries >= 0."""
        return torch.relu(self._check(x) @ self.encoder_weight.T)

    def forward(self, x) -> torch.Tensor:
        """The denoised output W2 h(x), shape (n, d)."""
        return self.encode(x) @ self.decoder_weight

    def extra_repr(self) -> str:
        return f"d={self.d}, p={self.p}, tied={self.tied}"
