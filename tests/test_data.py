"""Tests for utils.data: bundled image sets, offline behaviour of the downloaded ones, mixtures."""
import gzip
import hashlib
import io
import json
import pickle
import socket
import tarfile
import time
import zipfile

import numpy as np
import pytest
import torch

from utils import data


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture
def no_network(monkeypatch):
    """Every outgoing connection fails, as on a machine without internet."""
    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_DATA_DIR", str(tmp_path / "cache"))
    data._VERIFIED.clear()
    return tmp_path / "cache"


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def _patch_checksum(monkeypatch, dataset, name, digest, algo="md5"):
    files = dict(data._RESOURCES[dataset]["files"])
    files[name] = (algo, digest)
    monkeypatch.setitem(data._RESOURCES, dataset, {**data._RESOURCES[dataset], "files": files})


# ----------------------------------------------------------------------------- bundled sets
def test_digits_shape_dtype_range_labels():
    x, y = data.load_images("digits", return_labels=True)
    assert x.shape == (1797, 1, 8, 8) and x.dtype == torch.float32
    assert float(x.min()) == -1.0 and float(x.max()) == 1.0
    assert y.dtype == torch.int64 and y.shape == (1797,) and set(y.tolist()) == set(range(10))
    raw = (x + 1.0) * 8.0                                      # back to scikit-learn's 0..16
    assert torch.equal(raw, raw.round())
    assert raw[0, 0, 0].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]  # first row of digits.images[0]
    assert torch.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_lfw_faces_shape_range_no_labels():
    x = data.load_images("lfw")
    assert x.shape == (100, 1, 25, 25) and x.dtype == torch.float32
    assert -1.0 <= float(x.min()) < -0.5 and 0.5 < float(x.max()) <= 1.0
    with pytest.raises(ValueError, match="no labels"):
        data.load_images("lfw", return_labels=True)


def test_subset_is_deterministic_nested_and_seed_dependent():
    a, ya = data.load_images("digits", 50, seed=3, return_labels=True)
    b, yb = data.load_images("digits", 50, seed=3, return_labels=True)
    c = data.load_images("digits", 50, seed=4)
    big = data.load_images("digits", 500, seed=3)
    assert torch.equal(a, b) and torch.equal(ya, yb)
    assert not torch.equal(a, c)
    assert torch.equal(big[:50], a)
    full, yfull = data.load_images("digits", return_labels=True)
    # every subset image is a dataset image with its own label
    match = (a[:, None] == full[None]).flatten(2).all(-1)
    assert match.any(1).all()
    assert torch.equal(yfull[match.float().argmax(1)], ya)
    assert len(set(match.float().argmax(1).tolist())) == 50          # without replacement


def test_resize_int_and_pair():
    x = data.load_images("digits", 20, size=16)
    assert x.shape == (20, 1, 16, 16) and x.min() >= -1 and x.max() <= 1
    y = data.load_images("lfw", 5, size=(12, 20))
    assert y.shape == (5, 1, 12, 20)
    # a downsampled-then-upsampled constant image stays constant (antialiased, no overshoot)
    small = data._resize(torch.full((1, 1, 8, 8), 0.3), (16, 16))
    assert torch.allclose(small, torch.full_like(small, 0.3))
    # resizing to the native size is the identity
    assert torch.equal(data.load_images("digits", 5, size=8), data.load_images("digits", 5))


@pytest.mark.parametrize("bad", [0, -3])
def test_bad_n_value(bad):
    with pytest.raises(ValueError, match="n must be >= 1"):
        data.load_images("digits", bad)


