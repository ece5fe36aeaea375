"""The device seam (from_scratch.backend) and the strict test device that stands in for a GPU in CI."""
import numpy as np
import pytest

from from_scratch import backend
from strict_device import DeviceMixError, StrictArray, strict, to_host

backend.register_device("strict", strict, StrictArray, strict.asarray, to_host)


def test_device_names_parse_like_torch():
    assert backend.device("cpu") == backend.Device("cpu") == "cpu"
    assert str(backend.device(None)) == "cpu" and repr(backend.device("cpu")) == "device(type='cpu')"
    assert backend.device("strict").type == "strict"
    for bad in ("gpu", "cuda:x", "cpu:1", "cuda:0:1", ""):
        with pytest.raises(ValueError, match="device"):
            backend.Device(bad)
    with pytest.raises(TypeError, match="device"):
        backend.Device(3)


@pytest.mark.skipif(backend.is_available(), reason="a GPU is usable here")
def test_cuda_without_cupy_or_gpu_is_a_clear_error_not_a_fallback():
    with pytest.raises(RuntimeError, match="device cuda: .*(CuPy|GPU)"):
        backend.device_module("cuda")
    with pytest.raises(RuntimeError, match="device cuda"):
        backend.to_device(np.ones(2), "cuda")


def test_array_module_and_copies_between_devices():
    assert backend.device_module("cpu") is np and backend.get_array_module(np.ones(1), 2.0) is np
    host = np.arange(6.0).reshape(2, 3)
    dev = backend.to_device(host, "strict")
    assert isinstance(dev, StrictArray) and backend.device_of(dev) == "strict"
    assert backend.get_array_module(host, dev) is strict and backend.is_array(dev) and not backend.is_array([1])
    assert backend.device_of(host) == "cpu" and backend.to_device(host, "cpu") is host
    back = backend.as_numpy(dev * 2)
    assert type(back) is np.ndarray and np.array_equal(back, host * 2)
    with pytest.raises(TypeError, match="device_of"):
        backend.device_of([1, 2])


def test_strict_device_refuses_host_arrays_like_cupy():
    a = strict.ones((2, 3))
    with pytest.raises(TypeError, match="implicit conversion"):
        np.asarray(a)
    with pytest.raises(DeviceMixError, match="np.add got a NumPy array"):
        a + np.ones(3)
    with pytest.raises(DeviceMixError):
        np.where(np.ones((2, 3), bool), a, 0.0)
    # scalars mix freely, results stay on the device, reductions give 0-d device arrays as CuPy does
    assert isinstance(a * np.float32(2) + 1, StrictArray) and isinstance(a.sum(), StrictArray)
    assert isinstance(np.zeros(3, like=a), StrictArray) and float(a.sum()) == 6.0
