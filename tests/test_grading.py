"""The grader refuses the ways a submission could score without doing the exercise: each answer
below was tried by an independent referee against an earlier grader, and scored there."""
import re
from pathlib import Path

import pytest

from utils import course, grading

ROOT = Path(__file__).resolve().parent.parent
ED = course.student_edition(course.BOOK / "09_detection.ipynb")
EX = next(x for x in ED.exercises if "tpr" in x.checkers[0])
FN = re.search(r"check_\w+\((\w+)", EX.checkers[0]).group(1)


def _grade(answer, **kw):
    return grading.grade_exercise(ED, EX, answer, timeout=120, **kw)


def test_parse_check_reads_the_call_and_refuses_other_shapes():
    assert grading.parse_check("exercises.check_spikiness(my_h, 'hoyer', hidden=True)") == \
        ("check_spikiness", "my_h", ["hoyer"], {})
    for bad in ("print(1)", "check_x()", "check_x(1)", "check_x(f, g)", "check_x(f"):
        with pytest.raises(ValueError):
            grading.parse_check(bad)


def test_the_books_solution_gets_the_point():
    assert _grade(EX.solution) == (1, "passed (practice and hidden cases)")


EXPLOITS = {
    # the answer cell defines its own checker, or a module of them, under the checker's name
    "shadow the checker": f"def {FN}(s, l, f):\n    return 0.0\n\n"
                          "def check_tpr_at_fpr(*a, **k):\n    return True\n\n"
                          "class exercises:\n    check_tpr_at_fpr = staticmethod(lambda *a, **k: True)\n",
    # a forged result line written straight to the process's stdout, then a hard exit
    "forge the result line": "import os, json\n"
                             "class X:\n"
                             "    os.write(1, ('@@RESULT@@' + json.dumps({'points': 1, 'message': 'passed'}) + '\\n').encode())\n"
                             "    os._exit(0)\n"
                             f"def {FN}(s, l, f):\n    return 0.0\n",
    # walk up the stack to the checker's frame and return its expected value
    "read the checker's frame": "import sys\n"
                                f"def {FN}(s, l, f):\n"
                                "    fr = sys._getframe()\n"
                                "    while fr is not None:\n"
                                "        if 'want' in fr.f_locals:\n"
                                "            return float(fr.f_locals['want'])\n"
                                "        fr = fr.f_back\n"
                                "    return -1.0\n",
    # replace the checker in the shared module
    "monkeypatch the checker module": "import utils.exercises as E\n"
                                      "E.check_tpr_at_fpr = lambda *a, **k: True\n"
                                      "E._close = lambda *a, **k: None\n"
                                      f"def {FN}(s, l, f):\n    return 0.0\n",
    # the reference, called in a thread or through a renamed copy of its code
    "reference in a thread": "import threading\nfrom utils.metrics import tpr_at_fpr\n"
                             f"def {FN}(s, l, f):\n    out = []\n"
                             "    t = threading.Thread(target=lambda: out.append(tpr_at_fpr(s, l, f)))\n"
                             "    t.start(); t.join()\n    return out[0]\n",
    "reference through roc_curve": "import numpy as np\nfrom utils.metrics import roc_curve\n"
                                   f"def {FN}(s, l, f):\n    fpr, tpr, _ = roc_curve(s, l)\n"
                                   "    return float(tpr[fpr <= f + 1e-12].max())\n",
}


@pytest.mark.parametrize("name", list(EXPLOITS))
def test_exploits_get_no_point(name):
    pts, msg = _grade(EXPLOITS[name])
    assert pts == 0, (name, msg)


def test_a_submission_cannot_change_the_graders_utils(tmp_path):
    """It writes into the utils/ it can see (the answer process's sandbox copy), so the next
    student is graded by the grader's own, unchanged checkers."""
    writer = ("from pathlib import Path\nimport utils.exercises as E\n"
              "Path(E.__file__).write_text(Path(E.__file__).read_text() + '\\nBROKEN = 1\\n')\n"
              f"def {FN}(s, l, f):\n    return 0.0\n")
    before = grading.tree_digest(ROOT / "utils")
    assert _grade(writer)[0] == 0
    assert grading.tree_digest(ROOT / "utils") == before
    assert _grade(EX.solution)[0] == 1


def test_hidden_inputs_follow_the_salt(monkeypatch):
    from utils import exercises
    monkeypatch.delenv(grading.SALT_VARIABLE, raising=False)
    assert exercises._hidden_seed(8) == 8
    monkeypatch.setenv(grading.SALT_VARIABLE, "one")
    a = exercises._hidden_seed(8)
    monkeypatch.setenv(grading.SALT_VARIABLE, "two")
    assert a != exercises._hidden_seed(8) and a != 8
    assert _grade(EX.solution, salt="one")[0] == _grade(EX.solution, salt="two")[0] == 1


def test_answer_constants_computed_by_calls_are_kept():
    """A correct answer that sets a module constant by a call (the referee's TOL) is graded."""
    answer = (EX.solution + "\n\nimport numpy as np\nTOL = np.finfo(float).eps * 100\n\n"
              f"_book_{FN} = {FN}\n\n"
              f"def {FN}(scores, labels, fpr):\n    return _book_{FN}(scores, labels, fpr) + 0 * TOL\n")
    kept = course.answer_code(answer)
    assert "TOL =" in kept and f"_book_{FN} = {FN}" in kept
    assert _grade(answer)[0] == 1
    experiment = answer + f"\nresult = {FN}(np.zeros(3), np.array([0, 1, 1]), 0.1)\n"
    assert "result =" not in course.answer_code(experiment)       # a run of the answer is left out


def _submit(tmp_path, answer, student="s"):
    """A submissions folder with one student's chapter 9 whose tpr answer cell is ``answer``."""
    import nbformat
    nb = nbformat.from_dict(ED.nb)
    for c in nb.cells:
        if c.metadata.get("tags") == [f"exercise:{EX.label}"]:
            c.source = answer
    (tmp_path / "subs" / student).mkdir(parents=True)
    nbformat.write(nb, str(tmp_path / "subs" / student / "09_detection.ipynb"))
    return tmp_path / "subs"


def test_a_process_left_behind_is_killed_before_the_scores_are_written(tmp_path):
    """The answer forks, leaves its session (so killing the job's process group misses it) and
    would write a file after the grader has finished; the grader kills it first."""
    import time
    marker = tmp_path / "still_alive"
    answer = ("import os, time\n"
              "def _fork():\n"
              "    if os.fork() == 0:\n"
              "        os.setsid()\n"
              f"        time.sleep(4); open({str(marker)!r}, 'w').write('x'); os._exit(0)\n"
              f"def {FN}(s, l, f, _x=_fork()):\n    return 0.0\n")
    rows = grading.grade(_submit(tmp_path, answer), chapters=[course.BOOK / "09_detection.ipynb"], timeout=120)
    assert [r["points"] for r in rows] == [0]
    time.sleep(6)
    assert not marker.exists()


def test_a_file_planted_in_the_graders_utils_stops_grading(tmp_path):
    planted = ROOT / "utils" / "__pycache__" / "zz_planted_by_test.pyc"
    answer = (f"from pathlib import Path\n_ = Path({str(planted)!r}).write_bytes(b'x')\n"
              f"def {FN}(s, l, f):\n    return 0.0\n")
    try:
        with pytest.raises(RuntimeError, match="utils/ changed"):
            grading.grade(_submit(tmp_path, answer), chapters=[course.BOOK / "09_detection.ipynb"], timeout=120)
    finally:
        planted.unlink(missing_ok=True)
