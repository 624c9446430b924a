"""The student edition of the book and its autograder (``python -m utils.course``).

Commands::

    python -m utils.course student OUT_DIR [chapters...] [--clear-all]
    python -m utils.course handout OUT_DIR [chapters...] [--clear-all] [--title T]   # what students get
    python -m utils.course grade SUBMISSIONS_DIR [--out scores.csv] [--timeout 300] [--salt S] [chapters...]
    python -m utils.course source OUT_DIR [chapters...]      # nbgrader "source" version (instructors only)

How exercises are found (nothing is hard-coded; whatever the chapters contain when it runs):

* an exercise is a MyST ``{exercise}`` directive (or an ``{exercise-start}`` ... ``{exercise-end}``
  range) with ``:label: ex-...``; a *solution* is a ``{solution} ex-...`` directive (any fence
  length) or a gated ``{solution-start} ex-...`` ... ``{solution-end}`` range, which may span cells;
* *solution code cells* are the code cells inside a gated solution, the code cells directly after a
  markdown cell that ends with a solution (up to the next markdown cell), and any other code cell
  that calls a checker (``check_*``) named in an exercise's text; a fenced ```` ```python ```` block
  inside a solution that calls a checker counts as solution code too when the exercise has no
  executed solution cell;
* code cells that use names defined only by removed solution code are *solution-dependent* and
  are removed as well (static name analysis), so every chapter still runs top to bottom.

In the student edition every solution block is removed from the markdown, every solution code cell
that calls a checker becomes two cells, an *answer* cell (the imports, and the ``def`` lines of the
functions it defines with the body ``raise NotImplementedError("write this function (exercise
ex-...)")``) and a *check* cell (only the original checker calls), and other solution code cells
are removed. Both new cells carry the tags ``exercise:<label>`` / ``check:<label>`` and nbgrader
metadata (``grade_id``, ``solution``, ``grade``, ``points``, ``locked``, ``schema_version`` 3).
Outputs are cleared for every code cell from the first exercise of a chapter on (the exercise
section) and for every new cell; the lecture's outputs before the first exercise are kept, since
the online book shows them anyway (``--clear-all`` clears every output).

The grader (:mod:`utils.grading`) reads each student's answer cells (by tag) and grades one
exercise at a time under a time limit: the answer runs in a process of its own, in a namespace
holding the chapter's imports and the earlier top-level statements the answer's free names need (a
program slice of the chapter's student edition, taken from the instructor's copy, never from the
submission), inside a throwaway copy of ``utils`` and the book's data; the chapter's own checker
calls run with ``hidden=True`` in another process, which calls the student's functions across the
process boundary and gets back only data (:mod:`utils.answer_process`). It writes ``student,
chapter, exercise, points, message``. Student code is executed: run the grader in a sandbox (a
container without network).
"""
from __future__ import annotations

import argparse
import ast
import builtins
import copy
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"

_OPEN = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w-]+)\}(?P<arg>.*)$")
_LABEL = re.compile(r"^:label:\s*(\S+)", re.M)
_CHECK = re.compile(r"\bcheck_\w+")
_PYFENCE = re.compile(r"^(`{3,})(?:python|py|\{code-cell\}\s*(?:ipython3|python))\s*$")
STUB_MESSAGE = 'write this function (exercise {label})'
_HEADER = re.compile(r"# Exercise (\S+): write your answer in this cell")


# ----------------------------------------------------------------------------------------------
# chapters and directives
# ----------------------------------------------------------------------------------------------
def toc_chapters(toc: Path = ROOT / "_toc.yml") -> list[Path]:
    """The notebooks listed in ``_toc.yml``, in order (``.md`` pages are skipped)."""
    out = []
    for line in toc.read_text().splitlines():
        m = re.match(r"\s*-?\s*(?:file|root):\s*(\S+)", line)
        if m:
            p = ROOT / (m.group(1) + ".ipynb")
            if p.exists():
                out.append(p)
    return out


def _blocks(lines: list[str]) -> list[tuple[int, int, str, str, int]]:
    """Top-level directive blocks of a markdown cell: (first line, last line, name, argument, depth)."""
    out, i = [], 0
    while i < len(lines):
        m = _OPEN.match(lines[i].rstrip())
        if not m:
            i += 1
            continue
        fence = m.group("fence")
        j = i + 1
        close = re.compile("^" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}\s*$")
        while j < len(lines) and not close.match(lines[j].rstrip()):
            j += 1
        out.append((i, min(j, len(lines) - 1), m.group("name"), m.group("arg").strip(), len(fence)))
        i = j + 1
    return out


def _label(lines: list[str]) -> str | None:
    m = _LABEL.search("\n".join(lines))
    return m.group(1) if m else None


