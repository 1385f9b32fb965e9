import gzip
import os
import pickle
import shutil

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
    data._sha256.cache_clear()
    data.ensure_mnist(tmp_path)
    assert data._sha256(target) == data.SHA256[target.name]


def test_half_written_cache_is_rebuilt(tmp_path):
    shutil.copytree(data.raw_dir(), tmp_path / "MNIST" / "raw")
    target = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    target.write_bytes(target.read_bytes()[:1000])  # an interrupted non-atomic write
    data._sha256.cache_clear()
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
    data._sha256.cache_clear()
    folder = data.ensure_mnist()
    assert folder == tmp_path / "tmp" / "aecore" / "MNIST" / "raw"
    assert data._read_idx(folder / "t10k-labels-idx1-ubyte", 10000, False).shape == (10000,)
