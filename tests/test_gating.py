"""utils.gating: margins, the union bound on not being gated, and the decomposition terms."""
import numpy as np
import pytest
import torch

from utils import data, gating, models, regimes


def _far_mixture():
    # two well-separated rank-2 clusters: a unit along each mean is gated almost always
    return data.gaussian_mixture(3000, 16, 2, 2, seed=0, mean_scale=3.0, return_params=True)


def test_margins_match_the_gaussian_formula_and_the_bound_covers_the_measured_rate():
    X, lab, params = _far_mixture()
    W = torch.cat([params.means[0:1], params.means[1:2]]).double()      # one unit per cluster mean
    W = W - W.mean(0, keepdim=True)                                      # point each unit away from the other cluster
    m = gating.margins(W, params, 0.2)
    cov = params.covariances()[0] + 0.04 * torch.eye(16, dtype=torch.float64)
    expect = float(W[0] @ params.means[0].double() / torch.sqrt(W[0] @ cov @ W[0]))
    assert m.shape == (2, 2) and np.isclose(m[0, 0], expect)
    groups = np.array([0, 1])
    eps = gating.gating_error_bound(m, groups)
    Y, _ = regimes.noisy(X, 0.2, seed=1)
    fail = gating.gating_failure_rate(W, groups, Y, lab.numpy(), 2)
    assert (fail <= eps + 0.01).all()                                    # the union bound holds
    assert (eps < 0.05).all()                                            # and is small when gated


def test_decomposition_terms_obey_the_cauchy_schwarz_bound():
    X, lab, params = _far_mixture()
    model = models.ReLUDAE(16, 6, seed=0)
    Y, _ = regimes.noisy(X, 0.2, seed=2)
    groups = np.array([0, 0, 0, 1, 1, 1])
    t = gating.decomposition_terms(model, groups, X, Y, lab.numpy(), 2)
    fail = gating.gating_failure_rate(model.encoder_weight, groups, Y, lab.numpy(), 2)
    assert np.allclose(t["delta"], t["loss"] - t["linear"])
    assert (np.abs(t["delta"]) <= t["cs_factor"] * np.sqrt(fail) + 1e-9).all()


def test_bad_inputs_are_named():
    _, _, params = _far_mixture()
    with pytest.raises(ValueError, match="columns"):
        gating.margins(torch.ones(3, 5), params, 0.2)
    with pytest.raises(ValueError, match="zero norm"):
        gating.margins(torch.zeros(2, 16), params, 0.2)
    with pytest.raises(ValueError, match="groups"):
        gating.gating_error_bound(np.zeros((2, 3)), np.array([0, 1]))
    with pytest.raises(ValueError, match="groups must lie"):
        gating.gating_error_bound(np.zeros((2, 2)), np.array([0, 2]))
