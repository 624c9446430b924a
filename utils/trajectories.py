"""Which training point leads a sampling trajectory, level by level, and when it stops changing.

Along a trajectory of the empirical-denoiser sampler (``utils.diffusion.sample_ve`` with
``return_trajectory=True``) the state x_sigma at each noise level defines posterior weights
w_i(x_sigma) = softmax_i(-||x_sigma - x_i||^2 / (2 sigma^2)) over the training points. The
*leader* is the point with the largest weight. :func:`leader_path` records, for every level and
every sample, the leader, its weight and the effective number of points 1 / sum_i w_i^2 that share
the weight; :class:`LeaderPath` then answers per sample:

* ``first_above(t)``: the first level at which the largest weight exceeds ``t``;
* ``switches_after(t)``: whether the leader still changes (differs from the final leader) at or
  after that level, i.e. whether a trajectory that looked committed later moved to another point;
* ``start_is_final``: whether the final leader is already the leader at the first level (for the
  sampler's first state, the training point nearest to the starting noise).

    samples, traj = sample_ve(lambda x, s: empirical_denoiser(x, X, s), (m, d), return_trajectory=True)
    path = leader_path(traj["x"], traj["sigmas"], X)
    path.switches_after(0.5).mean()       # fraction of samples that switch after passing 0.5
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .checks import as_float_tensor
from .diffusion import posterior_weights


@dataclass
class LeaderPath:
    """Per-level, per-sample summary of the posterior weights along S levels for m samples.

    Fields (all NumPy): ``sigmas`` (S,), ``leader`` (S, m) int64 index of the largest weight,
    ``top`` (S, m) float64 that weight, ``effective`` (S, m) float64 1 / sum_i w_i^2 (between 1 and
    the number of training points).
    """
    sigmas: np.ndarray
    leader: np.ndarray
    top: np.ndarray
    effective: np.ndarray

    @property
    def final(self) -> np.ndarray:
        """(m,) the leader at the last level."""
        return self.leader[-1]

    @property
    def start_is_final(self) -> np.ndarray:
        """(m,) bool: the leader at the first level is already the final one."""
        return self.leader[0] == self.leader[-1]

    def _check_threshold(self, threshold: float) -> float:
        t = float(threshold)
        if not 0.0 < t < 1.0:
            raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
        return t

    def first_above(self, threshold: float = 0.5) -> np.ndarray:
        """(m,) int64: index of the first level whose largest weight exceeds ``threshold``, -1 for a
        sample whose largest weight never does."""
        above = self.top > self._check_threshold(threshold)
        return np.where(above.any(0), above.argmax(0), -1)

    def switches_after(self, threshold: float = 0.5) -> np.ndarray:
        """(m,) bool: at some level from ``first_above(threshold)`` on, the leader differs from the
        final leader. A sample that never passes the threshold counts as False (it never looked
        committed); ``(first_above(t) >= 0).mean()`` says how many did."""
        first = self.first_above(threshold)
        levels = np.arange(self.leader.shape[0])[:, None]
        differs = (self.leader != self.final[None]) & (levels >= first[None]) & (first[None] >= 0)
        return differs.any(0)

    def settled_sigma(self) -> np.ndarray:
        """(m,) the noise level from which on the leader no longer changes: sigma at the level after
        the last one whose leader differs from the final leader (the first level if none does)."""
        differs = self.leader != self.final[None]
        S = self.leader.shape[0]
        last_bad = np.where(differs.any(0), S - 1 - differs[::-1].argmax(0), -1)
        return self.sigmas[np.minimum(last_bad + 1, S - 1)]


def leader_path(states, sigmas, X_train) -> LeaderPath:
    """The leader of every state of a trajectory.

    Args:
        states: (S, m, d) (or (S, m, C, H, W)) the noisy states, one batch per level, as in
            ``traj["x"]`` of ``sample_ve(..., return_trajectory=True)``.
        sigmas: (S,) the positive noise level of each batch.
        X_train: (n, d) (or (n, C, H, W)) the training points of the empirical denoiser.
    Returns:
        a :class:`LeaderPath`; the weights are computed in float64 (``posterior_weights``).
    """
    x = as_float_tensor(states, "states", ndim=(3, 5))
    s = as_float_tensor(sigmas, "sigmas", ndim=1).double()
    X = as_float_tensor(X_train, "X_train", ndim=(2, 4))
    if x.shape[0] != s.shape[0]:
        raise ValueError(f"states has {x.shape[0]} levels but sigmas has {s.shape[0]}")
    if x.shape[2:] != X.shape[1:]:
        raise ValueError(f"states have trailing shape {tuple(x.shape[2:])} but X_train has "
                         f"{tuple(X.shape[1:])}; they must match")
    if not bool((s > 0).all()):
        raise ValueError("sigmas must all be positive")
    Xf = X.reshape(X.shape[0], -1)
    leader, top, eff = [], [], []
    for xs, sg in zip(x, s.tolist()):
        w = posterior_weights(xs.reshape(xs.shape[0], -1), Xf, sg)          # (m, n) float64
        t, i = w.max(1)
        leader.append(i)
        top.append(t)
        eff.append(1.0 / (w ** 2).sum(1))
    return LeaderPath(sigmas=s.numpy(), leader=torch.stack(leader).numpy(),
                      top=torch.stack(top).numpy(), effective=torch.stack(eff).numpy())
