"""Checkers for the book's coding exercises.

Each ``check_*`` function takes the reader's function, calls it on fresh random inputs, compares
the answer with a reference computed here, and either returns ``True`` (printing a short
confirmation) or raises ``AssertionError`` that says what went wrong. The checkers never reveal
the reference code, and never print a reference value: a failure names the case and what to check.

Every checker is decorated with :func:`gradable` and takes ``hidden: bool = False``: with
``hidden=True`` (what ``python -m utils.course grade`` calls) it runs further cases (other seeds,
shapes and edge cases) that the practice call never shows. A new checker must do the same.

A reader's function may not call the book's own answer: ``@gradable(forbid=...)`` names the
``utils`` functions an exercise asks the reader to write (and every ``_*_reference`` of this
module is always forbidden). While the reader's function runs, a profile hook
(:class:`ReferenceGuard`) records calls of those functions, however they were reached (an alias,
``getattr``, a default argument, a chapter helper), and the check then fails and says which one.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import os
import re
import sys

import numpy as np
import torch


def _as_numpy(x, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    kind = np.asarray(x).dtype.kind if not isinstance(x, (str, bytes)) else "U"
    if kind in "USOV":
        raise AssertionError(f"{what} must return an array of numbers, got "
                             f"{'text' if kind in 'US' else 'objects'} ({type(x).__name__})")
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{what} must return an array of numbers, got {type(x).__name__}") from exc


def _close(got, want, what: str, rtol: float = 1e-6, atol: float = 1e-8, hint: str = "") -> None:
    """Raise AssertionError (ending with ``hint``, if given) unless ``got`` matches ``want``."""
    got = _as_numpy(got, what)
    suffix = f". Hint: {hint}" if hint else ""
    if got.shape != want.shape:
        raise AssertionError(f"{what}: returned shape {got.shape}, expected {want.shape}{suffix}")
    if not np.isfinite(got).all():
        raise AssertionError(f"{what}: the output contains NaN or inf{suffix}")
    if not np.allclose(got, want, rtol=rtol, atol=atol):
        k = int(np.argmax(np.abs(got - want)))
        raise AssertionError(f"{what} is wrong (the largest error is at flat index {k} of the output; "
                             f"the checkers never print the right value){suffix}")


_LABEL = re.compile(r"exercise (ex-[\w-]+)")


def _not_attempted(exc: BaseException):
    """The exercise label if ``exc`` (or an exception it was raised from) is the stub's
    ``NotImplementedError``, "this exercise" if it is one without a label, else None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, NotImplementedError):
            m = _LABEL.search(str(exc))
            return m.group(1) if m else "this exercise"
        exc = exc.__cause__ or exc.__context__
    return None


GRADER_SALT_VARIABLE = "BOOK_GRADER_SALT"


def _hidden_seed(base: int) -> int:
    """The seed of a hidden case: ``base`` itself, or, when the grader has set a secret salt
    (environment variable ``BOOK_GRADER_SALT``, which the student's process never sees), a number
    mixed from the salt and ``base``, so hidden inputs cannot be computed ahead from this file."""
    salt = os.environ.get(GRADER_SALT_VARIABLE, "")
    if not salt:
        return base
    digest = hashlib.sha256(f"{salt}:{base}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _resolve(path: str):
    """The function named ``"package.module.name"`` (``ValueError`` if there is none)."""
    module, _, name = path.rpartition(".")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"forbidden reference {path!r} does not name a function") from exc
    if not callable(fn):
        raise ValueError(f"forbidden reference {path!r} is not callable")
    return fn


def _code_objects(fn) -> list:
    """The code objects a call of ``fn`` runs first (through ``functools.wraps`` chains)."""
    out, seen = [], set()
    while fn is not None and id(fn) not in seen:
        seen.add(id(fn))
        code = getattr(fn, "__code__", None)
        if code is not None:
            out.append(code)
        fn = getattr(fn, "__wrapped__", None)
    return out


def _code_shape(code) -> tuple:
    """Cheap numbers that a copy of a function's code keeps (its arguments, locals, stack and the
    counts of its constants and names): a first filter before comparing bytecode."""
    return (code.co_argcount, code.co_kwonlyargcount, code.co_nlocals, code.co_stacksize,
            len(code.co_consts), len(code.co_names))


class ReferenceGuard:
    """Records calls of forbidden functions made while a reader's function runs.

    ``guard.wrap(fn)`` returns ``fn`` behind a profile hook (``sys.setprofile`` for this thread,
    ``threading.setprofile`` for threads it starts) that notes every call of a forbidden
    function's code, recognised by its file and first line or by its bytecode (so a copy made
    with ``__code__.replace`` under another name, file or line is caught too), and a reader's
    function that tries to switch the hook off (``sys.setprofile`` is replaced while it runs);
    ``hits`` lists the names seen, in order, without repeats. It is a deterrent, not a sandbox: it
    lives in the process the reader's code controls, so code written to defeat it (changed
    bytecode, the hook's state edited through the frames, code run in another process, the
    reference's source pasted in) is not seen.
    """

    def __init__(self, paths):
        self.codes, self.shapes = {}, {}
        named = [(path, _resolve(path)) for path in paths]
        named += [(f"{__name__}.{name}", f) for name, f in vars(sys.modules[__name__]).items()
                  if name.startswith("_") and name.endswith("_reference") and callable(f)]
        for path, f in named:
            for code in _code_objects(f):
                self.codes[(code.co_filename, code.co_firstlineno)] = path
                # a copy under another file, line or name: same shape and the same bytecode
                self.shapes.setdefault(_code_shape(code), []).append((code.co_code, code.co_consts, path))
        self.hits: list[str] = []

    @staticmethod
    def raise_for(hits) -> None:
        """Raise the guard's ``AssertionError`` for the forbidden names ``hits`` (if any)."""
        if hits:
            raise AssertionError(f"your function calls {', '.join(hits)}: that is the book's "
                                 "own answer to this exercise (what the checker compares against); "
                                 "write the computation yourself")

    def _hit(self, name: str) -> None:
        if name not in self.hits:
            self.hits.append(name)

    def wrap(self, fn):
        codes, shapes = self.codes, self.shapes

        @functools.wraps(fn)
        def guarded(*args, **kwargs):
            import threading
            outer, outer_threads = sys.getprofile(), threading.getprofile()

            def hook(frame, event, arg):
                if event == "call":
                    code = frame.f_code
                    name = codes.get((code.co_filename, code.co_firstlineno))
                    if name is None and _code_shape(code) in shapes:
                        name = next((n for b, c, n in shapes[_code_shape(code)]
                                     if b == code.co_code and c == code.co_consts), None)
                    if name is not None:
                        self._hit(name)
                if outer is not None:
                    outer(frame, event, arg)

            def refuse(*a, **k):                     # while the answer runs, the hook stays
                self._hit("sys.setprofile (the guard was switched off)")
            set_sys, set_threads = sys.setprofile, threading.setprofile
            set_sys(hook)
            set_threads(hook)
            sys.setprofile, threading.setprofile = refuse, refuse
            try:
                return fn(*args, **kwargs)
            finally:
                sys.setprofile, threading.setprofile = set_sys, set_threads
                if sys.getprofile() is not hook or threading.getprofile() is not hook:
                    self._hit("sys.setprofile (the guard was switched off)")
                set_sys(outer)
                set_threads(outer_threads)
        return guarded

    def verdict(self) -> None:
        """Raise ``AssertionError`` naming what was called, if anything forbidden was."""
        self.raise_for(self.hits)


