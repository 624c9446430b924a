import numpy as np
import pytest
import torch

from utils import metrics


def test_spikiness_extremes():
    p = 10
    one_hot = np.zeros((1, p)); one_hot[0, 3] = 2.0
    flat = np.ones((1, p))
    for kind in ["l4_over_l2", "hoyer", "gini", "top1_share"]:
        assert metrics.spikiness(one_hot, kind)[0] > metrics.spikiness(flat, kind)[0]
    assert metrics.spikiness(one_hot, "hoyer")[0] == pytest.approx(1.0)
    assert metrics.spikiness(flat, "hoyer")[0] == pytest.approx(0.0)
    assert metrics.spikiness(one_hot, "top1_share")[0] == pytest.approx(1.0)
    assert metrics.spikiness(flat, "top1_share")[0] == pytest.approx(1 / p)
    assert metrics.spikiness(one_hot, "l4_over_l2")[0] == pytest.approx(1.0)
    assert metrics.spikiness(flat, "l4_over_l2")[0] == pytest.approx(p ** -0.25)
    assert metrics.spikiness(flat, "gini")[0] == pytest.approx(0.0)
    assert metrics.spikiness(one_hot, "gini")[0] == pytest.approx(1 - 1 / p)
    assert metrics.spikiness(flat, "std")[0] == pytest.approx(0.0)
    assert metrics.spikiness(one_hot, "std")[0] == pytest.approx(np.std(one_hot))


def test_gini_matches_hurley_rickard_definition():
    rng = np.random.default_rng(0)
    h = rng.random(7)
    c = np.sort(h); N = len(c)
    expected = 1 - 2 * sum(c[k] / c.sum() * (N - (k + 1) + 0.5) / N for k in range(N))
    assert metrics.spikiness(h[None], "gini")[0] == pytest.approx(expected)


def test_scale_invariance_and_zero_rows():
    rng = np.random.default_rng(1)
    H = rng.random((5, 20))
    for kind in ["l4_over_l2", "hoyer", "gini", "top1_share"]:
        np.testing.assert_allclose(metrics.spikiness(H, kind), metrics.spikiness(7.5 * H, kind))
    np.testing.assert_allclose(metrics.spikiness(3 * H, "std"), 3 * metrics.spikiness(H, "std"))
    np.testing.assert_allclose(metrics.participation_ratio(H), metrics.participation_ratio(4 * H))
    Z = np.zeros((2, 6))
    for kind in metrics.SPIKINESS_KINDS:
        assert (metrics.spikiness(Z, kind) == 0).all()
    assert (metrics.participation_ratio(Z) == 0).all()


def test_participation_ratio_values():
    H = torch.tensor([[1.0, 0, 0, 0], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0, 0]])
    np.testing.assert_allclose(metrics.participation_ratio(H), [1, 4, 2])


def test_spikiness_bad_input():
    with pytest.raises(ValueError, match="unknown spikiness kind"):
        metrics.spikiness(np.ones((2, 3)), "kurtosis")
    with pytest.raises(ValueError, match="NaN"):
        metrics.spikiness(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="dimensions"):
        metrics.spikiness(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="empty"):
        metrics.participation_ratio(np.ones((0, 3)))
    with pytest.raises(TypeError):
        metrics.spikiness(np.array([["a", "b"]]))


def test_weight_data_cosine():
    X = torch.eye(4)[:3] * 5
    W = torch.stack([X[0] * 0.1, X[1] + X[2], torch.zeros(4), torch.tensor([0, 0, 0, 1.0])])
    c = metrics.weight_data_cosine(W, X)
    np.testing.assert_allclose(c, [1.0, 1 / np.sqrt(2), 0.0, 0.0], atol=1e-12)
    with pytest.raises(ValueError, match="features"):
        metrics.weight_data_cosine(torch.ones(2, 3), torch.ones(2, 4))


def test_nearest_neighbors_and_copy_test():
    X = torch.tensor([[0.0, 0], [10, 0], [0, 10]])
    Q = torch.tensor([[0.1, 0], [5, 5.0]])
    d, i = metrics.nearest_neighbors(Q, X, k=2)
    assert i[0, 0] == 0 and d[0, 0] == pytest.approx(0.1)
    res = metrics.copy_test(Q, X)
    assert res.is_copy.tolist() == [True, False]
    assert res.copy_fraction == 0.5
    assert res.ratio[1] == pytest.approx(1.0)
    # images are flattened
    imgs = torch.randn(6, 1, 4, 4)
    assert metrics.copy_test(imgs[:2] + 1e-3, imgs).is_copy.all()
    with pytest.raises(ValueError, match="k must be"):
        metrics.nearest_neighbors(Q, X, k=4)
    with pytest.raises(ValueError, match="threshold"):
        metrics.copy_test(Q, X, threshold=0)


