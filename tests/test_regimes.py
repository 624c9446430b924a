"""Regime experiments (utils.regimes): hybrid data, summaries, per-sample measures."""
import numpy as np
import pytest
import torch

from utils import regimes
from utils.models import ReLUDAE


def test_hybrid_dataset_repeats_exactly_the_chosen_rows():
    X = torch.arange(20.0).reshape(10, 2)
    labels = torch.arange(10) % 3
    hy = regimes.hybrid_dataset(X, labels, n_repeated=2, copies=5, seed=1)
    assert hy.X.shape == (10 + 2 * 4, 2) and hy.labels.shape == (18,)
    assert torch.equal(hy.X[:10], X) and torch.equal(hy.base, X)
    for r in hy.repeated.tolist():
        assert int((hy.source == r).sum()) == 5
        assert torch.equal(hy.X[hy.source == r], X[r].expand(5, 2))
    assert int(hy.is_repeated.sum()) == 10 and hy.n_base == 10
    assert int(hy.base_is_repeated.sum()) == 2
    assert torch.equal(hy.labels, labels[hy.source])
    with pytest.raises(ValueError, match="n_repeated"):
        regimes.hybrid_dataset(X, n_repeated=11, copies=2)
    with pytest.raises(ValueError, match="copies"):
        regimes.hybrid_dataset(X, n_repeated=1, copies=1)
    with pytest.raises(ValueError, match="labels"):
        regimes.hybrid_dataset(X, labels[:3], n_repeated=1, copies=2)
    with pytest.raises(ValueError, match="exactly one"):
        regimes.hybrid_dataset(X, copies=2)


def test_hybrid_dataset_with_extra_rows():
    X = torch.zeros(6, 3)
    E = torch.ones(2, 3)
    hy = regimes.hybrid_dataset(X, torch.zeros(6), copies=4, extra=E, extra_labels=[7, 8])
    assert hy.X.shape == (6 + 2 * 4, 3) and hy.n_base == 8
    assert hy.repeated.tolist() == [6, 7]
    assert int(hy.is_repeated.sum()) == 8 and hy.X[hy.is_repeated].eq(1).all()
    assert sorted(hy.labels[hy.is_repeated].tolist()) == [7] * 4 + [8] * 4
    with pytest.raises(ValueError, match="extra_labels"):
        regimes.hybrid_dataset(X, torch.zeros(6), copies=2, extra=E)
    with pytest.raises(ValueError, match="features"):
        regimes.hybrid_dataset(X, copies=2, extra=torch.ones(2, 4))


def test_imbalanced_mixture_rare_samples_come_from_rare_components():
    from utils import gmm
    X, lab, Xr, lr, params = regimes.imbalanced_mixture(300, 16, 3, 2, n_rare=4, seed=0)
    assert X.shape == (300, 16) and Xr.shape == (4, 16) and params.k == 7
    assert set(lab.tolist()) <= {0, 1, 2} and lr.tolist() == [3, 4, 5, 6]
    assert float(params.weights[3]) == pytest.approx(1 / 304)
    post = gmm.responsibilities(Xr, params, 0.05)          # each rare sample sits on its component
    assert post.argmax(1).tolist() == lr.tolist()
    X2, *_ = regimes.imbalanced_mixture(300, 16, 3, 2, n_rare=4, seed=0)
    assert torch.equal(X, X2)


def test_noisy_is_seeded_and_grouped_by_copy():
    X = torch.zeros(3, 4)
    Y, src = regimes.noisy(X, 0.5, copies=2, seed=3)
    Y2, _ = regimes.noisy(X, 0.5, copies=2, seed=3)
    assert Y.shape == (6, 4) and torch.equal(Y, Y2)
    assert src.tolist() == [0, 1, 2, 0, 1, 2]
    with pytest.raises(ValueError, match="sigma"):
        regimes.noisy(X, -1.0)


def _memorizing_model(X):
    """A tied ReLU DAE whose neurons are the (unit) training samples: f(x_i) ~ x_i for far-apart x_i."""
    m = ReLUDAE(X.shape[1], len(X))
    with torch.no_grad():
        m.encoder_weight.copy_(X / X.norm(dim=1, keepdim=True))
    return m


def test_per_sample_measures_flag_a_stored_sample():
    d = 16
    X = torch.eye(d)[:4] * 3.0
    model = _memorizing_model(X[:1])                 # stores only sample 0
    res = regimes.per_sample_measures(model, X, 0.1, copies=3,
                                      reference=lambda y: torch.zeros_like(y))
    assert set(res) >= {"top1_share", "participation_ratio", "hoyer", "weight_cosine", "error",
                        "ref_error", "pull_ratio"}
    assert all(v.shape == (4,) for v in res.values())
    assert res["weight_cosine"][0] == pytest.approx(1.0)
    assert res["weight_cosine"][1:].max() == pytest.approx(0.0, abs=1e-12)
    assert res["pull_ratio"][0] < 0.05 < res["pull_ratio"][1]