def _fenced_python(text: str) -> list[str]:
    """The sources of the fenced python blocks in ``text``."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        m = _PYFENCE.match(lines[i].strip())
        if m:
            close = re.compile("^" + "`{" + str(len(m.group(1))) + r",}\s*$")
            j = i + 1
            while j < len(lines) and not close.match(lines[j].strip()):
                j += 1
            out.append("\n".join(lines[i + 1:j]))
            i = j
        i += 1
    return out


# ----------------------------------------------------------------------------------------------
# code analysis
# ----------------------------------------------------------------------------------------------
def _clean(src: str) -> str:
    return "\n".join("" if l.lstrip().startswith(("%", "!")) else l for l in src.splitlines())


def _parse(src: str):
    """``ast.parse`` of a cell, with IPython magics and shell lines blanked; None if unparsable."""
    try:
        return ast.parse(_clean(src))
    except SyntaxError:
        return None


def _is_check_call(node) -> bool:
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
    return name.startswith("check_")


def _check_calls(tree) -> list[str]:
    """Sources of the checker calls in the top-level statements (not inside definitions)."""
    out = []
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for node in ast.walk(stmt):
            if _is_check_call(node):
                out.append(ast.unparse(node))
    return out


def _stores(stmt) -> set[str]:
    """Names a top-level statement binds in the module namespace."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in stmt.names if a.name != "*"}
    out = set()
    for node in ast.walk(stmt):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)) \
                and node is not stmt:
            out |= _stores(node)
    return out