def gradable(check=None, *, forbid: tuple[str, ...] = ()):
    """Decorator for every ``check_*`` (bare, or ``@gradable(forbid=("utils.x.f", ...))``).

    A reader's function that raises ``NotImplementedError`` (the student edition's stub,
    ``python -m utils.course student``) is reported as ``ex-...: not attempted`` and the checker
    returns False instead of raising, so a notebook with unanswered exercises still runs top to
    bottom. ``hidden=True`` (the grader's call) is passed on to the checker, which then also runs
    cases the practice call never shows. The reader's function runs behind a
    :class:`ReferenceGuard` over ``forbid``: calling one of them fails the check.
    """
    if check is None:
        return functools.partial(gradable, forbid=tuple(forbid))

    @functools.wraps(check)
    def wrapper(fn, *args, hidden: bool = False, **kwargs):
        import contextlib
        import io
        guard, said = ReferenceGuard(forbid), io.StringIO()
        try:
            with contextlib.redirect_stdout(said):    # held back: no "Correct" before the guard's word
                result = check(guard.wrap(fn) if callable(fn) else fn, *args, hidden=hidden, **kwargs)
        except Exception as exc:
            label = _not_attempted(exc)
            if label is None:
                guard.verdict()
                print(said.getvalue(), end="")
                raise
            print(f"{label}: not attempted")
            return False
        guard.verdict()
        print(said.getvalue(), end="")
        return result
    wrapper.gradable = True
    wrapper.forbid = tuple(forbid)
    return wrapper


@gradable(forbid=("utils.diffusion.empirical_denoiser", "utils.diffusion.posterior_weights",
                  "utils.diffusion._softmax_weights"))
def check_empirical_denoiser(fn, hidden: bool = False) -> bool:
    """Check a reader's empirical denoiser ``fn(y, X, sigma) -> (m, d)`` (chapter 1).

    ``fn`` receives float64 NumPy arrays y (m, d), X (n, d) and a float sigma and must return
    f_emp(y) = sum_i softmax_i(-||y - x_i||^2 / (2 sigma^2)) x_i for every row of y, as a NumPy array
    or a torch tensor. Four cases are tried: a moderate noise level, a tiny one in high dimension
    (where exp() of the raw logits underflows to 0/0 = NaN, even in float64), an exact tie between
    two training points, and a huge noise level (the answer tends to the mean of X). ``hidden=True``
    adds four cases that the practice call does not show. Raises
    ``AssertionError`` naming the failing case; prints a confirmation and returns True on success.
    """
    from .diffusion import empirical_denoiser

    if not callable(fn):
        raise TypeError("pass your function itself, e.g. check_empirical_denoiser(my_f_emp)")
    rng = np.random.default_rng(1234)
    cases = []
    X = rng.uniform(-1, 1, (30, 16))
    cases.append(("moderate noise (sigma=0.5, d=16)", X[:6] + 0.5 * rng.standard_normal((6, 16)), X, 0.5))
    X = rng.uniform(-1, 1, (40, 2048))
    cases.append(("tiny noise in high dimension (sigma=0.01, d=2048)",
                  X[:5] + 0.01 * rng.standard_normal((5, 2048)), X, 0.01))
    X = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    cases.append(("an exact tie (y halfway between two training points, sigma=0.05)",
                  np.array([[0.0, 0.0]]), X, 0.05))
    X = rng.uniform(-1, 1, (25, 8))
    cases.append(("huge noise (sigma=1e4)", rng.uniform(-1, 1, (4, 8)), X, 1e4))
    if hidden:
        hr = np.random.default_rng(_hidden_seed(8642))
        X = hr.uniform(-1, 1, (1, 5))
        cases.append(("hidden: a single training point", hr.uniform(-1, 1, (3, 5)), X, 0.3))
        X = hr.uniform(-1, 1, (17, 3))
        cases.append(("hidden: another data set (n=17, d=3, sigma=0.8)", hr.uniform(-1, 1, (9, 3)), X, 0.8))
        X = hr.uniform(-1, 1, (60, 512))
        cases.append(("hidden: tiny noise (sigma=1e-3, d=512)", X[7:10] + 1e-3 * hr.standard_normal((3, 512)), X, 1e-3))
        X = np.random.default_rng(_hidden_seed(97531)).uniform(-1, 1, (30, 4096))
        cases.append(("hidden: large noise in high dimension (sigma=30, d=4096)",
                      X[:4] + 30.0 * np.random.default_rng(_hidden_seed(97532)).standard_normal((4, 4096)), X, 30.0))
    # per-case absolute tolerance: the large-noise case allows float32 rounding of logits near -2000
    # (errors below 1e-4), far below what returning the nearest training point costs (about 1)
    atol = {7: 5e-4}
    hints = {
        4: "f_emp(y) is a weighted average of the training points",
        5: "f_emp(y) = softmax-weighted average of the training points",
        6: "subtract each row's largest logit before exponentiating",
        7: "here exp() of every logit underflows although the weights are spread over several training "
           "points, so the nearest training point is not the answer: subtract each row's largest logit "
           "before exponentiating",
        0: "check that the weights are softmax(-||y - x_i||^2 / (2 sigma^2)) over the training points "
           "i (each row of the weight matrix sums to 1) and that you return weights @ X",
        1: "exp() of logits near -d/2 underflows to 0 and 0/0 gives NaN: subtract each row's largest "
           "logit before exponentiating (log-sum-exp), and compute ||y - x_i||^2 from differences",
        2: "at an exact tie the two nearest points must get weight 1/2 each",
        3: "for sigma -> infinity all weights tend to 1/n, so f_emp(y) tends to the mean of X",
    }
    for k, (name, y, X, sigma) in enumerate(cases):
        want = empirical_denoiser(torch.from_numpy(y), torch.from_numpy(X), sigma).numpy()
        try:
            got = fn(y.copy(), X.copy(), sigma)
        except Exception as exc:
            raise AssertionError(f"case '{name}': your function raised {type(exc).__name__}: {exc}") from exc
        got = _as_numpy(got, "your empirical denoiser")
        if got.shape != want.shape:
            raise AssertionError(f"case '{name}': returned shape {got.shape}, expected {want.shape} "
                                 "(one denoised row per row of y)")
        if not np.isfinite(got).all():
            raise AssertionError(f"case '{name}': the output contains NaN or inf. Hint: {hints[1]}")
        _close(got, want, f"case '{name}'", rtol=1e-6, atol=atol.get(k, 1e-6), hint=hints[k])
    print(f"Correct: your empirical denoiser matches the reference on all {len(cases)} cases"
          + (" (practice and hidden)." if hidden else " (moderate noise, tiny noise in d=2048, a tie, huge noise)."))
    return True


