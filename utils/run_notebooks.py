"""Re-execute the book's notebooks in place and record their runtime and peak memory.

    python -m utils.run_notebooks                 # every notebook under book/
    python -m utils.run_notebooks book/01_*.ipynb # some of them

Each notebook runs in a fresh kernel, in its own worker process (so the worker's
``RUSAGE_CHILDREN`` gives that kernel's peak memory), with ``book/`` as working directory.
The bootstrap cell is refreshed first, outputs are written back, and the measurements go to
``book/runtimes.json``, which the runtime appendix reads. A notebook whose outputs contain an
absolute path of this machine fails the run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
RUNTIMES = BOOK / "runtimes.json"
# absolute paths of a developer's machine that must never appear in committed outputs
_ABS_PATH = re.compile(r"(?<![\w.])/(" + "|".join(["work", "tmp", "home", "root", "Users"]) + r")/")


def _execute(path: Path, timeout: int) -> dict:
    """Run one notebook in place (called inside the worker process)."""
    import nbformat
    from nbclient import NotebookClient

    from .bootstrap import ensure_bootstrap

    nb = nbformat.read(path, as_version=4)
    ensure_bootstrap(nb)
    env_threads = os.environ.get("OMP_NUM_THREADS")
    start = time.perf_counter()
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    seconds = time.perf_counter() - start
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        text = json.dumps(cell.get("outputs", []))
        if _ABS_PATH.search(text):
            raise RuntimeError(f"{path.name}: an output contains an absolute path "
                               f"({_ABS_PATH.search(text).group(0)}...); print relative paths")
    if not _has_widgets(nb):  # drop stale widget state left by an earlier version of the notebook
        nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"seconds": round(seconds, 1), "peak_mb": round(peak_kb / 1024), "threads": env_threads}


def _has_widgets(nb) -> bool:
    return any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
               for c in nb.cells for o in c.get("outputs", []))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", help="notebooks to run (default: all under book/)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(_execute(Path(args.worker), args.timeout)))
        return 0
    paths = [Path(p).resolve() for p in args.notebooks] or sorted(BOOK.glob("*.ipynb"))
    runtimes = json.loads(RUNTIMES.read_text()) if RUNTIMES.exists() else {}
    RUNTIMES.write_text(json.dumps(dict(sorted(runtimes.items())), indent=1) + "\n")
    failed = []
    for path in paths:
        if not path.exists():
            print(f"no such notebook: {path}", file=sys.stderr)
            failed.append(path.name)
            continue
        print(f"running {path.name} ...", flush=True)
        proc = subprocess.run([sys.executable, "-m", "utils.run_notebooks", "--worker", str(path),
                               "--timeout", str(args.timeout)], cwd=ROOT, capture_output=True, text=True)
        if proc.returncode:
            print(proc.stdout[-3000:], proc.stderr[-6000:], sep="\n", file=sys.stderr)
            failed.append(path.name)
            continue
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result.update({"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(),
                       "machine": platform.machine(), "python": platform.python_version()})
        runtimes[path.name] = result
        print(f"  {result['seconds']:.1f} s, peak {result['peak_mb']} MB", flush=True)
        RUNTIMES.write_text(json.dumps(dict(sorted(runtimes.items())), indent=1) + "\n")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
