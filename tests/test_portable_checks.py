"""The machinery that keeps the book's checks portable: declared tolerances, verdicts, prose numbers."""
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests import prose_numbers
from tests.nbval_tolerance import Tolerance, parse_tolerance, snap
from utils.claims import bound, verdict

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


# --- declared tolerances --------------------------------------------------------------------------
def test_parse_tolerance():
    assert parse_tolerance("x = 1\nprint(x)") is None
    assert parse_tolerance("# NBVAL_TOLERANCE abs=0.01 rel=0.02\nprint(1)") == Tolerance(0.01, 0.02, False)
    assert parse_tolerance("  #  NBVAL_TOLERANCE rel=0.1 ints  # counts are estimates") == Tolerance(0, 0.1, True)


@pytest.mark.parametrize("source, message", [
    ("# NBVAL_TOLERANCE", "declares no tolerance"),
    ("# NBVAL_TOLERANCE abs=0", "declares no tolerance"),
    ("# NBVAL_TOLERANCE tol=0.1", "unknown item"),
    ("# NBVAL_TOLERANCE abs=x", "not a number"),
    ("# NBVAL_TOLERANCE abs=-1", ">= 0"),
    ("# NBVAL_TOLERANCE abs=nan", ">= 0"),
    ("# NBVAL_TOLERANCE abs=1\n# NBVAL_TOLERANCE abs=2", "only once"),
])
def test_parse_tolerance_rejects_bad_declarations(source, message):
    with pytest.raises(ValueError, match=message):
        parse_tolerance(source)


def test_snap_accepts_decimals_within_the_tolerance_only():
    tol = Tolerance(abs_=0.01)
    committed = "test/Bayes 1.57  top-1 0.238\n"
    assert snap("test/Bayes 1.565  top-1 0.245\n", committed, tol) == committed
    moved = snap("test/Bayes 1.60  top-1 0.240\n", committed, tol)
    assert moved != committed and "1.60" in moved and "0.238" in moved  # only the far number stays


def test_snap_keeps_integers_words_and_structure_exact():
    tol = Tolerance(abs_=0.5, rel=0.5)
    assert snap("alive 53/64\n", "alive 52/64\n", tol) != "alive 52/64\n"
    assert snap("[FAILS] ratio < 2 (1.9)", "[holds] ratio < 2 (1.9)", tol) != "[holds] ratio < 2 (1.9)"
    assert snap("0.5 0.6", "0.5", tol) == "0.5 0.6"
    # padded columns may change width when a number changes its number of digits
    assert snap("err   9.99 |", "err  10.01 |", Tolerance(abs_=0.05)) == "err  10.01 |"
    # with ints, counts may move too
    assert snap("alive 53/64", "alive 52/64", Tolerance(abs_=1, ints=True)) == "alive 52/64"


def test_rel_tolerance_scales_with_the_committed_value():
    assert Tolerance(rel=0.01).allows("100.0", "100.9")
    assert not Tolerance(rel=0.01).allows("100.0", "101.5")
    assert not Tolerance(rel=0.01).allows("0.0", "0.001")


def _notebook(tmp_path, source, committed_text):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(source)
    cell.execution_count = 1
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=committed_text)]
    nb.cells = [cell]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "probe.ipynb"
    nbformat.write(nb, path)
    return path


def _nbval(path):
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                           "tests.nbval_tolerance", "--nbval", "--nbval-current-env", str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("committed, passes", [
    ("ratio 0.503\n[holds] ratio > 0.4\n", True),    # within abs=0.01 of 0.5, verdict equal
    ("ratio 0.530\n[holds] ratio > 0.4\n", False),   # a real change fails
    ("ratio 0.503\n[FAILS] ratio > 0.4\n", False),   # a verdict never carries a tolerance
])
def test_nbval_applies_the_declared_tolerance_end_to_end(tmp_path, committed, passes):
    source = ("# NBVAL_TOLERANCE abs=0.01\nr = 0.5\nprint(f'ratio {r:.3f}')\n"
              "print(f\"[{'holds' if r > 0.4 else 'FAILS'}] ratio > 0.4\")")
    result = _nbval(_notebook(tmp_path, source, committed))
    assert (result.returncode == 0) == passes, result.stdout[-2000:]


def test_nbval_without_a_declaration_stays_exact(tmp_path):
    result = _nbval(_notebook(tmp_path, "print(f'{0.5:.3f}')", "0.501\n"))
    assert result.returncode != 0


# --- verdicts and bounds --------------------------------------------------------------------------
def test_verdict_prints_the_outcome(capsys):
    assert verdict("test/Bayes < 2", 1.5 < 2) is True
    assert verdict("every sample stored", False) is False
    assert capsys.readouterr().out == "[holds] test/Bayes < 2\n[FAILS] every sample stored\n"
    with pytest.raises(TypeError, match="bool"):
        verdict("x", 0.3)
    with pytest.raises(ValueError, match="claim"):
        verdict("  ", True)


def test_bound_hides_round_off_but_not_errors():
    assert bound(2.7e-15, 1e-12) == "< 1e-12"
    assert bound(-3e-13, 1e-12) == "< 1e-12"
    assert bound(0.004, 1e-12) == "4.00e-03"
    with pytest.raises(ValueError, match="NaN"):
        bound(float("nan"), 1e-12)
    with pytest.raises(ValueError, match="positive"):
        bound(1.0, 0)


# --- numbers in the text --------------------------------------------------------------------------
def _text_notebook(tmp_path, markdown, source, output):
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell(source)
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text=output)]
    nb.cells = [nbformat.v4.new_markdown_cell(markdown), code]
    path = tmp_path / "text.ipynb"
    nbformat.write(nb, path)
    return path


def test_prose_numbers_must_match_a_printed_number(tmp_path):
    src = "sigma = 0.2\nprint(f'cos {c:.3f}')"
    ok = _text_notebook(tmp_path, "At $\\sigma = 0.2$ the cosine is 0.97 (57% of the units).", src,
                        "cos 0.968\nshare 0.571\n")
    assert prose_numbers.disagreements(ok) == []
    bad = _text_notebook(tmp_path, "The cosine is 0.95 and chapter 12 is exempt.", src, "cos 0.968\n")
    found = prose_numbers.disagreements(bad)
    assert len(found) == 1 and "'0.95'" in found[0]


def test_prose_numbers_honour_the_declared_tolerance(tmp_path):
    src = "# NBVAL_TOLERANCE abs=0.02\nprint(c)"
    assert prose_numbers.disagreements(_text_notebook(tmp_path, "about 0.99", src, "0.975\n")) == []
    assert prose_numbers.disagreements(_text_notebook(tmp_path, "about 1.02", src, "0.975\n")) != []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_number_in_the_text_agrees_with_the_outputs(path):
    found = prose_numbers.disagreements(path)
    assert not found, "numbers typed into the text that no output backs:\n" + "\n".join(found)
