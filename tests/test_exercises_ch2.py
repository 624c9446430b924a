"""The chapter 2 experiment checker (tied against untied weights at a given width)."""
import numpy as np
import pytest

from utils import exercises
from utils.gmm import denoising_mse
from utils.models import ReLUDAE
from utils.train import fit_dae


def my_tied_untied(X, X_test, p, sigma, steps):          # the experiment, written as a reader would
    errs = []
    for tied in (True, False):
        model = ReLUDAE(X.shape[1], p, tied=tied, seed=0)
        fit_dae(model, X, sigma=sigma, seed=0, steps=steps)
        errs.append(denoising_mse(model, X_test, sigma, seed=1))
    return np.array(errs)


def test_accepts_the_experiment():
    assert exercises.check_tied_untied(my_tied_untied) is True


def test_rejects_swapped_arms_and_names_the_order():
    with pytest.raises(AssertionError, match=r"order is \[tied, untied\]"):
        exercises.check_tied_untied(lambda *a: my_tied_untied(*a)[::-1])


def test_rejects_the_training_error_and_reveals_no_reference():
    def train_error(X, X_test, p, sigma, steps):          # scores the training set instead
        return my_tied_untied(X, X, p, sigma, steps)

    with pytest.raises(AssertionError, match="errors are wrong") as err:
        exercises.check_tied_untied(train_error)
    assert "denoising_mse" in str(err.value)
    from utils.data import gaussian_mixture
    X, _ = gaussian_mixture(400, 16, 2, 2, seed=11)
    Xte, _ = gaussian_mixture(300, 16, 2, 2, seed=11, sample_seed=12)
    for v in exercises._tied_untied_reference(X, Xte, 3, 0.2, 150):      # the first case
        assert f"{v:.3f}" not in str(err.value) and f"{v:.3g}" not in str(err.value)


def test_rejects_a_wrong_shape_and_a_non_function():
    with pytest.raises(AssertionError, match=r"expected \(2,\)"):
        exercises.check_tied_untied(lambda *a: 0.5)
    with pytest.raises(TypeError, match="pass your function"):
        exercises.check_tied_untied(3)