def test_bad_arguments():
    with pytest.raises(ValueError, match="only 1797"):
        data.load_images("digits", 1798)
    with pytest.raises(TypeError, match="n must be an integer"):
        data.load_images("digits", 2.5)
    with pytest.raises(TypeError, match="n must be an integer"):
        data.load_images("digits", True)
    with pytest.raises(ValueError, match="seed"):
        data.load_images("digits", 5, seed=-1)
    with pytest.raises(TypeError, match="size"):
        data.load_images("digits", 5, size=(4, 4, 4))
    with pytest.raises(ValueError, match="size must be positive"):
        data.load_images("digits", 5, size=0)
    with pytest.raises(ValueError, match="no split 'test'.*valid splits: train"):
        data.load_images("digits", split="test")
    with pytest.raises(ValueError, match="grayscale only"):
        data.load_images("digits", grayscale=False)
    with pytest.raises(TypeError, match="name must be a string"):
        data.load_images(3)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as info:
        data.load_images("imagenet")
    for name in data.DATASETS:
        assert name in str(info.value)


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BOOK_DATA_DIR", str(tmp_path))
    assert data.cache_dir() == tmp_path
    monkeypatch.delenv("BOOK_DATA_DIR")
    assert data.cache_dir().name == "balanced-rep-book"


# ----------------------------------------------------------------------------- downloads, offline
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10", "celeba"])
def test_offline_fails_fast_with_clear_error(name, empty_cache, no_network, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    start = time.perf_counter()
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.load_images(name, 10)
    elapsed = time.perf_counter() - start
    msg = str(info.value)
    assert elapsed < 3.0, f"took {elapsed:.1f} s"
    assert repr(name) in msg and "network is unreachable" in msg
    assert "Colab" in msg and str(empty_cache / name) in msg
    assert isinstance(info.value, RuntimeError)


def test_celeba_respects_hf_hub_offline(empty_cache, no_network, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(data.DatasetUnavailableError, match="HF_HUB_OFFLINE"):
        data.load_images("celeba", 5)


def test_hanging_connection_does_not_hang(empty_cache, monkeypatch):
    """A connection attempt that never returns (slow DNS, black-holed packets) is cut short."""
    monkeypatch.setattr(data, "_CONNECT_TIMEOUT", 0.2)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: time.sleep(3))
    start = time.perf_counter()
    with pytest.raises(data.DatasetUnavailableError, match="no answer"):
        data.load_images("cifar10", 10)
    assert time.perf_counter() - start < 1.5


def test_corrupt_cached_file_is_rejected(empty_cache, no_network):
    folder = empty_cache / "mnist"
    folder.mkdir(parents=True)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"not the real file")
    with pytest.raises(data.DatasetChecksumError) as info:
        data.load_images("mnist", 10)
    msg = str(info.value)
    assert "train-images-idx3-ubyte.gz" in msg and "f68b3c2dcbeaaa9fbdd348bbdeb94873" in msg
    assert "Delete it" in msg


