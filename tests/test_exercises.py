"""Tests of the exercise checkers in utils.exercises: right answers pass, wrong ones fail loudly."""
import numpy as np
import pytest
import torch

from utils import exercises


def _stable_f_emp(y, X, sigma):
    d2 = ((y[:, None, :] - X[None]) ** 2).sum(-1)
    logits = -d2 / (2 * sigma ** 2)
    logits -= logits.max(1, keepdims=True)
    w = np.exp(logits)
    return (w / w.sum(1, keepdims=True)) @ X


def _naive_f_emp(y, X, sigma):
    d2 = ((y[:, None, :] - X[None]) ** 2).sum(-1)
    w = np.exp(-d2 / (2 * sigma ** 2))
    with np.errstate(invalid="ignore"):
        return (w / w.sum(1, keepdims=True)) @ X


def test_empirical_denoiser_checker_accepts_correct_numpy_and_torch(capsys):
    assert exercises.check_empirical_denoiser(_stable_f_emp) is True
    assert "Correct" in capsys.readouterr().out
    torch_version = lambda y, X, s: torch.softmax(  # noqa: E731
        -torch.cdist(torch.from_numpy(y), torch.from_numpy(X)) ** 2 / (2 * s ** 2), 1) @ torch.from_numpy(X)
    assert exercises.check_empirical_denoiser(torch_version) is True


def test_empirical_denoiser_checker_rejects_naive_softmax():
    with pytest.raises(AssertionError, match="NaN.*log-sum-exp"):
        exercises.check_empirical_denoiser(_naive_f_emp)


@pytest.mark.parametrize("wrong, pattern", [
    (lambda y, X, s: _stable_f_emp(y, X, 2 * s), "moderate noise"),          # wrong temperature
    (lambda y, X, s: _stable_f_emp(y, X, s)[:, :-1], "shape"),               # wrong shape
    (lambda y, X, s: X[np.argmin(((y[:, None] - X[None]) ** 2).sum(-1), 1)], "moderate noise"),  # hard argmin
    (lambda y, X, s: 1 / 0, "ZeroDivisionError"),                           # crashes
    (lambda y, X, s: "abc", "array of numbers"),                             # not numbers
])
def test_empirical_denoiser_checker_rejects_wrong_answers(wrong, pattern):
    with pytest.raises(AssertionError, match=pattern):
        exercises.check_empirical_denoiser(wrong)


def test_empirical_denoiser_checker_hard_argmin_fails_at_the_tie():
    def argmin_when_small(y, X, s):
        return X[np.argmin(((y[:, None] - X[None]) ** 2).sum(-1), 1)] if s < 0.1 else _stable_f_emp(y, X, s)
    with pytest.raises(AssertionError, match="tie"):
        exercises.check_empirical_denoiser(argmin_when_small)


def test_empirical_denoiser_checker_needs_a_callable():
    with pytest.raises(TypeError, match="function"):
        exercises.check_empirical_denoiser(42)


def _my_tpr(scores, labels, fpr):
    """A correct answer: every distinct score is a candidate threshold (>= flags)."""
    best = 0.0
    neg, pos = labels == 0, labels == 1
    for th in np.r_[np.unique(scores), np.inf]:
        flagged = scores >= th
        if flagged[neg].mean() <= fpr + 1e-12:
            best = max(best, flagged[pos].mean())
    return best


def test_check_tpr_at_fpr_accepts_right_and_rejects_wrong():
    assert exercises.check_tpr_at_fpr(_my_tpr) is True

    def ignores_ties(scores, labels, fpr):     # ranks by sorting, splitting ties
        order = np.argsort(-scores, kind="stable")
        lab = labels[order]
        fp = np.cumsum(lab == 0) / (lab == 0).sum()
        tp = np.cumsum(lab == 1) / (lab == 1).sum()
        ok = fp <= fpr + 1e-12
        return float(tp[ok].max()) if ok.any() else 0.0

    with pytest.raises(AssertionError, match="tied"):
        exercises.check_tpr_at_fpr(ignores_ties)
    with pytest.raises(TypeError):
        exercises.check_tpr_at_fpr(3)


def test_check_empirical_jacobian():
    def right(y, X, s):
        logits = -((X - y) ** 2).sum(1) / (2 * s ** 2)
        w = np.exp(logits - logits.max())
        w /= w.sum()
        D = X - w @ X
        return (w[:, None] * D).T @ D / s ** 2

    def forgot_sigma(y, X, s):
        return right(y, X, s) * s ** 2

    assert exercises.check_empirical_jacobian(right) is True
    with pytest.raises(AssertionError, match="case"):
        exercises.check_empirical_jacobian(forgot_sigma)