def _call(fn, args, case: str):
    try:
        return fn(*args)
    except Exception as exc:
        raise AssertionError(f"case '{case}': your function raised {type(exc).__name__}: {exc}") from exc


@gradable(forbid=("utils.linear_dae.optimal_linear_denoiser", "utils.linear_dae.wiener_shrinkage",
                  "utils.memorization.linear_denoiser"))
def check_optimal_linear_denoiser(fn, hidden: bool = False) -> bool:
    """Check a reader's ``fn(S, sigma, q) -> A`` (chapter 4): the rank-<=q matrix A (d, d) that
    minimizes E||A(x + sigma eps) - x||^2 for data with second moment S (d, d), i.e. the top-q
    eigenvectors of S kept with gains lambda/(lambda + sigma^2); q = None means no rank limit.

    Cases: a random S with q = None, with q = 2, a rank-deficient S (a low-rank cluster), and a
    large noise level. Raises ``AssertionError`` naming the failing case, else prints and returns True.
    """
    from .linear_dae import optimal_linear_denoiser

    if not callable(fn):
        raise TypeError("pass your function itself, e.g. check_optimal_linear_denoiser(my_fn)")
    rng = np.random.default_rng(4321)
    B = rng.standard_normal((6, 6))
    S_full = B @ B.T / 6
    mu, U = rng.standard_normal(8), np.linalg.qr(rng.standard_normal((8, 2)))[0]
    S_low = np.outer(mu, mu) + (U * np.array([2.0, 0.5])) @ U.T
    cases = [("full-rank S, no rank limit", S_full, 0.5, None),
             ("full-rank S, rank limit q=2", S_full, 0.5, 2),
             ("rank-3 cluster second moment, q=5", S_low, 0.3, 5),
             ("large noise sigma=10, q=3", S_full, 10.0, 3)]
    if hidden:
        hr = np.random.default_rng(_hidden_seed(2468))
        B = hr.standard_normal((4, 4))
        cases += [("hidden: another S (d=4), q=1", B @ B.T / 4, 0.7, 1),
                  ("hidden: q larger than d", S_full, 0.5, 10),
                  ("hidden: tiny noise sigma=1e-3, no rank limit", B @ B.T / 4 + np.eye(4), 1e-3, None)]
    hints = {0: "the unconstrained optimum is S (S + sigma^2 I)^{-1}",
             1: "keep only the q eigenvectors with the LARGEST eigenvalues of S, each with gain "
                "lambda / (lambda + sigma^2)",
             2: "eigenvalues that are 0 get gain 0: the answer has rank 3 even though q = 5",
             3: "with sigma^2 >> lambda the gains are small, lambda / (lambda + sigma^2), not 1",
             4: "keep the q eigenvectors with the largest eigenvalues", 5: "q >= d means no rank limit",
             6: "the unconstrained optimum is S (S + sigma^2 I)^{-1}"}
    for k, (name, S, sigma, q) in enumerate(cases):
        want = optimal_linear_denoiser(S, sigma, q)
        got = _as_numpy(_call(fn, (S.copy(), sigma, q), name), "your function")
        _close(got, want, f"case '{name}'", rtol=1e-6, atol=1e-8, hint=hints[k])
    print(f"Correct: your optimal linear denoiser matches the reference on all {len(cases)} cases.")
    return True


@gradable(forbid=("utils.metrics.spikiness", "utils.metrics.participation_ratio"))
def check_spikiness(fn, kind: str, hidden: bool = False) -> bool:
    """Check a reader's spikiness measure ``fn(H) -> (n,)`` (chapter 5) against
    ``utils.metrics.spikiness(H, kind)`` (or ``participation_ratio`` for kind="participation_ratio").

    ``fn`` receives a float64 NumPy array H (n, p) with non-negative entries. Cases: random
    representations, one-hot and constant rows (the extremes), an all-zero row (must give 0), and
    a rescaled copy (a scale-invariant measure must not change). Raises ``AssertionError`` naming
    the failing case, else prints and returns True.
    """
    from . import metrics

    valid = metrics.SPIKINESS_KINDS + ("participation_ratio",)
    if kind not in valid:
        raise ValueError(f"unknown kind {kind!r}; choose one of {valid}")
    if not callable(fn):
        raise TypeError("pass your function itself, e.g. check_spikiness(my_hoyer, 'hoyer')")
    ref = metrics.participation_ratio if kind == "participation_ratio" else \
        (lambda H: metrics.spikiness(H, kind))
    rng = np.random.default_rng(99)
    H = np.maximum(rng.standard_normal((12, 9)), 0) + 0.01
    extremes = np.zeros((2, 9)); extremes[0, 4] = 3.0; extremes[1] = 0.7
    zero = np.vstack([H[:2], np.zeros((1, 9))])
    cases = [("random non-negative rows", H), ("one-hot and constant rows", extremes),
             ("an all-zero row (must give 0)", zero), ("the random rows times 7.5", 7.5 * H)]
    if hidden:
        hr = np.random.default_rng(_hidden_seed(1357))
        H2 = np.maximum(hr.standard_normal((5, 30)), 0) + 0.001
        two = np.zeros((3, 30)); two[0, :2] = 1.0; two[1, [3, 9]] = [2.0, 0.5]; two[2, ::3] = 1.0
        cases += [("hidden: other random rows (p=30)", H2), ("hidden: rows with a few equal or unequal units", two),
                  ("hidden: tiny values (times 1e-6)", 1e-6 * H2)]
    for name, M in cases:
        want = np.asarray(ref(M), dtype=np.float64)
        got = _as_numpy(_call(fn, (M.copy(),), name), "your function")
        if got.shape != want.shape:
            raise AssertionError(f"case '{name}': returned shape {got.shape}, expected {want.shape} "
                                 "(one value per row of H)")
        if not np.isfinite(got).all():
            raise AssertionError(f"case '{name}': the output contains NaN or inf; an all-zero row "
                                 "must give 0 (guard the division)")
        _close(got, want, f"case '{name}'", rtol=1e-6, atol=1e-9)
    print(f"Correct: your {kind} matches utils.metrics on all {len(cases)} cases.")
    return True


