"""The answer process (utils.answer_process): a student's code runs in a child process, the
checker in the grader's, and only data comes back."""
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from utils import answer_process as ap
from utils import exercises

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("value", [
    np.arange(6.0).reshape(2, 3), torch.ones(3, dtype=torch.float64), np.int64(7), 3, 2.5, "x",
    None, True, [1, np.zeros(2)], (torch.zeros(1), {"a": 1.0}), float("nan"), 2 ** 70])
def test_encode_decode_round_trip_keeps_types(value):
    back = ap.decode(ap.encode(value))
    assert type(back) is type(value)
    if isinstance(value, (np.ndarray, torch.Tensor)):
        assert back.dtype == value.dtype and np.array_equal(np.asarray(back), np.asarray(value))
    elif isinstance(value, float) and np.isnan(value):
        assert np.isnan(back)
    elif not isinstance(value, (list, tuple)):
        assert back == value


def test_encode_refuses_objects_that_are_not_data():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    for bad in (Evil(), np.array([Evil()], dtype=object), {1: 2}, lambda: 0):
        with pytest.raises(TypeError):
            ap.encode(bad)
    with pytest.raises(ValueError):                 # a pickle is never loaded
        ap.decode(pickle.dumps(np.zeros(2)))


CONTEXT = "import numpy as np\nSCALE = 2.0"
ANSWER = '''
import numpy as np
TOL = np.finfo(float).eps * 100

def double(x):
    return SCALE * np.asarray(x) + 0 * TOL

def stub(x):
    raise NotImplementedError("write this function (exercise ex-test)")

def boom(x):
    raise ValueError("bad input")

def peek(x):
    import sys
    f, seen = sys._getframe(), []
    while f is not None:
        seen.extend(k for k in f.f_locals if k == "secret_reference_value")
        f = f.f_back
    return len(seen)

def uses_reference(y, X, sigma):
    from utils.diffusion import empirical_denoiser
    import torch
    return empirical_denoiser(torch.from_numpy(y), torch.from_numpy(X), sigma).numpy()

def leaves_hooks(model):
    model.register_forward_hook(lambda *a: None)
    return 0
'''


@pytest.fixture(scope="module")
def proc(tmp_path_factory):
    with ap.AnswerProcess(CONTEXT, ANSWER, ["utils.diffusion.empirical_denoiser"],
                          cwd=tmp_path_factory.mktemp("answer"), root=ROOT) as p:
        yield p


def test_the_childs_function_is_called_with_the_graders_arguments(proc):
    out = proc.function("double")(np.array([1.0, 2.0]))
    assert isinstance(out, np.ndarray) and np.array_equal(out, [2.0, 4.0])


def test_the_checkers_frames_are_out_of_reach(proc):
    secret_reference_value = 42                          # noqa: F841 - what a student would look for
    assert proc.function("peek")(0) == 0


def test_errors_come_back_with_their_kind(proc):
    with pytest.raises(NotImplementedError, match="ex-test"):
        proc.function("stub")(1)
    with pytest.raises(ap.AnswerError, match="bad input") as err:
        proc.function("boom")(1)
    assert type(err.value).__name__ == "ValueError"
    with pytest.raises(ap.AnswerError, match="does not define"):
        proc.function("no_such")(1)


def test_the_guard_runs_in_the_child(proc):
    y, X = np.zeros((1, 2)), np.eye(2)
    with pytest.raises(AssertionError, match="book's own answer"):
        proc.function("uses_reference")(y, X, 0.5)


def test_hooks_left_on_a_model_are_reported(proc):
    with pytest.raises(AssertionError, match="left hooks"):
        proc.function("leaves_hooks")(torch.nn.Linear(2, 2))


def test_a_checker_grades_a_remote_function():
    answer = '''
import numpy as np
def my_f_emp(y, X, sigma):
    logits = -((y[:, None, :] - X[None]) ** 2).sum(-1) / (2 * sigma ** 2)
    w = np.exp(logits - logits.max(1, keepdims=True))
    return (w / w.sum(1, keepdims=True)) @ X
'''
    with ap.AnswerProcess("", answer, exercises.check_empirical_denoiser.forbid, cwd=ROOT, root=ROOT) as p:
        assert exercises.check_empirical_denoiser(p.function("my_f_emp"), hidden=True) is True


def test_a_child_that_dies_is_an_answer_error(tmp_path):
    with pytest.raises(ap.AnswerError, match="ended the answer process"):
        with ap.AnswerProcess("", "import os\nos._exit(3)", cwd=tmp_path, root=ROOT):
            pass
    with pytest.raises(ap.AnswerError) as err:
        with ap.AnswerProcess("1/0", "", cwd=tmp_path, root=ROOT):
            pass
    assert err.value.kind == "context"
