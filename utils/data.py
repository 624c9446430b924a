"""Data for the book: image sets in [-1, 1] and mixtures of low-rank Gaussians.

Two public entry points:

* :func:`load_images` returns a float32 tensor of images, shape (n, C, H, W), values in [-1, 1].
  ``"digits"`` (scikit-learn, 1,797 images of 8x8) and ``"lfw"`` (scikit-image, the 100 face
  crops of ``skimage.data.lfw_subset()``, 25x25) ship with their libraries and work offline.
  ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"`` and ``"celeba"`` are downloaded on first use
  into :func:`cache_dir` and verified by checksum. When the network is unreachable they fail
  within seconds with :class:`DatasetUnavailableError` (run the chapter in Colab, or put the files
  into the cache folder by hand); a cached file whose checksum is wrong is never used, it raises
  :class:`DatasetChecksumError`.
* :func:`gaussian_mixture` samples a mixture of k Gaussians, each supported on an affine subspace
  of dimension ``rank`` in R^d, scaled like images, and can return the generating
  :class:`MixtureParams` so that later chapters can compute the Bayes-optimal denoiser.

Where the downloads come from and how they are checked (the cache folder is the environment
variable ``BOOK_DATA_DIR``, or ``~/.cache/balanced-rep-book``, resolved at call time):

* mnist: ``ossci-datasets.s3.amazonaws.com/mnist/``, then ``yann.lecun.com/exdb/mnist/``; md5 of
  each ``*.gz`` file as listed by torchvision's ``MNIST``. Cached in ``<cache>/mnist/``.
* fashion-mnist: ``fashion-mnist.s3-website.eu-central-1.amazonaws.com``; md5 as listed by
  torchvision's ``FashionMNIST``. Cached in ``<cache>/fashion-mnist/``.
* cifar10: ``www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz``; md5 as listed by torchvision's
  ``CIFAR10``. Cached in ``<cache>/cifar10/``.
* celeba: (1) ``<cache>/celeba/img_align_celeba.zip`` if present (placed by hand, or left there by
  ``torchvision.datasets.CelebA(root=cache_dir(), download=True)``), checked against the md5
  torchvision lists; otherwise (2) the Hugging Face dataset ``eurecom-ds/celeba`` (parquet shards,
  downloaded one at a time, only as many as ``n`` needs), checked by sha256 as described next.

The CelebA parquet shards have no checksum published by the dataset's authors, so we trust the
sha256 the Hub reports for each LFS file at a pinned commit: on first download we record the
commit and every shard's sha256 in ``<cache>/celeba/manifest.json`` and verify each shard against
it, then and on every later (offline) load. Reading the shards needs ``pyarrow`` (preinstalled in
Colab). No code from the Hub is ever executed.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import importlib.util
import io
import json
import math
import os
import pickle
import socket
import tarfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import torch

from .checks import check_positive_int

__all__ = [
    "DATASETS", "DatasetUnavailableError", "DatasetChecksumError", "MixtureParams", "cache_dir",
    "load_images", "gaussian_mixture", "mixture_params", "augment_images",
]

DATASETS = ("digits", "lfw", "mnist", "fashion-mnist", "cifar10", "celeba")
_BUNDLED = ("digits", "lfw")
_SPLITS = {
    "digits": ("train",), "lfw": ("train",),
    "mnist": ("train", "test"), "fashion-mnist": ("train", "test"), "cifar10": ("train", "test"),
    "celeba": ("train", "validation", "test"),
}
_HAS_LABELS = ("digits", "mnist", "fashion-mnist", "cifar10")
_COLOR = ("cifar10", "celeba")          # the sets that have an RGB version

_CONNECT_TIMEOUT = 3.0                  # seconds for the connectivity pre-check
_READ_TIMEOUT = 60.0                    # seconds without data before a download is abandoned

# Files and checksums, copied from torchvision.datasets (mnist.py, cifar.py, celeba.py).
_RESOURCES = {
    "mnist": {
        "mirrors": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                    "https://yann.lecun.com/exdb/mnist/"),
        "files": {
            "train-images-idx3-ubyte.gz": ("md5", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            "train-labels-idx1-ubyte.gz": ("md5", "d53e105ee54ea40749a09fcbcd1e9432"),
            "t10k-images-idx3-ubyte.gz": ("md5", "9fb629c4189551a2d022fa330f9573f3"),
            "t10k-labels-idx1-ubyte.gz": ("md5", "ec29112dd5afa0611ce80d1b7f02629c"),
        },
    },
    "fashion-mnist": {
        "mirrors": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        "files": {
            "train-images-idx3-ubyte.gz": ("md5", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            "train-labels-idx1-ubyte.gz": ("md5", "25c81989df183df01b3e8a0aad5dffbe"),
            "t10k-images-idx3-ubyte.gz": ("md5", "bef4ecab320f06d8554ea6380940ec79"),
            "t10k-labels-idx1-ubyte.gz": ("md5", "bb300cfdad3c16e7a12a480ee83cd310"),
        },
    },
    "cifar10": {
        "mirrors": ("https://www.cs.toronto.edu/~kriz/",),
        "files": {"cifar-10-python.tar.gz": ("md5", "c58f30108f718f92721af3b95e74349a")},
    },
    "celeba-zip": {
        "files": {"img_align_celeba.zip": ("md5", "00d2c5bc6d35e252742224ab0c1e8fcb")},
    },
}
_CELEBA_REPO = "eurecom-ds/celeba"
_CELEBA_SIZE = 32
# Official CelebA evaluation partition of the 202,599 aligned images (list_eval_partition.txt):
# 000001-162770 train, 162771-182637 validation, 182638-202599 test.
_CELEBA_PARTITION = {"train": (1, 162770), "validation": (162771, 182637), "test": (182638, 202599)}


class DatasetUnavailableError(RuntimeError):
    """A dataset is neither in the cache nor downloadable (no network, or every mirror failed)."""


class DatasetChecksumError(RuntimeError):
    """A cached or downloaded file does not have the published checksum; it is not used."""


# ---------------------------------------------------------------------------------------------
# cache, checksums, network
# ---------------------------------------------------------------------------------------------
def cache_dir() -> Path:
    """The download cache: ``$BOOK_DATA_DIR`` if set, else ``~/.cache/balanced-rep-book``.

    Resolved on every call (so a notebook or a test may change the variable), not created.
    """
    env = os.environ.get("BOOK_DATA_DIR")
    return Path(env).expanduser() if env else Path("~/.cache/balanced-rep-book").expanduser()


_VERIFIED: dict = {}   # (path, size, mtime_ns, algo, digest) -> True, so big files hash once


def _file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verify(path: Path, algo: str, digest: str, dataset: str) -> None:
    """Raise DatasetChecksumError unless ``path`` has the expected digest."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, algo, digest)
    if key in _VERIFIED:
        return
    got = _file_digest(path, algo)
    if got != digest:
        raise DatasetChecksumError(
            f"{dataset}: the cached file {path.name} (in {path.parent}) is corrupt or not the "
            f"official one: its {algo} is {got}, expected {digest}. Delete it and run again to "
            f"download a fresh copy.")
    _VERIFIED[key] = True


