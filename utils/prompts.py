"""Prompt sets for the Stable Diffusion chapter, downloaded at run time, cached, never committed.

* :func:`memorized_prompts`: the 500 memorized SD v1 prompts published with Wen et al. (ICLR 2024),
  ``examples/sdv1_500_memorized.jsonl`` of YuxinWenRick/diffusion_memorization at a pinned commit;
  JSON Lines with ``caption``, ``url`` (the LAION image) and ``index``.
* :func:`ordinary_prompts`: the first prompts of the Hugging Face dataset
  ``Gustavosta/Stable-Diffusion-Prompts`` (column ``Prompt``, split ``train``), as the official code
  takes its non-memorized prompts.

Both validate what they read (structure, count, types) and record a SHA-256 of the bytes in the
cache, so a later run notices a changed file. Offline and uncached, they raise
:class:`utils.data.DatasetUnavailableError` at once (a 3-second connectivity check, no hang).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .checks import check_positive_int
from .data import DatasetUnavailableError, _file_digest, _require_network, cache_dir

WEN_REPO = "YuxinWenRick/diffusion_memorization"
WEN_COMMIT = "ca60157f40a5d3bc41763e922ce27187fdf1adc4"
WEN_PATH = "examples/sdv1_500_memorized.jsonl"
WEN_URL = f"https://raw.githubusercontent.com/{WEN_REPO}/{WEN_COMMIT}/{WEN_PATH}"
WEN_COUNT = 500
ORDINARY_DATASET = "Gustavosta/Stable-Diffusion-Prompts"


class PromptFileError(ValueError):
    """A prompt file that does not have the expected structure (or changed since it was cached)."""


def parse_memorized(text: str) -> list[dict]:
    """Parse and validate Wen et al.'s JSON Lines -> a list of ``{"caption", "url", "index"}``.

    Raises :class:`PromptFileError` naming the first bad line, or a wrong number of lines."""
    rows = []
    for k, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PromptFileError(f"line {k} of {WEN_PATH} is not JSON: {exc}") from None
        if not isinstance(row, dict) or not isinstance(row.get("caption"), str) or not row["caption"]:
            raise PromptFileError(f"line {k} of {WEN_PATH} has no non-empty 'caption' string")
        rows.append({"caption": row["caption"], "url": row.get("url"), "index": row.get("index")})
    if len(rows) != WEN_COUNT:
        raise PromptFileError(f"{WEN_PATH} should have {WEN_COUNT} prompts, found {len(rows)}")
    return rows


def _fetch_bytes(url: str, dest: Path, what: str) -> Path:
    """Download ``url`` to ``dest`` (through a .part file) unless cached; check the network first."""
    import urllib.request
    if dest.exists():
        return dest
    _require_network(what, [url], [dest.name])
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            tmp.write_bytes(response.read())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(dest)
    return dest


def _check_pinned_digest(path: Path) -> str:
    """Record the file's SHA-256 beside it on first use; afterwards a different digest raises."""
    digest = _file_digest(path, "sha256")
    record = path.with_name(path.name + ".sha256")
    if record.exists() and record.read_text().strip() != digest:
        raise PromptFileError(f"{path.name} (in {path.parent}) changed since it was first "
                              f"downloaded (sha256 {digest[:12]}... vs recorded "
                              f"{record.read_text().strip()[:12]}...); delete both files and rerun")
    record.write_text(digest + "\n")
    return digest


def memorized_prompts(n: int | None = None) -> tuple[list[dict], dict]:
    """The first ``n`` (default all 500) of Wen et al.'s memorized prompts -> (rows, provenance).

    ``rows``: ``{"caption", "url", "index"}`` dicts; ``provenance``: source URL, commit, sha256."""
    dest = cache_dir() / "prompts" / f"sdv1_500_memorized-{WEN_COMMIT[:12]}.jsonl"
    path = _fetch_bytes(WEN_URL, dest, "wen-memorized-prompts")
    rows = parse_memorized(path.read_text(encoding="utf-8"))
    digest = _check_pinned_digest(path)
    n = len(rows) if n is None else check_positive_int(n, "n")
    if n > len(rows):
        raise ValueError(f"n={n} but there are only {len(rows)} memorized prompts")
    return rows[:n], {"source": WEN_URL, "commit": WEN_COMMIT, "sha256": digest, "count": len(rows)}