def _uses(stmt) -> set[str]:
    """Global names a statement reads before (or without) binding them itself (an over-approximation)."""
    loads = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    if isinstance(stmt, ast.Assign):
        loads = {n.id for n in ast.walk(stmt.value) if isinstance(n, ast.Name)}
        for t in stmt.targets:      # subscripts/attributes of a target read the object
            loads |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        return loads
    local = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    local |= {a.arg for n in ast.walk(stmt) if isinstance(n, ast.arguments)
              for a in n.args + n.kwonlyargs + n.posonlyargs + [x for x in (n.vararg, n.kwarg) if x]}
    if isinstance(stmt, (ast.For, ast.With, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or \
            any(isinstance(n, (ast.comprehension, ast.Lambda)) for n in ast.walk(stmt)):
        return loads - local
    return loads


def _cell_uses(tree) -> set[str]:
    used, bound = set(), set()
    for stmt in tree.body:
        used |= _uses(stmt) - bound
        bound |= _stores(stmt)
    return used


def _cell_stores(tree) -> set[str]:
    return set().union(*(_stores(s) for s in tree.body)) if tree.body else set()


def _answer_functions(tree, calls: list[str]) -> set[str]:
    """Names of the top-level functions the checker calls reach (directly or through each other)."""
    defs = {s.name: s for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    todo = [n.id for c in calls for n in ast.walk(ast.parse(c)) if isinstance(n, ast.Name)]
    seen = set()
    while todo:
        name = todo.pop()
        if name in defs and name not in seen:
            seen.add(name)
            todo.extend(n.id for n in ast.walk(defs[name]) if isinstance(n, ast.Name))
    return seen


def answer_code(src: str) -> str:
    """What the grader runs of an answer cell, in order: its imports, function and class
    definitions, and assignments (constants such as ``TOL = np.finfo(float).eps``), except an
    assignment that calls a function or class the cell defines or a checker (a run of the
    experiment); bare expressions (prints, checker calls) are left out too."""
    tree = _parse(src)
    if tree is None:
        return src
    own = {s.name for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}

    def runs_the_answer(node) -> bool:
        for n in ast.walk(node):
            if isinstance(n, ast.Call):
                f = n.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
                if name in own or name.startswith("check_"):
                    return True
        return False
    keep = []
    for s in tree.body:
        if isinstance(s, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            keep.append(s)
        elif isinstance(s, (ast.Assign, ast.AnnAssign)) and s.value is not None and not runs_the_answer(s.value):
            keep.append(s)
    return ast.unparse(ast.Module(body=keep, type_ignores=[]))


def make_stub(src: str, label: str) -> tuple[str, list[str], str] | None:
    """(answer-cell stub, checker calls, the book's answer) for a solution cell, or None when it
    calls no checker.

    The stub keeps the top-level imports and, for every function the checker calls reach, its
    decorators, signature and docstring, with the body ``raise NotImplementedError(...)``. The
    book's answer is the imports and the full definitions of those functions."""
    tree = _parse(src)
    if tree is None:
        return None
    calls = _check_calls(tree)
    if not calls:
        return None
    reach = _answer_functions(tree, calls)
    parts = [f"# Exercise {label}: write your answer in this cell (the grader runs its imports, function",
             "# definitions and constants only). Keep the names and signatures; the next cell checks them."]
    body, sol = [], []
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            body.append(ast.unparse(stmt))
            sol.append(ast.unparse(stmt))
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and stmt.name in reach:
            sol.append("\n\n" + ast.get_source_segment(_clean(src), stmt, padded=True) + "\n")
            f = copy.deepcopy(stmt)
            keep = f.body[:1] if (f.body and isinstance(f.body[0], ast.Expr)
                                  and isinstance(getattr(f.body[0], "value", None), ast.Constant)
                                  and isinstance(f.body[0].value.value, str)) else []
            raise_ = ast.parse(f"raise NotImplementedError({STUB_MESSAGE.format(label=label)!r})").body[0]
            f.body = keep + [raise_] if not isinstance(f, ast.ClassDef) else keep + [ast.Pass()]
            body.append("\n\n" + ast.unparse(f) + "\n")
    stub = "\n".join(parts) + "\n" + "\n".join(body).strip("\n") + "\n"
    return stub, calls, "\n".join(sol).strip("\n") + "\n"


# ----------------------------------------------------------------------------------------------
# the student edition of one chapter
# ----------------------------------------------------------------------------------------------
@dataclass
class Exercise:
    label: str
    chapter: str
    checkers: list[str] = field(default_factory=list)     # checker calls of the check cell
    solution: str = ""                                      # the book's solution code (answer cell)
    answer_index: int = -1                                  # index of the answer cell in the edition


@dataclass
class Edition:
    chapter: str
    nb: nbformat.NotebookNode
    exercises: list[Exercise]
    solution_texts: list[str]        # every removed solution markdown body and code cell source


def _nbgrader(grade_id: str, *, solution: bool, grade: bool, points: int = 0) -> dict:
    md = {"grade_id": grade_id, "solution": solution, "grade": grade, "locked": not solution,
          "schema_version": 3, "task": False}
    if grade:
        md["points"] = points
    return md


def student_edition(path: Path, clear_all: bool = False) -> Edition:
    """Build the student edition of one chapter notebook (see the module docstring)."""
    nb = nbformat.read(str(path), as_version=4)
    chapter = path.stem
    cells = nb.cells
    # pass 1: markdown: remove solutions, record exercises and the checkers they name
    gated = None                          # label of the gated solution we are inside
    in_ex = None                          # label of the exercise-start range we are inside
    ex_checkers: dict[str, list[str]] = {}
    ex_order: list[str] = []
    sol_texts: list[str] = []
    fenced: dict[str, list[str]] = {}     # label -> fenced python sources inside its solution
    role: list[tuple[str, str | None]] = []   # per cell: ("keep"|"drop"|"solcode", label)
    new_md: list[str | None] = []
    ends_with_solution: list[str | None] = []
    first_ex_cell = None
    for ci, c in enumerate(cells):
        if c.cell_type != "markdown":
            role.append(("solcode", gated) if gated else ("keep", None))
            new_md.append(None)
            ends_with_solution.append(None)
            continue
        lines = c.source.splitlines()
        keep = [True] * len(lines)
        if gated:
            keep = [False] * len(lines)
        last_sol = None
        for a, b, name, arg, _ in _blocks(lines):
            if name in ("exercise", "exercise-start"):
                lab = _label(lines[a:b + 1]) or f"{chapter}-exercise-{len(ex_order) + 1}"
                ex_order.append(lab)
                first_ex_cell = ci if first_ex_cell is None else first_ex_cell
                ex_checkers.setdefault(lab, []).extend(_CHECK.findall("\n".join(lines[a:b + 1])))
                in_ex = lab if name == "exercise-start" else None
                last_sol = None
            elif name == "exercise-end":
                in_ex = None
            elif name == "solution":
                lab = arg.split()[0] if arg else (ex_order[-1] if ex_order else "unknown")
                keep[a:b + 1] = [False] * (b + 1 - a)
                body = "\n".join(lines[a + 1:b])
                sol_texts.append(body)
                fenced.setdefault(lab, []).extend(_fenced_python(body))
                last_sol = lab
            elif name == "solution-start":
                gated = arg.split()[0] if arg else (ex_order[-1] if ex_order else "unknown")
                keep[a:] = [False] * (len(lines) - a)
            elif name == "solution-end":
                keep[a:b + 1] = [False] * (b + 1 - a)
                for k in range(b + 1, len(lines)):
                    keep[k] = True
                gated, last_sol = None, None
            else:
                last_sol = None if any(keep[a:b + 1]) else last_sol
        if in_ex and not _blocks(lines):
            ex_checkers[in_ex].extend(_CHECK.findall(c.source))
        if gated and not any(keep):
            sol_texts.append(c.source)
            fenced.setdefault(gated, []).extend(_fenced_python(c.source))
        removed = "\n".join(l for l, k in zip(lines, keep) if not k)
        if gated and removed.strip() and removed not in sol_texts:
            sol_texts.append(removed)
        text = "\n".join(l for l, k in zip(lines, keep) if k).strip("\n")
        trailing = last_sol is not None and not "\n".join(
            lines[[b for a, b, n, *_ in _blocks(lines) if n == "solution"][-1] + 1:]).strip()
        ends_with_solution.append(last_sol if trailing else None)
        new_md.append(text)
        role.append(("keep", None) if text.strip() else ("drop", None))
    checker_owner = {}
    for lab, names in ex_checkers.items():
        for n in names:
            checker_owner.setdefault(n, lab)
    # pass 2: code cells after a solution, and cells calling an exercise's checker
    after = None
    for ci, c in enumerate(cells):
        if c.cell_type == "markdown":
            after = ends_with_solution[ci]
            continue
        if role[ci][0] == "solcode":
            continue
        if after:
            role[ci] = ("solcode", after)
            continue
        tree = _parse(c.source)
        if tree is not None:
            owners = [checker_owner[_CHECK.search(call).group(0)] for call in _check_calls(tree)
                      if _CHECK.search(call).group(0) in checker_owner]
            if owners:
                role[ci] = ("solcode", owners[0])
    # pass 3: build the edition
    out_cells, exercises, tainted = [], {}, set()
    has_code = {lab for ci, (r, lab) in enumerate(role) if r == "solcode" and lab and
                (make_stub(cells[ci].source, lab) is not None)}

    def add_stub(src, lab, ci):
        stub = make_stub(src, lab)
        if stub is None or lab in exercises:
            return False
        answer, calls, solution = stub
        a = nbformat.v4.new_code_cell(answer)
        a.metadata = {"tags": [f"exercise:{lab}"], "exercise": {"label": lab, "role": "answer"},
                      "nbgrader": _nbgrader(lab, solution=True, grade=False)}
        k = nbformat.v4.new_code_cell("\n".join(calls))
        k.metadata = {"tags": [f"check:{lab}"], "exercise": {"label": lab, "role": "check"},
                      "nbgrader": _nbgrader(f"{lab}-check", solution=False, grade=True, points=1)}
        out_cells.extend([a, k])
        exercises[lab] = Exercise(lab, chapter, calls, solution, len(out_cells) - 2)
        tree = _parse(src)
        tainted.update(s.name for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)))
        return True

    for ci, c in enumerate(cells):
        r, lab = role[ci]
        if c.cell_type == "markdown":
            if r == "keep":
                m = nbformat.v4.new_markdown_cell(new_md[ci])
                m.metadata = copy.deepcopy(c.metadata)
                out_cells.append(m)
            for label, srcs in fenced.items():          # fenced solution code -> a stub here
                if label in has_code or label in exercises:
                    continue
                if any(s in c.source for s in srcs):
                    for s in srcs:
                        if add_stub(s, label, ci):
                            break
            continue
        tree = _parse(c.source)
        if r == "solcode":
            sol_texts.append(c.source)
            if tree is not None:
                add_stub(c.source, lab, ci) if lab not in exercises else None
                tainted |= _cell_stores(tree) - {n for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))
                                                 for n in _stores(s)}
            continue
        if tree is not None and _cell_uses(tree) & tainted:
            tainted |= _cell_stores(tree)
            sol_texts.append(c.source)                  # uses the answer: part of the solution
            continue
        if tree is not None:
            tainted -= _cell_stores(tree)
        k = copy.deepcopy(c)
        if clear_all or (first_ex_cell is not None and ci > first_ex_cell):
            k.outputs, k.execution_count = [], None
        out_cells.append(k)
    ed = nbformat.v4.new_notebook(metadata=copy.deepcopy(nb.metadata))
    ed.cells = out_cells
    ed.metadata["student_edition"] = {"chapter": chapter, "exercises": list(exercises)}
    return Edition(chapter, ed, list(exercises.values()), [t for t in sol_texts if t.strip()])


