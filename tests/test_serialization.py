"""save/load: exact round trips, refusal of corrupt files and pickles, and atomic writes."""
import os
import pickle

import numpy as np
import pytest

import from_scratch as fs
from from_scratch import Tensor
from from_scratch.serialization import atomic_write, load_metadata


def _state():
    rng = np.random.default_rng(0)
    return {
        "w32": rng.standard_normal((3, 4)).astype(np.float32),
        "w64": rng.standard_normal(5),
        "steps": np.array([1, 2, 2 ** 40], dtype=np.int64),
        "scalar": np.array(7.5),
        "flags": np.array([True, False]),
        "strided": np.arange(12.0).reshape(3, 4).T,  # not contiguous
        "tensor": Tensor(rng.standard_normal((2, 2)), requires_grad=True),
        "tensor64": Tensor([1.0, 2.0], dtype=np.float64),
    }


def test_round_trip_is_exact(tmp_path):
    state, path = _state(), tmp_path / "model.safetensors"
    fs.save(state, path, metadata={"step": "10", "note": "hi"})
    loaded = fs.load(path)
    assert sorted(loaded) == sorted(state)
    for name, value in state.items():
        want = value.data if isinstance(value, Tensor) else value
        assert loaded[name].dtype == want.dtype and loaded[name].shape == want.shape, name
        np.testing.assert_array_equal(loaded[name], want)
    assert load_metadata(path) == {"step": "10", "note": "hi"}
    fs.save({"a": np.zeros(1)}, str(path))  # a str path too; overwrites
    assert list(fs.load(str(path))) == ["a"] and load_metadata(path) == {}


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file at"):
        fs.load(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("corrupt", ["truncated", "garbage", "empty", "huge_header"])
def test_corrupt_files_are_a_value_error(tmp_path, corrupt):
    path = tmp_path / "bad.safetensors"
    fs.save(_state(), path)
    raw = path.read_bytes()
    data = {"truncated": raw[: len(raw) // 2], "garbage": os.urandom(200), "empty": b"",
            "huge_header": (10 ** 12).to_bytes(8, "little") + raw[8:]}[corrupt]
    path.write_bytes(data)
    with pytest.raises(ValueError, match="is not a valid safetensors file"):
        fs.load(path)
    with pytest.raises(ValueError, match="is not a valid safetensors file"):
        load_metadata(path)


class _Payload:
    """Unpickling this would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_pickle_payload_is_refused_and_never_runs(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps({"w": _Payload(str(marker))}, protocol=protocol))
    with pytest.raises(ValueError, match="is not a valid safetensors file"):
        fs.load(path)
    assert not marker.exists()
    pickle.loads(path.read_bytes())["w"].close()  # the payload is real: plain unpickling does create it
    assert marker.exists()


def test_atomic_write_leaves_the_old_file_when_the_writer_dies(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    fs.save({"w": np.ones(3)}, path)
    before = path.read_bytes()

    real_fdopen = os.fdopen

    def dying_fdopen(fd, mode="r", *args, **kwargs):  # a file that writes half its bytes, then the process "dies"
        f = real_fdopen(fd, mode, *args, **kwargs)

        class Dying:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                f.close()

            def write(self, data):
                f.write(data[: len(data) // 2])
                f.flush()
                raise KeyboardInterrupt("killed mid-write")

        return Dying()

    monkeypatch.setattr(os, "fdopen", dying_fdopen)
    with pytest.raises(KeyboardInterrupt):
        fs.save({"w": np.zeros(1000)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    np.testing.assert_array_equal(fs.load(path)["w"], np.ones(3))
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]  # no temporary left behind


@pytest.mark.parametrize("dies_in", ["fsync", "replace"])
def test_atomic_write_failures_keep_the_old_file(tmp_path, monkeypatch, dies_in):
    path = tmp_path / "out.bin"
    atomic_write(path, b"old")

    def boom(*args):
        raise OSError("disk gone")

    monkeypatch.setattr(os, dies_in, boom)
    with pytest.raises(OSError, match="disk gone"):
        atomic_write(path, b"new contents")
    monkeypatch.undo()
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]
    atomic_write(tmp_path / "sub" / "new.bin", b"x")  # creates the folder
    assert (tmp_path / "sub" / "new.bin").read_bytes() == b"x"


def test_saved_files_get_the_umask_mode_not_mkstemps_private_one(tmp_path):
    import stat

    umask = os.umask(0o022)
    try:
        fs.save({"w": np.zeros(3, np.float32)}, tmp_path / "m.safetensors")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(os.stat(tmp_path / "m.safetensors").st_mode) == 0o644
