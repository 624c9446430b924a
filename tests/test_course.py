"""The student edition and the autograder (``utils.course``).

Fast tests (seconds): no solution text survives in the student edition, the stubs and their
metadata are well formed, the blank edition grades to zero, the nbgrader source markers, the
static analysis on small made-up notebooks. Slow tests: the student edition of every chapter whose
code differs from the book's executes top to bottom (``test_student_edition_executes[<chapter>]``;
218 s for the eight chapters at a load average of about 2 on 2 cores), and grading the filled-in
edition (the book's solutions pasted back) gives full marks (``test_filled_in_edition_gets_full_marks``,
36 s), and the nbgrader round trip on chapters 9 and 1 (generate_assignment, autograde of three
students, export; ``test_nbgrader_round_trip_full_marks_zero_and_hidden_tests``, 95 s). nbgrader is
in tests/requirements.txt: the nbgrader tests fail, not skip, without it.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from utils import course

CHAPTERS = course.toc_chapters()
EDITIONS = {p.stem: course.student_edition(p) for p in CHAPTERS}


def _code_cells(nb, role=None):
    return [c for c in nb.cells if c.cell_type == "code" and
            (role is None or c.metadata.get("exercise", {}).get("role") == role)]


def _allowed_stub_line(line: str) -> bool:
    s = line.strip()
    return (not s or s.startswith(("#", "import ", "from ", "def ", "async def ", "class ", "@", '"""', "'"))
            or s.startswith("raise NotImplementedError(") or "check_" in s or s == "pass")


def test_the_book_has_graded_exercises_and_every_one_is_tagged():
    labels = [x.label for e in EDITIONS.values() for x in e.exercises]
    assert len(labels) >= 5 and len(labels) == len(set(labels))
    for ed in EDITIONS.values():
        answers = course.answers(ed.nb)
        assert sorted(answers) == sorted(x.label for x in ed.exercises)
        for ex in ed.exercises:
            a, k = ed.nb.cells[ex.answer_index], ed.nb.cells[ex.answer_index + 1]
            assert a.metadata["tags"] == [f"exercise:{ex.label}"] and k.metadata["tags"] == [f"check:{ex.label}"]
            assert a.metadata["nbgrader"] == {"grade_id": ex.label, "solution": True, "grade": False,
                                              "locked": False, "schema_version": 3, "task": False}
            assert k.metadata["nbgrader"]["grade"] and k.metadata["nbgrader"]["points"] == 1
            assert k.metadata["nbgrader"]["locked"] and not k.metadata["nbgrader"]["solution"]
            assert a.outputs == [] and k.outputs == []
            assert f"exercise {ex.label}" in a.source and ex.checkers
            assert all(re.search(r"\bcheck_\w+\(", c) for c in ex.checkers)
            assert k.source.splitlines() == ex.checkers


@pytest.mark.parametrize("chapter", list(EDITIONS))
def test_no_solution_text_survives(chapter):
    """Every line (> 30 characters) of every solution (markdown bodies, solution code cells,
    solution-dependent cells) is absent from the student edition, except lines the book shows
    outside its solutions too (the exercise's own text) and the stub's signature lines."""
    ed = EDITIONS[chapter]
    book = nbformat.read(str(course.BOOK / f"{chapter}.ipynb"), as_version=4)
    stubs = {id(c) for r in ("answer", "check") for c in _code_cells(ed.nb, r)}
    student = "\n".join(c.source for c in ed.nb.cells if id(c) not in stubs)
    sol = {l.strip() for t in ed.solution_texts for l in t.splitlines() if len(l.strip()) > 30}
    outside = "\n".join(c.source for c in book.cells)
    for t in ed.solution_texts:                   # the book's text with the solutions taken out
        outside = outside.replace(t, "")
    leaks = [l for l in sol if l in student and l not in outside]
    assert not leaks, leaks[:5]
    assert not re.search(r"\{solution(-start|-end)?\}", student)
    for c in _code_cells(ed.nb, "answer") + _code_cells(ed.nb, "check"):
        bad = [l for l in c.source.splitlines() if not _allowed_stub_line(l)]
        assert not bad, bad
    for c in _code_cells(ed.nb, "answer"):
        tree = ast.parse(c.source)
        for f in tree.body:
            if isinstance(f, ast.FunctionDef):
                assert isinstance(f.body[-1], ast.Raise)