def write_student_edition(out_dir: Path, chapters: list[Path] | None = None,
                          clear_all: bool = False) -> list[Edition]:
    """Write ``OUT_DIR/<chapter>.ipynb`` for every chapter and ``OUT_DIR/exercises.json``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    eds = []
    for p in chapters or toc_chapters():
        ed = student_edition(Path(p), clear_all=clear_all)
        nbformat.write(ed.nb, str(out_dir / f"{ed.chapter}.ipynb"))
        eds.append(ed)
    manifest = {e.chapter: [{"label": x.label, "checkers": x.checkers} for x in e.exercises] for e in eds}
    (out_dir / "exercises.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return eds


HANDOUT_README = """# {title}

The chapters in `book/` are the student edition of the book: the exercises are there, their
solutions are not. Each coding exercise has an *answer* cell whose functions raise
`NotImplementedError` until you write them, and a *check* cell that tests your functions on a few
cases and tells you what is wrong (never the expected value). Your teacher grades the answer cells
with more cases than the check cell shows, so make your function right, not just the check pass.
Calling the book's own implementation of the function you are asked to write fails the check.

Set up (Python 3.10 or newer):

    python -m venv .venv && . .venv/bin/activate
    pip install torch            # on a laptop without a GPU: pip install torch --index-url https://download.pytorch.org/whl/cpu
    pip install -r requirements.txt
    pip install jupyterlab && jupyter lab      # then open the notebooks in book/