def _probe(host: str, port: int, timeout: float) -> str | None:
    """Try one TCP connection; return None on success or a short reason on failure.

    Runs in a daemon thread joined with a timeout, so a slow DNS lookup cannot hang the caller.
    """
    result: list = []

    def attempt():
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
            sock.close()
            result.append(None)
        except BaseException as exc:  # noqa: BLE001 - any failure means "unreachable"
            result.append(f"{type(exc).__name__}: {exc}")

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    if not result:
        return f"no answer within {timeout:.0f} s"
    return result[0]


def _offline_error(dataset: str, hosts, reason: str, files=()) -> DatasetUnavailableError:
    folder = cache_dir() / dataset
    what = (", ".join(files) if files else
            "img_align_celeba.zip (the official aligned CelebA images)" if dataset == "celeba"
            else "the files")
    return DatasetUnavailableError(
        f"Cannot get the dataset {dataset!r}: the network is unreachable "
        f"({', '.join(hosts)}: {reason}), and it is not in the cache. Run this chapter where "
        f"the internet is available (for example in Google Colab), or download {what} "
        f"elsewhere and put them into {folder} (the environment variable BOOK_DATA_DIR selects "
        f"another cache folder). The bundled datasets 'digits' and 'lfw' work offline.")


def _require_network(dataset: str, urls, files=()) -> None:
    """Fail fast with DatasetUnavailableError if none of the urls' hosts accepts a connection."""
    hosts, reason = [], "unreachable"
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        hosts.append(parts.hostname)
        why = _probe(parts.hostname, port, _CONNECT_TIMEOUT)
        if why is None:
            return
        reason = why
    raise _offline_error(dataset, hosts, reason, files)


