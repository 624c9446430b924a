"""Tests of utils.steering.mean_difference / timestep_window and unet.sample(return_x0=True)."""
import pytest
import torch

from utils import steering, unet

TINY = dict(unet.SMALL_UNET, sample_size=8, block_out_channels=(8, 16, 16))


def test_mean_difference():
    pos = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    neg = torch.tensor([[0.0, 1.0]])
    assert torch.equal(steering.mean_difference(pos, neg), torch.tensor([2.0, 2.0]))
    with pytest.raises(ValueError, match="channels"):
        steering.mean_difference(pos, torch.zeros(1, 3))
    with pytest.raises(ValueError, match="empty|at least one"):
        steering.mean_difference(pos, torch.zeros(0, 2))
    with pytest.raises(ValueError, match="NaN|finite"):
        steering.mean_difference(pos * float("nan"), neg)


def test_timestep_window_steers_only_inside_the_window():
    torch.manual_seed(0)
    model = unet.build_unet(TINY).eval()
    sched = unet.make_scheduler()
    seen = []
    with steering.timestep_window(model, t_max=500) as active:
        h = model.register_forward_hook(lambda *_: seen.append(active()))
        plain = unet.sample(model, sched, 2, steps=4, seed=0)
        h.remove()
        vec = {"up_blocks.1": torch.ones(16)}
        with steering.steer(model, vec, 3.0, active=active):
            steered, x0 = unet.sample(model, sched, 2, steps=4, seed=0, return_x0=True)
    sched.set_timesteps(4)
    assert seen == [int(t) < 500 for t in sched.timesteps]        # [False, False, True, True]
    assert x0.shape == (4, 2, 1, 8, 8) and not torch.equal(plain, steered)
    with steering.steer(model, vec, 3.0, active=lambda: False):
        again = unet.sample(model, sched, 2, steps=4, seed=0)
    assert torch.equal(plain, again)
    assert len(model._forward_pre_hooks) == 0 and len(model._forward_hooks) == 0
    with pytest.raises(ValueError, match="t_min < t_max"):
        with steering.timestep_window(model, t_max=10, t_min=10):
            pass
