"""Read the JSON results files that the book's documented commands write to ``book/results/``."""
from __future__ import annotations

import json
from pathlib import Path


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
