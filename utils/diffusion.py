"""Denoisers and samplers for variance-exploding (VE) diffusion with x0-prediction.

Forward process: x_sigma = x_0 + sigma * eps, eps ~ N(0, I). A denoiser maps (x_sigma, sigma) to
an estimate of x_0. Both functions here work with any such denoiser, the closed-form
:func:`empirical_denoiser` included, so the book's samplers are one piece of code.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .checks import as_float_tensor, check_positive_int, check_sigma


def _softmax_weights(yf: torch.Tensor, Xf: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """softmax_i(-||y - x_i||^2 / (2 s^2)) for float64 rows yf (m, d), Xf (n, d) and s (m,) or
    a scalar tensor -> (m, n). Direct differences (no cancellation) and log-sum-exp."""
    d2 = torch.cdist(yf, Xf, compute_mode="donot_use_mm_for_euclid_dist") ** 2
    s = s.reshape(-1, 1) if s.ndim else s
    return torch.softmax(-d2 / (2 * s ** 2), dim=1)


def posterior_weights(y, X_train, sigma) -> torch.Tensor:
    """The weights w_i(y) of :func:`empirical_denoiser`: the posterior probability that the clean
    point is x_i given y = x_i + sigma * eps. (m, d) inputs, (n, d) training points -> (m, n)
    float64; ``sigma`` a positive float."""
    yt = as_float_tensor(y, "y", ndim=2).double()
    X = as_float_tensor(X_train, "X_train", ndim=2).double()
    if yt.shape[1] != X.shape[1]:
        raise ValueError(f"y has {yt.shape[1]} features but X_train has {X.shape[1]}")
    return _softmax_weights(yt, X, torch.as_tensor(float(check_sigma(sigma)), dtype=torch.float64))


def empirical_denoiser(y, X_train, sigma, *, chunk_size: int | None = None) -> torch.Tensor:
    """The exact minimizer of the denoising loss on a finite training set.

    f_emp(y) = sum_i w_i(y) x_i with w(y) = softmax_i(-||y - x_i||^2 / (2 sigma^2)).

    Args:
        y: noisy inputs, (m, d) or images (m, C, H, W).
        X_train: training set with the same trailing shape, (n, d) or (n, C, H, W).
        sigma: noise level, a positive float or an (m,) tensor (one per input).
        chunk_size: inputs processed at once; memory is about chunk_size * n float64s. The
            default picks the largest chunk with chunk_size * n <= 2**24 (128 MB).
    Returns:
        Tensor shaped like ``y`` in y's floating dtype.

    Numerics: distances are computed in float64 as direct differences (no ||a||^2 - 2ab + ||b||^2
    cancellation) and the softmax uses log-sum-exp, so the weights stay exact for sigma down to
    1e-3 and d in the thousands, where a naive float32 version returns NaN or the wrong point.
    """
    yt = as_float_tensor(y, "y", ndim=(2, 3, 4))
    X = as_float_tensor(X_train, "X_train", ndim=(2, 3, 4))
    if yt.shape[1:] != X.shape[1:]:
        raise ValueError(f"y has trailing shape {tuple(yt.shape[1:])} but X_train has "
                         f"{tuple(X.shape[1:])}; they must match")
    m = yt.shape[0]
    s = check_sigma(sigma, n=m)
    s = s.expand(m) if s.ndim == 0 else s
    n = X.shape[0]
    chunk_size = max(1, 2**24 // max(n, 1)) if chunk_size is None else check_positive_int(chunk_size, "chunk_size")
    yf = yt.reshape(m, -1).double()
    Xf = X.reshape(X.shape[0], -1).double()
    out = torch.empty_like(yf)
    for start in range(0, m, chunk_size):
        sl = slice(start, start + chunk_size)
        out[sl] = _softmax_weights(yf[sl], Xf, s[sl].double()) @ Xf
    return out.to(yt.dtype).reshape(yt.shape)


def empirical_jacobian(y, X_train, sigma) -> torch.Tensor:
    """Jacobian of :func:`empirical_denoiser` at each input: (m, d) inputs -> (m, d, d) float64.

    J(y) = Cov_w(x) / sigma^2 = sum_i w_i(y) (x_i - f(y))(x_i - f(y))^T / sigma^2, the posterior
    covariance of the training point given y, divided by sigma^2 (chapter 1's exercise
    ex-emp-jacobian proves it). It is symmetric positive semidefinite, and it vanishes when the
    posterior sits on one training point.
    ``sigma`` is a positive float.
    """
    w = posterior_weights(y, X_train, sigma)                        # (m, n), validates the inputs
    X = as_float_tensor(X_train, "X_train", ndim=2).double()
    s = float(check_sigma(sigma))
    f = w @ X                                                       # (m, d)
    D = X[None, :, :] - f[:, None, :]                               # (m, n, d)
    return torch.einsum("mn,mnd,mne->mde", w, D, D) / s ** 2


def noise_levels(sigma_max: float = 2.0, sigma_min: float = 0.02, steps: int = 60) -> torch.Tensor:
    """``steps`` geometrically spaced noise levels from sigma_max down to sigma_min (float64)."""
    smax = float(check_sigma(sigma_max, "sigma_max"))
    smin = float(check_sigma(sigma_min, "sigma_min"))
    if smin >= smax:
        raise ValueError(f"sigma_min ({smin}) must be smaller than sigma_max ({smax})")
    check_positive_int(steps, "steps", minimum=2)
    return torch.exp(torch.linspace(math.log(smax), math.log(smin), steps, dtype=torch.float64))


@torch.no_grad()
def sample_ve(denoise: Callable, shape, *, sigma_max: float = 2.0, sigma_min: float = 0.02,
              steps: int = 60, stochastic: bool = True, clip: bool = True, seed: int = 0,
              return_trajectory: bool = False):
    """Sample with a VE diffusion over ``steps`` geometric noise levels.

    Args:
        denoise: ``denoise(x, sigma) -> x0 estimate``, x of shape ``shape`` and sigma a float,
            e.g. a model or ``lambda x, s: empirical_denoiser(x, X_train, s)``.
        shape: output shape, (n, d) or (n, C, H, W).
        stochastic: True for ancestral sampling (the exact Gaussian posterior step
            x_{s'} ~ N(x0 + (s'^2/s^2)(x_s - x0), s'^2 (s^2 - s'^2)/s^2 I));
            False for the probability-flow ODE with Euler steps in sigma
            (x_{s'} = x0 + (s'/s)(x_s - x0), which is also DDIM for VE).
        clip: clamp each x0 estimate to [-1, 1] (data range of the book's images).
        seed: seed of the sampler's own generator (initial noise and ancestral noise).
        return_trajectory: also return a dict with 'sigmas' (S,), 'x' (S, *shape), the noisy
            states before each step, and 'x0' (S, *shape), the denoiser's estimates.
    Returns:
        The final x0 estimate at sigma_min, a float32 tensor of ``shape``
        (and the trajectory dict when requested).
    """
    if not callable(denoise):
        raise TypeError("denoise must be callable as denoise(x, sigma)")
    shape = tuple(int(v) for v in shape)
    if len(shape) < 2 or min(shape) < 1:
        raise ValueError(f"shape must be (n, d) or (n, C, H, W) with positive sizes, got {shape}")
    sigmas = noise_levels(sigma_max, sigma_min, steps)
    gen = torch.Generator().manual_seed(int(seed))
    x = torch.randn(shape, generator=gen) * float(sigmas[0])
    xs, x0s = [], []
    for i, s in enumerate(sigmas.tolist()):
        x0 = denoise(x, s)
        if not isinstance(x0, torch.Tensor) or tuple(x0.shape) != shape:
            got = tuple(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__
            raise ValueError(f"denoise returned {got}, expected a tensor of shape {shape}")
        x0 = x0.float()
        if not torch.isfinite(x0).all():
            raise ValueError(f"denoise returned NaN or inf at sigma={s:.4g}")
        if clip:
            x0 = x0.clamp(-1, 1)
        if return_trajectory:
            xs.append(x.clone())
            x0s.append(x0.clone())
        if i == len(sigmas) - 1:
            break
        s_next = float(sigmas[i + 1])
        if stochastic:
            mean = x0 + (s_next ** 2 / s ** 2) * (x - x0)
            std = s_next * math.sqrt(1 - s_next ** 2 / s ** 2)
            x = mean + std * torch.randn(shape, generator=gen)
        else:
            x = x0 + (s_next / s) * (x - x0)
    if return_trajectory:
        return x0, {"sigmas": sigmas.float(), "x": torch.stack(xs), "x0": torch.stack(x0s)}
    return x0