def test_check_copy_ratio_accepts_the_experiment_and_rejects_a_wrong_one():
    from utils.models import split_parallel
    from utils.train import fit_dae

    def right(model, units, optimizer, lr, steps, X, sigma):   # the experiment as the chapter runs it
        net = split_parallel(model, units, (0.6, 0.8))
        fit_dae(net, X, sigma=sigma, seed=1, sparsity=0.0, optimizer=optimizer, lr=lr, steps=steps)
        norms = net.encoder_weight.detach().norm(dim=1)
        first, second = norms[model.p - len(units):model.p], norms[model.p:]
        return (torch.minimum(first, second) / torch.maximum(first, second)).numpy()

    def no_training(model, units, optimizer, lr, steps, X, sigma):
        return torch.full((len(units),), 0.75)

    assert exercises.check_copy_ratio(right)
    with pytest.raises(AssertionError, match="ratios are wrong") as err:
        exercises.check_copy_ratio(no_training)
    assert "0.75" not in str(err.value).split("Hint")[0]      # no reference value is revealed


def test_gradable_reports_a_stub_as_not_attempted_and_hidden_cases_run(capsys):
    def stub(y, X, sigma):
        raise NotImplementedError("write this function (exercise ex-implement-emp)")

    assert exercises.check_empirical_denoiser(stub) is False
    assert "ex-implement-emp: not attempted" in capsys.readouterr().out
    assert exercises.check_empirical_denoiser(stub, hidden=True) is False

    def right(y, X, sigma):
        logits = -((y[:, None, :] - X[None]) ** 2).sum(-1) / (2 * sigma ** 2)
        w = np.exp(logits - logits.max(1, keepdims=True))
        return (w / w.sum(1, keepdims=True)) @ X

    calls = []

    def counting(y, X, sigma):
        calls.append(1)
        return right(y, X, sigma)

    assert exercises.check_empirical_denoiser(counting)
    practice = len(calls)
    assert exercises.check_empirical_denoiser(counting, hidden=True)
    assert len(calls) > practice                                   # the hidden call runs more cases


def test_no_checker_prints_the_reference_value():
    import numpy as np

    def off(norms, sigma, lam):                                    # a wrong answer with a known value
        return np.full(len(norms), 4.0)

    from utils.memorization import memorization_scale
    with pytest.raises(AssertionError) as err:
        exercises.check_memorization_scale(off)
    want = memorization_scale(np.full(5, 8.0), 0.2, 1e-3)
    msg = str(err.value)
    assert "expected" not in msg and f"{want[0]:.5g}" not in msg and f"{want[0]:.3g}" not in msg
    assert "scale" in msg or "case" in msg


def test_every_checker_is_gradable_and_takes_hidden():
    import inspect
    for name in dir(exercises):
        if name.startswith("check_"):
            f = getattr(exercises, name)
            assert getattr(f, "gradable", False), f"{name} lacks @gradable"
            assert "hidden" in inspect.signature(f.__wrapped__).parameters, f"{name} lacks hidden="


# ---- the reference guard: a reader's function may not call the book's own answer ----------
def _own_f_emp(y, X, sigma):
    logits = -((y[:, None, :] - X[None]) ** 2).sum(-1) / (2 * sigma ** 2)
    w = np.exp(logits - logits.max(1, keepdims=True))
    return (w / w.sum(1, keepdims=True)) @ X


def _ways_to_call_the_reference():
    """Answers that return the right numbers by calling utils.diffusion.empirical_denoiser."""
    import importlib

    from utils import diffusion
    from utils.diffusion import empirical_denoiser as alias

    def direct(y, X, sigma):
        from utils.diffusion import empirical_denoiser
        return empirical_denoiser(torch.from_numpy(y), torch.from_numpy(X), sigma).numpy()

    def through_an_alias(y, X, sigma):
        return alias(torch.from_numpy(y), torch.from_numpy(X), sigma).numpy()

    def through_getattr(y, X, sigma):
        f = getattr(importlib.import_module("utils." + "diffusion"), "empirical_" + "denoiser")
        return f(torch.from_numpy(y), torch.from_numpy(X), sigma).numpy()

    def through_a_default(y, X, sigma, _f=diffusion.empirical_denoiser):
        return _f(torch.from_numpy(y), torch.from_numpy(X), sigma).numpy()

    def only_on_hard_cases(y, X, sigma):             # its own code, the reference where it is hard
        return direct(y, X, sigma) if sigma < 0.05 else _own_f_emp(y, X, sigma)

    def switching_the_guard_off(y, X, sigma):
        import sys
        sys.setprofile(None)
        return direct(y, X, sigma)

    def in_a_thread(y, X, sigma):
        import threading
        out = {}
        t = threading.Thread(target=lambda: out.update(r=direct(y, X, sigma)))
        t.start()
        t.join()
        return out["r"]

    def through_a_renamed_copy(y, X, sigma):
        import types
        code = alias.__code__.replace(co_name="mine")
        mine = types.FunctionType(code, alias.__globals__, "mine", alias.__defaults__, alias.__closure__)
        mine.__kwdefaults__ = alias.__kwdefaults__
        return mine(torch.from_numpy(y), torch.from_numpy(X), sigma).numpy()

    def through_a_copy_in_another_file(y, X, sigma):
        import types
        code = alias.__code__.replace(co_name="mine", co_filename="mine.py", co_firstlineno=1)
        mine = types.FunctionType(code, alias.__globals__, "mine", alias.__defaults__, alias.__closure__)
        mine.__kwdefaults__ = alias.__kwdefaults__
        return mine(torch.from_numpy(y), torch.from_numpy(X), sigma).numpy()

    def switching_the_guard_off_and_on(y, X, sigma):
        import sys
        h = sys.getprofile()
        sys.setprofile(None)
        try:
            return direct(y, X, sigma)
        finally:
            sys.setprofile(h)

    return [direct, through_an_alias, through_getattr, through_a_default, only_on_hard_cases,
            switching_the_guard_off, in_a_thread, through_a_renamed_copy,
            through_a_copy_in_another_file, switching_the_guard_off_and_on]


