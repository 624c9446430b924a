"""Tests for utils.data.augment_images (the enlarged face and digit sets of chapter 6)."""
import pytest
import torch

from utils.data import augment_images


def _images(n=3, h=5, w=6):
    return torch.arange(n * h * w, dtype=torch.float32).reshape(n, 1, h, w) / (n * h * w)


def test_count_order_and_originals_first():
    x = _images()
    out = augment_images(x, flips=True, shifts=1)
    assert out.shape == (3 * 2 * 9, 1, 5, 6) and out.dtype == torch.float32
    assert torch.equal(out[:3], x)                       # originals first
    assert torch.equal(out[27:30], x.flip(-1))           # then the mirrored originals
    assert augment_images(x, flips=False, shifts=0).shape == x.shape
    assert augment_images(x, flips=False, shifts=2).shape[0] == 3 * 25


def test_a_shift_moves_the_image_and_repeats_the_edge():
    x = _images(1)
    out = augment_images(x, flips=False, shifts=1)
    offsets = [(0, 0)] + [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    k = offsets.index((1, 0))                            # content taken from one row lower
    shifted = out[k, 0]
    assert torch.equal(shifted[:-1], x[0, 0, 1:])        # rows moved up by one
    assert torch.equal(shifted[-1], x[0, 0, -1])         # the bottom row repeats the edge
    assert out.min() >= x.min() and out.max() <= x.max()
    assert len({tuple(o.flatten().tolist()) for o in out}) == 9   # all nine offsets differ


def test_bad_input_is_named():
    x = _images()
    with pytest.raises(ValueError, match=r"shape \(n, C, H, W\)"):
        augment_images(x[0])
    with pytest.raises(TypeError, match="float"):
        augment_images(torch.zeros(2, 1, 4, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="NaN"):
        augment_images(torch.full((1, 1, 4, 4), float("nan")))
    with pytest.raises(ValueError, match="shifts"):
        augment_images(x, shifts=5)
    with pytest.raises(ValueError, match="shifts"):
        augment_images(x, shifts=-1)
    with pytest.raises(TypeError, match="flips"):
        augment_images(x, flips=1)