@gradable(forbid=("utils.gmm.responsibilities", "utils.gmm.mixture_denoiser"))
def check_mixture_responsibilities(fn, hidden: bool = False) -> bool:
    """Check a reader's ``fn(y, params, sigma) -> (m, k)`` (chapter 2): the posterior cluster
    probabilities P(j | y) of a :class:`utils.data.MixtureParams` observed with noise sigma.

    Cases: a small mixture at moderate noise, a far-away input (probabilities that a naive
    exp() underflows to 0/0), and high dimension with tiny noise. Raises ``AssertionError``
    naming the failing case, else prints and returns True.
    """
    from .data import mixture_params
    from .gmm import responsibilities

    if not callable(fn):
        raise TypeError("pass your function itself, e.g. check_mixture_responsibilities(my_fn)")
    gen = torch.Generator().manual_seed(77)
    P1 = mixture_params(6, 3, 2, weights=[0.5, 0.3, 0.2], seed=5, noise_std=0.05)
    P2 = mixture_params(512, 4, 3, seed=6)
    X2, _ = P2.sample(5, seed=1)
    cases = [("d=6, k=3, sigma=0.5", torch.randn(8, 6, generator=gen), P1, 0.5),
             ("an input far from every cluster (use log-sum-exp)", 40 * torch.ones(2, 6), P1, 0.2),
             ("d=512, k=4, sigma=0.01", X2 + 0.01 * torch.randn(X2.shape, generator=gen), P2, 0.01)]
    if hidden:
        P3 = mixture_params(10, 2, 1, seed=_hidden_seed(21), noise_std=0.1)
        cases += [("hidden: d=10, k=2, sigma=1", torch.randn(6, 10, generator=gen), P3, 1.0),
                  ("hidden: inputs at the cluster means, sigma=0.05", P3.means.clone(), P3, 0.05)]
    hints = {0: "P(j | y) is proportional to w_j N(y; mu_j, U_j S_j U_j^T + (tau^2 + sigma^2) I)",
             1: "compute log-probabilities and normalise with a log-sum-exp (torch.softmax)",
             2: "use the low-rank structure (Woodbury, determinant lemma) and float64",
             3: "P(j | y) is proportional to w_j N(y; mu_j, U_j S_j U_j^T + (tau^2 + sigma^2) I)",
             4: "compute log-probabilities and normalise with a log-sum-exp"}
    for k, (name, y, P, sigma) in enumerate(cases):
        want = responsibilities(y, P, sigma).numpy()
        got = _as_numpy(_call(fn, (y.clone(), P, sigma), name), "your function")
        if got.shape == want.shape and not np.isfinite(got).all():
            raise AssertionError(f"case '{name}': the output has NaN or inf. Hint: {hints[k]}")
        _close(got, want, f"case '{name}'", rtol=1e-5, atol=1e-7, hint=hints[k])
    print(f"Correct! Your responsibilities match utils.gmm on all {len(cases)} cases.")
    return True


@gradable(forbid=("utils.memorization.memorization_scale", "utils.memorization.memorizing_weights"))
def check_memorization_scale(fn, hidden: bool = False) -> bool:
    """Check a reader's ``fn(norms, sigma, lam) -> (n,)`` (chapter 3): the optimal squared scales
    s_k = max(0, (r_k g(r_k) - n lam/2) / (q(r_k) + (n-1) sigma^2/2)) of the memorizing solution,
    with g, q the first two moments of relu(r + sigma z). Raises ``AssertionError`` naming the
    failing case, else prints and returns True.
    """
    from .memorization import memorization_scale

    if not callable(fn):
        raise TypeError("pass your function itself, e.g. check_memorization_scale(my_fn)")
    cases = [("five samples of norm 8, sigma=0.2, lam=1e-3", np.full(5, 8.0), 0.2, 1e-3),
             ("unequal norms, large noise sigma=2", np.array([1.0, 3.0, 6.0]), 2.0, 0.0),
             ("norm comparable to sigma (the ReLU clips often)", np.array([0.3, 0.5]), 0.4, 0.01),
             ("weight decay strong enough to kill a neuron", np.array([0.5, 10.0]), 0.1, 2.0)]
    if hidden:
        hr = np.random.default_rng(_hidden_seed(97531))
        cases += [("hidden: a single sample", np.array([2.5]), 0.3, 0.05),
                  ("hidden: twenty random norms, no weight decay", hr.uniform(0.5, 5.0, 20), 0.7, 0.0),
                  ("hidden: noise much larger than the norms", np.array([0.1, 0.2, 0.15]), 5.0, 1e-4)]
    hints = {0: "for r >> sigma, s is close to (r^2 - n lam/2) / (r^2 + (n+1) sigma^2/2)",
             1: "the other n-1 neurons leak E relu(sigma z)^2 = sigma^2/2 each into the error",
             2: "use the exact Gaussian moments g(r) = r Phi(r/s) + s phi(r/s), "
                "q(r) = (r^2 + s^2) Phi(r/s) + r s phi(r/s)",
             3: "a negative optimum means the neuron is off: clip at 0",
             4: "n = 1: no other neuron leaks noise", 5: "n is the number of samples (the length of norms)",
             6: "use the exact Gaussian moments of relu(r + sigma z)"}
    for k, (name, r, sigma, lam) in enumerate(cases):
        want = memorization_scale(r, sigma, lam)
        got = _as_numpy(_call(fn, (r.copy(), sigma, lam), name), "your function")
        _close(got.reshape(want.shape) if got.size == want.size else got, want,
               f"case '{name}'", rtol=1e-6, atol=1e-9, hint=hints[k])
    print(f"Correct! Your scales match the theorem on all {len(cases)} cases.")
    return True