Keep the folders as they are: each notebook's first cell finds the `utils` package in the folder
above it. Hand in the notebooks you completed, one file per chapter, without renaming them.
"""


def write_handout(out_dir: Path, chapters: list[Path] | None = None, clear_all: bool = False,
                  title: str = "Assignment") -> list[Edition]:
    """Write a folder to give students: ``OUT_DIR/book/`` (the student edition and
    ``exercises.json``, with ``book/checkpoints`` and ``book/results``, which the chapters read),
    ``OUT_DIR/utils/`` (the package, without caches), ``requirements.txt`` and a ``README.md``.
    Nothing else of the repository travels: no tests (they hold working answers), no git history,
    no instructor notebooks, no built pages. ``OUT_DIR`` must not exist yet."""
    import shutil
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} exists: give a new folder for the handout")
    eds = write_student_edition(out_dir / "book", chapters, clear_all=clear_all)
    for data in ("checkpoints", "results"):
        if (BOOK / data).is_dir():
            shutil.copytree(BOOK / data, out_dir / "book" / data)
    shutil.copytree(ROOT / "utils", out_dir / "utils", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(ROOT / "requirements.txt", out_dir / "requirements.txt")
    (out_dir / "README.md").write_text(HANDOUT_README.format(title=title))
    return eds


def filled_in(ed: Edition) -> nbformat.NotebookNode:
    """The student edition with the book's solution code pasted back into the answer cells."""
    nb = copy.deepcopy(ed.nb)
    for ex in ed.exercises:
        stub = nb.cells[ex.answer_index].source.splitlines()
        header = [l for l in stub[:2] if l.startswith("#")]          # what a student keeps
        nb.cells[ex.answer_index].source = "\n".join(header) + "\n" + ex.solution
    return nb


def _marked(solution: str) -> str:
    """The solution with every function body (after its docstring) between ``### BEGIN SOLUTION``
    and ``### END SOLUTION``, as nbgrader expects: ``generate_assignment`` keeps the ``def`` line and
    puts ``raise NotImplementedError`` in place of the body."""
    tree = _parse(solution)
    lines = solution.splitlines()
    marks = []
    for f in tree.body:
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = f.body[1:] if (len(f.body) > 1 and isinstance(f.body[0], ast.Expr)
                                  and isinstance(getattr(f.body[0], "value", None), ast.Constant)) else f.body
            ind = " " * body[0].col_offset
            marks.append((body[0].lineno - 1, f.end_lineno, ind))
    for a, b, ind in sorted(marks, reverse=True):
        lines[b:b] = [ind + "### END SOLUTION"]
        lines[a:a] = [ind + "### BEGIN SOLUTION"]
    return "\n".join(lines) + "\n"


def source_edition(ed: Edition) -> nbformat.NotebookNode:
    """An nbgrader *source* notebook (instructors only): the answer cells hold the stub's instruction
    lines and the book's solution with each function body between ``### BEGIN SOLUTION`` /
    ``### END SOLUTION``, and each check cell adds the grader's call between
    ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS``, which ``nbgrader generate_assignment``
    removes from the students' copy. :func:`write_source_edition` writes them with their data files."""
    nb = copy.deepcopy(ed.nb)
    for ex in ed.exercises:
        stub = nb.cells[ex.answer_index].source.splitlines()
        header = [l for l in stub[:2] if l.startswith("#")]        # the stub's instructions
        nb.cells[ex.answer_index].source = "".join(l + "\n" for l in header) + _marked(ex.solution)
        hidden = [f"assert {_with_hidden(c)}" for c in ex.checkers]
        nb.cells[ex.answer_index + 1].source = "\n".join(
            [f"assert {c}" for c in ex.checkers] + ["### BEGIN HIDDEN TESTS"] + hidden + ["### END HIDDEN TESTS"]) + "\n"
    return nb


_DATA_LITERAL = re.compile(r"""["']([\w./-]+\.\w+)["']""")


