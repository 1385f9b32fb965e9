import gzip
import json
import os
import pickle
import shutil
import time

import numpy as np
import pytest
import torch

from aecore import data


@pytest.fixture(scope="module")
def reference():
    """The bundled pickle, read independently: (train+valid, test) as float32."""
    with gzip.open(data.bundled_pickle(), "rb") as f:
        (tx, ty), (vx, vy), (sx, sy) = data.safe_unpickle(f)
    return np.concatenate([tx, vx]), np.concatenate([ty, vy]), sx, sy


def test_exact_counts_and_pixels(reference, mnist_test):
    x_train, y_train = data.load_mnist("train")
    x_test, y_test = mnist_test
    assert x_train.shape == (60000, 1, 28, 28) and x_test.shape == (10000, 1, 28, 28)
    assert x_train.dtype == torch.float32 and 0 == x_test.min() and x_test.max() == 1
    rx, ry, sx, sy = reference
    # the pickle stores uint8/256; our idx files store the original bytes
    assert np.array_equal((x_test.numpy().reshape(10000, 784) * 255).round(), (sx * 256).round())
    assert np.array_equal((x_train[:5000].numpy().reshape(5000, 784) * 255).round(), (rx[:5000] * 256).round())
    assert np.array_equal(y_test.numpy(), sy) and np.array_equal(y_train.numpy(), ry)
    assert y_train.bincount().tolist()[:3] == [5923, 6742, 5958]  # the published class counts


def test_files_match_the_standard_mnist_checksums():
    folder = data.ensure_mnist()
    for name, digest in data.SHA256.items():
        import hashlib
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest


def test_torchvision_reads_the_cache(mnist_test):
    import torchvision
    ds = torchvision.datasets.MNIST(str(data.cache_dir()), train=False, download=False)
    assert len(ds) == 10000 and torch.equal(ds.data.float().div(255), mnist_test[0][:, 0])


def test_corrupt_cache_is_detected_and_rebuilt(tmp_path):
    shutil.copytree(data.raw_dir(), tmp_path / "MNIST" / "raw")
    target = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    blob = bytearray(target.read_bytes())
    blob[5000] ^= 0xFF
    target.write_bytes(bytes(blob))
    data.ensure_mnist(tmp_path)
    assert data._sha256(target) == data.SHA256[target.name]


def test_half_written_cache_is_rebuilt(tmp_path):
    shutil.copytree(data.raw_dir(), tmp_path / "MNIST" / "raw")
    target = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    target.write_bytes(target.read_bytes()[:1000])  # an interrupted non-atomic write
    data.ensure_mnist(tmp_path)
    assert target.stat().st_size == 60008