def test_corrupt_celeba_shard_is_rejected(empty_cache, no_network):
    folder = empty_cache / "celeba"
    (folder / "data").mkdir(parents=True)
    shard = "data/train-00000-of-00001.parquet"
    (folder / shard).write_bytes(b"truncated download")
    manifest = {"repo_id": data._CELEBA_REPO, "revision": "0" * 40,
                "files": {shard: {"sha256": "ab" * 32, "size": 123}}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(data.DatasetChecksumError, match="sha256"):
        data.load_images("celeba", 5)


def _idx_gz(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_mnist_reader_on_verified_local_files(empty_cache, no_network, monkeypatch):
    """The IDX parser and the checksum path, on small files placed in the cache by hand."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28))
    images[0] = 0
    images[1] = 255
    labels = rng.integers(0, 10, size=7)
    folder = empty_cache / "mnist"
    folder.mkdir(parents=True)
    for name, arr in [("train-images-idx3-ubyte.gz", images),
                      ("train-labels-idx1-ubyte.gz", labels)]:
        _idx_gz(folder / name, arr)
        _patch_checksum(monkeypatch, "mnist", name, _md5(folder / name))
    x, y = data.load_images("mnist", return_labels=True)
    assert x.shape == (7, 1, 28, 28) and x.dtype == torch.float32
    assert torch.equal(y, torch.from_numpy(labels).long())
    assert float(x[0].max()) == -1.0 and float(x[1].min()) == 1.0
    assert torch.allclose(x[2, 0], torch.from_numpy(images[2] / 127.5 - 1.0).float(), atol=1e-6)
    xs = data.load_images("mnist", 3, seed=1, size=14)
    assert xs.shape == (3, 1, 14, 14)


def test_cifar10_reader_and_grayscale(empty_cache, no_network, monkeypatch):
    rng = np.random.default_rng(1)
    folder = empty_cache / "cifar10"
    folder.mkdir(parents=True)
    path = folder / "cifar-10-python.tar.gz"
    batches = {}
    with tarfile.open(path, "w:gz") as tar:
        for member in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            arr = rng.integers(0, 256, size=(2, 3072), dtype=np.uint8)
            batches[member] = arr
            blob = pickle.dumps({b"data": arr, b"labels": [1, 2]})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{member}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    _patch_checksum(monkeypatch, "cifar10", path.name, _md5(path))
    x, y = data.load_images("cifar10", return_labels=True)
    assert x.shape == (10, 3, 32, 32) and y.tolist() == [1, 2] * 5
    first = batches["data_batch_1"][0].reshape(3, 32, 32) / 127.5 - 1.0
    assert torch.allclose(x[0], torch.from_numpy(first).float(), atol=1e-6)
    g = data.load_images("cifar10", split="test", grayscale=True)
    assert g.shape == (2, 1, 32, 32)
    t = data.load_images("cifar10", split="test")
    assert torch.allclose(g[:, 0], 0.299 * t[:, 0] + 0.587 * t[:, 1] + 0.114 * t[:, 2], atol=1e-6)


def test_celeba_zip_crop_resize_and_split(empty_cache, no_network, monkeypatch):
    from PIL import Image
    folder = empty_cache / "celeba"
    folder.mkdir(parents=True)
    path = folder / "img_align_celeba.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i, number in enumerate([1, 2, 3, 182638]):
            img = np.zeros((218, 178, 3), dtype=np.uint8)     # aligned CelebA: 178 wide, 218 high
            img[20:198] = 40 * (i + 1)                         # the centred 178 x 178 square
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")       # lossless, so values are exact
            zf.writestr(f"img_align_celeba/{number:06d}.jpg", buf.getvalue())
    _patch_checksum(monkeypatch, "celeba-zip", path.name, _md5(path))
    x = data.load_images("celeba")
    assert x.shape == (3, 1, 32, 32) and x.dtype == torch.float32     # 3 train images, gray
    for i in range(3):
        assert torch.allclose(x[i], torch.full_like(x[i], 40 * (i + 1) / 127.5 - 1.0), atol=1e-5)
    test = data.load_images("celeba", split="test", grayscale=False, size=16)
    assert test.shape == (1, 3, 16, 16)
    assert torch.equal(data.load_images("celeba", 2, seed=5), data.load_images("celeba", 2, seed=5))
    with pytest.raises(ValueError, match="only 3"):
        data.load_images("celeba", 4)
    with pytest.raises(ValueError, match="no labels"):
        data.load_images("celeba", return_labels=True)


def test_celeba_parquet_shards_from_manifest(empty_cache, no_network):
    """The Hub route offline: shards + manifest in the cache, read with pyarrow (Colab has it)."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    from PIL import Image
    folder = empty_cache / "celeba"
    (folder / "data").mkdir(parents=True)
    files, values = {}, []
    for s, count in enumerate([3, 4]):
        rows = []
        for i in range(count):
            value = 10 * (len(values) + 1)
            values.append(value)
            buf = io.BytesIO()
            Image.fromarray(np.full((218, 178, 3), value, dtype=np.uint8)).save(buf, format="PNG")
            rows.append({"bytes": buf.getvalue(), "path": None})
        shard = f"data/train-0000{s}-of-00002.parquet"
        pq.write_table(pa.table({"image": rows}), folder / shard)
        digest = hashlib.sha256((folder / shard).read_bytes()).hexdigest()
        files[shard] = {"sha256": digest, "size": (folder / shard).stat().st_size}
    manifest = {"repo_id": data._CELEBA_REPO, "revision": "0" * 40, "files": files}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    x = data.load_images("celeba")
    assert x.shape == (7, 1, 32, 32)
    expected = torch.tensor(values, dtype=torch.float32) / 127.5 - 1.0
    assert torch.allclose(x.mean(dim=(1, 2, 3)), expected, atol=1e-5)
    few = data.load_images("celeba", 2, seed=0)                   # first shard suffices
    assert set(np.round((few.mean(dim=(1, 2, 3)).numpy() + 1) * 127.5).astype(int)) <= {10, 20, 30}
    assert "num_rows" in json.loads((folder / "manifest.json").read_text())["files"][shard]


def test_zip_with_wrong_checksum_is_rejected(empty_cache, no_network):
    folder = empty_cache / "celeba"
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "img_align_celeba.zip", "w") as zf:
        zf.writestr("img_align_celeba/000001.jpg", b"x")
    with pytest.raises(data.DatasetChecksumError, match="00d2c5bc6d35e252742224ab0c1e8fcb"):
        data.load_images("celeba", 1)


# ----------------------------------------------------------------------------- gaussian mixture
def test_mixture_shapes_dtypes_and_scale():
    X, labels = data.gaussian_mixture(3000, 64, 4, 3)
    assert X.shape == (3000, 64) and X.dtype == torch.float32
    assert labels.shape == (3000,) and labels.dtype == torch.int64
    assert set(labels.tolist()) == {0, 1, 2, 3}
    rms = float(X.pow(2).mean().sqrt())
    assert 0.4 < rms < 0.75                                    # scaled like images in [-1, 1]


@pytest.mark.parametrize("d,rank", [(64, 1), (64, 5), (256, 8)])
def test_clusters_lie_in_rank_subspace(d, rank):
    X, labels, p = data.gaussian_mixture(800, d, 3, rank, seed=2, return_params=True)
    assert p.means.shape == (3, d) and p.bases.shape == (3, d, rank)
    assert p.scales.shape == (3, rank) and p.weights.shape == (3,)
    for j in range(3):
        U = p.bases[j].double()
        assert torch.allclose(U.T @ U, torch.eye(rank, dtype=torch.float64), atol=1e-6)
        Z = (X[labels == j] - p.means[j]).double()
        resid = Z - Z @ U @ U.T                                 # nothing outside span(bases[j]) ...
        assert float(resid.abs().max()) < 1e-5
        coords = Z @ U                                          # ... and every direction is used,
        var = torch.linalg.eigvalsh(coords.T @ coords / len(Z))  # with variance scales**2
        s2 = float(p.scales[j, 0]) ** 2
        assert float(var.min()) > 0.5 * s2 and float(var.max()) < 1.6 * s2
        assert torch.allclose(p.scales[j], torch.full((rank,), 0.25 * (d / rank) ** 0.5))


def test_mixture_covariances_match_samples():
    X, labels, p = data.gaussian_mixture(20000, 16, 2, 3, noise_std=0.05, return_params=True)
    cov = p.covariances()
    assert cov.shape == (2, 16, 16)
    for j in range(2):
        emp = torch.cov(X[labels == j].double().T)
        assert float((emp - cov[j]).abs().max()) < 0.1 * float(cov[j].abs().max())
    assert float(torch.linalg.eigvalsh(cov[0]).min()) > 0.05 ** 2 - 1e-9   # noise: full rank


def test_mixture_reproducible_and_seed_roles():
    X1, l1, p1 = data.gaussian_mixture(100, 32, 3, 2, seed=7, return_params=True)
    X2, l2 = data.gaussian_mixture(100, 32, 3, 2, seed=7)
    assert torch.equal(X1, X2) and torch.equal(l1, l2)
    # same mixture for any n and any sample_seed
    X3, _, p3 = data.gaussian_mixture(10, 32, 3, 2, seed=7, sample_seed=1, return_params=True)
    for a, b in [(p1.means, p3.means), (p1.bases, p3.bases), (p1.scales, p3.scales)]:
        assert torch.equal(a, b)
    assert not torch.equal(X3, X1[:10])                          # but other draws
    assert torch.equal(data.gaussian_mixture(10, 32, 3, 2, seed=7, sample_seed=7)[0],
                       data.gaussian_mixture(10, 32, 3, 2, seed=7)[0])
    assert torch.equal(p1.sample(10, seed=1)[0], X3)
    # a different seed is a different mixture
    _, _, p4 = data.gaussian_mixture(10, 32, 3, 2, seed=8, return_params=True)
    assert not torch.equal(p1.means, p4.means)


def test_imbalanced_weights():
    _, labels = data.gaussian_mixture(5000, 16, 2, 2, weights=[0.9, 0.1])
    frac = float((labels == 1).float().mean())
    assert 0.08 < frac < 0.12
    _, labels = data.gaussian_mixture(200, 16, 3, 2, weights=torch.tensor([0.0, 1.0, 0.0]))
    assert set(labels.tolist()) == {1}


@pytest.mark.parametrize("weights,match", [
    ([0.5, 0.6], "sum to 1"),
    ([1.2, -0.2], "nonnegative"),
    ([float("nan"), 1.0], "NaN"),
    ([1.0], r"shape \(2,\)"),
    ([[0.5, 0.5]], r"shape \(2,\)"),
])
def test_weights_validation(weights, match):
    with pytest.raises(ValueError, match=match):
        data.gaussian_mixture(10, 8, 2, 2, weights=weights)


def test_mixture_argument_validation():
    with pytest.raises(ValueError, match="rank must be <= d"):
        data.gaussian_mixture(10, 4, 2, 5)
    with pytest.raises(ValueError, match="k must be >= 1"):
        data.gaussian_mixture(10, 8, 0, 2)
    with pytest.raises(ValueError, match="n must be >= 1"):
        data.gaussian_mixture(0, 8, 2, 2)
    with pytest.raises(ValueError, match="rank must be >= 1"):
        data.gaussian_mixture(10, 8, 2, 0)
    with pytest.raises(TypeError, match="d must be an integer"):
        data.gaussian_mixture(10, 8.0, 2, 2)
    with pytest.raises(TypeError, match="n must be an integer"):
        data.gaussian_mixture("10", 8, 2, 2)
    with pytest.raises(ValueError, match="scale must be a finite positive"):
        data.gaussian_mixture(10, 8, 2, 2, scale=0.0)
    with pytest.raises(ValueError, match="noise_std"):
        data.gaussian_mixture(10, 8, 2, 2, noise_std=-0.1)
    with pytest.raises(ValueError, match="sample_seed"):
        data.gaussian_mixture(10, 8, 2, 2, sample_seed=-1)
    with pytest.raises(TypeError, match="weights"):
        data.gaussian_mixture(10, 8, 2, 2, weights=["a", "b"])


def test_results_file_loader_names_the_command_and_missing_keys(tmp_path):
    import json
    from utils.results_file import load_results
    with pytest.raises(FileNotFoundError, match="python -m utils.x"):
        load_results(tmp_path / "r.json", command="python -m utils.x")
    (tmp_path / "r.json").write_text(json.dumps({"runs": []}))
    with pytest.raises(ValueError, match="not a demo file .missing provenance"):
        load_results(tmp_path / "r.json", command="c", keys=("provenance", "runs"), kind="demo")
    assert load_results(tmp_path / "r.json", command="c", keys=("runs",)) == {"runs": []}