def test_solutions_are_found_in_every_form():
    """Inline, four-backtick and gated (solution-start/-end) solutions are all removed."""
    kinds = set()
    for p in CHAPTERS:
        src = p.read_text()
        kinds |= set(re.findall(r"(`{3,4})\{(solution(?:-start)?)\}", src))
    assert ("```", "solution") in kinds
    for ed in EDITIONS.values():
        text = "\n".join(c.source for c in ed.nb.cells)
        assert ":class: dropdown" not in text or "{exercise" in text


def _nb(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(s[3:]) if s.startswith("md:") else nbformat.v4.new_code_cell(s)
                for s in cells]
    return nb


def test_static_analysis_on_a_made_up_chapter(tmp_path):
    nb = _nb("import numpy as np\nfrom utils import exercises\nK = 3",
             "md:```{exercise} Code it\n:label: ex-made-up\n\nWrite `f` and check it with "
             "`exercises.check_tpr_at_fpr(f)`.\n```",
             "md:```{solution} ex-made-up\n:class: dropdown\n\nThe secret explanation of the answer, long enough.\n```",
             "def helper(x):\n    return x + K\n\ndef f(s, l, fpr):\n    '''Spec.'''\n    return helper(0)\n\n"
             "exercises.check_tpr_at_fpr(f)\nsecret_result = f(1, 2, 3)\nprint(secret_result)",
             "print('uses the answer', secret_result)",
             "md:Later text.",
             "print('also uses the answer', secret_result * 2)",
             "secret_result = 5\nprint(secret_result)",
             "print('fine again', secret_result, K)")
    p = tmp_path / "99_made_up.ipynb"
    nbformat.write(nb, str(p))
    ed = course.student_edition(p)
    src = [c.source for c in ed.nb.cells]
    assert len(ed.exercises) == 1 and ed.exercises[0].label == "ex-made-up"
    answer = ed.nb.cells[ed.exercises[0].answer_index].source
    assert "def f(s, l, fpr):" in answer and "def helper(x):" in answer and "return x + K" not in answer
    assert '"""Spec."""' in answer and "raise NotImplementedError('write this function (exercise ex-made-up)')" in answer
    assert not any("secret explanation" in s for s in src)
    assert not any("uses the answer" in s for s in src)            # both dependent cells removed
    assert any("fine again" in s for s in src)                      # re-bound: not dependent any more
    assert "return x + K" in ed.exercises[0].solution and "secret_result" not in ed.exercises[0].solution
    # the grader's context: imports and the constant K the answer needs, nothing else
    ctx = course._context(ed, ed.exercises[0], ed.exercises[0].solution)
    assert "import numpy as np" in ctx and "K = 3" in ctx and "print" not in ctx


def test_blank_edition_grades_to_zero_and_a_wrong_answer_gets_no_value(tmp_path):
    for name, ed in EDITIONS.items():
        (tmp_path / "blank").mkdir(exist_ok=True)
        nbformat.write(ed.nb, str(tmp_path / "blank" / f"{name}.ipynb"))
    rows = course.grade(tmp_path, tmp_path / "scores.csv")
    assert len(rows) == sum(len(e.exercises) for e in EDITIONS.values())
    assert all(r["points"] == 0 and r["message"] == "not attempted" for r in rows)
    assert (tmp_path / "scores.csv").read_text().splitlines()[0] == "student,chapter,exercise,points,message"


def _gamed_tpr(fn: str) -> str:
    """An answer to ex-code-tpr that passes the practice cases and fails a hidden one (fpr = 1): a
    correct threshold sweep of its own (the checkers refuse calls of the book's tpr_at_fpr) that
    returns 0 when every input may be flagged."""
    return (f"import numpy as np\n\ndef {fn}(scores, labels, fpr):\n"
            "    if fpr >= 1:\n        return 0.0\n"
            "    pos, neg = scores[labels == 1], scores[labels == 0]\n"
            "    rates = [(np.mean(neg >= t), np.mean(pos >= t)) for t in list(np.unique(scores)) + [np.inf]]\n"
            "    return max(tp for fp, tp in rates if fp <= fpr)\n")


