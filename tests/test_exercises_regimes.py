"""Checkers of the chapter 4 and 5 coding exercises (utils.exercises)."""
import numpy as np
import pytest

from utils import exercises, linear_dae, metrics


def _wiener(S, sigma, q):
    lam, U = np.linalg.eigh(S)
    lam, U = lam[::-1], U[:, ::-1]
    q = len(lam) if q is None else min(q, len(lam))
    lam = np.clip(lam[:q], 0, None)
    return (U[:, :q] * (lam / (lam + sigma ** 2))) @ U[:, :q].T


def test_optimal_linear_denoiser_checker(capsys):
    assert exercises.check_optimal_linear_denoiser(_wiener) is True
    assert "Correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="LARGEST"):      # bottom-q eigenvectors
        exercises.check_optimal_linear_denoiser(
            lambda S, s, q: _wiener(S, s, None) if q is None else
            (lambda lam, U: (U[:, :q] * (lam[:q] / (lam[:q] + s ** 2))) @ U[:, :q].T)(*np.linalg.eigh(S)))
    with pytest.raises(AssertionError, match="no rank limit"):  # no shrinkage (plain projection)
        exercises.check_optimal_linear_denoiser(lambda S, s, q: np.eye(len(S)))
    with pytest.raises(AssertionError, match="raised ZeroDivisionError"):
        exercises.check_optimal_linear_denoiser(lambda S, s, q: 1 / 0)
    with pytest.raises(TypeError):
        exercises.check_optimal_linear_denoiser(None)


def test_spikiness_checker():
    def gini(H):                                    # Hurley and Rickard's Gini index, row by row
        c = np.sort(np.abs(H), axis=1)
        p = H.shape[1]
        tot = c.sum(1, keepdims=True)
        k = np.arange(1, p + 1)
        g = 1 - 2 * ((c / np.where(tot > 0, tot, 1)) * (p - k + 0.5) / p).sum(1)
        return np.where(tot[:, 0] > 0, g, 0.0)

    def pr(H):
        sq, q = (H ** 2).sum(1), (H ** 4).sum(1)
        return np.where(q > 0, sq ** 2 / np.where(q > 0, q, 1), 0.0)

    assert exercises.check_spikiness(gini, "gini") is True
    assert exercises.check_spikiness(pr, "participation_ratio") is True
    with pytest.raises(AssertionError, match="book's own answer"):       # the library's own measure
        exercises.check_spikiness(lambda H: metrics.spikiness(H, "gini"), "gini")

    def top1_nan_on_zero(H):
        return (H ** 2).max(1) / (H ** 2).sum(1)
    with np.errstate(invalid="ignore"), pytest.raises(AssertionError, match="zero row"):
        exercises.check_spikiness(top1_nan_on_zero, "top1_share")
    with pytest.raises(AssertionError, match="wrong"):
        exercises.check_spikiness(lambda H: H.std(1), "hoyer")
    with pytest.raises(ValueError, match="unknown kind"):
        exercises.check_spikiness(lambda H: H, "kurtosis")
