import pytest
import torch
from torch import nn

from utils import representations, steering


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.block = nn.Sequential(nn.ReLU(), nn.Conv2d(3, 3, 1))
        self.head = nn.Flatten()

    def forward(self, x):
        return self.head(self.block(self.conv(x)))


def n_hooks(model):
    return sum(len(m._forward_hooks) for m in model.modules())


def test_capture_returns_last_outputs_and_removes_hooks():
    net = Net()
    x = torch.randn(2, 1, 5, 5)
    with representations.capture(net, ["conv", "block.1"]) as reps:
        assert n_hooks(net) == 2
        net(x)
        first = reps["conv"].clone()
        net(2 * x)
    assert n_hooks(net) == 0
    assert reps["conv"].shape == (2, 3, 5, 5) and reps["block.1"].shape == (2, 3, 5, 5)
    assert not torch.equal(first, reps["conv"])  # the last pass wins
    torch.testing.assert_close(reps["conv"], net.conv(2 * x))
    assert not reps["conv"].requires_grad


def test_capture_single_name_string():
    net = Net()
    with representations.capture(net, "block") as reps:
        net(torch.randn(1, 1, 4, 4))
    assert set(reps) == {"block"}


def test_capture_unknown_name_lists_close_matches():
    net = Net()
    with pytest.raises(ValueError, match="unknown module name 'blok'.*block"):
        with representations.capture(net, ["blok"]):
            pass
    assert n_hooks(net) == 0
    with pytest.raises(ValueError, match="empty"):
        with representations.capture(net, []):
            pass


def test_capture_hooks_removed_after_exception():
    net = Net()
    with pytest.raises(RuntimeError, match="boom"):
        with representations.capture(net, ["conv"]):
            assert n_hooks(net) == 1
            raise RuntimeError("boom")
    assert n_hooks(net) == 0


def test_steer_adds_direction_and_cleans_up():
    net = Net()
    x = torch.randn(2, 1, 4, 4)
    base = net.conv(x)
    v = torch.tensor([1.0, -2.0, 0.5])
    with steering.steer(net, {"conv": v}, alpha=0.3):
        with representations.capture(net, "conv") as reps:
            net(x)
    torch.testing.assert_close(reps["conv"], base + 0.3 * v.view(1, 3, 1, 1))
    assert n_hooks(net) == 0
    # vector (batch, channels) outputs broadcast too
    lin = nn.Sequential(nn.Linear(4, 3))
    with steering.steer(lin, {"0": v}, alpha=1.0):
        out = lin(torch.zeros(5, 4))
    torch.testing.assert_close(out, lin(torch.zeros(5, 4)) + v)


def test_steer_window_and_errors():
    net = Net()
    x = torch.randn(1, 1, 4, 4)
    on = {"flag": False}
    with steering.steer(net, {"conv": torch.ones(3)}, 1.0, active=lambda: on["flag"]):
        torch.testing.assert_close(net(x), Net.forward(net, x))
    with pytest.raises(ValueError, match="channels"):
        with steering.steer(net, {"conv": torch.ones(4)}, 1.0):
            net(x)
    assert n_hooks(net) == 0
    with pytest.raises(ValueError, match="unknown module name"):
        with steering.steer(net, {"nope": torch.ones(3)}, 1.0):
            pass
    with pytest.raises(ValueError, match="NaN"):
        with steering.steer(net, {"conv": torch.tensor([1.0, float("nan"), 0])}, 1.0):
            pass
    with pytest.raises(ValueError, match="non-empty"):
        with steering.steer(net, {}, 1.0):
            pass
