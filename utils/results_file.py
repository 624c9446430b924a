"""The JSON results files that the book's documented commands write to ``book/results/``: their
provenance block (:func:`provenance`) and a validated reader (:func:`load_results`)."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path


def provenance(command: str, start: float, **extra) -> dict:
    """The ``"provenance"`` block of a results file: the command line that made it, today's date,
    the wall seconds since ``start`` (a ``time.perf_counter()`` value), the library versions and
    the machine, then ``extra`` (for example ``jobs=2``) -> dict."""
    import numpy as np
    import torch
    return {"command": command, "date": time.strftime("%Y-%m-%d"),
            "seconds": round(time.perf_counter() - start, 1), "torch": torch.__version__,
            "numpy": np.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(), **extra}


def load_results(path, *, command: str, keys=(), kind: str = "results") -> dict:
    """The results file at ``path``, checked to hold ``keys`` -> dict.

    A missing file raises ``FileNotFoundError`` naming the ``command`` that makes it; a file
    without every key raises ``ValueError`` saying it is not a ``kind`` file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no results file {path.name}; make it with {command}")
    result = json.loads(path.read_text())
    missing = [k for k in keys if k not in result]
    if missing:
        raise ValueError(f"{path.name} is not a {kind} file (missing {', '.join(missing)})")
    return result