@gradable(forbid=("utils.metrics.tpr_at_fpr", "utils.metrics.roc_curve"))
def check_tpr_at_fpr(fn, hidden: bool = False) -> bool:
    """Check a reader's ``fn(scores, labels, fpr) -> float`` (chapter 9): the largest true-positive
    rate over thresholds whose false-positive rate is at most ``fpr``, where an input is flagged
    when its score is >= the threshold and label 1 marks a memorized (positive) input.

    ``fn`` receives float64 NumPy scores (n,), int labels (n,) and a float. Cases: separable
    scores, a budget that allows no false positive, ties between a positive and a negative, and
    all-equal scores. Raises ``AssertionError`` naming the failing case; prints and returns True.
    """
    from .metrics import tpr_at_fpr

    if not callable(fn):
        raise TypeError("pass your function itself, e.g. check_tpr_at_fpr(my_tpr)")
    rng = np.random.default_rng(7)
    s = np.r_[rng.normal(2, 1, 50), rng.normal(0, 1, 200)]
    y = np.r_[np.ones(50, int), np.zeros(200, int)]
    cases = [("well separated scores, fpr=0.1", np.r_[np.arange(10.0, 20.0), np.arange(10.0)],
              np.r_[np.ones(10, int), np.zeros(10, int)], 0.1),
             ("overlapping Gaussians, fpr=0.01 (at most 2 of 200 negatives flagged)", s, y, 0.01),
             ("fpr=0: no negative may be flagged", s, y, 0.0),
             ("a positive tied with the top negative, fpr=0", np.array([3.0, 2.0, 2.0, 1.0]),
              np.array([1, 1, 0, 0]), 0.0),
             ("all scores equal, fpr=0.5", np.ones(6), np.array([1, 0, 1, 0, 1, 0]), 0.5)]
    if hidden:
        hr = np.random.default_rng(_hidden_seed(8))
        s2 = np.r_[hr.normal(1, 1, 30), hr.normal(0, 1, 90)]
        y2 = np.r_[np.ones(30, int), np.zeros(90, int)]
        cases += [("hidden: fpr=1 (everything may be flagged)", s2, y2, 1.0),
                  ("hidden: negatives score above every positive, fpr=0.2", np.r_[np.arange(5.0), np.arange(10.0, 15.0)],
                   np.r_[np.ones(5, int), np.zeros(5, int)], 0.2),
                  ("hidden: other overlapping scores, fpr=0.05", s2, y2, 0.05)]
    hints = {0: "sort the scores and sweep the threshold over them",
             1: "a threshold flags every input whose score is >= it, positives and negatives alike",
             2: "with fpr=0 the threshold must lie above every negative score",
             3: "tied scores are flagged together: you cannot take the tied positive without the negative",
             4: "with all scores equal, the only thresholds flag everything or nothing",
             5: "a threshold at or below the smallest score flags every input",
             6: "a threshold flags every input whose score is >= it", 7: "sort the scores and sweep the threshold over them"}
    for k, (name, sc, lab, f) in enumerate(cases):
        want = np.asarray(tpr_at_fpr(sc, lab, f))
        got = _call(fn, (sc.astype(np.float64).copy(), lab.copy(), f), name)
        _close(np.asarray(_as_numpy(got, "your function")).reshape(()), want.reshape(()),
               f"case '{name}'", rtol=0, atol=1e-6, hint=hints[k])    # rates are k/n: float32 is fine
    print(f"Correct! Your TPR at a fixed FPR matches on all {len(cases)} cases.")
    return True


@gradable(forbid=("utils.diffusion.empirical_jacobian",))
def check_empirical_jacobian(fn, hidden: bool = False) -> bool:
    """Check a reader's ``fn(y, X, sigma) -> (d, d)``: the Jacobian of the empirical denoiser at
    one input y (d,) for training points X (n, d) (chapter 10). Cases: a moderate noise level, a
    posterior concentrated on one point (the Jacobian is nearly 0), and a huge noise level (it
    tends to the covariance of X over sigma^2). Raises ``AssertionError`` naming the failing case,
    else prints and returns True.
    """
    from .diffusion import empirical_jacobian

    if not callable(fn):
        raise TypeError("pass your function itself, e.g. check_empirical_jacobian(my_jacobian)")
    rng = np.random.default_rng(11)
    X = rng.uniform(-1, 1, (20, 6))
    cases = [("moderate noise (sigma=0.7)", X[3] + 0.7 * rng.standard_normal(6), X, 0.7),
             ("next to a training point (sigma=0.05)", X[5] + 0.01, X, 0.05),
             ("huge noise (sigma=50)", rng.uniform(-1, 1, 6), X, 50.0)]
    if hidden:
        hr = np.random.default_rng(_hidden_seed(6543))
        X1, X2 = hr.uniform(-1, 1, (7, 1)), hr.uniform(-1, 1, (30, 10))
        cases += [("hidden: one dimension (d=1)", hr.uniform(-1, 1, 1), X1, 0.4),
                  ("hidden: another data set (n=30, d=10, sigma=0.3)", X2[0] + 0.3 * hr.standard_normal(10), X2, 0.3),
                  ("hidden: tiny noise at a training point (sigma=0.01)", X2[4].copy(), X2, 0.01)]
    hints = {0: "J = sum_i w_i (x_i - f)(x_i - f)^T / sigma^2 with the softmax weights w_i",
             1: "subtract the largest logit before exponentiating (log-sum-exp)",
             2: "the weights become uniform; do not forget the 1/sigma^2",
             3: "J = sum_i w_i (x_i - f)(x_i - f)^T / sigma^2", 4: "J = sum_i w_i (x_i - f)(x_i - f)^T / sigma^2",
             5: "subtract the largest logit before exponentiating (log-sum-exp)"}
    for k, (name, y, Xc, s) in enumerate(cases):
        want = empirical_jacobian(torch.from_numpy(y[None]), torch.from_numpy(Xc), s)[0].numpy()
        got = _as_numpy(_call(fn, (y.copy(), Xc.copy(), s), name), "your function")
        _close(got, want, f"case '{name}'", rtol=1e-6, atol=1e-10, hint=hints[k])
    print(f"Correct! Your Jacobian matches on all {len(cases)} cases.")
    return True


def _copy_ratio_reference(model, units, optimizer, lr, steps, X, sigma):
    from .models import split_parallel
    from .train import fit_dae

    net = split_parallel(model, units, (0.6, 0.8))
    fit_dae(net, X, sigma=sigma, seed=1, sparsity=0.0, optimizer=optimizer, lr=lr, steps=steps)
    W = net.encoder_weight.detach()
    k, m = net.p - 2 * len(units), len(units)
    a, b = W[k:k + m].norm(dim=1), W[k + m:].norm(dim=1)
    return (torch.minimum(a, b) / torch.maximum(a, b)).double().numpy()


