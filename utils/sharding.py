"""Split a list of work items across processes (GPUs, machines) and merge the per-rank results.

The rank and the number of processes come from the environment that ``accelerate launch`` (and
``torchrun``) set, ``RANK`` and ``WORLD_SIZE``; without them there is one process. Each rank writes
its own JSON file; :func:`merge_results` combines them, checks that every rank is there, and is
idempotent (merging again, or merging a folder that already holds the merged file, gives the
same bytes).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

RANK_FILE = "results.rank{rank:03d}-of-{world:03d}.json"
MERGED_FILE = "results.json"


def current_rank() -> tuple[int, int]:
    """(rank, world_size) of this process, from ``RANK``/``WORLD_SIZE`` (default 0, 1)."""
    try:
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    except ValueError:
        raise ValueError(f"RANK={os.environ.get('RANK')!r} and WORLD_SIZE="
                         f"{os.environ.get('WORLD_SIZE')!r} must be integers") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"need 0 <= RANK < WORLD_SIZE, got RANK={rank}, WORLD_SIZE={world}")
    return rank, world


def shard(items, rank: int, world_size: int) -> list[tuple[int, object]]:
    """The items of one rank, round-robin, with their global indices: ``[(i, items[i]) for i
    with i % world_size == rank]``. The union over ranks is every item exactly once."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    return [(i, x) for i, x in enumerate(items) if i % world_size == rank]


def write_rank_results(folder, records: list[dict], meta: dict, *, rank: int, world_size: int) -> Path:
    """Write one rank's ``records`` (dicts with a global integer ``"index"``) and ``meta`` (the
    run's settings, identical on every rank) to ``folder``/results.rankRRR-of-WWW.json."""
    if any(not isinstance(r.get("index"), int) for r in records):
        raise ValueError("every record needs an integer 'index' (its global position)")
    path = Path(folder) / RANK_FILE.format(rank=rank, world=world_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"rank": rank, "world_size": world_size, "meta": meta, "records": records}
    path.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
    return path


def merge_results(folder, out_name: str = MERGED_FILE) -> Path:
    """Merge every rank file of ``folder`` into ``folder``/``out_name``, sorted by index.

    Raises ``ValueError`` if ranks are missing, world sizes or settings disagree, or two ranks
    report the same index with different contents."""
    folder = Path(folder)
    files = sorted(folder.glob("results.rank*-of-*.json"))
    if not files:
        raise ValueError(f"no rank files (results.rankRRR-of-WWW.json) in {folder.name}/")
    parts = [json.loads(f.read_text()) for f in files]
    worlds = {p["world_size"] for p in parts}
    if len(worlds) != 1:
        raise ValueError(f"rank files from runs with different world sizes: {sorted(worlds)}; "
                         f"delete the stale ones")
    world = worlds.pop()
    ranks = sorted(p["rank"] for p in parts)
    if ranks != list(range(world)):
        missing = sorted(set(range(world)) - set(ranks))
        raise ValueError(f"ranks {missing} of {world} have not written their results yet")
    metas = [json.dumps(p["meta"], sort_keys=True) for p in parts]
    if len(set(metas)) != 1:
        raise ValueError("the rank files were written with different settings (meta differs)")
    by_index: dict = {}
    for p in parts:
        for r in p["records"]:
            old = by_index.setdefault(r["index"], r)
            if json.dumps(old, sort_keys=True) != json.dumps(r, sort_keys=True):
                raise ValueError(f"index {r['index']} appears twice with different contents")
    merged = {"world_size": world, "meta": parts[0]["meta"],
              "records": [by_index[i] for i in sorted(by_index)]}
    out = folder / out_name
    out.write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")
    return out