def parse_ordinary(prompts, n: int) -> list[str]:
    """Validate a column of prompts: the first ``n`` non-empty strings, whitespace-stripped."""
    out = [p.strip() for p in prompts if isinstance(p, str) and p.strip()][:n]
    if len(out) < n:
        raise PromptFileError(f"{ORDINARY_DATASET} gave only {len(out)} non-empty prompts, need {n}")
    return out


def ordinary_prompts(n: int, *, revision: str | None = None) -> tuple[list[str], dict]:
    """The first ``n`` prompts of ``Gustavosta/Stable-Diffusion-Prompts`` (train split, column
    ``Prompt``) -> (prompts, provenance with the dataset commit and the file's sha256)."""
    n = check_positive_int(n, "n")
    try:
        from huggingface_hub import HfApi, hf_hub_download
    except ImportError as exc:                                  # pragma: no cover
        raise DatasetUnavailableError("huggingface_hub is needed: pip install huggingface_hub") from exc
    _require_network("gustavosta-prompts", ["https://huggingface.co"], ["the train split"])
    api = HfApi()
    info = api.dataset_info(ORDINARY_DATASET, revision=revision)
    files = [s.rfilename for s in info.siblings if "train" in s.rfilename and s.rfilename.endswith(".parquet")]
    if not files:
        raise PromptFileError(f"{ORDINARY_DATASET} at {info.sha} has no train parquet file")
    local = hf_hub_download(ORDINARY_DATASET, sorted(files)[0], repo_type="dataset", revision=info.sha,
                            cache_dir=str(cache_dir() / "hf"))
    import pyarrow.parquet as pq
    table = pq.read_table(local)
    if "Prompt" not in table.column_names:
        raise PromptFileError(f"{ORDINARY_DATASET}: no 'Prompt' column (columns: {table.column_names})")
    prompts = parse_ordinary(table.column("Prompt").to_pylist(), n)
    return prompts, {"source": f"hf://datasets/{ORDINARY_DATASET}/{sorted(files)[0]}", "commit": info.sha,
                     "sha256": _file_digest(Path(local), "sha256"), "count": table.num_rows}


SMOKE_PROMPTS = {
    "memorized": ["a podcast cover with a bold white title", "a product photo of a grey backpack",
                  "a film poster with an actor's face", "a painted foyer in a warm colour"],
    "ordinary": ["a watercolor painting of a lighthouse at dawn", "a bowl of ramen, studio photo",
                 "a fox in a snowy forest, digital art", "an astronaut reading a book on the moon"],
}
"""Built-in prompts for smoke mode, written for this book in the style of the two sets. With the tiny
random-weight model nothing is memorized: the labels only exercise the code."""


def sha256_text(text: str) -> str:
    """SHA-256 of a string's UTF-8 bytes (for provenance records)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fetch_training_image(url: str, *, size: int = 224, timeout: float = 10.0):
    """Download the LAION training image of a memorized prompt -> (3, size, size) float32 in
    [-1, 1], or ``None`` when the link is dead (an HTTP error, a timeout, not an image). Links
    are not checksummed: they point at third-party sites whose bytes change; a dead or changed
    link only loses that prompt's generation-level ground truth, which the chapter counts."""
    import io
    import urllib.request

    import numpy as np
    import torch
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return None
    try:
        from PIL import Image
        req = urllib.request.Request(url, headers={"User-Agent": "balanced-rep-book/1.0"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            data = r.read(20_000_000)
        img = Image.open(io.BytesIO(data)).convert("RGB")
        scale = size / min(img.size)                     # resize the shorter side, centre-crop
        img = img.resize((max(size, round(img.width * scale)), max(size, round(img.height * scale))),
                         Image.BICUBIC)
        left, top = (img.width - size) // 2, (img.height - size) // 2
        img = img.crop((left, top, left + size, top + size))
    except Exception:                                          # noqa: BLE001 - any failure = dead link
        return None
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)
    return x.contiguous()

