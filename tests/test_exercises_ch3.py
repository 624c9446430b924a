"""The chapter 3 experiment checker accepts a correct experiment and rejects wrong ones."""
import pytest
import torch

from utils import exercises
from utils.metrics import stored_mask
from utils.models import ReLUDAE
from utils.train import fit_dae


def _right(X, sigma, weight_decay, seed, p, steps):
    net = ReLUDAE(X.shape[1], p, seed=seed)
    fit_dae(net, X, sigma=sigma, seed=seed, weight_decay=weight_decay, steps=steps)
    return int(stored_mask(net.encoder_weight.detach(), X).sum())


def _ignores_weight_decay(X, sigma, weight_decay, seed, p, steps):
    return _right(X, sigma, 1e-3, seed, p, steps)


def test_check_stored_count_accepts_correct_experiment(capsys):
    assert exercises.check_stored_count(_right) is True
    assert "Correct" in capsys.readouterr().out


def test_check_stored_count_rejects_wrong_experiment_without_revealing_counts():
    with pytest.raises(AssertionError, match="differs from the reference") as info:
        exercises.check_stored_count(_ignores_weight_decay)
    assert "erases" in str(info.value)
    assert not any(ch.isdigit() for ch in str(info.value).split("Hint")[0].replace("'", ""))


def test_check_stored_count_rejects_non_integer_and_non_callable():
    with pytest.raises(AssertionError, match="as an int"):
        exercises.check_stored_count(lambda *a: 2.0)
    with pytest.raises(AssertionError, match="as an int"):
        exercises.check_stored_count(lambda *a: torch.tensor([True, False]))
    with pytest.raises(TypeError):
        exercises.check_stored_count(3)
