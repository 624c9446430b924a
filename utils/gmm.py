"""The Bayes-optimal denoiser of a mixture of low-rank Gaussians (closed form) and its error.

Data model (:class:`utils.data.MixtureParams`): component j, chosen with probability w_j, draws

    x = mu_j + U_j (s_j * a) + tau e,      a ~ N(0, I_r), e ~ N(0, I_d),

with U_j (d, r) orthonormal, s_j (r,) the standard deviations along its columns and tau the
isotropic ``noise_std`` (0: exactly low rank). So x | j ~ N(mu_j, Sigma_j) with
Sigma_j = U_j S_j U_j^T + tau^2 I, S_j = diag(s_j^2). We observe y = x + sigma eps.

Closed forms (rho^2 = tau^2 + sigma^2, D_j = diag(s_j^2 / (s_j^2 + rho^2)), r = y - mu_j):

* per component (the Wiener / linear denoiser of one Gaussian)
      E[x | y, j] = y - (sigma^2 / rho^2) (r - U_j D_j U_j^T r)
  which for tau = 0 is mu_j + U_j D_j U_j^T (y - mu_j);
* responsibilities pi_j(y) = softmax_j(log w_j + log N(y; mu_j, Sigma_j + sigma^2 I)) with
      log det(Sigma_j + sigma^2 I) = (d - r) log rho^2 + sum_k log(s_jk^2 + rho^2),
      r^T (Sigma_j + sigma^2 I)^-1 r = (||r||^2 - sum_k D_jk (U_j^T r)_k^2) / rho^2
  (Woodbury and the matrix determinant lemma: no d x d matrix is formed or inverted);
* the mixture: E[x | y] = sum_j pi_j(y) E[x | y, j].

Everything is computed in float64, with ||r||^2 taken as a direct difference and the softmax in
log space, so it stays exact for tiny sigma and large d. Errors are reported per sample,
summed over the d coordinates (the convention of :func:`utils.train.fit_dae`).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .checks import as_float_tensor, check_positive_int, check_sigma


def _check_params(params):
    for name in ("means", "bases", "scales", "weights"):
        if not hasattr(params, name):
            raise TypeError("params must be a utils.data.MixtureParams (means, bases, scales, "
                            f"weights, noise_std); it has no attribute {name!r}")
    means = as_float_tensor(params.means, "params.means", ndim=2).double()
    bases = as_float_tensor(params.bases, "params.bases", ndim=3).double()
    scales = as_float_tensor(params.scales, "params.scales", ndim=2).double()
    weights = as_float_tensor(params.weights, "params.weights", ndim=1).double()
    k, d = means.shape
    if bases.shape[:2] != (k, d) or scales.shape != (k, bases.shape[2]) or weights.shape != (k,):
        raise ValueError(f"inconsistent mixture shapes: means {tuple(means.shape)}, bases "
                         f"{tuple(bases.shape)}, scales {tuple(scales.shape)}, weights "
                         f"{tuple(weights.shape)}; expected (k, d), (k, d, r), (k, r), (k,)")
    if (weights < 0).any() or float(weights.sum()) <= 0:
        raise ValueError("params.weights must be nonnegative with a positive sum")
    tau = float(getattr(params, "noise_std", 0.0))
    if not math.isfinite(tau) or tau < 0:
        raise ValueError(f"params.noise_std must be a finite number >= 0, got {tau}")
    return means, bases, scales, weights / weights.sum(), tau


def _check_y(y, d: int) -> torch.Tensor:
    t = as_float_tensor(y, "y", ndim=2)
    if t.shape[1] != d:
        raise ValueError(f"y has {t.shape[1]} features but the mixture lives in d={d}")
    return t


def _component_terms(yd, mean, basis, scale, tau, sigma):
    """For one component: (log N(y; mu, Sigma + sigma^2 I) (m,), E[x | y, j] (m, d)), float64."""
    d, r = basis.shape
    rho2 = tau ** 2 + sigma ** 2
    s2 = scale ** 2
    D = s2 / (s2 + rho2)                                   # (r,)
    res = yd - mean                                        # (m, d), direct difference
    coef = res @ basis                                     # (m, r) = U^T r
    quad = ((res ** 2).sum(1) - (D * coef ** 2).sum(1)) / rho2
    logdet = (d - r) * math.log(rho2) + torch.log(s2 + rho2).sum()
    loglik = -0.5 * (quad + logdet + d * math.log(2 * math.pi))
    post = yd - (sigma ** 2 / rho2) * (res - (coef * D) @ basis.T)
    return loglik, post


def gaussian_denoiser(y, mean, basis, scales, sigma, *, noise_std: float = 0.0) -> torch.Tensor:
    """E[x | x + sigma eps = y] for ONE Gaussian x ~ N(mean, U diag(scales^2) U^T + noise_std^2 I).

    The linear (Wiener) denoiser; shapes y (m, d), mean (d,), basis U (d, r) with orthonormal
    columns, scales (r,). Returns (m, d) float64.
    """
    m_ = as_float_tensor(mean, "mean", ndim=1).double()
    U = as_float_tensor(basis, "basis", ndim=2).double()
    s = as_float_tensor(scales, "scales", ndim=1).double()
    d = m_.shape[0]
    if U.shape[0] != d or U.shape[1] != s.shape[0]:
        raise ValueError(f"basis must have shape (d, r) = ({d}, {s.shape[0]}), got {tuple(U.shape)}")
    yd = _check_y(y, d).double()
    sig = float(check_sigma(sigma))
    tau = float(noise_std)
    if not math.isfinite(tau) or tau < 0:
        raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std}")
    return _component_terms(yd, m_, U, s, tau, sig)[1]


def component_log_likelihoods(y, params, sigma) -> torch.Tensor:
    """log w_j + log N(y; mu_j, Sigma_j + sigma^2 I) for every row of y (m, d) -> (m, k) float64."""
    means, bases, scales, weights, tau = _check_params(params)
    yd = _check_y(y, means.shape[1]).double()
    sig = float(check_sigma(sigma))
    out = torch.empty(yd.shape[0], means.shape[0], dtype=torch.float64)
    with torch.no_grad():
        for j in range(means.shape[0]):
            out[:, j] = _component_terms(yd, means[j], bases[j], scales[j], tau, sig)[0]
    return out + torch.log(weights)


def responsibilities(y, params, sigma) -> torch.Tensor:
    """Posterior component probabilities P(j | y) for every row of y (m, d) -> (m, k) float64."""
    return torch.softmax(component_log_likelihoods(y, params, sigma), dim=1)


def cluster_denoisers(y, params, sigma) -> torch.Tensor:
    """E[x | y, j] for every component j: (m, d) -> (k, m, d) float64 (each one linear in y)."""
    means, bases, scales, _, tau = _check_params(params)
    yd = _check_y(y, means.shape[1]).double()
    sig = float(check_sigma(sigma))
    with torch.no_grad():
        return torch.stack([_component_terms(yd, means[j], bases[j], scales[j], tau, sig)[1]
                            for j in range(means.shape[0])])


def mixture_denoiser(y, params, sigma, *, return_responsibilities: bool = False):
    """The Bayes-optimal (minimum-MSE) denoiser E[x | x + sigma eps = y] of the mixture.

    Args:
        y: noisy inputs (m, d).
        params: a :class:`utils.data.MixtureParams`.
        sigma: noise level, a positive float.
        return_responsibilities: also return P(j | y), shape (m, k).
    Returns:
        (m, d) float32 tensor (and the (m, k) float64 responsibilities when asked).
    """
    means, bases, scales, weights, tau = _check_params(params)
    yd = _check_y(y, means.shape[1]).double()
    sig = float(check_sigma(sigma))
    k = means.shape[0]
    with torch.no_grad():
        logp = torch.empty(yd.shape[0], k, dtype=torch.float64)
        post = torch.empty(k, *yd.shape, dtype=torch.float64)
        for j in range(k):
            logp[:, j], post[j] = _component_terms(yd, means[j], bases[j], scales[j], tau, sig)
        pi = torch.softmax(logp + torch.log(weights), dim=1)
        out = torch.einsum("mk,kmd->md", pi, post).float()
    return (out, pi) if return_responsibilities else out


def denoising_mse(denoise: Callable, X, sigma, *, n_noise: int = 1, seed: int = 0,
                  batch_size: int = 4096) -> float:
    """Monte Carlo denoising error E ||denoise(x + sigma eps) - x||^2 over the rows x of X.

    Per sample, summed over the d coordinates (divide by d for a per-pixel MSE). ``denoise``
    maps an (m, d) float32 tensor to (m, d); models are called without gradients. ``n_noise``
    noise draws per sample, from a generator seeded with ``seed``.
    """
    if not callable(denoise):
        raise TypeError("denoise must be callable as denoise(y) -> (m, d)")
    Xt = as_float_tensor(X, "X", ndim=2).float()
    sig = float(check_sigma(sigma))
    n_noise = check_positive_int(n_noise, "n_noise")
    batch_size = check_positive_int(batch_size, "batch_size")
    gen = torch.Generator().manual_seed(int(seed))
    total, count = 0.0, 0
    with torch.no_grad():
        for _ in range(n_noise):
            for start in range(0, Xt.shape[0], batch_size):
                xb = Xt[start:start + batch_size]
                y = xb + sig * torch.randn(xb.shape, generator=gen)
                out = denoise(y)
                if not isinstance(out, torch.Tensor) or out.shape != xb.shape:
                    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                    raise ValueError(f"denoise returned {got}, expected shape {tuple(xb.shape)}")
                total += float(((out.double() - xb.double()) ** 2).sum())
                count += xb.shape[0]
    return total / count


def bayes_mse(params, sigma, *, n: int = 20000, seed: int = 0) -> float:
    """Monte Carlo estimate of the minimum denoising error E ||E[x|y] - x||^2 of the mixture.

    Draws n fresh points from ``params`` (seeded with ``seed``) and one noise draw each; per
    sample, summed over coordinates. Its standard error is about std / sqrt(n).
    """
    n = check_positive_int(n, "n")
    if not hasattr(params, "sample"):
        raise TypeError("params must be a utils.data.MixtureParams")
    X, _ = params.sample(n, seed=seed)
    return denoising_mse(lambda y: mixture_denoiser(y, params, sigma), X, sigma, seed=seed + 1)


def gaussian_mse(scales, sigma, *, d: int | None = None, noise_std: float = 0.0) -> float:
    """Exact error of the Wiener denoiser of one Gaussian N(mu, U diag(s^2) U^T + tau^2 I):
    sum_k s_k^2 sigma^2/(s_k^2 + sigma^2) + (d - r) tau^2 sigma^2/(tau^2 + sigma^2) (tau = noise_std).
    For tau = 0, ``d`` is not needed. Per sample, summed over coordinates."""
    s = as_float_tensor(scales, "scales", ndim=1).double()
    sig2 = float(check_sigma(sigma)) ** 2
    tau2 = float(noise_std) ** 2
    lam = s ** 2 + tau2
    out = float((lam * sig2 / (lam + sig2)).sum())
    if tau2 > 0:
        if d is None:
            raise ValueError("d is needed when noise_std > 0")
        out += (check_positive_int(d, "d") - s.shape[0]) * tau2 * sig2 / (tau2 + sig2)
    return out