def _download(url: str, dest: Path, algo: str, digest: str, dataset: str) -> None:
    """Stream ``url`` to ``dest`` through a temporary file; keep it only if the checksum matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    h = hashlib.new(algo)
    try:
        with urllib.request.urlopen(url, timeout=_READ_TIMEOUT) as response, open(tmp, "wb") as f:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                h.update(chunk)
                f.write(chunk)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if h.hexdigest() != digest:
        tmp.unlink(missing_ok=True)
        raise DatasetChecksumError(f"{dataset}: downloaded {url} but its {algo} is "
                                   f"{h.hexdigest()}, expected {digest}; the file was discarded.")
    os.replace(tmp, dest)


def _fetch(dataset: str, filenames) -> dict:
    """Return {filename: verified local path} for files of ``_RESOURCES[dataset]``.

    Cached files are verified first (a corrupt one raises at once); missing ones are downloaded
    after a connectivity pre-check, trying each mirror in turn.
    """
    spec = _RESOURCES[dataset]
    folder = cache_dir() / dataset
    paths, missing = {}, []
    for name in filenames:
        algo, digest = spec["files"][name]
        path = folder / name
        if path.exists():
            _verify(path, algo, digest, dataset)
            paths[name] = path
        else:
            missing.append(name)
    if missing:
        _require_network(dataset, spec["mirrors"], missing)
        for name in missing:
            algo, digest = spec["files"][name]
            errors = []
            for mirror in spec["mirrors"]:
                try:
                    _download(mirror + name, folder / name, algo, digest, dataset)
                    break
                except (urllib.error.URLError, OSError, http.client.HTTPException,
                        DatasetChecksumError) as exc:
                    errors.append(f"{mirror}{name}: {exc}")
            else:
                raise DatasetUnavailableError(
                    f"Cannot download the dataset {dataset!r}: every mirror failed "
                    f"({'; '.join(errors)}). Try again later, or put {name} into {folder}.")
            paths[name] = folder / name
    return paths


# ---------------------------------------------------------------------------------------------
# readers: each returns (uint8 or float array (N, C, H, W) in [-1, 1] as float32, labels or None)
# ---------------------------------------------------------------------------------------------
def _to_unit(x_uint8: np.ndarray) -> np.ndarray:
    return x_uint8.astype(np.float32) / 127.5 - 1.0


def _luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma (as PIL's ``convert("L")``): (N, 3, H, W) -> (N, 1, H, W)."""
    w = np.array([0.299, 0.587, 0.114], dtype=np.float32).reshape(1, 3, 1, 1)
    return (rgb * w).sum(axis=1, keepdims=True)


@functools.lru_cache(maxsize=1)
def _load_digits():
    # Read scikit-learn's bundled digits.csv.gz (64 pixels + label per row) directly, which is
    # what sklearn.datasets.load_digits does, without importing sklearn.datasets (seconds).
    spec = importlib.util.find_spec("sklearn")
    path = (Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
            if spec is not None and spec.submodule_search_locations else None)
    if path is not None and path.exists():
        table = np.loadtxt(path, delimiter=",")
        images, target = table[:, :-1].reshape(-1, 8, 8), table[:, -1]
    else:
        from sklearn.datasets import load_digits
        d = load_digits()
        images, target = d.images, d.target
    x = images.astype(np.float32)[:, None] / 8.0 - 1.0            # 0..16 -> [-1, 1]
    y = target.astype(np.int64)
    x.setflags(write=False)
    y.setflags(write=False)                                       # cached: never modified
    return x, y