def test_roc_auc_and_ties():
    assert metrics.roc_auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert metrics.roc_auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert metrics.roc_auc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == 0.5
    rng = np.random.default_rng(0)
    s, y = rng.normal(size=200), rng.integers(0, 2, 200)
    # brute force Mann-Whitney
    pos, neg = s[y == 1], s[y == 0]
    brute = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg))
    assert metrics.roc_auc(s, y) == pytest.approx(brute)
    with pytest.raises(ValueError, match="both classes"):
        metrics.roc_auc([1, 2], [1, 1])
    with pytest.raises(ValueError, match="labels has"):
        metrics.roc_auc([1, 2, 3], [0, 1])
    with pytest.raises(ValueError, match="0 \\(not memorized\\) or 1"):
        metrics.roc_auc([1, 2], [0, 2])
    with pytest.raises(ValueError, match="NaN"):
        metrics.roc_auc([np.nan, 1], [0, 1])


def test_tpr_at_fpr():
    scores = np.r_[np.arange(100), 50 + np.arange(10) * 10.0]
    labels = np.r_[np.zeros(100), np.ones(10)]
    # thresholds above every negative (score > 99) keep the positives 100..140
    assert metrics.tpr_at_fpr(scores, labels, 0.0) == pytest.approx(0.5)
    # fpr 1% allows one negative (99) above the threshold: threshold 99 adds nothing new
    assert metrics.tpr_at_fpr(scores, labels, 0.01) == pytest.approx(0.5)
    assert metrics.tpr_at_fpr(scores, labels, 1.0) == 1.0
    f, t, thr = metrics.roc_curve(scores, labels)
    assert f[0] == 0 and t[0] == 0 and np.isinf(thr[0]) and f[-1] == 1 and t[-1] == 1
    with pytest.raises(ValueError, match="fpr"):
        metrics.tpr_at_fpr(scores, labels, 1.5)


def test_psnr():
    x = torch.zeros(2, 4)
    ref = torch.zeros(2, 4); ref[0] += 0.1
    p = metrics.psnr(x, ref)
    assert p[0] == pytest.approx(10 * np.log10(4 / 0.01))
    assert np.isinf(p[1])
    with pytest.raises(ValueError, match="shape"):
        metrics.psnr(torch.zeros(2, 4), torch.zeros(2, 5))


# --- merge_parallel_units -----------------------------------------------------------------------
def _split_tied_unit(W, j, coeffs):
    """Split unit j of a tied ReLU DAE into parallel units c_i w_j (sum c_i^2 = 1)."""
    rows = [W[k] for k in range(W.shape[0]) if k != j] + [c * W[j] for c in coeffs]
    return np.stack(rows)


def test_merge_parallel_units_undoes_a_split_of_a_tied_unit():
    from utils.metrics import SPIKINESS_KINDS, merge_parallel_units, participation_ratio, spikiness
    rng = np.random.default_rng(0)
    W = rng.normal(size=(6, 10))
    Y = rng.normal(size=(40, 10))
    c = np.array([0.6, 0.8])                          # 0.36 + 0.64 = 1
    Ws = _split_tied_unit(W, 2, c)
    f = lambda M: np.maximum(Y @ M.T, 0) @ M
    assert np.allclose(f(W), f(Ws))                   # the split network is the same function
    H, Hs = np.maximum(Y @ W.T, 0), np.maximum(Y @ Ws.T, 0)
    M, Ms = merge_parallel_units(H, W), merge_parallel_units(Hs, Ws)
    assert M.shape == Ms.shape == (40, 6)
    for kind in SPIKINESS_KINDS:
        assert np.allclose(spikiness(M, kind), spikiness(Ms, kind)), kind
        assert np.allclose(spikiness(M, kind), spikiness(H, kind)), kind   # nothing parallel in W
    assert np.allclose(participation_ratio(M), participation_ratio(Ms))
    # without merging the split network looks less spiky: the measure was not invariant
    assert not np.allclose(spikiness(Hs, "top1_share"), spikiness(H, "top1_share"))


def test_merge_parallel_units_groups_and_errors():
    from utils.metrics import merge_parallel_units
    W = np.array([[1.0, 0.0], [2.0, 0.01], [0.0, 1.0], [0.0, 0.0], [-1.0, 0.0]])
    H = np.abs(np.random.default_rng(1).normal(size=(3, 5)))
    M, groups = merge_parallel_units(H, W, return_groups=True)
    assert [g.tolist() for g in groups] == [[0, 1], [2], [3], [4]]   # dead and antiparallel kept apart
    assert np.allclose(M[:, 0], np.hypot(H[:, 0], H[:, 1]))
    with pytest.raises(ValueError, match="rows"):
        merge_parallel_units(H, W[:4])
    with pytest.raises(ValueError, match="min_cosine"):
        merge_parallel_units(H, W, min_cosine=1.5)
    with pytest.raises(ValueError, match="NaN"):
        merge_parallel_units(np.full((3, 5), np.nan), W)


def test_stored_mask_uses_the_book_definition():
    X = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    W = torch.tensor([[2.0, 0.1], [0.0, -1.0]])          # stores x0 (cos 0.9988), not x1 (cos -1)
    assert metrics.STORED_COSINE == 0.9
    assert metrics.stored_mask(W, X).tolist() == [True, False, False]   # x2: cos 0.77 < 0.9
    assert metrics.stored_mask(W, X, min_cosine=0.7).tolist() == [True, False, True]
    with pytest.raises(ValueError, match="min_cosine"):
        metrics.stored_mask(W, X, min_cosine=0.0)