def test_grading_runs_hidden_cases_and_reports_without_values(tmp_path):
    ed = EDITIONS["09_detection"]
    ex = next(x for x in ed.exercises if "tpr" in x.checkers[0])
    fn = re.search(r"check_\w+\((\w+)", ex.checkers[0]).group(1)
    wrong = f"import numpy as np\n\ndef {fn}(scores, labels, fpr):\n    return 0.5\n"
    pts, msg = course.grade_exercise(ed, ex, wrong, timeout=120)
    assert pts == 0 and msg.startswith("failed: case") and "expected" not in msg and "0.5" not in msg
    # right on the practice cases, wrong on a hidden edge case (fpr = 1): no point
    pts, msg = course.grade_exercise(ed, ex, _gamed_tpr(fn), timeout=120)
    assert pts == 0 and "hidden" in msg
    pts, msg = course.grade_exercise(ed, ex, ex.solution, timeout=120)
    assert pts == 1, msg
    slow = f"import time\n\ndef {fn}(scores, labels, fpr):\n    time.sleep(60)\n"
    assert course.grade_exercise(ed, ex, slow, timeout=8) == (0, "timed out after 8 s")


def test_nbgrader_source_edition_marks_solutions_and_hidden_tests():
    ed = EDITIONS["09_detection"]
    src = course.source_edition(ed)
    for ex in ed.exercises:
        a, k = src.cells[ex.answer_index].source, src.cells[ex.answer_index + 1].source
        assert a.count("### BEGIN SOLUTION") == a.count("### END SOLUTION") >= 1
        ast.parse(a)
        assert "### BEGIN HIDDEN TESTS" in k and "hidden=True" in k.split("### BEGIN HIDDEN TESTS")[1]
        assert "hidden=True" not in k.split("### BEGIN HIDDEN TESTS")[0]


def test_command_line_writes_the_edition(tmp_path):
    course.main(["student", str(tmp_path), "09"])
    assert (tmp_path / "09_detection.ipynb").exists() and (tmp_path / "exercises.json").exists()
    with pytest.raises(ValueError, match="unknown chapter"):
        course.main(["student", str(tmp_path), "no-such-chapter"])


def test_the_handout_holds_only_what_students_need_and_runs(tmp_path):
    """The handout folder: the student edition with its data, utils, requirements and a README;
    no tests (they hold working answers), no git history, no instructor notebooks; no solution
    line (> 30 characters) in any of its text files outside utils/; chapter 9 runs in it as it is."""
    from nbclient import NotebookClient
    out = tmp_path / "handout"
    course.main(["handout", str(out), "09", "01", "--title", "Problem set 1"])
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "book", "requirements.txt", "utils"]
    assert not list(out.rglob("test_*.py")) and not list(out.rglob(".git"))
    assert sorted(p.name for p in (out / "book").glob("*.ipynb")) == ["01_denoisers.ipynb", "09_detection.ipynb"]
    assert (out / "README.md").read_text().startswith("# Problem set 1")
    sol = {l.strip() for ch in ("09_detection", "01_denoisers") for t in EDITIONS[ch].solution_texts
           for l in t.splitlines() if len(l.strip()) > 30}
    outside = "\n".join(c.source for ch in ("09_detection", "01_denoisers") for c in
                        nbformat.read(str(course.BOOK / f"{ch}.ipynb"), as_version=4).cells)
    for ch in ("09_detection", "01_denoisers"):
        for t in EDITIONS[ch].solution_texts:
            outside = outside.replace(t, "")
    for f in out.rglob("*"):
        if f.is_file() and "utils" not in f.relative_to(out).parts and f.suffix in (".ipynb", ".md", ".json", ".txt"):
            text = f.read_text(errors="ignore")
            leaks = [l for l in sol if l in text and l not in outside and not _allowed_stub_line(l)]
            assert not leaks, (f.name, leaks[:3])
    nb = nbformat.read(str(out / "book" / "09_detection.ipynb"), as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(out / "book")}}).execute()
    with pytest.raises(FileExistsError):
        course.write_handout(out)


