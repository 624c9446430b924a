"""Tests of the chapter 10 helpers: utils.steering.step_window / scaled_window / random_directions /
knn_class and utils.clustered (cluster-bootstrap means and ratios)."""
import numpy as np
import pytest
import torch

from utils import clustered, steering, unet


def test_step_window_selects_the_last_steps_except_the_final_ones():
    sched = unet.make_scheduler()
    for steps, last, skip in ((40, 20, 2), (25, 13, 1), (10, 3, 0)):
        sched.set_timesteps(steps)
        lo, hi = steering.step_window(sched.timesteps, last=last, skip_final=skip)
        on = [i for i, t in enumerate(sched.timesteps.tolist()) if lo <= t < hi]
        assert on == list(range(steps - last, steps - skip))
    # the official recipe: steps 21-38 of 40
    sched.set_timesteps(40)
    lo, hi = steering.step_window(sched.timesteps, last=20, skip_final=2)
    assert [i + 1 for i, t in enumerate(sched.timesteps.tolist()) if lo <= t < hi] == list(range(21, 39))
    with pytest.raises(ValueError, match="decreasing"):
        steering.step_window([1, 5, 9], last=2)
    with pytest.raises(ValueError, match="skip_final < last"):
        steering.step_window(sched.timesteps, last=2, skip_final=2)
    with pytest.raises(ValueError, match="non-negative integer"):
        steering.step_window(sched.timesteps, last=2.5)


def test_scaled_window():
    assert steering.scaled_window(40) == (20, 2)
    assert steering.scaled_window(25) == (13, 1)          # 12.5 rounds up; 1.25 -> 1
    assert steering.scaled_window(10) == (5, 1)           # 0.5 rounds up to 1
    assert steering.scaled_window(10, skip_final=0) == (5, 0)
    with pytest.raises(ValueError, match="too few"):
        steering.scaled_window(2)
    with pytest.raises(ValueError, match="positive integer"):
        steering.scaled_window(0)


def test_random_directions_match_norms_and_are_reproducible():
    d = {"a": torch.tensor([3.0, 4.0, 0.0]), "b": torch.ones(5)}
    r = steering.random_directions(d, seed=3)
    assert set(r) == set(d)
    for k in d:
        assert r[k].shape == d[k].shape
        assert torch.isclose(r[k].norm(), d[k].norm())
    again = steering.random_directions(d, seed=3)
    other = steering.random_directions(d, seed=4)
    assert all(torch.equal(r[k], again[k]) for k in d)
    assert not torch.equal(r["a"], other["a"])
    cos = float(r["b"] @ d["b"] / (r["b"].norm() * d["b"].norm()))
    assert abs(cos) < 0.999
    with pytest.raises(ValueError, match="non-empty dict"):
        steering.random_directions({})


def test_knn_class_majority_vote():
    ref = torch.tensor([[0.0], [0.1], [0.2], [5.0], [5.1]])
    cls = torch.tensor([0, 0, 1, 1, 1])
    out = steering.knn_class(torch.tensor([[0.05], [5.05]]), ref, cls, k=3)
    assert out.tolist() == [0, 1]
    assert steering.knn_class(torch.tensor([[0.19]]), ref, cls, k=1).tolist() == [1]
    # a tie (k = 2, one vote each) goes to the smaller class
    assert steering.knn_class(torch.tensor([[0.15]]), ref, cls, k=2).tolist() == [0]
    with pytest.raises(ValueError, match="reference_classes"):
        steering.knn_class(torch.zeros(1, 1), ref, cls[:3])


def test_cluster_weights_draw_whole_clusters():
    clusters = np.array([7, 7, 7, 2, 2, 9])
    w = clustered.cluster_weights(clusters, draws=200, seed=0)
    assert w.shape == (200, 6)
    # rows of one cluster always share a multiplicity, and each draw picks 3 clusters in all
    assert np.all(w[:, 0] == w[:, 1]) and np.all(w[:, 1] == w[:, 2]) and np.all(w[:, 3] == w[:, 4])
    assert np.all(w[:, [0, 3, 5]].sum(1) == 3)
    with pytest.raises(ValueError, match="1-D"):
        clustered.cluster_weights(np.zeros((2, 2)))


