"""The chapter 6 ablation checker (held-out PSNR of a model against its noisy input)."""
import numpy as np
import pytest
import torch

from utils import exercises
from utils.metrics import psnr
from utils.models import ReLUDAE
from utils.train import fit_dae


def my_heldout_psnr(X_train, X_test, p, sigma, sparsity, steps):   # as a reader would write it
    model = ReLUDAE(X_train.shape[1], p, seed=0)
    fit_dae(model, X_train, sigma=sigma, seed=0, sparsity=sparsity, steps=steps)
    gen = torch.Generator().manual_seed(0)
    y = X_test + sigma * torch.randn(X_test.shape, generator=gen)
    with torch.no_grad():
        return np.array([psnr(model(y), X_test).mean(), psnr(y, X_test).mean()])


def test_accepts_the_ablation():
    assert exercises.check_heldout_psnr(my_heldout_psnr) is True


def test_rejects_an_ignored_penalty():
    def default_penalty(X_train, X_test, p, sigma, sparsity, steps):
        return my_heldout_psnr(X_train, X_test, p, sigma, None, steps)   # fit_dae's default instead

    with pytest.raises(AssertionError, match="the model.s PSNR is wrong"):
        exercises.check_heldout_psnr(default_penalty)


def test_rejects_scoring_the_training_images_and_reveals_no_reference():
    def on_training(X_train, X_test, p, sigma, sparsity, steps):
        return my_heldout_psnr(X_train, X_train[: len(X_test)], p, sigma, sparsity, steps)

    with pytest.raises(AssertionError, match="is wrong") as err:
        exercises.check_heldout_psnr(on_training)
    from utils.data import load_images
    D = load_images("digits")
    D = D.reshape(len(D), -1)[torch.randperm(len(D), generator=torch.Generator().manual_seed(5))]
    want = exercises._heldout_psnr_reference(D[50:55], D[:50], 20, 0.2, 0.1, 150)   # the first case
    for v in want:
        assert f"{v:.2f}" not in str(err.value) and f"{v:.3g}" not in str(err.value)


def test_rejects_a_wrong_shape():
    with pytest.raises(AssertionError, match=r"expected \(2,\)"):
        exercises.check_heldout_psnr(lambda *a: np.zeros(3))
