import io
import os
import pickle

import pytest
import torch

import aecore
from aecore.checkpoint import CheckpointError, checkpoint_bytes, checkpoint_dict


@pytest.mark.parametrize("name", aecore.list_models())
def test_round_trip_is_exact(name, tmp_path):
    torch.manual_seed(0)
    model = aecore.create_model(name, **({"code_size": 3} if name == "vae" else {}))
    path = aecore.save_checkpoint(model, tmp_path / "m.pt", metrics={"mse": 0.01}, history={"epoch": [1]})
    loaded = aecore.load_checkpoint(path)
    assert loaded.name == name and loaded.config == model.config and not loaded.training
    assert loaded.metrics == {"mse": 0.01} and loaded.history == {"epoch": [1]}
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(model.reconstruct(x), loaded.reconstruct(x))


def test_float16_weights_are_half_the_file_and_load_as_float32(tmp_path):
    from aecore.trainer import round_weights
    torch.manual_seed(0)
    model = aecore.create_model("conv_upsample", code_size=16, width=8)
    full = len(checkpoint_bytes(model))
    round_weights(model, "float16")
    half = checkpoint_bytes(model)
    assert len(half) < 0.6 * full
    assert all(t.dtype == torch.float16 for t in torch.load(io.BytesIO(half), weights_only=True)["state_dict"].values())
    loaded = aecore.load_checkpoint(half)
    assert all(t.dtype == torch.float32 for t in loaded.state_dict().values())
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(model.reconstruct(x), loaded.reconstruct(x))   # rounded before saving: exact
    again = torch.load(io.BytesIO(checkpoint_bytes(loaded)), weights_only=True)["state_dict"]
    assert all(t.dtype == torch.float16 for t in again.values())   # saved again: still half the size


def test_loads_from_bytes():
    model = aecore.create_model("simple", code_size=5)
    assert aecore.load_checkpoint(checkpoint_bytes(model), name="up.pt").code_size == 5


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/aecore-pwned",))


def _bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_pickle_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    ckpt = checkpoint_dict(aecore.create_model("simple"))
    ckpt["metrics"] = {"x": Evil()}
    path.write_bytes(_bytes(ckpt))
    with pytest.raises(CheckpointError, match=r"evil\.pt: refused"):
        aecore.load_checkpoint(path)
    assert not os.path.exists("/tmp/aecore-pwned")


def test_plain_pickle_is_refused(tmp_path):
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match="plain.pkl"):
        aecore.load_checkpoint(path)


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_file_is_refused(tmp_path, cut):
    data = checkpoint_bytes(aecore.create_model("simple"))
    path = tmp_path / "cut.pt"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(CheckpointError, match="cut.pt: not a checkpoint file, or it is truncated or corrupt"):
        aecore.load_checkpoint(path)


def test_random_bytes_are_refused():
    with pytest.raises(CheckpointError, match="uploaded file: not a checkpoint file"):
        aecore.load_checkpoint(os.urandom(5000))


def test_other_format_is_refused():
    with pytest.raises(CheckpointError, match="not an aecore checkpoint"):
        aecore.load_checkpoint(_bytes({"state_dict": {}}), name="x.pt")


def test_unknown_version_is_refused():
    ckpt = checkpoint_dict(aecore.create_model("simple"))
    ckpt["version"] = 99
    with pytest.raises(CheckpointError, match="version 99 is not supported"):
        aecore.load_checkpoint(_bytes(ckpt))


def test_nan_weights_are_refused():
    ckpt = checkpoint_dict(aecore.create_model("simple"))
    next(iter(ckpt["state_dict"].values()))[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN"):
        aecore.load_checkpoint(_bytes(ckpt))


def test_weights_of_another_architecture_are_refused():
    ckpt = checkpoint_dict(aecore.create_model("simple", code_size=16))
    ckpt["config"]["code_size"] = 32
    with pytest.raises(CheckpointError, match="do not fit a simple model"):
        aecore.load_checkpoint(_bytes(ckpt))


def test_a_config_claiming_a_huge_model_is_refused_before_it_is_built():
    """The config is a claim the weights must back: a file of a few kilobytes that names
    a model of 2.5 GB (code_size 400,000) is refused by shapes alone, without the reader
    allocating it (before, it built the model from the config first: 2.5 GB and seconds; a
    larger claim ran out of memory)."""
    import resource
    ckpt = checkpoint_dict(aecore.create_model("simple", code_size=16))
    ckpt["config"]["code_size"] = 400_000
    data = _bytes(ckpt)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match=r"do not fit a simple model .*: encoder.1.weight has shape \(16, 784\) "
                                              r"in the file, the model needs \(400000, 784\)"):
        aecore.load_checkpoint(data)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000   # KiB: under 100 MB


def test_unknown_model_is_refused():
    ckpt = checkpoint_dict(aecore.create_model("simple"))
    ckpt["model"] = "transformer"
    with pytest.raises(CheckpointError, match="unknown model 'transformer'"):
        aecore.load_checkpoint(_bytes(ckpt))


def test_missing_file():
    with pytest.raises(CheckpointError, match="nope.pt: cannot read the file"):
        aecore.load_checkpoint("nope.pt")


def test_too_large_is_refused(monkeypatch):
    monkeypatch.setattr(aecore.checkpoint, "MAX_BYTES", 1000)
    with pytest.raises(CheckpointError, match="over the 0 MB limit|over the .* limit"):
        aecore.load_checkpoint(checkpoint_bytes(aecore.create_model("simple")))


def test_disk_full_keeps_the_old_file(tmp_path, monkeypatch):
    import errno
    from aecore.atomic import WriteError
    path = tmp_path / "m.pt"
    aecore.save_checkpoint(aecore.create_model("simple", code_size=4), path)
    good = path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)  # the data is written, then the disk is full
    with pytest.raises(WriteError, match="No space left on device"):
        aecore.save_checkpoint(aecore.create_model("simple"), path)
    assert path.read_bytes() == good and sorted(os.listdir(tmp_path)) == ["m.pt"]


def test_target_in_a_non_folder_gives_clear_error(tmp_path):
    from aecore.atomic import WriteError
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(WriteError, match="cannot write .*file/m.pt"):
        aecore.save_checkpoint(aecore.create_model("simple"), tmp_path / "file" / "m.pt")