@gradable
def check_copy_ratio(fn, hidden: bool = False) -> bool:
    """Check a reader's ablation ``fn(model, units, optimizer, lr, steps, X, sigma) -> (len(units),)``
    (chapter 5): split the given units of a trained tied ReLU DAE into copies 0.6 w and 0.8 w
    (``utils.models.split_parallel``), continue training on X with ``fit_dae`` (penalty off,
    ``seed=1``), and return min/max of each pair's copy norms.

    The cases are small networks trained here (never the chapter's), so passing says the experiment
    is implemented right, not what the chapter's numbers are. A failure names the case and how far
    the answer is off, without printing the reference values.
    """
    from .models import ReLUDAE
    from .train import fit_dae

    if not callable(fn):
        raise TypeError("pass your function itself, e.g. check_copy_ratio(my_copy_ratio)")
    gen = torch.Generator().manual_seed(42)
    X = torch.randn(4, 12, generator=gen) * 2
    base = ReLUDAE(12, 10, seed=3)
    fit_dae(base, X, sigma=0.2, seed=0, steps=300)
    units = [0, 2]
    cases = [("SGD, where the copies must keep their ratio", "sgd", 0.02, 200),
             ("Adam at a large step", "adam", 0.05, 200),
             ("RMSprop at a small step", "rmsprop", 0.002, 200)]
    cases = [(name, opt, lr, steps, units) for name, opt, lr, steps in cases]
    if hidden:
        hr = np.random.default_rng(_hidden_seed(4321))
        cases += [("hidden: one split unit, SGD at another step", "sgd", 0.01, 120,
                   [int(hr.integers(base.p))]),
                  ("hidden: three split units, Adam at a small step", "adam", 0.005, 120,
                   sorted(int(u) for u in hr.choice(base.p, 3, replace=False)))]
    for name, opt, lr, steps, units in cases:
        want = _copy_ratio_reference(base, units, opt, lr, steps, X, 0.2)
        got = _as_numpy(_call(fn, (base, list(units), opt, lr, steps, X.clone(), 0.2), name), "your function")
        if got.shape != want.shape:
            raise AssertionError(f"case '{name}': returned shape {got.shape}, expected one ratio per split unit "
                                 f"({len(units)},)")
        if not np.allclose(got, want, atol=1e-5):
            hint = ("split with split_parallel(model, units, (0.6, 0.8)), train that copy with "
                    "fit_dae(..., seed=1, sparsity=0.0, optimizer=..., lr=..., steps=...), and take "
                    "min/max of the two copies' norms (rows after the kept units)")
            raise AssertionError(f"case '{name}': your ratios are wrong (largest error at split unit "
                                 f"{int(np.abs(got - want).argmax())}). Hint: {hint}")
    print(f"Correct! Your ablation matches on all {len(cases)} cases.")
    return True


def _stored_count_reference(X, sigma, weight_decay, seed, p, steps):
    from .metrics import stored_mask
    from .models import ReLUDAE
    from .train import fit_dae

    net = ReLUDAE(X.shape[1], p, seed=seed)
    fit_dae(net, X, sigma=sigma, seed=seed, weight_decay=weight_decay, steps=steps)
    return int(stored_mask(net.encoder_weight.detach(), X).sum())


@gradable
def check_stored_count(fn, hidden: bool = False) -> bool:
    """Check a reader's experiment ``fn(X, sigma, weight_decay, seed, p, steps) -> int`` (chapter 3):
    train a tied ``ReLUDAE(d, p, seed=seed)`` on X with ``fit_dae`` (its defaults, except
    ``weight_decay``, ``seed`` and ``steps``; ``steps=None`` keeps the default) and return how many training samples it stores
    (``utils.metrics.stored_mask``, cosine >= STORED_COSINE).

    The cases are small orthogonal data sets made here (never the chapter's), with weight decays
    that store every sample or only some of them, so passing says the experiment is implemented
    right, not what the chapter's counts are. A failure names the case without printing the
    reference count.
    """
    if not callable(fn):
        raise TypeError("pass your function itself, e.g. check_stored_count(my_count_stored)")
    gen = torch.Generator().manual_seed(7)
    Q, _ = torch.linalg.qr(torch.randn(16, 4, generator=gen))
    X = (Q * torch.tensor([1.0, 2.0, 3.0, 4.0])).T.contiguous()          # (4, 16), orthogonal rows
    cases = [("light weight decay", 1e-3, 0), ("weight decay that erases the weakest sample", 1.0, 1),
             ("weight decay that erases all but the strongest sample", 6.0, 2)]
    cases = [(name, X, lam, seed) for name, lam, seed in cases]
    if hidden:
        cases += [("hidden: light weight decay, another seed", X, 1e-3, _hidden_seed(5) % 10_000),
                  ("hidden: no weight decay", X, 0.0, _hidden_seed(6) % 10_000)]
        hr = np.random.default_rng(_hidden_seed(2024))      # other data, decays between the thresholds
        for k in range(2):
            n_h = int(hr.integers(3, 7))
            Qh, _ = torch.linalg.qr(torch.from_numpy(hr.standard_normal((16, n_h))).float())
            Xh = (Qh * torch.from_numpy(np.sort(hr.uniform(1.0, 5.0, n_h))).float()).T.contiguous()
            cases.append((f"hidden: {n_h} other samples, a weight decay in between",
                          Xh, float(np.exp(hr.uniform(np.log(0.3), np.log(6.0)))), int(hr.integers(10_000))))
    for name, Xc, lam, seed in cases:
        want = _stored_count_reference(Xc.clone(), 0.2, lam, seed, 12, 400)
        got = _call(fn, (Xc.clone(), 0.2, lam, seed, 12, 400), name)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, (bool, np.bool_)) or not isinstance(got, (int, np.integer)):
            raise AssertionError(f"case '{name}': return the number of stored samples as an int, "
                                 f"got {type(got).__name__}")
        if int(got) != want:
            raise AssertionError(
                f"case '{name}': your count of stored samples differs from the reference. Hint: train "
                "ReLUDAE(d, p, seed=seed) with fit_dae(model, X, sigma=sigma, seed=seed, "
                "weight_decay=weight_decay, steps=steps) and count utils.metrics.stored_mask(model.encoder_weight, X)")
    print(f"Correct! Your experiment matches on all {len(cases)} cases.")
    return True


def _gated_gap_reference(X, labels, X_test, labels_test, sigma, q):
    from .linear_dae import linear_risk, optimal_linear_denoiser
    X, Xt = np.asarray(X, dtype=np.float64), np.asarray(X_test, dtype=np.float64)
    lab, labt = np.asarray(labels), np.asarray(labels_test)
    train = test = 0.0
    for j in np.union1d(np.unique(lab), np.unique(labt)):
        Xj, Tj = X[lab == j], Xt[labt == j]
        A = (optimal_linear_denoiser(Xj.T @ Xj / len(Xj), sigma, rank=q) if len(Xj)
             else np.zeros((X.shape[1], X.shape[1])))
        if len(Xj):
            train += len(Xj) / len(X) * linear_risk(A, Xj.T @ Xj / len(Xj), sigma)
        if len(Tj):
            test += len(Tj) / len(Xt) * linear_risk(A, Tj.T @ Tj / len(Tj), sigma)
    return test / train


