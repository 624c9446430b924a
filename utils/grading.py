"""Grade students' answers with the book's checkers (``python -m utils.course grade``).

Three processes take part in grading one exercise:

* the **grader** (:func:`grade`): reads the submissions, builds each job, and keeps the scores;
* a **checker process** (:func:`worker`, one per exercise, started in a session of its own so a
  time-out kills everything under it): imports the checkers from the grader's ``utils`` and
  calls them with ``hidden=True``;
* an **answer process** (:class:`utils.answer_process.AnswerProcess`, the checker process's
  child): runs the chapter's context and the student's answer, in a throwaway copy of ``utils``
  and the book's data made for each student (:func:`sandbox`), and calls the student's functions
  when the checker asks. Only data comes back.

So a submission cannot replace a checker, read the reference values from the checker's frames, or
print a forged result (the checker process's result line carries a nonce that only the grader and
that process know). Hidden cases draw their inputs from a salt chosen for each grading run
(``BOOK_GRADER_SALT``), so they cannot be computed ahead from the shipped code. The grader checks
that its own ``utils`` did not change while it graded. None of this is a sandbox: the answer
process runs as the grading user. Grade untrusted work in a container.
"""
from __future__ import annotations

import ast
import csv
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
SALT_VARIABLE = "BOOK_GRADER_SALT"
# what an answer process may need of the book: its data files, never its notebooks or build
_SANDBOX_IGNORE = shutil.ignore_patterns("*.ipynb", "_build", "_vendor", "_ext", "__pycache__",
                                         ".ipynb_checkpoints", "*.md")


# the modules the checkers import (lazily, inside their functions)
CHECKER_MODULES = ("data", "diffusion", "gmm", "linear_dae", "memorization", "metrics", "models",
                   "train", "steering", "unet")
PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 4, 36


def _prctl(option: int, value: int) -> bool:
    """Linux ``prctl(option, value)``; False where it is not available."""
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _descendants(pid: int) -> list[int]:
    """Process ids of every descendant of ``pid`` (Linux ``/proc``; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def kill_leftovers(keep=()) -> int:
    """Kill every process left under the grader but those in ``keep`` (an answer that forked and
    left its session reaches the grader as an orphan, since :func:`grade` makes it a subreaper)
    -> how many."""
    pids = [p for p in _descendants(os.getpid()) if p not in set(keep)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    return len(pids)


# ---------------------------------------------------------------------------------------------
# the checker calls of a check cell
# ---------------------------------------------------------------------------------------------
def parse_check(call: str) -> tuple[str, str, list, dict]:
    """``"exercises.check_x(my_f, 'a', k=1)"`` -> ("check_x", "my_f", ["a"], {"k": 1}).

    The first argument must be the student's function (a name); the others literals."""
    try:
        node = ast.parse(call, mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"not a checker call: {call!r}") from exc
    if not isinstance(node, ast.Call) or not node.args or not isinstance(node.args[0], ast.Name):
        raise ValueError(f"a checker call must be check_x(your_function, ...): {call!r}")
    f = node.func
    name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
    if not name or not name.startswith("check_"):
        raise ValueError(f"not a checker call: {call!r}")
    try:
        args = [ast.literal_eval(a) for a in node.args[1:]]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg != "hidden"}
    except ValueError as exc:
        raise ValueError(f"a checker's other arguments must be literals: {call!r}") from exc
    return name, node.args[0].id, args, kwargs


# ---------------------------------------------------------------------------------------------
# the checker process
# ---------------------------------------------------------------------------------------------
def _run_checks(proc, calls: list[str], hidden: bool, timings: dict | None, key: str):
    """Run checker calls on the answer process's functions -> (ok, messages)."""
    import contextlib
    import io

    from . import exercises
    ok, messages = True, []
    t0, c0 = time.perf_counter(), time.process_time()
    for call in calls:
        name, fn_name, args, kwargs = parse_check(call)
        check = getattr(exercises, name, None)
        if not getattr(check, "gradable", False):
            raise ValueError(f"unknown checker {name!r}")
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf):
                got = check(proc.function(fn_name), *args, hidden=hidden, **kwargs)
        except AssertionError as exc:
            ok = False
            messages.append(f"failed: {str(exc)[:400]}")
            continue
        except Exception as exc:                     # noqa: BLE001 - reported, not raised
            ok = False
            messages.append(f"failed: {type(exc).__name__}: {str(exc)[:300]}")
            continue
        if got is not True:
            ok = False
            messages.append("not attempted" if "not attempted" in buf.getvalue() else "the checker did not pass")
    if timings is not None:
        timings[key] = time.perf_counter() - t0
        timings[key + "_cpu"] = time.process_time() - c0
    return ok, messages