def test_existing_standard_folder_is_used_as_is(tmp_path):
    shutil.copytree(data.raw_dir(), tmp_path / "MNIST" / "raw")
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "MNIST" / "raw").iterdir()}
    x, y = data.load_mnist("test", root=tmp_path)
    assert len(x) == 10000
    assert before == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "MNIST" / "raw").iterdir()}


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    from aecore.atomic import atomic_open
    target = tmp_path / "file"
    target.write_bytes(b"good")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as f:
            f.write(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"good" and os.listdir(tmp_path) == ["file"]


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_unpickler_refuses_code(tmp_path):
    import io
    payload = pickle.dumps([np.zeros(3), Evil()])
    with pytest.raises(data.DataError, match="refusing to unpickle posix.system|refusing to unpickle os.system"):
        data.safe_unpickle(io.BytesIO(payload))


def test_unpickler_admits_numpy_arrays():
    import io
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert np.array_equal(data.safe_unpickle(io.BytesIO(pickle.dumps((arr, arr), protocol=2))), (arr, arr))


def test_unknown_split():
    with pytest.raises(data.DataError, match="unknown split 'valid'"):
        data.load_mnist("valid")


def test_malicious_pickle_file_is_refused_during_conversion(tmp_path):
    bad = tmp_path / "mnist.pkl.gz"
    with gzip.open(bad, "wb") as f:
        pickle.dump(Evil(), f)
    with pytest.raises(data.DataError, match="refusing"):
        data.convert(bad, root=tmp_path)
    assert not (tmp_path / "MNIST").exists()


def test_unwritable_cache_falls_back_to_the_temp_folder(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    monkeypatch.setenv(data.CACHE_ENV, str(blocker / "cache"))  # cannot create a folder in a file
    monkeypatch.setattr(data.tempfile, "tempdir", str(tmp_path / "tmp"))
    folder = data.ensure_mnist()
    assert folder == tmp_path / "tmp" / "aecore" / "MNIST" / "raw"
    assert data._read_idx(folder / "t10k-labels-idx1-ubyte", 10000, False).shape == (10000,)


@pytest.fixture
def stamped_copy(tmp_path, monkeypatch):
    """A copy of the cache under tmp_path/data whose files have been hashed once, stamps in
    tmp_path/cache; returns (root, a list that records each file hashed from then on)."""
    root = tmp_path / "data"
    shutil.copytree(data.raw_dir(), data.raw_dir(root))
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(data, "_checked", {})
    hashed, real = [], data._sha256
    monkeypatch.setattr(data, "_sha256", lambda path: hashed.append(path.name) or real(path))  # a spy: it hashes
    data.ensure_mnist(root)
    assert sorted(hashed) == sorted(data.SHA256)
    stamps = json.loads((tmp_path / "cache" / data.STAMPS).read_text())
    assert sorted(stamps) == sorted(str(data.raw_dir(root).absolute() / n) for n in data.SHA256)
    hashed.clear()
    monkeypatch.setattr(data, "_checked", {})   # as a new process
    return root, hashed


def test_stamped_files_are_not_hashed_again(stamped_copy):
    root, hashed = stamped_copy
    assert data.ensure_mnist(root) == data.raw_dir(root) and hashed == []
    x, _ = data.load_mnist("test", root=root)
    assert len(x) == 10000 and hashed == []


@pytest.mark.parametrize("new_process", [True, False])
def test_a_file_changed_in_place_after_its_stamp_is_hashed_and_rebuilt(stamped_copy, monkeypatch, new_process):
    root, hashed = stamped_copy
    if not new_process:
        data.ensure_mnist(root)   # this process has checked the files too
    target = data.raw_dir(root) / "t10k-images-idx3-ubyte"
    before = target.stat()
    time.sleep(0.05)   # the kernel's file clock ticks every few milliseconds
    blob = bytearray(target.read_bytes())
    blob[5000] ^= 0xFF
    with open(target, "r+b") as f:   # same inode, same size ...
        f.write(blob)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))   # ... and the old mtime: only ctime tells
    assert target.stat().st_ctime_ns != before.st_ctime_ns
    if new_process:
        monkeypatch.setattr(data, "_checked", {})
    data.ensure_mnist(root)
    assert "t10k-images-idx3-ubyte" in hashed
    assert data._sha256(target) == data.SHA256[target.name]


def test_a_stamp_with_another_hash_or_garbled_is_not_trusted(stamped_copy, tmp_path):
    root, hashed = stamped_copy
    path = tmp_path / "cache" / data.STAMPS
    stamps = json.loads(path.read_text())
    key = str(data.raw_dir(root).absolute() / "t10k-labels-idx1-ubyte")
    stamps[key]["sha256"] = data.SHA256["train-labels-idx1-ubyte"]
    path.write_text(json.dumps(stamps))
    data.ensure_mnist(root)
    assert hashed == ["t10k-labels-idx1-ubyte"]
    assert json.loads(path.read_text())[key]["sha256"] == data.SHA256["t10k-labels-idx1-ubyte"]   # rewritten
    hashed.clear()
    data._checked.clear()
    path.write_text("{not json")
    data.ensure_mnist(root)
    assert sorted(hashed) == sorted(data.SHA256)