def source_data_files(path: Path) -> list[Path]:
    """The files under ``book/`` that a chapter's code cells name by a relative path (string
    literals such as ``"results/planted_samples.safetensors"``), with each one's ``.json`` sidecar
    where it has one, relative to ``book/``. nbgrader executes a notebook in its own folder
    (``autograded/<student>/<assignment>/``), so these must travel with the assignment."""
    nb = nbformat.read(str(path), as_version=4)
    out = []
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        for m in _DATA_LITERAL.finditer(c.source):
            rel = Path(m.group(1))
            if rel.is_absolute() or ".." in rel.parts or rel.suffix == ".ipynb":
                continue
            for f in (rel, rel.with_suffix(".json")):
                if (BOOK / f).is_file() and f not in out:
                    out.append(f)
    return out


def write_source_edition(out_dir: Path, chapters: list[Path] | None = None) -> list[Edition]:
    """Write nbgrader source notebooks ``OUT_DIR/<chapter>.ipynb`` (see :func:`source_edition`)
    and copy the data files they read (:func:`source_data_files`) to the same relative paths
    under ``OUT_DIR``, which nbgrader copies on into the release and every autograded folder."""
    import shutil
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    eds = []
    for p in chapters or toc_chapters():
        ed = student_edition(Path(p))
        nbformat.write(source_edition(ed), str(out_dir / f"{ed.chapter}.ipynb"))
        for rel in source_data_files(Path(p)):
            (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(BOOK / rel, out_dir / rel)
        eds.append(ed)
    return eds


# ----------------------------------------------------------------------------------------------
# grading
# ----------------------------------------------------------------------------------------------
def _with_hidden(call: str) -> str:
    node = ast.parse(call, mode="eval").body
    node.keywords = [k for k in node.keywords if k.arg != "hidden"] + [
        ast.keyword(arg="hidden", value=ast.Constant(True))]
    return ast.unparse(node)


def _context(ed: Edition, ex: Exercise, answer: str, earlier: dict[str, str] | None = None) -> str:
    """The chapter statements an answer needs: every top-level import of the edition's code cells
    before the answer cell, and the latest earlier top-level statement binding each free name of
    the answer (recursively), in their original order. An earlier exercise's answer cell counts
    with the student's own answer (``earlier``: label -> source), as the notebook would run it."""
    earlier = earlier or {}
    stmts = []
    for c in ed.nb.cells[:ex.answer_index]:
        if c.cell_type != "code" or c.metadata.get("exercise", {}).get("role") == "check":
            continue
        src = c.source
        if c.metadata.get("exercise", {}).get("role") == "answer":      # an earlier exercise: the
            src = answer_code(earlier.get(c.metadata["exercise"]["label"], src))  # student's own answer
        tree = _parse(src)
        if tree is not None:
            stmts.extend(tree.body)
    tree = _parse(answer_code(answer))
    need = (_cell_uses(tree) if tree is not None else set()) | {
        n.id for call in ex.checkers for n in ast.walk(ast.parse(call)) if isinstance(n, ast.Name)}
    need -= set(dir(builtins)) | (_cell_stores(tree) if tree is not None else set())
    chosen = {i for i, s in enumerate(stmts) if isinstance(s, (ast.Import, ast.ImportFrom))
              and not (isinstance(s, ast.ImportFrom) and s.level)}
    have = set().union(*(_stores(stmts[i]) for i in chosen)) if chosen else set()
    todo = list(need - have)
    while todo:
        name = todo.pop()
        for i in range(len(stmts) - 1, -1, -1):
            if name in _stores(stmts[i]):
                if i not in chosen:
                    chosen.add(i)
                    new = _uses(stmts[i]) - set(dir(builtins)) - have
                    have |= _stores(stmts[i])
                    todo.extend(new)
                break
    return "\n".join(ast.unparse(stmts[i]) for i in sorted(chosen))


def grade_exercise(ed: Edition, ex: Exercise, answer: str, timeout: float = 300,
                   earlier: dict[str, str] | None = None, **kw) -> tuple[int, str]:
    """(points, message) for one answer (see :func:`utils.grading.grade_exercise`)."""
    from .grading import grade_exercise as run
    return run(ed, ex, answer, timeout=timeout, earlier=earlier, **kw)


def _run_job(job: dict, timeout: float) -> dict:
    from .grading import run_job
    return run_job(job, timeout)


def time_exercises(chapters: list[Path] | None = None, out: Path | None = None) -> dict:
    """Run every exercise's checkers on the book's own solution, practice call and hidden call
    timed separately, in a fresh process after the chapter context is built: wall-clock seconds
    (``practice``, ``hidden``) and CPU seconds of the process, all threads (``practice_cpu``,
    ``hidden_cpu``; less sensitive to other jobs on a shared machine). Write ``out`` (JSON with the
    machine, date and load average) when given."""
    import datetime
    import platform
    rows = {}
    for p in chapters or toc_chapters():
        ed = student_edition(Path(p))
        sols = {e.label: e.solution for e in ed.exercises}
        for ex in ed.exercises:
            job = {"cwd": str(BOOK), "context": _context(ed, ex, ex.solution, sols),
                   "answer": answer_code(ex.solution), "practice": list(ex.checkers),
                   "checks": [_with_hidden(c) for c in ex.checkers]}
            r = _run_job(job, 1800)
            rows[ex.label] = {"chapter": ed.chapter, "passed": bool(r["points"]),
                              **{k: round(v, 2) for k, v in r.get("seconds", {}).items()}}
            print(ex.label, rows[ex.label], flush=True)
    res = {"command": "python -m utils.course time", "date": datetime.date.today().isoformat(),
           "machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
           "load_average_1min": round(os.getloadavg()[0], 2), "torch_threads": None, "exercises": rows}
    try:
        import torch
        res["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    if out:
        Path(out).write_text(json.dumps(res, indent=1) + "\n")
    return res


TIMES_START = "<!-- exercise-times:start -->"
TIMES_END = "<!-- exercise-times:end -->"
TIMES_JSON = BOOK / "results" / "exercise_times.json"
INSTRUCTORS = BOOK / "instructors.md"


def _seconds(row: dict, key: str) -> str:
    """``wall (cpu)`` for one call, ``< 0.01`` for what rounds to zero."""
    def fmt(v):
        if v is None:
            return "n/a"
        return "< 0.01" if round(float(v), 2) < 0.01 else f"{float(v):.2f}"
    return f"{fmt(row.get(key))} ({fmt(row.get(key + '_cpu'))})"


def times_table(res: dict) -> str:
    """The Markdown table of ``book/instructors.md`` rendered from the JSON that
    ``python -m utils.course time`` writes: one row per exercise, in the file's order."""
    if not isinstance(res, dict) or not isinstance(res.get("exercises"), dict) or not res["exercises"]:
        raise ValueError("times_table: expected the JSON of `python -m utils.course time` with a "
                         "non-empty 'exercises' mapping")
    lines = ["| chapter | exercise | passes | practice call: wall s (CPU s) "
             "| grader's call, hidden=True: wall s (CPU s) |",
             "|---|---|---|---|---|"]
    for label, row in res["exercises"].items():
        if "chapter" not in row:
            raise ValueError(f"times_table: exercise {label!r} has no 'chapter'")
        chapter = row["chapter"].split("_")[0]
        lines.append(f"| {chapter} | `{label}` | {'yes' if row.get('passed') else 'no'} "
                     f"| {_seconds(row, 'practice')} | {_seconds(row, 'hidden')} |")
    return "\n".join(lines) + "\n"


def _between_markers(text: str, where: str) -> tuple[int, int]:
    a, b = text.find(TIMES_START), text.find(TIMES_END)
    if a < 0 or b < 0 or b < a or text.count(TIMES_START) != 1 or text.count(TIMES_END) != 1:
        raise ValueError(f"{where}: needs exactly one {TIMES_START} followed by one {TIMES_END}")
    return a + len(TIMES_START), b


def page_times_table(page: Path = INSTRUCTORS) -> str:
    """The table now between the markers of ``page`` (stripped of surrounding blank lines)."""
    text = Path(page).read_text()
    a, b = _between_markers(text, str(page))
    return text[a:b].strip("\n") + "\n"


def write_times_table(res: dict | None = None, page: Path = INSTRUCTORS) -> str:
    """Write ``times_table(res)`` (default: the committed ``book/results/exercise_times.json``)
    between the two marker comments of ``page``; returns the table."""
    if res is None:
        res = json.loads(TIMES_JSON.read_text())
    table = times_table(res)
    text = Path(page).read_text()
    a, b = _between_markers(text, str(page))
    Path(page).write_text(text[:a] + "\n" + table + text[b:])
    return table


def answers(nb: nbformat.NotebookNode) -> dict[str, str]:
    """label -> source of a submitted notebook's answer cells, found by their tag or, where an
    editor dropped the metadata, by the stub's first line."""
    out = {}
    for c in nb.cells:
        for t in c.get("metadata", {}).get("tags", []):
            if c.cell_type == "code" and t.startswith("exercise:"):
                out.setdefault(t.split(":", 1)[1], c.source)
    for c in nb.cells:          # an editor that drops cell metadata keeps the stub's first line
        m = _HEADER.match(c.source) if c.cell_type == "code" else None
        if m:
            out.setdefault(m.group(1), c.source)
    return out


def grade(submissions: Path, out_csv: Path | None = None, chapters: list[Path] | None = None,
          timeout: float = 300, salt: str | None = None) -> list[dict]:
    """Grade ``SUBMISSIONS/<student>/<chapter>.ipynb`` (see :func:`utils.grading.grade`)."""
    from .grading import grade as run
    return run(submissions, out_csv, chapters, timeout=timeout, salt=salt)


def _chapter_paths(names: list[str]) -> list[Path] | None:
    if not names:
        return None
    out = []
    for n in names:
        p = Path(n)
        cands = [p, BOOK / p.name, BOOK / (p.name + ".ipynb")] + sorted(BOOK.glob(p.name + "*.ipynb"))
        hit = next((c for c in cands if c.exists() and c.suffix == ".ipynb"), None)
        if hit is None:
            raise ValueError(f"unknown chapter {n!r}: give a notebook path or a prefix such as 05")
        out.append(hit.resolve())
    return out


def main(argv=None) -> None:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "_worker":
        from .grading import worker
        return worker()
    ap = argparse.ArgumentParser(prog="python -m utils.course", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("student", help="write the student edition")
    s.add_argument("out_dir")
    s.add_argument("chapters", nargs="*")
    s.add_argument("--clear-all", action="store_true", help="clear every output, not only the exercise sections'")
    g = sub.add_parser("grade", help="grade SUBMISSIONS_DIR/<student>/<chapter>.ipynb")
    g.add_argument("submissions")
    g.add_argument("chapters", nargs="*")
    g.add_argument("--out", default="scores.csv")
    g.add_argument("--timeout", type=float, default=300, help="seconds per exercise")
    g.add_argument("--salt", default=None,
                   help="seed of the hidden cases (default: a fresh random one, printed; give it "
                        "again to regrade with the same hidden inputs)")
    h = sub.add_parser("handout", help="write a folder to give students: the student edition, its "
                                       "data, utils, requirements.txt and a README (no tests, no git)")
    h.add_argument("out_dir")
    h.add_argument("chapters", nargs="*")
    h.add_argument("--clear-all", action="store_true", help="clear every output, not only the exercise sections'")
    h.add_argument("--title", default="Assignment", help="the README's title")
    o = sub.add_parser("source", help="write nbgrader source notebooks (with solutions: instructors only)")
    o.add_argument("out_dir")
    o.add_argument("chapters", nargs="*")
    t = sub.add_parser("time", help="time every exercise's checkers on the book's solutions")
    t.add_argument("chapters", nargs="*")
    t.add_argument("--out", default=str(TIMES_JSON))
    t.add_argument("--page", default=str(INSTRUCTORS),
                   help="page whose exercise-times table is rewritten (only when no chapters are named)")
    w = sub.add_parser("times-table", help="rewrite the table of book/instructors.md from the times JSON")
    w.add_argument("--json", default=str(TIMES_JSON))
    w.add_argument("--page", default=str(INSTRUCTORS))
    a = ap.parse_args(argv)
    if a.cmd == "student":
        eds = write_student_edition(Path(a.out_dir), _chapter_paths(a.chapters), clear_all=a.clear_all)
        for e in eds:
            print(f"{e.chapter}: {len(e.exercises)} graded exercise(s) {[x.label for x in e.exercises]}")
    elif a.cmd == "handout":
        eds = write_handout(Path(a.out_dir), _chapter_paths(a.chapters), clear_all=a.clear_all, title=a.title)
        print(f"handout of {len(eds)} chapter(s) in {a.out_dir}: give the whole folder to the students")
    elif a.cmd == "grade":
        import secrets
        salt = a.salt or secrets.token_hex(8)
        rows = grade(Path(a.submissions), Path(a.out), _chapter_paths(a.chapters), timeout=a.timeout,
                     salt=salt)
        print(f"hidden cases drawn with salt {salt} (keep it to regrade with the same inputs)")
        print(f"{sum(r['points'] for r in rows)} of {len(rows)} points; table in {a.out}")
    elif a.cmd == "time":
        res = time_exercises(_chapter_paths(a.chapters), Path(a.out))
        if not a.chapters:
            write_times_table(res, Path(a.page))
            print(f"table of {len(res['exercises'])} exercises written to {a.page}")
    elif a.cmd == "times-table":
        write_times_table(json.loads(Path(a.json).read_text()), Path(a.page))
        print(f"table written to {a.page} from {a.json}")
    else:
        eds = write_source_edition(Path(a.out_dir), _chapter_paths(a.chapters) or None)
        print(f"nbgrader source notebooks of {len(eds)} chapter(s), with their data files, in {a.out_dir}")


if __name__ == "__main__":
    main()