def worker() -> None:
    """The checker process: read one JSON job on stdin, print one result line with its nonce."""
    job = json.loads(sys.stdin.read())
    nonce = job.pop("nonce")
    _prctl(PR_SET_DUMPABLE, 0)          # same-user processes cannot read this one's memory or /proc
    sys.path.insert(0, str(ROOT))
    if job.get("salt"):
        os.environ[SALT_VARIABLE] = job["salt"]
    import importlib
    from . import exercises
    from .answer_process import AnswerError, AnswerProcess
    for name in CHECKER_MODULES:        # imported before any answer runs: nothing planted later counts
        importlib.import_module(f"utils.{name}")

    def finish(res):
        print(f"@@RESULT@@{nonce}@@" + json.dumps(res), flush=True)

    forbid = []
    for call in job["checks"]:
        forbid += list(getattr(getattr(exercises, parse_check(call)[0], None), "forbid", ()))
    res = {"points": 0, "message": "", "seconds": {}}
    try:
        proc = AnswerProcess(job["context"], job["answer"], forbid, cwd=Path(job["cwd"]),
                             root=Path(job["root"]))
    except AnswerError as exc:
        if exc.kind == "context":                    # the chapter's own code: an instructor's problem
            res["message"] = f"grader error: the chapter context failed ({exc.message})"
        elif exc.kind == "NotImplementedError":
            res["message"] = "not attempted"
        else:
            res["message"] = f"your cell raised {exc.kind}: {exc.message[:300]}"
        return finish(res)
    with proc:
        if job.get("practice"):                      # timing runs only (python -m utils.course time)
            _run_checks(proc, job["practice"], False, res["seconds"], "practice")
        ok, messages = _run_checks(proc, job["checks"], True, res["seconds"], "hidden")
    res["points"] = int(ok)
    res["message"] = "passed (practice and hidden cases)" if ok else "; ".join(dict.fromkeys(messages))
    finish(res)