def test_mean_and_ratio_draws_reflect_the_number_of_clusters():
    rng = np.random.default_rng(0)
    # 10 clusters of 20 identical rows: the cluster bootstrap sees 10 values, not 200
    centers = rng.normal(size=10)
    values = np.repeat(centers, 20)
    clusters = np.repeat(np.arange(10), 20)
    d = clustered.mean_draws(values, clusters, draws=2000, seed=1)
    assert abs(d.mean() - values.mean()) < 0.05
    naive = values.std() / np.sqrt(len(values))
    assert d.std() > 3 * naive                               # far wider than the row-wise error
    assert abs(d.std() - centers.std() / np.sqrt(10)) < 0.1
    r = clustered.ratio_draws(2 * values + 1, np.ones_like(values), clusters, draws=50, seed=1)
    assert np.allclose(r, 2 * clustered.mean_draws(values, clusters, draws=50, seed=1) + 1)
    with pytest.raises(ValueError, match="rows"):
        clustered.mean_draws(values[:5], clusters)
    with pytest.raises(ValueError, match="zero"):
        clustered.ratio_draws(values, np.zeros_like(values), clusters, draws=5)


def test_check_window_steering_accepts_the_solution_and_rejects_a_windowless_one():
    from utils import exercises

    def steer_window(model, scheduler, directions, alpha, t_min, t_max, labels, seed, steps):
        with steering.timestep_window(model, t_min=t_min, t_max=t_max) as window:
            with steering.steer(model, directions, alpha, active=window):
                return unet.sample(model, scheduler, len(labels), steps=steps, seed=seed, class_labels=labels)

    def no_window(model, scheduler, directions, alpha, t_min, t_max, labels, seed, steps):
        with steering.steer(model, directions, alpha):
            return unet.sample(model, scheduler, len(labels), steps=steps, seed=seed, class_labels=labels)

    assert exercises.check_window_steering(steer_window)
    with pytest.raises(AssertionError, match="window"):
        exercises.check_window_steering(no_window)
    with pytest.raises(TypeError):
        exercises.check_window_steering(42)


def test_shuffled_directions_split_the_references_and_match_norms():
    g = torch.Generator().manual_seed(0)
    pos = {"a": torch.randn(6, 3, generator=g) + torch.tensor([5.0, 0, 0]), "b": torch.randn(6, 2, generator=g)}
    neg = {"a": torch.randn(4, 3, generator=g), "b": torch.randn(4, 2, generator=g)}
    like = {k: steering.mean_difference(pos[k], neg[k]) for k in pos}
    s = steering.shuffled_directions(pos, neg, like, seed=1)
    for k in like:
        assert torch.isclose(s[k].norm(), like[k].norm())
    # the same split for every module: reproduce it by hand
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    for k in like:
        both = torch.cat([pos[k], neg[k]])[perm]
        d = both[:6].mean(0) - both[6:].mean(0)
        assert torch.allclose(s[k], d * like[k].norm() / d.norm())
    # a random split loses most of the attribute: the first channel's 5-unit gap shrinks
    assert abs(float(s["a"][0] / s["a"].norm())) < abs(float(like["a"][0] / like["a"].norm()))
    assert all(torch.equal(s[k], steering.shuffled_directions(pos, neg, like, seed=1)[k]) for k in s)
    with pytest.raises(ValueError, match="same modules"):
        steering.shuffled_directions(pos, {"a": neg["a"]}, like)
    with pytest.raises(ValueError, match="same numbers of references"):
        steering.shuffled_directions(pos, {"a": neg["a"], "b": neg["b"][:3]}, like)
    with pytest.raises(ValueError, match="channels"):
        steering.shuffled_directions(pos, neg, {"a": like["a"], "b": torch.ones(5)})


def test_two_way_mean_draws_covers_the_control_draws():
    rng = np.random.default_rng(0)
    clusters = np.repeat(np.arange(10), 4)
    base = rng.normal(size=40) * 0.01
    # every row identical across draws: only cluster resampling remains, as in mean_draws
    same = np.stack([base] * 5)
    assert np.allclose(clustered.two_way_mean_draws(same, clusters, seed=3), clustered.mean_draws(base, clusters, seed=3))
    # control draws that differ by a constant offset widen the interval to their spread
    spread = base + np.arange(5)[:, None]
    d = clustered.two_way_mean_draws(spread, clusters)
    assert np.isclose(d.mean(), 2.0, atol=0.15)
    assert np.percentile(d, 97.5) - np.percentile(d, 2.5) > 1.0
    assert np.ptp(clustered.mean_draws(base, clusters)) < 0.05
    with pytest.raises(ValueError, match="K >= 2"):
        clustered.two_way_mean_draws(base, clusters)
    with pytest.raises(ValueError, match="rows but clusters"):
        clustered.two_way_mean_draws(spread[:, :30], clusters)
    with pytest.raises(ValueError, match="NaN"):
        clustered.two_way_mean_draws(np.full((3, 40), np.nan), clusters)