def _same_code_as_book(chapter):
    book = nbformat.read(str(course.BOOK / f"{chapter}.ipynb"), as_version=4)
    return [c.source for c in _code_cells(book)] == [c.source for c in _code_cells(EDITIONS[chapter].nb)]


CHANGED = [c for c in EDITIONS if not _same_code_as_book(c)]


def test_chapters_whose_code_is_unchanged_are_covered_by_nbval():
    """A chapter whose student edition has exactly the book's code cells runs as the book does
    (nbval executes the book), so only the changed ones are executed below."""
    assert set(CHANGED) >= {ed.chapter for ed in EDITIONS.values() if ed.exercises}


@pytest.mark.parametrize("chapter", CHANGED)
def test_student_edition_executes(chapter):
    """The blank student edition runs top to bottom; every check cell says "not attempted"."""
    from nbclient import NotebookClient
    ed = EDITIONS[chapter]
    nb = course.student_edition(course.BOOK / f"{chapter}.ipynb").nb
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(course.BOOK)}}).execute()
    for c in _code_cells(nb, "check"):
        text = "".join(o.get("text", "") for o in c.outputs)
        assert f"{c.metadata['exercise']['label']}: not attempted" in text


def test_filled_in_edition_gets_full_marks(tmp_path):
    (tmp_path / "filled").mkdir()
    for name, ed in EDITIONS.items():
        nbformat.write(course.filled_in(ed), str(tmp_path / "filled" / f"{name}.ipynb"))
    rows = course.grade(tmp_path, tmp_path / "scores.csv", timeout=600)
    bad = [r for r in rows if r["points"] != 1]
    assert rows and not bad, bad


def test_answers_are_found_without_metadata():
    ed = EDITIONS["09_detection"]
    nb = course.filled_in(ed)
    for c in nb.cells:
        c.metadata = {}
    assert sorted(course.answers(nb)) == sorted(x.label for x in ed.exercises)


