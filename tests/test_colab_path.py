"""The Colab path: the bootstrap cell run as Colab runs it, and what requirements.txt installs."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from utils.bootstrap import bootstrap_source

ROOT = Path(__file__).resolve().parents[1]


def _git(*args, cwd=ROOT):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    """A bare clone of this repository, standing in for the public one."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    where = tmp_path_factory.mktemp("remote") / "diffusion-generalization-book.git"
    _git("clone", "--bare", "-q", str(ROOT), str(where))
    return where


def test_bootstrap_cell_clones_installs_and_imports_as_in_colab(remote, tmp_path):
    colab = tmp_path / "content"                     # Colab's empty working folder
    colab.mkdir()
    cell = bootstrap_source(url=remote.as_uri())
    script = "\n".join([
        "import sys, types",
        "sys.modules['google.colab'] = types.ModuleType('google.colab')   # as in Colab",
        cell,
        "import utils, os",
        "print('CWD', os.getcwd())",
        "print('UTILS', utils.__file__)",
    ])
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")   # offline: satisfied only
    env.pop("PYTHONPATH", None)
    run = subprocess.run([sys.executable, "-c", script], cwd=colab, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    out = dict(line.split(" ", 1) for line in run.stdout.splitlines() if line.startswith(("CWD", "UTILS")))
    clone = colab / "diffusion-generalization-book"
    assert (clone / "requirements.txt").exists() and (clone / ".git").exists()
    assert Path(out["CWD"]) == clone / "book"
    assert Path(out["UTILS"]).resolve().is_relative_to(clone.resolve())     # the clone's utils, not ours


def test_bootstrap_cell_does_nothing_outside_colab(tmp_path):
    script = bootstrap_source(url="https://example.invalid/nothing.git") + "\nimport os; print(sorted(os.listdir('.')))"
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "[]"                 # no clone, no install


def test_requirements_leave_torch_numpy_and_cuda_alone(tmp_path):
    """Over an environment that already has torch and numpy (as Colab has), installing
    requirements.txt must not replace either, nor pull any CUDA package."""
    report = tmp_path / "report.json"
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    run = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report),
                          "-r", str(ROOT / "requirements.txt")], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    installs = [item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]]
    touched = [n for n in installs if n in ("torch", "numpy", "triton") or n.startswith(("nvidia-", "cuda"))]
    assert touched == [], f"requirements.txt would install {touched}"
    text = (ROOT / "requirements.txt").read_text()
    for line in text.splitlines():
        name = line.split("#")[0].strip().lower()
        if name.startswith(("torch", "numpy")):
            assert "==" not in name and "<" not in name, f"requirements.txt caps or pins {name}: Colab's would be replaced"