@functools.lru_cache(maxsize=1)
def _load_lfw():
    from skimage.data import lfw_subset
    x = np.asarray(lfw_subset())[:100]                            # the first 100 are faces
    x = (_to_unit(x) if x.dtype == np.uint8 else x.astype(np.float32) * 2.0 - 1.0)[:, None]
    x.setflags(write=False)                                       # cached: never modified
    return x, None


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[:4], "big")
    if magic >> 8 != 0x08:                                       # 0x0008NN: unsigned bytes, NN dims
        raise DatasetChecksumError(f"{path.name} is not an IDX file of unsigned bytes")
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _load_mnist_like(dataset: str, split: str):
    prefix = "train" if split == "train" else "t10k"
    names = (f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz")
    paths = _fetch(dataset, names)
    images = _read_idx(paths[names[0]])
    labels = _read_idx(paths[names[1]]).astype(np.int64)
    return _to_unit(images)[:, None], labels


def _load_cifar10(split: str, grayscale: bool):
    name = "cifar-10-python.tar.gz"
    path = _fetch("cifar10", [name])[name]
    members = ([f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"])
    xs, ys = [], []
    with tarfile.open(path, "r:gz") as tar:
        for member in members:
            f = tar.extractfile(f"cifar-10-batches-py/{member}")
            # The archive's md5 was verified above, so this pickle is the official file.
            batch = pickle.load(f, encoding="bytes")
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
    x = _to_unit(np.concatenate(xs))
    return (_luma(x) if grayscale else x), np.concatenate(ys)


def _celeba_image(data: bytes, size: tuple[int, int], grayscale: bool) -> np.ndarray:
    """Decode one CelebA image: centre square crop, antialiased resize, to (C, H, W) in [-1, 1]."""
    from PIL import Image
    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("L" if grayscale else "RGB")
        w, h = img.size
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        img = img.crop((left, top, left + s, top + s))
        img = img.resize((size[1], size[0]), resample=Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8)
    arr = arr[None] if grayscale else arr.transpose(2, 0, 1)
    return _to_unit(arr)


def _subset(total: int, n: int | None, seed: int, dataset: str) -> np.ndarray:
    """Indices of the images to return: all in order, or a seeded random subset of n."""
    if n is None:
        return np.arange(total)
    if n > total:
        raise ValueError(f"n={n} but {dataset!r} has only {total} images in this split")
    return np.random.default_rng(seed).permutation(total)[:n]


def _load_celeba_zip(path: Path, split: str, n, seed, size, grayscale):
    with zipfile.ZipFile(path) as zf:
        lo, hi = _CELEBA_PARTITION[split]
        names = sorted(m for m in zf.namelist()
                       if m.lower().endswith(".jpg") and m.rsplit("/", 1)[-1][:-4].isdigit()
                       and lo <= int(m.rsplit("/", 1)[-1][:-4]) <= hi)
        if not names:
            raise DatasetUnavailableError(f"celeba: {path} holds no {split} images")
        idx = _subset(len(names), n, seed, "celeba")
        x = np.stack([_celeba_image(zf.read(names[i]), size, grayscale) for i in idx])
    return x


def _read_manifest(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
        assert isinstance(manifest["files"], dict) and manifest["repo_id"] == _CELEBA_REPO
        return manifest
    except (ValueError, KeyError, AssertionError, TypeError) as exc:
        raise DatasetChecksumError(f"celeba: the manifest {path} is unreadable ({exc}); delete it "
                                   f"and the shards next to it, then run again.") from None


def _celeba_shards(manifest: dict, split: str) -> list[str]:
    return sorted(p for p in manifest["files"]
                  if p.endswith(".parquet") and p.rsplit("/", 1)[-1].startswith(f"{split}-"))


def _import_pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("Reading the CelebA parquet shards needs pyarrow (preinstalled in "
                          "Colab): pip install pyarrow") from None
    return pa, pq


def _load_celeba_hub(folder: Path, split: str, n, seed, size, grayscale):
    """CelebA from the Hugging Face dataset eurecom-ds/celeba (parquet shards), see module doc."""
    manifest_path = folder / "manifest.json"
    manifest = _read_manifest(manifest_path)
    if manifest is None:
        if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
            raise _offline_error("celeba", ["huggingface.co"], "HF_HUB_OFFLINE is set")
        manifest = _celeba_listing()
        folder.mkdir(parents=True, exist_ok=True)
        manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    shards = _celeba_shards(manifest, split)
    if not shards:
        raise DatasetUnavailableError(f"celeba: the repository {_CELEBA_REPO} lists no {split} "
                                      f"shards; its layout may have changed.")
    # Use shards in order until they hold enough images (all of them when n is None).
    chosen, rows = [], []
    for shard in shards:
        if n is not None and sum(rows) >= n:
            break
        path = folder / shard
        info = manifest["files"][shard]
        if not path.exists():
            _download_celeba_shard(shard, manifest)
        _verify(path, "sha256", info["sha256"], "celeba")
        if "num_rows" not in info:
            _, pq = _import_pyarrow()
            info["num_rows"] = int(pq.ParquetFile(path).metadata.num_rows)
            manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        chosen.append(path)
        rows.append(int(info["num_rows"]))
    idx = _subset(sum(rows), n, seed, "celeba")
    pa, pq = _import_pyarrow()
    out = np.empty((len(idx), 1 if grayscale else 3, *size), dtype=np.float32)
    starts = np.cumsum([0] + rows)
    for s, path in enumerate(chosen):
        sel = np.nonzero((idx >= starts[s]) & (idx < starts[s + 1]))[0]
        if len(sel) == 0:
            continue
        schema = pq.ParquetFile(path).schema_arrow
        column = next((f.name for f in schema
                       if (pa.types.is_struct(f.type) and f.type.get_field_index("bytes") >= 0)
                       or pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)), None)
        if column is None:
            raise DatasetUnavailableError(f"celeba: no image column in {path.name} ({schema})")
        array = pq.read_table(path, columns=[column]).column(column).combine_chunks()
        picked = array.take(pa.array(idx[sel] - starts[s]))
        if pa.types.is_struct(picked.type):
            picked = picked.field("bytes")
        for j, data in zip(sel, picked.to_pylist()):
            out[j] = _celeba_image(data, size, grayscale)
    return out


def _celeba_listing() -> dict:
    """List the shards of eurecom-ds/celeba at its current commit, with the Hub's LFS sha256."""
    from huggingface_hub import HfApi, constants
    endpoint = getattr(constants, "ENDPOINT", "https://huggingface.co")
    _require_network("celeba", [endpoint])
    try:
        api = HfApi()
        revision = api.dataset_info(_CELEBA_REPO).sha
        files, unchecked = {}, []
        for entry in api.list_repo_tree(_CELEBA_REPO, path_in_repo="data", recursive=True,
                                        repo_type="dataset", revision=revision):
            if not entry.path.endswith(".parquet"):
                continue
            lfs = getattr(entry, "lfs", None)
            if lfs is None:
                unchecked.append(entry.path)
            else:
                files[entry.path] = {"sha256": lfs.sha256, "size": int(lfs.size)}
    except Exception as exc:  # noqa: BLE001 - hub and HTTP errors vary across versions
        raise DatasetUnavailableError(f"celeba: could not list {_CELEBA_REPO} on the Hugging Face "
                                      f"Hub ({type(exc).__name__}: {exc}).") from exc
    if unchecked:
        raise DatasetChecksumError(f"celeba: the Hub reports no sha256 for {', '.join(unchecked)} "
                                   f"in {_CELEBA_REPO}@{revision}, so they cannot be verified.")
    return {"repo_id": _CELEBA_REPO, "revision": revision, "files": files}


def _download_celeba_shard(shard: str, manifest: dict) -> None:
    from huggingface_hub import constants, hf_hub_download
    _require_network("celeba", [getattr(constants, "ENDPOINT", "https://huggingface.co")])
    folder = cache_dir() / "celeba"
    try:
        hf_hub_download(_CELEBA_REPO, shard, repo_type="dataset", revision=manifest["revision"],
                        local_dir=folder)
    except Exception as exc:  # noqa: BLE001
        raise DatasetUnavailableError(f"celeba: downloading {shard} from {_CELEBA_REPO} failed "
                                      f"({type(exc).__name__}: {exc}).") from exc
    path = folder / shard
    try:
        _verify(path, "sha256", manifest["files"][shard]["sha256"], "celeba")
    except DatasetChecksumError:
        path.unlink(missing_ok=True)
        raise


def _load_celeba(split, n, seed, size, grayscale):
    folder = cache_dir() / "celeba"
    zip_name = "img_align_celeba.zip"
    if (folder / zip_name).exists():
        algo, digest = _RESOURCES["celeba-zip"]["files"][zip_name]
        _verify(folder / zip_name, algo, digest, "celeba")
        return _load_celeba_zip(folder / zip_name, split, n, seed, size, grayscale)
    return _load_celeba_hub(folder, split, n, seed, size, grayscale)


# ---------------------------------------------------------------------------------------------
# load_images
# ---------------------------------------------------------------------------------------------
def _check_size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, Integral) and not isinstance(size, bool):
        size = (size, size)
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, Integral) and not isinstance(s, bool) for s in size)):
        raise TypeError(f"size must be an int or a pair of ints (H, W), got {size!r}")
    if min(size) < 1:
        raise ValueError(f"size must be positive, got {tuple(size)}")
    return int(size[0]), int(size[1])


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    y = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False,
                                        antialias=True)
    return y.clamp_(-1.0, 1.0)


