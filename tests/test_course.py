"""The student edition and the autograder (``utils.course``).

Fast tests (seconds): no solution text survives in the student edition, the stubs and their
metadata are well formed, the blank edition grades to zero, the nbgrader source markers, the
static analysis on small made-up notebooks. Slow tests: the student edition of every chapter whose
code differs from the book's executes top to bottom (``test_student_edition_executes[<chapter>]``;
218 s for the eight chapters at a load average of about 2 on 2 cores), and grading the filled-in
edition (the book's solutions pasted back) gives full marks (``test_filled_in_edition_gets_full_marks``,
36 s).
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


def test_grading_runs_hidden_cases_and_reports_without_values(tmp_path):
    ed = EDITIONS["09_detection"]
    ex = next(x for x in ed.exercises if "tpr" in x.checkers[0])
    fn = re.search(r"check_\w+\((\w+)", ex.checkers[0]).group(1)
    wrong = f"import numpy as np\n\ndef {fn}(scores, labels, fpr):\n    return 0.5\n"
    pts, msg = course.grade_exercise(ed, ex, wrong, timeout=120)
    assert pts == 0 and msg.startswith("failed: case") and "expected" not in msg and "0.5" not in msg
    # right on the practice cases, wrong on a hidden edge case (fpr = 1): no point
    gamed = (f"import numpy as np\nfrom utils.metrics import tpr_at_fpr\n\ndef {fn}(scores, labels, fpr):\n"
             "    return 0.0 if fpr >= 1 else tpr_at_fpr(scores, labels, fpr)\n")
    pts, msg = course.grade_exercise(ed, ex, gamed, timeout=120)
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


def test_nbgrader_generate_assignment_accepts_the_source_edition(tmp_path):
    """Runs only where nbgrader is installed (it is not in requirements.txt): nbgrader makes its
    release from our source notebooks, with our stubs' signatures and without the hidden tests."""
    pytest.importorskip("nbgrader")
    import subprocess
    import sys
    course.main(["source", str(tmp_path / "source" / "ps1"), "09"])
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "ps1",
                    f"--CourseDirectory.root={tmp_path}", "--no-db"], check=True, cwd=tmp_path)
    nb = nbformat.read(str(tmp_path / "release" / "ps1" / "09_detection.ipynb"), as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    assert "raise NotImplementedError()" in text and "hidden=True" not in text
    assert "def my_tpr_at_fpr(scores, labels, fpr):" in text


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
