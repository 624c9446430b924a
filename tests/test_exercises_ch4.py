"""Chapter 4's transition exercise: utils.exercises.check_gated_gap_ratio."""
import numpy as np
import pytest

from utils import exercises, linear_dae


def _risk_split(X, lab, Xt, labt, sigma, q, test_uses_train_moment=False, skip_empty=False):
    train = test = 0.0
    for j in np.union1d(np.unique(lab), np.unique(labt)):
        Xj, Tj = X[lab == j], Xt[labt == j]
        if len(Xj) == 0 and skip_empty:
            continue
        S = Xj.T @ Xj / max(len(Xj), 1)
        A = linear_dae.optimal_linear_denoiser(S, sigma, rank=q) if len(Xj) else np.zeros_like(S)
        if len(Xj):
            train += len(Xj) / len(X) * linear_dae.linear_risk(A, S, sigma)
        if len(Tj):
            St = S if test_uses_train_moment else Tj.T @ Tj / len(Tj)
            test += len(Tj) / len(Xt) * linear_dae.linear_risk(A, St, sigma)
    return test / train


def test_accepts_a_correct_solution(capsys):
    assert exercises.check_gated_gap_ratio(_risk_split) is True
    assert "Correct" in capsys.readouterr().out


def test_rejects_wrong_solutions_without_revealing_the_reference():
    with pytest.raises(AssertionError, match="ratio is wrong") as err:       # evaluates on the training moments
        exercises.check_gated_gap_ratio(
            lambda *a: _risk_split(*a, test_uses_train_moment=True))
    assert "few samples" in str(err.value)
    with pytest.raises(AssertionError, match="no training sample"):  # drops the empty cluster
        exercises.check_gated_gap_ratio(lambda *a: _risk_split(*a, skip_empty=True))
    with pytest.raises(AssertionError, match="small unit budget"):    # ignores q
        exercises.check_gated_gap_ratio(lambda X, l, Xt, lt, s, q: _risk_split(X, l, Xt, lt, s, None))
    with pytest.raises(AssertionError, match="one finite number"):
        exercises.check_gated_gap_ratio(lambda *a: [1.0, 2.0])
    with pytest.raises(AssertionError, match="raised ZeroDivisionError"):
        exercises.check_gated_gap_ratio(lambda *a: 1 / 0)
    with pytest.raises(TypeError):
        exercises.check_gated_gap_ratio(None)


def test_the_checker_does_not_print_the_reference(capsys):
    with pytest.raises(AssertionError) as err:
        exercises.check_gated_gap_ratio(lambda *a: 1.0)
    msg = str(err.value) + capsys.readouterr().out
    assert "%" not in msg and "ratio is wrong" in msg