@gradable
def check_gated_gap_ratio(fn, hidden: bool = False) -> bool:
    """Check a reader's ``fn(X, labels, X_test, labels_test, sigma, q) -> float`` (chapter 4's
    transition exercise): the test/train ratio of the *gated local-statistics* denoiser, which
    gives each cluster j the rank-<=q Wiener filter A_j of its training samples' second moment
    (X (n, d), labels (n,) ints) and is switched by the true label. Both errors are exact over
    the noise: train = sum_j (n_j/n) R_j(A_j) with the training samples' second moment of
    cluster j, test = the same with the test samples' (X_test, labels_test); a cluster without
    training samples gets A_j = 0.

    Cases: few samples per cluster (fewer than the cluster's dimension), many samples, a small
    unit budget q, and a cluster with no training sample. The reference is computed here on
    fresh data; a failure names the case and how far off the answer is, never the value.
    """
    from .data import gaussian_mixture
    if not callable(fn):
        raise TypeError("pass your function itself, e.g. check_gated_gap_ratio(my_gated_gap)")
    cases = []
    for name, n, q, sigma in [("few samples per cluster", 12, 7, 0.2), ("many samples per cluster", 600, 7, 0.2),
                              ("a small unit budget q = 2", 200, 2, 0.3)]:
        X, lab = gaussian_mixture(n, 24, 3, 6, seed=11, sample_seed=n)
        Xt, labt = gaussian_mixture(400, 24, 3, 6, seed=11, sample_seed=999)
        cases.append((name, X.double().numpy(), lab.numpy(), Xt.double().numpy(), labt.numpy(), sigma, q))
    X, lab = gaussian_mixture(60, 24, 3, 6, seed=11, sample_seed=5)
    keep = lab.numpy() != 2
    Xt, labt = gaussian_mixture(400, 24, 3, 6, seed=11, sample_seed=999)
    cases.append(("a cluster with no training sample", X.double().numpy()[keep], lab.numpy()[keep],
                  Xt.double().numpy(), labt.numpy(), 0.2, 7))
    if hidden:
        for name, n, q, sigma in [("hidden: another mixture, q = 1", 80, 1, 0.5),
                                  ("hidden: another mixture, q larger than the cluster rank", 300, 9, 0.1)]:
            X, lab = gaussian_mixture(n, 12, 2, 4, seed=_hidden_seed(23), sample_seed=_hidden_seed(n + 1))
            Xt, labt = gaussian_mixture(200, 12, 2, 4, seed=_hidden_seed(23), sample_seed=_hidden_seed(777))
            cases.append((name, X.double().numpy(), lab.numpy(), Xt.double().numpy(), labt.numpy(), sigma, q))
    for name, X, lab, Xt, labt, sigma, q in cases:
        want = _gated_gap_reference(X, lab, Xt, labt, sigma, q)
        got = _as_numpy(_call(fn, (X.copy(), lab.copy(), Xt.copy(), labt.copy(), sigma, q), name), "your function")
        if got.size != 1 or not np.isfinite(got).all():
            raise AssertionError(f"case '{name}': return one finite number (the test/train ratio)")
        rel = abs(float(got.reshape(-1)[0]) - want) / want
        if rel > 1e-5:
            hint = ("per cluster, A_j = optimal linear denoiser of rank <= q for S_j = X_j^T X_j / n_j; "
                    "weight each cluster's exact risk tr(A M A^T) - 2 tr(A S) + tr(S) by its share of "
                    "the rows; the test risk uses the test samples' second moment but the training A_j")
            raise AssertionError(f"case '{name}': your ratio is wrong. Hint: {hint}")
    print(f"Correct! Your gated test/train ratio matches on all {len(cases)} cases.")
    return True


# ---------------------------------------------------------------------------------------------
# chapter 2: tied against untied weights at a given width (an experiment)
# ---------------------------------------------------------------------------------------------
def _tied_untied_reference(X, X_test, p, sigma, steps):
    from .gmm import denoising_mse
    from .models import ReLUDAE
    from .train import fit_dae

    out = []
    for tied in (True, False):
        m = ReLUDAE(X.shape[1], p, tied=tied, seed=0)
        fit_dae(m, X, sigma=sigma, seed=0, steps=steps)
        out.append(denoising_mse(m, X_test, sigma, seed=1))
    return np.array(out, dtype=np.float64)


@gradable
def check_tied_untied(fn, hidden: bool = False) -> bool:
    """Check a reader's experiment ``fn(X, X_test, p, sigma, steps) -> (2,)`` (chapter 2): train
    ``ReLUDAE(d, p, tied=True, seed=0)`` and ``ReLUDAE(d, p, tied=False, seed=0)`` on X with
    ``fit_dae(model, X, sigma=sigma, seed=0, steps=steps)`` (other settings at their defaults) and
    return their test errors ``[tied, untied]``, each ``utils.gmm.denoising_mse(model, X_test,
    sigma, seed=1)``.

    The cases are small mixtures made here (never the chapter's), at a narrow and a wide network,
    so passing says the experiment is implemented right, not what the chapter's numbers are. A
    failure names the case and how far the answer is off, without printing the reference values.
    """
    from .data import gaussian_mixture

    if not callable(fn):
        raise TypeError("pass your function itself, e.g. check_tied_untied(my_tied_untied)")
    X, _ = gaussian_mixture(400, 16, 2, 2, seed=11)
    Xte, _ = gaussian_mixture(300, 16, 2, 2, seed=11, sample_seed=12)
    cases = [("narrow network, p = 3", 3, 0.2, 150), ("wide network, p = 24", 24, 0.3, 150)]
    if hidden:
        cases += [("hidden: p = 8, few steps", 8, 0.5, 60)]
    for name, p, sigma, steps in cases:
        if name.startswith("hidden"):              # another draw of the mixture, unknown in advance
            X, _ = gaussian_mixture(400, 16, 2, 2, seed=_hidden_seed(11))
            Xte, _ = gaussian_mixture(300, 16, 2, 2, seed=_hidden_seed(11), sample_seed=12)
        want = _tied_untied_reference(X, Xte, p, sigma, steps)
        got = _as_numpy(_call(fn, (X.clone(), Xte.clone(), p, sigma, steps), name), "your function")
        if got.shape != (2,):
            raise AssertionError(f"case '{name}': returned shape {got.shape}, expected (2,): "
                                 "[test error tied, test error untied]")
        if not np.allclose(got, want, rtol=1e-4, atol=1e-6):
            swapped = np.allclose(got[::-1], want, rtol=1e-4, atol=1e-6)
            hint = ("the order is [tied, untied]" if swapped else
                    "seed=0 for both the model and fit_dae, steps=steps, and the test error "
                    "utils.gmm.denoising_mse(model, X_test, sigma, seed=1) on the test set")
            raise AssertionError(f"case '{name}': your errors are wrong. Hint: {hint}")
    print(f"Correct! Your experiment matches on all {len(cases)} cases.")
    return True