@pytest.mark.parametrize("answer", _ways_to_call_the_reference(), ids=lambda f: f.__name__)
@pytest.mark.parametrize("hidden", [False, True])
def test_calling_the_books_reference_fails_the_check(answer, hidden):
    with pytest.raises(AssertionError, match="book's own answer") as err:
        exercises.check_empirical_denoiser(answer, hidden=hidden)
    assert "empirical_denoiser" in str(err.value) or "setprofile" in str(err.value)
    import sys
    assert sys.getprofile() is None                              # the hook is always removed


def test_the_guard_passes_own_code_and_allowed_library_calls():
    assert exercises.check_empirical_denoiser(_own_f_emp, hidden=True) is True

    from utils import metrics

    def pr(H):                        # a library helper that is not this exercise's answer is fine
        A = metrics._rows(H)
        sq, q = (A ** 2).sum(1), (A ** 4).sum(1)
        return np.where(q > 0, sq ** 2 / np.where(q > 0, q, 1), 0.0)
    assert exercises.check_spikiness(pr, "participation_ratio", hidden=True) is True
    with pytest.raises(AssertionError, match="participation_ratio"):
        exercises.check_spikiness(metrics.participation_ratio, "participation_ratio")


def test_the_private_references_are_always_forbidden():
    def right(model, units, optimizer, lr, steps, X, sigma):
        return exercises._copy_ratio_reference(model, units, optimizer, lr, steps, X, sigma)
    with pytest.raises(AssertionError, match="_copy_ratio_reference"):
        exercises.check_copy_ratio(right)


def test_every_forbidden_name_resolves_to_a_function():
    for name in dir(exercises):
        f = getattr(exercises, name)
        if name.startswith("check_"):
            exercises.ReferenceGuard(f.forbid)                    # ValueError if a name is stale
    with pytest.raises(ValueError, match="does not name a function"):
        exercises.ReferenceGuard(["utils.metrics.no_such_function"])


# ---- chapter 1 referee: answers that the empirical-denoiser checker used to let through ----------
def _nearest_point_fallback(y, X, sigma):
    """The naive formula, with the nearest training point wherever it gives NaN (a wrong answer)."""
    d2 = ((y[:, None, :] - X[None]) ** 2).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.exp(-d2 / (2 * sigma ** 2))
        out = (w / w.sum(1, keepdims=True)) @ X
    return np.where(np.isnan(out), X[d2.argmin(1)], out)


def test_nearest_point_fallback_fails_the_hidden_large_noise_case():
    exercises.check_empirical_denoiser(_nearest_point_fallback)          # the practice cases miss it
    with pytest.raises(AssertionError, match="large noise in high dimension"):
        exercises.check_empirical_denoiser(_nearest_point_fallback, hidden=True)


def test_float32_answers_still_pass_the_hidden_cases():
    def f32(y, X, sigma):
        d2 = ((y[:, None, :] - X[None]) ** 2).sum(-1).astype(np.float32)
        logits = -d2 / np.float32(2 * sigma ** 2)
        w = np.exp(logits - logits.max(1, keepdims=True))
        return (w / w.sum(1, keepdims=True)) @ X.astype(np.float32)
    assert exercises.check_empirical_denoiser(f32, hidden=True) is True


@pytest.mark.parametrize("hidden", [False, True])
def test_calling_the_private_softmax_weights_fails_the_check(hidden):
    from utils.diffusion import _softmax_weights

    def through_softmax_weights(y, X, sigma):
        w = _softmax_weights(torch.from_numpy(y), torch.from_numpy(X), torch.tensor(float(sigma), dtype=torch.float64))
        return (w @ torch.from_numpy(X)).numpy()
    with pytest.raises(AssertionError, match="_softmax_weights"):
        exercises.check_empirical_denoiser(through_softmax_weights, hidden=hidden)


def test_a_refused_answer_is_not_told_it_is_correct(capsys):
    def direct(y, X, sigma):
        from utils.diffusion import empirical_denoiser
        return empirical_denoiser(torch.from_numpy(y), torch.from_numpy(X), sigma).numpy()
    with pytest.raises(AssertionError, match="book's own answer"):
        exercises.check_empirical_denoiser(direct)
    assert "Correct" not in capsys.readouterr().out
    assert exercises.check_empirical_denoiser(_own_f_emp)
    assert "Correct" in capsys.readouterr().out
