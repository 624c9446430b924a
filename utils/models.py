"""Small models studied in the book.

``ReLUDAE``: the two-layer ReLU denoising autoencoder f(x) = W2 [W1^T x]_+ (no biases) of the paper,
at one noise level. Shapes: x (n, d) -> h (n, p) -> f(x) (n, d).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .checks import as_float_tensor, check_positive_int, check_sigma


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


def split_parallel(model: ReLUDAE, units, coeffs=(0.6, 0.8)) -> ReLUDAE:
    """A tied ReLU DAE equal to ``model`` as a function, with each unit j of ``units`` replaced by
    parallel copies c_i w_j (the c_i > 0 with sum_i c_i^2 = 1).

    The kept units come first, in their order; then, for each c_i in turn, the copies c_i w_j of
    every split unit, in the order of ``units``. So the returned model has p + (k - 1) len(units)
    rows, and rows ``p - len(units) + i * len(units) + m`` are the copies of ``units[m]``.
    """
    if not isinstance(model, ReLUDAE) or not model.tied:
        raise TypeError("split_parallel needs a tied utils.models.ReLUDAE")
    units = [int(j) for j in units]
    if not units or len(set(units)) != len(units) or not all(0 <= j < model.p for j in units):
        raise ValueError(f"units must be distinct indices in [0, {model.p}), got {units}")
    c = torch.as_tensor(coeffs, dtype=torch.float64)
    if c.ndim != 1 or len(c) < 2 or (c <= 0).any() or abs(float((c ** 2).sum()) - 1) > 1e-9:
        raise ValueError(f"coeffs must be >= 2 positive numbers whose squares sum to 1, got {coeffs}")
    W = model.encoder_weight.detach()
    keep = [j for j in range(model.p) if j not in units]
    rows = [W[keep]] + [float(ci) * W[units] for ci in c]
    Wn = torch.cat(rows)
    out = ReLUDAE(model.d, Wn.shape[0], seed=0).to(W.dtype)
    with torch.no_grad():
        out.encoder_weight.copy_(Wn)
    return out


class ReLUDiffusion(nn.Module):
    """A time-conditioned ReLU DAE: an x0-predictor for VE diffusion over noise levels sigma.

        u   = (x_t - b) / rms(x_t - b)                       input centred and scaled to RMS 1
        h   = relu(W u) * exp(g(log sigma))                  (n, p) time-scaled representation
        x0  = b + W^T h + c_skip(sigma) * (x_t - b)          tied weights: W encodes and decodes

    * ``encoder_weight`` W (p, d): one row per hidden neuron, used by encoder and decoder.
    * g: a small MLP 1 -> ``time_hidden`` -> p (SiLU), last layer initialised to zero, minus the
      fixed prior 0.5 * log(sigma^2 + sigma_data^2): the multiplicative conditioning of the
      official code, exp(g(log sigma)) on the hidden units.
    * c_skip(sigma) = sigmoid(a + k log sigma), a learnable skip (two scalars), initialised to
      EDM's sigma_data^2 / (sigma^2 + sigma_data^2) (a = 2 log sigma_data, k = -2).
    * ``center`` b (d,): a learnable offset; :func:`utils.train.fit_diffusion` starts it at the
      training mean.

    Two choices differ from the official code, and chapter 7 argues both: the offset b (a
    bias-free ReLU through the origin cannot output the data mean from pure noise), and the RMS
    normalisation of the input (a bias-free ReLU map is positively homogeneous, so without it a
    sample's amplitude about b drifts along the sampling trajectory and memorized samples come
    out as shrunken copies; with it, the output amplitude is set by the weights).

    Args:
        d: input dimension.  p: number of hidden neurons.
        time_hidden: width of the MLP g.  sigma_data: the data scale of the priors above.
        seed: seed of the initialisation (independent of the global RNG).
    Shapes: x_t (n, d), or images (n, C, H, W) with C*H*W = d (the output keeps x_t's shape);
    sigma a positive float or an (n,) tensor.
    """

    def __init__(self, d: int, p: int = 128, *, time_hidden: int = 32, sigma_data: float = 0.5,
                 seed: int = 0):
        super().__init__()
        self.d = check_positive_int(d, "d")
        self.p = check_positive_int(p, "p")
        self.time_hidden = check_positive_int(time_hidden, "time_hidden")
        if isinstance(sigma_data, bool) or not isinstance(sigma_data, (int, float)) \
                or not math.isfinite(sigma_data) or sigma_data <= 0:
            raise ValueError(f"sigma_data must be a positive number, got {sigma_data!r}")
        self.sigma_data = float(sigma_data)
        gen = torch.Generator().manual_seed(int(seed))
        self.encoder_weight = nn.Parameter(torch.randn(p, d, generator=gen) / math.sqrt(d))
        self.center = nn.Parameter(torch.zeros(d))
        self.time_in = nn.Linear(1, time_hidden)
        self.time_out = nn.Linear(time_hidden, p)
        with torch.no_grad():
            self.time_in.weight.copy_(torch.randn(time_hidden, 1, generator=gen))
            self.time_in.bias.copy_(torch.randn(time_hidden, generator=gen))
            self.time_out.weight.zero_()
            self.time_out.bias.zero_()
        self.skip_bias = nn.Parameter(torch.tensor(2 * math.log(self.sigma_data)))
        self.skip_slope = nn.Parameter(torch.tensor(-2.0))

    @property
    def decoder_weight(self) -> torch.Tensor:
        """(p, d): the same matrix as ``encoder_weight`` (tied weights)."""
        return self.encoder_weight

    def _inputs(self, x_t, sigma):
        x = as_float_tensor(x_t, "x_t", ndim=(2, 3, 4))
        shape = tuple(x.shape)
        x = x.reshape(shape[0], -1)
        if x.shape[1] != self.d:
            raise ValueError(f"x_t has {x.shape[1]} features per row but the model expects d={self.d}")
        s = check_sigma(sigma, n=shape[0])
        s = s.expand(shape[0]) if s.ndim == 0 else s
        dtype = self.encoder_weight.dtype
        return x.to(dtype), torch.log(s).to(dtype), shape

    def log_scale(self, log_sigma: torch.Tensor) -> torch.Tensor:
        """g(log sigma): (n,) -> (n, p), the log of each hidden unit's time scale."""
        g = self.time_out(torch.nn.functional.silu(self.time_in(log_sigma[:, None])))
        return g - 0.5 * torch.log(torch.exp(2 * log_sigma) + self.sigma_data ** 2)[:, None]

    def c_skip(self, sigma) -> torch.Tensor:
        """The skip coefficient c_skip(sigma) in (0, 1), for a float or an (n,) tensor of sigmas
        (detached: for inspection; forward uses the same formula with gradients)."""
        s = check_sigma(sigma).to(self.encoder_weight.dtype)
        with torch.no_grad():
            return torch.sigmoid(self.skip_bias + self.skip_slope * torch.log(s))

    def _hidden(self, x, log_sigma):
        xc = x - self.center
        rms = xc.norm(dim=1, keepdim=True) / math.sqrt(self.d)
        u = xc / (rms + 1e-6)
        return xc, torch.relu(u @ self.encoder_weight.T) * torch.exp(self.log_scale(log_sigma))

    def encode(self, x_t, sigma) -> torch.Tensor:
        """The time-scaled representation h = relu(W u) * exp(g(log sigma)), shape (n, p), >= 0."""
        x, ls, _ = self._inputs(x_t, sigma)
        return self._hidden(x, ls)[1]

    def _predict(self, x: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
        """forward without input checks: x (n, d), log_sigma (n,) (the training loop's path)."""
        xc, h = self._hidden(x, log_sigma)
        skip = torch.sigmoid(self.skip_bias + self.skip_slope * log_sigma)[:, None]
        return self.center + h @ self.encoder_weight + skip * xc

    def forward(self, x_t, sigma) -> torch.Tensor:
        """The x0 estimate b + W^T h + c_skip(sigma) (x_t - b), shaped like ``x_t``."""
        x, ls, shape = self._inputs(x_t, sigma)
        return self._predict(x, ls).reshape(shape)

    def extra_repr(self) -> str:
        return f"d={self.d}, p={self.p}, time_hidden={self.time_hidden}, tied=True"
