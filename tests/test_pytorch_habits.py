"""What a PyTorch user types without thinking, found by trying the library as a new user: each either works as
in PyTorch or ends in one clear error (never an AttributeError from inside)."""
import numpy as np
import pytest

import from_scratch as fs
from from_scratch import nn


def test_module_to_dtype_double_and_float_cast_floating_state_in_place():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    weight, opt_params = model[0].weight, model.parameters()
    assert model.double() is model and weight is model[0].weight and model.parameters() == opt_params
    assert {p.dtype for p in model.parameters()} == {np.dtype(np.float64)}
    assert model[1].running_var.dtype == np.float64 and model[1].num_batches_tracked.dtype == np.int64
    model.to("cpu", np.float32)
    assert weight.dtype == np.float32 and model[1].running_mean.dtype == np.float32
    model.to(dtype="float64")
    out = model(fs.Tensor(np.ones((4, 2)), dtype=np.float64))
    assert out.dtype == np.float64
    with pytest.raises(TypeError, match="Sequential.to: only floating dtypes.*int64"):
        model.to(np.int64)


def test_save_of_a_whole_module_says_to_save_its_state_dict(tmp_path):
    with pytest.raises(TypeError, match=r"save: takes a mapping .* model.state_dict\(\).* got Linear"):
        fs.save(nn.Linear(2, 2), tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


def test_relu_takes_pytorchs_inplace_argument():
    assert repr(nn.ReLU(inplace=False)) == "ReLU()"
    with pytest.raises(ValueError, match=r"ReLU\(inplace=True\) is not supported: use ReLU\(\)"):
        nn.ReLU(inplace=True)


def test_full_reductions_to_an_index_print_like_any_cpu_tensor():
    i = fs.Tensor([3.0, 1.0, 2.0]).argmin()
    assert repr(i) == "Tensor(1, dtype=int64)" and type(i.data) is np.ndarray


def test_log_of_zero_is_minus_inf_without_a_warning():
    with np.errstate(all="raise"):  # a NumPy warning would be an error here
        assert fs.Tensor([0.0, 1.0]).log().tolist() == [-np.inf, 0.0]


def test_import_gives_the_library_namespaces_as_import_torch_does():
    import subprocess
    import sys
    code = ("import sys, from_scratch as fs; fs.nn.Linear; fs.optim.Adam; fs.functional.relu; fs.data.DataLoader; "
            "assert 'mpi4py' not in sys.modules and 'from_scratch.distributed' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