def load_images(name: str, n: int | None = None, *, size=None, seed: int = 0,
                split: str = "train", grayscale: bool | None = None, return_labels: bool = False):
    """Load an image dataset as a float32 tensor (n, C, H, W) with values in [-1, 1].

    Args:
        name: one of ``DATASETS``: ``"digits"`` (1,797 x 1 x 8 x 8, bundled with scikit-learn),
            ``"lfw"`` (100 x 1 x 25 x 25 faces, bundled with scikit-image), ``"mnist"`` and
            ``"fashion-mnist"`` (60,000 / 10,000 x 1 x 28 x 28), ``"cifar10"`` (50,000 / 10,000 x
            3 x 32 x 32) and ``"celeba"`` (162,770 / 19,867 / 19,962 aligned faces, centre-cropped
            to a square and resized to 32 x 32, grayscale by default, as in the paper's code). The
            last four are downloaded on first use; see the module docstring.
        n: how many images. ``None`` returns the whole split in its stored order; an int takes a
            random subset drawn with ``seed`` (the same (n, seed) gives the same images, and
            for a fixed seed a smaller n gives a prefix of a larger one). For CelebA the subset
            is drawn from the first parquet shards that hold n images.
        size: an int or (H, W) to resize to (bilinear, antialiased); ``None`` keeps the native
            size (32 x 32 for CelebA).
        seed: non-negative int for the subset.
        split: ``"train"`` (default) or ``"test"`` (mnist, fashion-mnist, cifar10), or
            ``"validation"`` / ``"test"`` (celeba). The bundled sets have no split: only
            ``"train"``, meaning all of them.
        grayscale: for ``"cifar10"`` (default False) and ``"celeba"`` (default True): one luma
            channel (ITU-R 601-2) instead of RGB. The other sets are grayscale only.
        return_labels: also return the class labels (int64, shape (n,)) for digits, mnist,
            fashion-mnist and cifar10; lfw (faces without identities here) and celeba have none.
    Returns:
        ``images`` or ``(images, labels)``.
    Raises:
        ValueError / TypeError: unknown name or split, bad n, size, seed or grayscale.
        DatasetUnavailableError: a download is needed but the network is unreachable (raised
            within a few seconds) or every mirror failed.
        DatasetChecksumError: a cached or downloaded file does not match its checksum.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, one of {', '.join(DATASETS)}; "
                        f"got {type(name).__name__}")
    key = name.lower()
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    if n is not None:
        n = check_positive_int(n, "n")
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    size = _check_size(size)
    if split not in _SPLITS[key]:
        raise ValueError(f"{key!r} has no split {split!r}; valid splits: {', '.join(_SPLITS[key])}")
    if grayscale is not None and not isinstance(grayscale, bool):
        raise TypeError(f"grayscale must be True, False or None, got {grayscale!r}")
    if key not in _COLOR and grayscale is False:
        raise ValueError(f"{key!r} is grayscale only; grayscale=False is not available")
    gray = (key == "celeba") if grayscale is None else grayscale
    if return_labels and key not in _HAS_LABELS:
        raise ValueError(f"{key!r} has no labels; labels exist for {', '.join(_HAS_LABELS)}")

    labels = None
    if key == "celeba":
        x = _load_celeba(split, n, seed, size or (_CELEBA_SIZE, _CELEBA_SIZE), gray)
        images = torch.from_numpy(np.ascontiguousarray(x))
    else:
        if key == "digits":
            x, labels = _load_digits()
        elif key == "lfw":
            x, labels = _load_lfw()
        elif key == "cifar10":
            x, labels = _load_cifar10(split, gray)
        else:
            x, labels = _load_mnist_like(key, split)
        idx = _subset(len(x), n, seed, key)
        images = torch.from_numpy(np.ascontiguousarray(x[idx], dtype=np.float32))
        labels = None if labels is None else torch.from_numpy(labels[idx].astype(np.int64))
        if size is not None:
            images = _resize(images, size)
    images = images.float().clamp_(-1.0, 1.0)
    return (images, labels) if return_labels else images


# ---------------------------------------------------------------------------------------------
# mixtures of low-rank Gaussians
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MixtureParams:
    """Parameters of a mixture of k Gaussians on rank-r affine subspaces of R^d.

    Component j draws ``x = means[j] + bases[j] @ (scales[j] * a) + noise_std * e`` with
    ``a ~ N(0, I_r)`` and ``e ~ N(0, I_d)``, and is chosen with probability ``weights[j]``.
    Its covariance is ``bases[j] diag(scales[j]**2) bases[j].T + noise_std**2 I``
    (:meth:`covariances`).

    Attributes:
        means: (k, d) float32.
        bases: (k, d, r) float32, orthonormal columns.
        scales: (k, r) float32, standard deviation along each basis direction.
        weights: (k,) float32, nonnegative, summing to 1.
        noise_std: isotropic standard deviation added to every coordinate (0 = exactly low rank).
    """
    means: torch.Tensor
    bases: torch.Tensor
    scales: torch.Tensor
    weights: torch.Tensor
    noise_std: float = 0.0

    @property
    def k(self) -> int:
        return self.means.shape[0]

    @property
    def d(self) -> int:
        return self.means.shape[1]

    @property
    def rank(self) -> int:
        return self.bases.shape[2]

    def covariances(self) -> torch.Tensor:
        """(k, d, d) float64 covariance of each component."""
        U = self.bases.double()
        cov = U @ torch.diag_embed(self.scales.double() ** 2) @ U.transpose(1, 2)
        return cov + (self.noise_std ** 2) * torch.eye(self.d, dtype=torch.float64)

    def sample(self, n: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw n points: (X (n, d) float32, labels (n,) int64), reproducible given ``seed``."""
        n = check_positive_int(n, "n")
        seed = _check_seed(seed, "seed")
        rng = np.random.default_rng([seed, 1])
        w = self.weights.double().numpy()
        labels = rng.choice(self.k, size=n, p=w / w.sum())
        a = rng.standard_normal((n, self.rank)) * self.scales.double().numpy()[labels]
        x = self.means.double().numpy()[labels] + np.einsum("ndr,nr->nd",
                                                            self.bases.double().numpy()[labels], a)
        if self.noise_std > 0:
            x = x + self.noise_std * rng.standard_normal((n, self.d))
        return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(labels.astype(np.int64))