def _nbgrader(root: Path, *args: str, timeout: float = 120):
    """Run ``nbgrader ARGS`` on the course directory ``root`` as a teacher would, with the book's
    ``utils`` importable (PYTHONPATH) and a time limit; fail with nbgrader's log on an error."""
    import os
    import subprocess
    import sys
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(course.ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    r = subprocess.run([sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={root}"],
                       cwd=root, env=env, timeout=timeout, capture_output=True, text=True)
    assert r.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def _by_grade_id(nb, grade_id):
    cell, = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    return cell


def test_source_data_files_are_the_files_the_code_names(tmp_path):
    """Relative paths that exist under book/ (with their .json sidecars) and nothing else."""
    nb = _nb("x = load('results/planted_samples.safetensors')\ny = open('no/such/file.bin')",
             "z = ('../results/planted_samples.json', '/abs/path.json', '09_detection.ipynb')",
             "md:Text naming 'results/recipe_ablation.json' is not code.")
    p = tmp_path / "99_data.ipynb"
    nbformat.write(nb, str(p))
    assert course.source_data_files(p) == [Path("results/planted_samples.safetensors"),
                                           Path("results/planted_samples.json")]
    assert Path("results/planted_samples.safetensors") in course.source_data_files(course.BOOK / "09_detection.ipynb")


def test_nbgrader_release_of_every_chapter_keeps_the_stubs_and_hides_the_tests(tmp_path):
    """``nbgrader generate_assignment`` (nbgrader is in tests/requirements.txt) makes the students'
    release from the source notebooks of every chapter: each answer cell has exactly the student
    edition's import and ``def`` lines and no solution line, each check cell exactly the practice
    ``assert``s (no ``hidden=True``), the tags survive, and the data files travel. About 5 s."""
    root = tmp_path
    course.main(["source", str(root / "source" / "ps1")])
    _nbgrader(root, "generate_assignment", "ps1", "--no-db")
    for name, ed in EDITIONS.items():
        rel = nbformat.read(str(root / "release" / "ps1" / f"{name}.ipynb"), as_version=4)
        assert "hidden=True" not in "\n".join(c.source for c in rel.cells)
        assert not any("### BEGIN" in c.source for c in rel.cells)
        for ex in ed.exercises:
            a, k = _by_grade_id(rel, ex.label), _by_grade_id(rel, f"{ex.label}-check")
            assert a.metadata["tags"] == [f"exercise:{ex.label}"] and k.metadata["tags"] == [f"check:{ex.label}"]
            stub = ed.nb.cells[ex.answer_index].source.splitlines()
            assert a.source.splitlines()[:2] == stub[:2]              # the stub's instructions
            sig = [l for l in stub if l.startswith(("import ", "from ", "def "))]
            assert [l for l in a.source.splitlines() if l.startswith(("import ", "from ", "def "))] == sig
            assert not [l for l in a.source.splitlines() if not _allowed_stub_line(l)]
            assert "raise NotImplementedError()" in a.source
            assert k.source.splitlines() == [f"assert {c}" for c in ex.checkers]
        for f in course.source_data_files(course.BOOK / f"{name}.ipynb"):     # copied, then carried on
            assert (root / "source" / "ps1" / f).stat().st_size > 0
            assert (root / "release" / "ps1" / f).read_bytes() == (root / "source" / "ps1" / f).read_bytes()
    assert course.answers(nbformat.read(str(root / "release" / "ps1" / "09_detection.ipynb"), as_version=4))


NBGRADER_CHAPTERS = ["09_detection", "01_denoisers"]


def test_nbgrader_round_trip_full_marks_zero_and_hidden_tests(tmp_path):
    """What a teacher runs, end to end, on chapters 9 and 1 as assignment ``ps1``:
    ``python -m utils.course source`` -> ``nbgrader db student import`` -> ``nbgrader
    generate_assignment`` -> three submissions in ``submitted/<student>/ps1/`` -> ``nbgrader autograde``
    -> ``nbgrader export``. ``filled`` (the release with the book's solutions in its answer cells) gets
    every point and ``blank`` (the untouched release) none; ``gamed`` loses chapter 9's point with an
    answer right on the practice cases and wrong on a hidden one (the hidden tests ran) and gets
    chapter 1's with the filled-in *student edition* (``python -m utils.course student``: the same
    grade ids), which nbgrader grades too. The lectures run without an error in nbgrader's folders
    (their data files travel with the assignment). Measured: 95 s in all, 86 s of it autograde (about
    30 s per student, 20 s of it chapter 9), at a load average of about 2 on 2 cores."""
    import copy
    import csv
    import time
    t0 = time.perf_counter()
    root = tmp_path
    course.main(["source", str(root / "source" / "ps1"), *NBGRADER_CHAPTERS])
    (root / "students.csv").write_text("id,first_name,last_name\nfilled,F,Student\nblank,B,Student\ngamed,G,Student\n")
    _nbgrader(root, "db", "student", "import", str(root / "students.csv"))
    _nbgrader(root, "generate_assignment", "ps1")
    release = {n: nbformat.read(str(root / "release" / "ps1" / f"{n}.ipynb"), as_version=4) for n in NBGRADER_CHAPTERS}
    tpr = next(x for x in EDITIONS["09_detection"].exercises if "tpr" in x.checkers[0])
    fn = re.search(r"check_\w+\((\w+)", tpr.checkers[0]).group(1)
    for student in ("filled", "blank", "gamed"):
        (root / "submitted" / student / "ps1").mkdir(parents=True)
        for n in NBGRADER_CHAPTERS:
            if student == "gamed" and n != "09_detection":       # the student edition, filled in
                nb = course.filled_in(EDITIONS[n])
                nbformat.write(nb, str(root / "submitted" / student / "ps1" / f"{n}.ipynb"))
                continue
            nb = copy.deepcopy(release[n])
            for ex in EDITIONS[n].exercises:
                cell = _by_grade_id(nb, ex.label)
                header = "\n".join(l for l in cell.source.splitlines()[:2] if l.startswith("#"))
                if student == "filled":
                    cell.source = header + "\n" + ex.solution
                elif student == "gamed":
                    cell.source = header + "\n" + (_gamed_tpr(fn) if ex is tpr else ex.solution)
            nbformat.write(nb, str(root / "submitted" / student / "ps1" / f"{n}.ipynb"))
    t_auto = time.perf_counter()
    _nbgrader(root, "autograde", "ps1", "--Execute.timeout=300", timeout=900)
    t_auto = time.perf_counter() - t_auto
    _nbgrader(root, "export", f"--to={root / 'grades.csv'}")
    rows = {r["student_id"]: r for r in csv.DictReader((root / "grades.csv").open())}
    n_points = sum(len(EDITIONS[n].exercises) for n in NBGRADER_CHAPTERS)
    assert set(rows) == {"filled", "blank", "gamed"}
    assert all(float(r["max_score"]) == n_points for r in rows.values())
    assert float(rows["filled"]["score"]) == n_points, rows["filled"]
    assert float(rows["blank"]["score"]) == 0, rows["blank"]
    n01 = len(EDITIONS["01_denoisers"].exercises)
    assert float(rows["gamed"]["score"]) == n01, rows["gamed"]
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        assert gb.find_submission_notebook("09_detection", "ps1", "gamed").score == 0
        assert gb.find_submission_notebook("01_denoisers", "ps1", "gamed").score == n01
        assert gb.find_submission_notebook("01_denoisers", "ps1", "filled").score == n01
    # the autograded notebooks: which tests ran, and what they said
    for student in ("filled", "blank", "gamed"):
        for n in NBGRADER_CHAPTERS:
            nb = nbformat.read(str(root / "autograded" / student / "ps1" / f"{n}.ipynb"), as_version=4)
            errors = [(i, o.ename) for i, c in enumerate(nb.cells) if c.cell_type == "code"
                      for o in c.outputs if o.output_type == "error"]
            checks = [i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade")]
            assert all(i in checks for i, _ in errors), (student, n, errors)     # the lecture ran
            for ex in EDITIONS[n].exercises:
                k = _by_grade_id(nb, f"{ex.label}-check")
                assert "hidden=True" in k.source                  # nbgrader put the hidden tests back
                out = "".join(o.get("text", "") for o in k.outputs)
                err = [o for o in k.outputs if o.output_type == "error"]
                if student == "filled" or (student == "gamed" and ex is not tpr):
                    assert not err and sum(l.startswith("Correct") for l in out.splitlines()) == 2, out
                elif student == "blank":
                    assert err and err[0].ename == "AssertionError" and "not attempted" in out
                else:
                    assert err and err[0].ename == "AssertionError" and "hidden" in err[0].evalue, err
                    assert out.startswith("Correct"), "the gamed answer passes the practice cases"
    print(f"nbgrader round trip: {time.perf_counter() - t0:.1f} s (autograde {t_auto:.1f} s)")


def test_time_command_writes_the_measurements(tmp_path):
    out = tmp_path / "times.json"
    course.main(["time", "09", "--out", str(out)])
    import json
    res = json.loads(out.read_text())
    assert res["command"] == "python -m utils.course time" and res["cpus"] >= 1
    (label, row), = res["exercises"].items()
    assert label == "ex-code-tpr" and row["passed"] and {"practice", "hidden", "practice_cpu", "hidden_cpu"} <= set(row)
    committed = json.loads((course.BOOK / "results" / "exercise_times.json").read_text())
    labels = {x.label for e in EDITIONS.values() for x in e.exercises}
    assert set(committed["exercises"]) == labels, "rerun python -m utils.course time"


def test_instructors_table_is_rendered_from_the_times_json(tmp_path):
    import json
    res = json.loads(course.TIMES_JSON.read_text())
    assert course.page_times_table() == course.times_table(res), \
        "book/instructors.md's table differs from the JSON: run python -m utils.course times-table"
    page = tmp_path / "page.md"
    page.write_text(f"before\n{course.TIMES_START}\nold\n{course.TIMES_END}\nafter\n")
    one = {"exercises": {"ex-x": {"chapter": "03_m", "passed": False, "practice": 0.001,
                                  "practice_cpu": 0.0, "hidden": 1.234, "hidden_cpu": 1.2}}}
    course.write_times_table(one, page)
    assert page.read_text().startswith("before\n") and page.read_text().endswith(f"{course.TIMES_END}\nafter\n")
    assert "| 03 | `ex-x` | no | < 0.01 (< 0.01) | 1.23 (1.20) |" in course.page_times_table(page)
    page.write_text("no markers\n")
    with pytest.raises(ValueError, match="exercise-times:start"):
        course.write_times_table(one, page)
    with pytest.raises(ValueError, match="exercises"):
        course.times_table({"exercises": {}})