def test_regime_summary_keys_and_values():
    X = torch.eye(8)[:4] * 2.0
    model = _memorizing_model(X)
    s = regimes.regime_summary(model, X, X, 0.05, reference=lambda y: y, n_eval=4)
    assert s["weight_cosine"] == pytest.approx(1.0) and s["weight_cosine_max"] == pytest.approx(1.0)
    assert s["data_cosine"] == pytest.approx(0.0)
    assert s["top1_share"] > 0.9 and s["participation_ratio"] < 1.1
    assert s["test_mse"] < 0.1 and s["gap_ratio"] == pytest.approx(s["test_mse"] / s["train_mse"])
    assert s["dist_emp"] < 0.1
    assert s["ref_mse"] == pytest.approx(8 * 0.05 ** 2, rel=0.5)
    with pytest.raises(ValueError, match="features"):
        regimes.regime_summary(model, X, torch.zeros(2, 3), 0.1)


def test_regime_signatures_with_fit_dae_defaults():
    """Reduced-size version of the book's acceptance checks, with utils.train.fit_dae defaults:
    a hybrid of a low-rank mixture (n = 900, p = 30) and 6 rare samples duplicated 30 times.
    On the mixture: test MSE within 10% of train MSE and <= 2x Bayes, median top-1 share <= 0.35,
    median PR >= 6. A scale-invariant spikiness score separates memorized inputs (AUROC >= 0.9)."""
    from utils import gmm, metrics, train
    d, k, r, p, sigma = 32, 3, 5, 30, 0.2
    Xm, lab, Xr, lr, params = regimes.imbalanced_mixture(900, d, k, r, n_rare=6, seed=3)
    Xt, *_ = regimes.imbalanced_mixture(1000, d, k, r, n_rare=6, seed=3, sample_seed=4)
    hy = regimes.hybrid_dataset(Xm, lab, copies=30, extra=Xr, extra_labels=lr)
    model = ReLUDAE(d, p, seed=1)
    train.fit_dae(model, hy.X, sigma=sigma, seed=1)
    s = regimes.regime_summary(model, Xm, Xt, sigma, n_eval=1000,
                               reference=lambda y: gmm.mixture_denoiser(y, params, sigma))
    assert s["gap_ratio"] <= 1.1 and s["mse_over_ref"] <= 2.0
    assert s["top1_share"] <= 0.35 and s["participation_ratio"] >= 6
    Ym, _ = regimes.noisy(Xr, sigma, copies=5, seed=5)
    Yg, _ = regimes.noisy(Xt[:500], sigma, seed=6)
    with torch.no_grad():
        H = torch.cat([model.encode(Ym), model.encode(Yg)])
    y = np.r_[np.ones(len(Ym), int), np.zeros(len(Yg), int)]
    assert metrics.roc_auc(metrics.spikiness(H, "hoyer"), y) >= 0.9
    assert metrics.roc_auc(metrics.spikiness(H, "top1_share"), y) >= 0.9


def test_cone_fit_inside_outside_and_bad_input():
    X = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    Q = torch.tensor([[2.0, 3.0, 0.0], [0.0, 0.0, 2.0], [1.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    fit = regimes.cone_fit(Q, X, neighbors=3)
    # inside the cone (positive quadrant of the plane); straight up (distance 2); the third row
    # of X itself is left out but the first two span it; the negative axis is 1 away (at 0).
    np.testing.assert_allclose(fit.distance, [0.0, 2.0, 0.0, 1.0], atol=1e-9)
    np.testing.assert_allclose(fit.residual, [0.0, 1.0, 0.0, 1.0], atol=1e-9)
    assert (fit.weights >= 0).all() and fit.index.shape == (4, 3)
    recon = np.einsum("mk,mkd->md", fit.weights, X.double().numpy()[fit.index])
    np.testing.assert_allclose(recon[0], [2.0, 3.0, 0.0], atol=1e-9)
    with pytest.raises(ValueError, match="features"):
        regimes.cone_fit(Q[:, :2], X)
    with pytest.raises(ValueError, match="differs"):
        regimes.cone_fit(X[:1], X[:1])
    with pytest.raises(ValueError, match="NaN|finite"):
        regimes.cone_fit(Q * float("nan"), X)


def test_private_unit_activation_is_bounded_by_cone_distance():
    """Proposition of chapter 5: a unit silent on the reference rows fires on x by at most
    ||w|| dist(x, cone)."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(40, 6, generator=g).double() + 3.0
    Q = torch.randn(5, 6, generator=g).double() + 3.0
    fit = regimes.cone_fit(Q, X, neighbors=40)
    for _ in range(200):
        w = torch.randn(6, generator=g).double()
        w /= w.norm()
        silent = (X @ w <= 0).all()
        if silent:
            assert ((Q @ w).numpy() <= fit.distance + 1e-9).all()