def _check_seed(seed, name: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_real(value, name: str, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        need = "positive" if positive else "non-negative"
        raise ValueError(f"{name} must be a finite {need} number, got {value}")
    return value


def _check_weights(weights, k: int) -> np.ndarray:
    if weights is None:
        return np.full(k, 1.0 / k)
    if isinstance(weights, torch.Tensor):
        weights = weights.detach().cpu().numpy()
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"weights must be an array of k={k} numbers, got {weights!r}") from None
    if w.shape != (k,):
        raise ValueError(f"weights must have shape ({k},) for k={k}, got shape {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError(f"weights contain NaN or infinite values: {w}")
    if (w < 0).any():
        raise ValueError(f"weights must be nonnegative, got {w}")
    if abs(w.sum() - 1.0) > 1e-6:
        raise ValueError(f"weights must sum to 1, got sum {w.sum():.6g}")
    return w


def mixture_params(d: int, k: int, rank: int, *, weights=None, seed: int = 0, scale: float = 0.25,
                   mean_scale: float = 0.5, noise_std: float = 0.0) -> MixtureParams:
    """Draw the parameters of :func:`gaussian_mixture` (they depend on ``seed`` only, never on n).

    Means have i.i.d. N(0, mean_scale^2) coordinates, so ``||mu_j|| ~ mean_scale sqrt(d)``; each
    basis is the Q factor of a Gaussian (d, rank) matrix; every component has std
    ``scale * sqrt(d / rank)`` along each basis direction, so its per-coordinate std is ``scale``
    on average, like an image whose pixels vary by about ``scale`` around the cluster mean.
    """
    d = check_positive_int(d, "d")
    k = check_positive_int(k, "k")
    rank = check_positive_int(rank, "rank")
    if rank > d:
        raise ValueError(f"rank must be <= d, got rank={rank} > d={d}")
    w = _check_weights(weights, k)
    seed = _check_seed(seed, "seed")
    scale = _check_real(scale, "scale", positive=True)
    mean_scale = _check_real(mean_scale, "mean_scale", positive=False)
    noise_std = _check_real(noise_std, "noise_std", positive=False)
    rng = np.random.default_rng([seed, 0])
    means = mean_scale * rng.standard_normal((k, d))
    bases = np.empty((k, d, rank))
    for j in range(k):
        q, r = np.linalg.qr(rng.standard_normal((d, rank)))
        bases[j] = q * np.sign(np.diag(r))                      # unique QR: positive diag(R)
    scales = np.full((k, rank), scale * math.sqrt(d / rank))
    as32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    return MixtureParams(as32(means), as32(bases), as32(scales), as32(w), noise_std)


def gaussian_mixture(n: int, d: int, k: int, rank: int, *, weights=None, seed: int = 0,
                     sample_seed: int | None = None, scale: float = 0.25, mean_scale: float = 0.5,
                     noise_std: float = 0.0, return_params: bool = False):
    """Sample n points from a mixture of k low-rank Gaussians in R^d, scaled like images.

    Cluster j: ``x = mu_j + U_j (s a)``, ``U_j`` (d, rank) orthonormal, ``a ~ N(0, I_rank)``,
    ``s = scale * sqrt(d / rank)``, plus optional isotropic noise ``noise_std * N(0, I_d)``.
    With the defaults, coordinates have mean 0, the means have per-coordinate RMS 0.5 and each
    cluster varies by about 0.25 per coordinate (overall RMS about 0.56, like images in
    [-1, 1]); a denoising noise level sigma in 0.1-0.5 is then small to moderate against the
    distance between cluster means (about 0.7 sqrt(d)).

    Args:
        n, d, k, rank: positive ints, ``rank <= d``.
        weights: (k,) nonnegative, summing to 1 (default uniform); e.g. ``[0.9, 0.1]`` for an
            imbalanced mixture.
        seed: seeds the mixture itself (means, bases): the same seed gives the same mixture for
            any n.
        sample_seed: seeds the draws (labels and points); defaults to ``seed``. A test set from
            the same mixture: ``gaussian_mixture(..., seed=0, sample_seed=1)``.
        scale, mean_scale, noise_std: see above (``scale > 0``, the others >= 0).
        return_params: also return the :class:`MixtureParams`.
    Returns:
        ``(X (n, d) float32, labels (n,) int64)``, plus ``params`` if ``return_params``.
    """
    n = check_positive_int(n, "n")
    params = mixture_params(d, k, rank, weights=weights, seed=seed, scale=scale,
                            mean_scale=mean_scale, noise_std=noise_std)
    sample_seed = seed if sample_seed is None else _check_seed(sample_seed, "sample_seed")
    X, labels = params.sample(n, seed=sample_seed)
    return (X, labels, params) if return_params else (X, labels)


# ---------------------------------------------------------------------------------------------
# augmentation
# ---------------------------------------------------------------------------------------------
def augment_images(images, *, flips: bool = True, shifts: int = 1) -> torch.Tensor:
    """Enlarge an image set with horizontal mirror images and small translations.

    Args:
        images: (n, C, H, W) float tensor, finite.
        flips: also include every image mirrored left-right (``images.flip(-1)``).
        shifts: the largest translation in pixels, an int with ``0 <= shifts < min(H, W)``; every
            offset (dy, dx) in {-shifts..shifts}^2 is used, and the pixels that enter at the border
            repeat the edge (replicate padding), so no black frame appears.
    Returns:
        (n * (1 + flips) * (2 shifts + 1)^2, C, H, W) float32, blocks of n ordered by mirror (no, yes),
        then offset, the zero offset first, so ``out[:n]`` equals ``images``. The values stay
        within the input's range.
    """
    x = torch.as_tensor(images)
    if x.ndim != 4:
        raise ValueError(f"images must have shape (n, C, H, W), got {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        raise TypeError(f"images must be a float tensor, got dtype {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError("images contain NaN or infinite values")
    if not isinstance(flips, bool):
        raise TypeError(f"flips must be True or False, got {flips!r}")
    H, W = x.shape[-2:]
    if isinstance(shifts, bool) or not isinstance(shifts, Integral) or not 0 <= shifts < min(H, W):
        raise ValueError(f"shifts must be an int in [0, {min(H, W)}) for {H}x{W} images, got {shifts!r}")
    x = x.float()
    s = int(shifts)
    offsets = [(0, 0)] + [(dy, dx) for dy in range(-s, s + 1) for dx in range(-s, s + 1)
                          if (dy, dx) != (0, 0)]
    out = []
    for base in ([x, x.flip(-1)] if flips else [x]):
        padded = torch.nn.functional.pad(base, (s, s, s, s), mode="replicate") if s else base
        for dy, dx in offsets:
            out.append(padded[..., s + dy: s + dy + H, s + dx: s + dx + W])
    return torch.cat(out).contiguous()
