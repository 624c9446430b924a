"""Checks on the book as a whole: notebooks, table of contents, bootstrap cell, budgets, hygiene."""
import json
import re
import subprocess
from pathlib import Path

import nbformat
import pytest

from utils import bootstrap

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
FORBIDDEN = re.compile(r"(?<![\w.])/(" + "|".join(["work", "tmp", "home", "root", "Users"]) + r")/")


def toc_files():
    text = (ROOT / "_toc.yml").read_text()
    return [m.group(1) for m in re.finditer(r"(?:file|root):\s*(\S+)", text)]


def test_repository_url_in_one_place():
    url = bootstrap.repository_url()
    assert url.startswith("https://github.com/")
    assert url in bootstrap.bootstrap_source()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_starts_with_the_bootstrap_cell(path):
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert "".join(first.source) == bootstrap.bootstrap_source(), \
        f"{path.name}: first cell is not the current bootstrap cell; run python -m utils.bootstrap"
    assert sum(bootstrap.is_bootstrap(c) for c in nb.cells) == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_executed_small_and_clean(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), f"{path.name} has unexecuted cells"
    assert path.stat().st_size <= 1.5 * 2**20, f"{path.name} is larger than 1.5 MB"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    text = path.read_text()
    assert not FORBIDDEN.search(text), f"{path.name} contains an absolute machine path"
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            src = "".join(cell.source)
            for block in re.findall(r"```\{prf:proof\}.*?```", src, flags=re.S):
                assert ":label:" in block, f"{path.name}: every prf:proof needs a :label:"


def test_toc_lists_exactly_the_chapters():
    listed = set(toc_files())
    for f in listed:
        assert (ROOT / f).with_suffix(".ipynb").exists() or (ROOT / f).with_suffix(".md").exists(), f
    for nb in NOTEBOOKS:
        assert f"book/{nb.stem}" in listed, f"{nb.name} is not in _toc.yml"


def test_every_notebook_has_a_runtime_within_budget():
    runtimes = json.loads((BOOK / "runtimes.json").read_text())
    for nb in NOTEBOOKS:
        assert nb.name in runtimes, f"{nb.name} has no measured runtime; run python -m utils.run_notebooks"
        assert runtimes[nb.name]["seconds"] <= 120, f"{nb.name} exceeds the 120 s budget"
        assert runtimes[nb.name]["peak_mb"] <= 3072, f"{nb.name} exceeds the 3 GB memory budget"


def test_no_absolute_machine_paths_in_tracked_files():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    offenders = []
    for f in files:
        p = ROOT / f
        if p.suffix in {".png", ".safetensors", ".jpg", ".npz"} or not p.is_file():
            continue
        try:
            text = p.read_text()
        except UnicodeDecodeError:
            continue
        if FORBIDDEN.search(text):
            offenders.append(f)
    assert not offenders, f"absolute machine paths in: {offenders}"
