"""How far each printed number moves under another CPU's kernels: the evidence for a tolerance.

    python -m tests.portability book/02_relu_dae.ipynb            # the three settings below
    python -m tests.portability book/0*.ipynb --setting avx2

Each notebook is re-executed (not written back) in a fresh kernel under each kernel setting, and
every code cell whose text output differs from the committed one is listed with the largest
absolute and relative change of its numbers, whether its integers or words changed too, and the
tolerance it declares (``# NBVAL_TOLERANCE``, see ``tests/nbval_tolerance.py``). A cell marked
``OK`` passes nbval under that setting; ``FAIL`` does not. Declare a tolerance a few times larger
than the largest change seen here, and well below the size of the effect the cell reports.
"""
from __future__ import annotations

import argparse
import copy
import os
import re
import sys
from pathlib import Path

from tests.nbval_tolerance import NUMBER, _SPACES, is_decimal, parse_tolerance, snap

# kernel settings that stand in for CPUs of other makes (ATen's and MKL's dispatch, one thread)
SETTINGS = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "OMP_NUM_THREADS": "1"},
    "compatible": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX2",
                   "OMP_NUM_THREADS": "1"},
    "avx-2threads": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "AVX", "OMP_NUM_THREADS": "2"},
}


_UNCHECKED = ("NBVAL_IGNORE_OUTPUT", "NBVAL_SKIP")


def _texts(cell) -> list[str]:
    """The text outputs nbval compares (streams merged by name, as nbval does, and text/* data)."""
    import nbformat
    from nbval.plugin import coalesce_streams

    out = []
    for o in coalesce_streams([nbformat.from_dict(copy.deepcopy(o)) for o in cell.get("outputs", [])]):
        if "text" in o:
            out.append("".join(o["text"]))
        for key, value in sorted(o.get("data", {}).items()):     # nbval compares per MIME type
            if key.startswith("text/"):
                out.append("".join(value))
    return out


def compare_cells(committed, executed) -> list[dict]:
    """Per code cell whose text outputs differ: the largest changes of its numbers."""
    rows = []
    code = [c for c in committed.cells if c.cell_type == "code"]
    new = [c for c in executed.cells if c.cell_type == "code"]
    for i, (a, b) in enumerate(zip(code, new)):
        if any(re.search(rf"^\s*#\s*{m}\s*$", a.source, re.M) for m in _UNCHECKED):
            continue
        ta, tb = "\n".join(_texts(a)), "\n".join(_texts(b))
        if ta == tb:
            continue
        na, nb = NUMBER.findall(ta), NUMBER.findall(tb)
        row = {"cell": i, "abs": 0.0, "rel": 0.0, "structure": False, "ints": False}
        if len(na) != len(nb) or [_SPACES.sub(" ", s) for s in NUMBER.split(ta)] != \
                [_SPACES.sub(" ", s) for s in NUMBER.split(tb)]:
            row["structure"] = True
        for x, y in zip(na, nb):
            if x == y:
                continue
            if not (is_decimal(x) and is_decimal(y)):
                row["ints"] = True
            d = abs(float(x) - float(y))
            row["abs"] = max(row["abs"], d)
            row["rel"] = max(row["rel"], d / max(abs(float(x)), 1e-12))
        try:
            tol = parse_tolerance(a.source)
        except ValueError as exc:
            tol = exc
        row["declared"] = tol
        row["passes"] = tol is not None and not isinstance(tol, Exception) and snap(tb, ta, tol) == ta
        rows.append(row)
    return rows


def execute(path: Path, env: dict, timeout: int = 600):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    run = copy.deepcopy(nb)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(run, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb, run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="+")
    ap.add_argument("--setting", action="append", choices=sorted(SETTINGS),
                    help="kernel setting(s) to try (default: all)")
    args = ap.parse_args(argv)
    failed = 0
    for name in args.setting or list(SETTINGS):
        for p in args.notebooks:
            committed, executed = execute(Path(p).resolve(), SETTINGS[name])
            for r in compare_cells(committed, executed):
                failed += not r["passes"]
                flags = ", integers or words changed" if r["ints"] or r["structure"] else ""
                print(f"{name:13s} {Path(p).name} code cell {r['cell']:2d}: max |change| {r['abs']:.3g}, "
                      f"relative {r['rel']:.3g}{flags}; declared {r['declared']} -> "
                      f"{'OK' if r['passes'] else 'FAIL'}", flush=True)
    print(f"{failed} cell(s) would fail nbval")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