# ---------------------------------------------------------------------------------------------
# chapter 6: does the model beat its noisy input on held-out images? (an ablation)
# ---------------------------------------------------------------------------------------------
def _heldout_psnr_reference(X_train, X_test, p, sigma, sparsity, steps):
    from .metrics import psnr
    from .models import ReLUDAE
    from .train import fit_dae

    m = ReLUDAE(X_train.shape[1], p, seed=0)
    fit_dae(m, X_train, sigma=sigma, seed=0, sparsity=sparsity, steps=steps)
    y = X_test + sigma * torch.randn(X_test.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = m(y)
    return np.array([psnr(out, X_test).mean(), psnr(y, X_test).mean()], dtype=np.float64)


@gradable
def check_heldout_psnr(fn, hidden: bool = False) -> bool:
    """Check a reader's ablation ``fn(X_train, X_test, p, sigma, sparsity, steps) -> (2,)``
    (chapter 6): train ``ReLUDAE(d, p, seed=0)`` on X_train with ``fit_dae(model, X_train,
    sigma=sigma, seed=0, sparsity=sparsity, steps=steps)``, draw the noisy held-out images
    ``y = X_test + sigma * torch.randn(X_test.shape, generator=torch.Generator().manual_seed(0))``
    and return ``[mean PSNR of model(y), mean PSNR of y]`` against X_test, in dB with peak 2
    (``utils.metrics.psnr``), means over the held-out images.

    The cases are small digit sets chosen here (a memorizing and a larger training set, penalty on
    and off), so passing says the ablation is implemented right, not what the chapter's numbers
    are. A failure names the case and how far the answer is off, without the reference values.
    """
    from .data import load_images

    if not callable(fn):
        raise TypeError("pass your function itself, e.g. check_heldout_psnr(my_heldout_psnr)")
    D = load_images("digits")
    D = D.reshape(len(D), -1)[torch.randperm(len(D), generator=torch.Generator().manual_seed(5))]
    X_test = D[:50]
    cases = [("5 training digits, penalty 0.1", D[50:55], 20, 0.2, 0.1, 150),
             ("400 training digits, penalty off", D[50:450], 20, 0.3, 0.0, 150)]
    if hidden:
        start = 450 + _hidden_seed(500) % (len(D) - 470)
        cases += [("hidden: 20 training digits, penalty 0.05, p = 12", D[start:start + 20], 12, 0.25, 0.05, 80)]
    for name, Xt, p, sigma, mu, steps in cases:
        want = _heldout_psnr_reference(Xt, X_test, p, sigma, mu, steps)
        got = _as_numpy(_call(fn, (Xt.clone(), X_test.clone(), p, sigma, mu, steps), name), "your function")
        if got.shape != (2,):
            raise AssertionError(f"case '{name}': returned shape {got.shape}, expected (2,): "
                                 "[mean PSNR of the model's output, mean PSNR of the noisy input]")
        if not np.allclose(got, want, rtol=0, atol=1e-3):
            part = "the noisy input's PSNR" if abs(got[1] - want[1]) > 1e-3 else "the model's PSNR"
            hint = ("draw the noise with torch.Generator().manual_seed(0) and use "
                    "utils.metrics.psnr(x, ref) (peak 2), averaged over the images"
                    if part == "the noisy input's PSNR" else
                    "ReLUDAE(d, p, seed=0), fit_dae(model, X_train, sigma=sigma, seed=0, "
                    "sparsity=sparsity, steps=steps), and denoise the same noisy images")
            raise AssertionError(f"case '{name}': {part} is wrong. Hint: {hint}")
    print(f"Correct! Your ablation matches on all {len(cases)} cases.")
    return True


@gradable
def check_window_steering(fn, hidden: bool = False) -> bool:
    """Check a reader's ``fn(model, scheduler, directions, alpha, t_min, t_max, labels, seed, steps)
    -> (n, C, H, W)``: DDIM samples (``utils.unet.sample`` with that seed and number of steps) with
    ``alpha * directions[name]`` added to each named module's output only at timesteps
    ``t_min <= t < t_max`` (chapter 10). Cases on a small random U-Net: a late window, an early
    window, and alpha = 0 (must equal plain sampling). Raises ``AssertionError`` naming the failing
    case, else prints and returns True.
    """
    from . import steering, unet

    if not callable(fn):
        raise TypeError("pass your function itself, e.g. check_window_steering(steer_window)")
    torch.manual_seed(5)
    cfg = dict(unet.SMALL_UNET, sample_size=8, block_out_channels=(8, 16, 16), num_class_embeds=3)
    model = unet.build_unet(cfg).eval()
    sched = unet.make_scheduler()
    dirs = {"up_blocks.1.resnets.0": torch.linspace(-1, 1, 16)}
    labels = torch.tensor([0, 1, 2, 1])
    cases = [("late window (0 <= t < 500)", 3.0, 0, 500, 7),
             ("early window (500 <= t < 1000)", 3.0, 500, 1000, 8),
             ("alpha = 0", 0.0, 0, 1000, 9)]
    if hidden:
        cases += [("hidden: a middle window, negative alpha", -2.0, 200, 700, _hidden_seed(11) % 10_000),
                  ("hidden: the whole trajectory (0 <= t < 1000)", 1.5, 0, 1000, _hidden_seed(12) % 10_000)]
    hints = ["wrap unet.sample in steering.timestep_window(model, t_min=..., t_max=...) and "
             "steering.steer(model, directions, alpha, active=window)",
             "steer only inside the window: pass the window's callable as active=",
             "with alpha = 0 nothing is added: the samples equal unet.sample's",
             "steer only inside the window: pass the window's callable as active=",
             "a window over the whole trajectory steers at every step"]
    for k, (name, alpha, lo, hi, seed) in enumerate(cases):
        with steering.timestep_window(model, t_min=lo, t_max=hi) as active:
            with steering.steer(model, dirs, alpha, active=active):
                want = unet.sample(model, sched, len(labels), steps=6, seed=seed, class_labels=labels).numpy()
        got = _as_numpy(_call(fn, (model, sched, dirs, alpha, lo, hi, labels.clone(), seed, 6), name), "your function")
        if len(model._forward_hooks) or len(model._forward_pre_hooks):
            raise AssertionError(f"case '{name}': your function left hooks on the model; use the context managers")
        _close(got, want, f"case '{name}'", rtol=1e-5, atol=1e-5, hint=hints[k])
    print(f"Correct! Your windowed steering matches on all {len(cases)} cases.")
    return True