def run_job(job: dict, timeout: float, salt: str = "") -> dict:
    """Run one job in a checker process (a session of its own, killed whole at the time limit)."""
    nonce = secrets.token_hex(16)
    job = {**job, "nonce": nonce, "salt": salt, "root": job.get("root", str(ROOT))}
    env = {k: v for k, v in os.environ.items() if k not in (SALT_VARIABLE, "PWD", "OLDPWD")}
    p = subprocess.Popen([sys.executable, "-m", "utils.course", "_worker"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT),
                         env=env, start_new_session=True)
    try:
        out, _ = p.communicate(json.dumps(job), timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_session(p)
        return {"points": 0, "message": f"timed out after {timeout:g} s"}
    finally:
        _kill_session(p)                             # an answer process left behind goes too
    tag = f"@@RESULT@@{nonce}@@"
    for line in out.splitlines()[::-1]:
        if line.startswith(tag):
            return json.loads(line[len(tag):])
    return {"points": 0, "message": f"the grader's process died (exit code {p.returncode})"}


def _kill_session(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if p.poll() is None:
        p.kill()
    p.wait()


# ---------------------------------------------------------------------------------------------
# sandbox copies and the integrity check
# ---------------------------------------------------------------------------------------------
def sandbox(dest: Path) -> Path:
    """Copy ``utils/`` and the book's data files (no notebooks, no build) under ``dest`` -> the
    copy's ``book`` folder, where an answer process runs."""
    dest = Path(dest)
    shutil.copytree(ROOT / "utils", dest / "utils", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(BOOK, dest / "book", ignore=_SANDBOX_IGNORE)
    return dest / "book"


def tree_digest(folder: Path) -> str:
    """SHA-256 over the relative paths and contents of every file under ``folder`` (sources and
    their compiled ``__pycache__`` files: a planted ``.pyc`` counts as a change)."""
    h = hashlib.sha256()
    for f in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        h.update(str(f.relative_to(folder)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def _compiled_utils() -> str:
    """Compile ``utils/`` (so grading itself writes no ``.pyc`` there) -> its :func:`tree_digest`."""
    import compileall
    compileall.compile_dir(str(ROOT / "utils"), quiet=1)
    return tree_digest(ROOT / "utils")


# ---------------------------------------------------------------------------------------------
# grading a folder of submissions
# ---------------------------------------------------------------------------------------------
def grade_exercise(ed, ex, answer: str, timeout: float = 300, earlier: dict[str, str] | None = None,
                   *, salt: str = "", workdir: Path | None = None) -> tuple[int, str]:
    """(points, message) for one answer: checked in a checker process, run in an answer process
    whose working folder is ``workdir`` (a :func:`sandbox` copy; a fresh one when None)."""
    from .course import _context, _with_hidden, answer_code
    if not answer.strip() or answer_code(answer).strip() == answer_code(ed.nb.cells[ex.answer_index].source).strip():
        return 0, "not attempted"
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        cwd = Path(workdir) if workdir is not None else sandbox(Path(tmp))
        job = {"cwd": str(cwd), "root": str(cwd.parent), "context": _context(ed, ex, answer, earlier),
               "answer": answer_code(answer), "checks": [_with_hidden(c) for c in ex.checkers]}
        r = run_job(job, timeout, salt=salt)
    return int(r["points"]), r["message"]


def grade(submissions: Path, out_csv: Path | None = None, chapters: list[Path] | None = None,
          timeout: float = 300, salt: str | None = None) -> list[dict]:
    """Grade ``SUBMISSIONS/<student>/<chapter>.ipynb``; return and (optionally) write the rows.

    ``salt`` seeds the hidden cases (a fresh random one when None; give the same one to grade
    again with the same hidden inputs). Each student's answers run in their own sandbox copy.
    Raises RuntimeError if the grader's ``utils`` changed while grading (grade in a container)."""
    import nbformat

    from .course import answers, student_edition, toc_chapters
    salt = secrets.token_hex(8) if salt is None else str(salt)
    reaper = _prctl(PR_SET_CHILD_SUBREAPER, 1)
    had = set(_descendants(os.getpid()))                 # the caller's own processes stay
    before = _compiled_utils()

    def check_utils(who: str) -> None:
        kill_leftovers(keep=had)
        if tree_digest(ROOT / "utils") != before:
            raise RuntimeError(f"the grader's utils/ changed while grading {who}'s work: a "
                               "submission wrote to it. Restore utils/ (git checkout utils; delete "
                               "utils/__pycache__) and grade in a container")
    try:
        eds = {e.chapter: e for e in (student_edition(Path(p)) for p in (chapters or toc_chapters()))}
        rows = []
        for sdir in sorted(p for p in Path(submissions).iterdir() if p.is_dir()):
            with tempfile.TemporaryDirectory(prefix=f"grade-{sdir.name[:20]}-") as tmp:
                work = None
                for chapter, ed in eds.items():
                    f = sdir / f"{chapter}.ipynb"
                    if not f.exists() or not ed.exercises:
                        continue
                    try:
                        got = answers(nbformat.read(str(f), as_version=4))
                    except Exception as exc:             # noqa: BLE001 - any unreadable file
                        got, bad = {}, f"unreadable notebook ({type(exc).__name__})"
                    else:
                        bad = None
                    for ex in ed.exercises:
                        if bad:
                            pts, msg = 0, bad
                        elif ex.label not in got:
                            pts, msg = 0, "not attempted (answer cell missing)"
                        else:
                            work = work or sandbox(Path(tmp))
                            pts, msg = grade_exercise(ed, ex, got[ex.label], timeout=timeout, earlier=got,
                                                      salt=salt, workdir=work)
                            check_utils(sdir.name)
                        rows.append({"student": sdir.name, "chapter": chapter, "exercise": ex.label,
                                     "points": pts, "message": msg})
                        print(f"{sdir.name:>16s} {chapter:>22s} {ex.label:>26s} {pts}  {msg}", flush=True)
            check_utils(sdir.name)
    finally:
        if reaper:
            _prctl(PR_SET_CHILD_SUBREAPER, 0)
    if out_csv:
        with open(out_csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, ["student", "chapter", "exercise", "points", "message"])
            w.writeheader()
            w.writerows(rows)
    return rows
