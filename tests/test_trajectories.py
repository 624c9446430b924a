"""Tests of utils.trajectories: leaders, their weights, and when a trajectory switches."""
import numpy as np
import pytest
import torch

from utils.diffusion import empirical_denoiser, sample_ve
from utils.trajectories import LeaderPath, leader_path


def _two_points():
    return torch.tensor([[-1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)


def test_leader_weight_and_effective_number_by_hand():
    X = _two_points()
    states = torch.tensor([[[0.5, 0.0]], [[-0.2, 0.0]]], dtype=torch.float64)     # (S=2, m=1, d=2)
    sig = torch.tensor([1.0, 0.5])
    p = leader_path(states, sig, X)
    # level 0: logits -(1.5^2)/2 and -(0.5^2)/2 -> weight of point 1 is sigmoid(1) ; level 1: point 0
    w1 = 1 / (1 + np.exp(-1.0))
    assert p.leader[:, 0].tolist() == [1, 0]
    assert p.top[0, 0] == pytest.approx(w1)
    assert p.effective[0, 0] == pytest.approx(1 / (w1 ** 2 + (1 - w1) ** 2))
    w0 = 1 / (1 + np.exp(-(1.2 ** 2 - 0.8 ** 2) / (2 * 0.25)))
    assert p.top[1, 0] == pytest.approx(w0)
    assert p.final.tolist() == [0] and p.start_is_final.tolist() == [False]


def _path(leader, top):
    leader, top = np.array(leader), np.array(top, dtype=float)
    S = leader.shape[0]
    return LeaderPath(sigmas=np.geomspace(2, 0.02, S), leader=leader, top=top, effective=1 / top)


def test_switches_after_counts_only_changes_after_the_threshold():
    # columns: committed early and stays; changes leader after passing 0.5; changes only before
    leader = [[3, 1, 2], [3, 1, 7], [3, 4, 7], [3, 4, 7]]
    top = [[0.6, 0.6, 0.2], [0.7, 0.7, 0.3], [0.9, 0.9, 0.8], [1.0, 1.0, 1.0]]
    p = _path(leader, top)
    assert p.first_above(0.5).tolist() == [0, 0, 2]
    assert p.switches_after(0.5).tolist() == [False, True, False]
    assert p.start_is_final.tolist() == [True, False, False]
    s = p.settled_sigma()
    assert s[0] == p.sigmas[0] and s[1] == p.sigmas[2] and s[2] == p.sigmas[1]


def test_a_sample_that_never_passes_the_threshold_is_not_a_switch():
    p = _path([[0], [1]], [[0.2], [0.4]])
    assert p.first_above(0.5).tolist() == [-1]
    assert p.switches_after(0.5).tolist() == [False]
    with pytest.raises(ValueError, match="threshold"):
        p.first_above(1.5)


def test_on_a_real_trajectory_the_final_leader_is_the_copied_point():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(12, 6, generator=g) * 2 - 1
    samples, traj = sample_ve(lambda x, s: empirical_denoiser(x, X, s), (16, 6), stochastic=False,
                              seed=1, return_trajectory=True)
    p = leader_path(traj["x"], traj["sigmas"], X)
    nearest = torch.cdist(samples.double(), X.double()).argmin(1).numpy()
    assert (p.final == nearest).all()
    assert p.leader.shape == (60, 16) and (p.effective >= 1 - 1e-9).all() and (p.effective <= 12 + 1e-9).all()
    assert (p.top[-1] > 0.999).all()


def test_bad_inputs_name_the_problem():
    X = _two_points()
    with pytest.raises(ValueError, match="levels"):
        leader_path(torch.zeros(3, 1, 2), torch.ones(2), X)
    with pytest.raises(ValueError, match="trailing shape"):
        leader_path(torch.zeros(2, 1, 3), torch.ones(2), X)
    with pytest.raises(ValueError, match="positive"):
        leader_path(torch.zeros(2, 1, 2), torch.tensor([1.0, 0.0]), X)
    with pytest.raises(ValueError, match="NaN"):
        leader_path(torch.full((2, 1, 2), float("nan")), torch.ones(2), X)
