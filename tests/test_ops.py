"""Every differentiable Tensor op: PyTorch parity (forward and gradients, float64) and a finite-difference
gradcheck, plus ties, indexing edge cases and the errors that name the op and the shapes."""
import re

import numpy as np
import pytest
import torch

import from_scratch as fs
from from_scratch import Tensor

rng = np.random.default_rng(0)


def randn(*shape):
    return rng.standard_normal(shape)


def positive(*shape):
    return rng.uniform(0.5, 2.0, shape)


def away(*shape):
    """Normal draws kept 0.1 away from 0 (the kink of abs and relu)."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 0.1, np.sign(x + 1e-12) * 0.3, x)


C34, CPOS = randn(3, 4), positive(3, 4)  # ndarray constants for the reflected forms
TC34, TCPOS = torch.from_numpy(C34), torch.from_numpy(CPOS)
MASK = randn(3, 4) > 0

# name -> (ours, torch, inputs). ``ours`` and ``torch`` take the same inputs (Tensors / torch tensors).
CASES = {
    # binary arithmetic, broadcasting both ways
    "add": (lambda a, b: a + b, lambda a, b: a + b, [randn(2, 3, 4), randn(3, 1)]),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, [randn(3, 1), randn(2, 1, 4)]),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, [randn(2, 3, 4), randn(4)]),
    "div": (lambda a, b: a / b, lambda a, b: a / b, [randn(3, 4), positive(3, 1)]),
    "pow_tensor": (lambda a, b: a ** b, lambda a, b: a ** b, [positive(3, 4), randn(4)]),
    "neg": (lambda a: -a, lambda a: -a, [randn(3, 4)]),
    # with Python numbers, both sides
    "add_scalar": (lambda a: a + 2.5, lambda a: a + 2.5, [randn(3, 4)]),
    "radd_scalar": (lambda a: 2.5 + a, lambda a: 2.5 + a, [randn(3, 4)]),
    "sub_scalar": (lambda a: a - 2, lambda a: a - 2, [randn(3, 4)]),
    "rsub_scalar": (lambda a: 2 - a, lambda a: 2 - a, [randn(3, 4)]),
    "mul_scalar": (lambda a: a * -3.0, lambda a: a * -3.0, [randn(3, 4)]),
    "rmul_scalar": (lambda a: -3.0 * a, lambda a: -3.0 * a, [randn(3, 4)]),
    "div_scalar": (lambda a: a / 4, lambda a: a / 4, [randn(3, 4)]),
    "rdiv_scalar": (lambda a: 4 / a, lambda a: 4 / a, [positive(3, 4)]),
    "pow_2": (lambda a: a ** 2, lambda a: a ** 2, [randn(3, 4)]),
    "pow_3": (lambda a: a ** 3, lambda a: a ** 3, [randn(3, 4)]),
    "pow_half": (lambda a: a ** 0.5, lambda a: a ** 0.5, [positive(3, 4)]),
    "pow_neg": (lambda a: a ** -1.5, lambda a: a ** -1.5, [positive(3, 4)]),
    "rpow_scalar": (lambda a: 2.0 ** a, lambda a: 2.0 ** a, [randn(3, 4)]),
    # with ndarrays, both sides
    "add_ndarray": (lambda a: a + C34, lambda a: a + TC34, [randn(3, 4)]),
    "radd_ndarray": (lambda a: C34 + a, lambda a: TC34 + a, [randn(3, 4)]),
    "rsub_ndarray": (lambda a: C34 - a, lambda a: TC34 - a, [randn(2, 3, 4)]),
    "rmul_ndarray": (lambda a: C34 * a, lambda a: TC34 * a, [randn(4)]),
    "rdiv_ndarray": (lambda a: C34 / a, lambda a: TC34 / a, [positive(3, 4)]),
    "rpow_ndarray": (lambda a: CPOS ** a, lambda a: TCPOS ** a, [randn(3, 4)]),
    "pow_ndarray": (lambda a: a ** C34, lambda a: a ** TC34, [positive(3, 4)]),
    "matmul_ndarray": (lambda a: a @ C34, lambda a: a @ TC34, [randn(2, 3)]),
    "rmatmul_ndarray": (lambda a: C34 @ a, lambda a: TC34 @ a, [randn(4, 2)]),
    # matmul: plain, batched, broadcasting batch dims, 1-D on either side
    "matmul": (lambda a, b: a @ b, lambda a, b: a @ b, [randn(3, 4), randn(4, 5)]),
    "matmul_batched": (lambda a, b: a @ b, lambda a, b: a @ b, [randn(2, 3, 4), randn(2, 4, 5)]),
    "matmul_broadcast": (lambda a, b: a @ b, lambda a, b: a @ b, [randn(2, 1, 3, 4), randn(3, 4, 2)]),
    "matmul_batch_2d": (lambda a, b: a @ b, lambda a, b: a @ b, [randn(2, 3, 4), randn(4, 5)]),
    "matmul_2d_batch": (lambda a, b: a @ b, lambda a, b: a @ b, [randn(3, 4), randn(2, 4, 5)]),
    "matmul_vec_mat": (lambda a, b: a @ b, lambda a, b: a @ b, [randn(4), randn(4, 5)]),
    "matmul_mat_vec": (lambda a, b: a @ b, lambda a, b: a @ b, [randn(3, 4), randn(4)]),
    "matmul_vec_vec": (lambda a, b: a @ b, lambda a, b: a @ b, [randn(4), randn(4)]),
    "matmul_vec_batch": (lambda a, b: a @ b, lambda a, b: a @ b, [randn(4), randn(2, 4, 3)]),
    "matmul_batch_vec": (lambda a, b: a @ b, lambda a, b: a @ b, [randn(2, 3, 4), randn(4)]),
    # elementwise
    "exp": (lambda a: a.exp(), torch.exp, [randn(3, 4)]),
    "log": (lambda a: a.log(), torch.log, [positive(3, 4)]),
    "sqrt": (lambda a: a.sqrt(), torch.sqrt, [positive(3, 4)]),
    "abs": (lambda a: a.abs(), torch.abs, [away(3, 4)]),
    "tanh": (lambda a: a.tanh(), torch.tanh, [randn(3, 4)]),
    "sigmoid": (lambda a: a.sigmoid(), torch.sigmoid, [randn(3, 4) * 3]),
    "relu": (lambda a: a.relu(), torch.relu, [away(3, 4)]),
    "maximum": (lambda a, b: a.maximum(b), torch.maximum, [randn(3, 4), randn(4)]),
    "minimum": (lambda a, b: a.minimum(b), torch.minimum, [randn(3, 1), randn(3, 4)]),
    "maximum_scalar": (lambda a: a.maximum(0.2), lambda a: torch.clamp(a, min=0.2), [away(3, 4) + 0.2]),
    "minimum_scalar": (lambda a: a.minimum(0.2), lambda a: torch.clamp(a, max=0.2), [away(3, 4) + 0.2]),
    "clip": (lambda a: a.clip(-0.5, 0.5), lambda a: a.clamp(-0.5, 0.5), [away(3, 4) + 0.5]),
    "clip_min": (lambda a: a.clip(min=0.3), lambda a: a.clamp(min=0.3), [away(3, 4) + 0.3]),
    "clamp_max": (lambda a: a.clamp(max=0.3), lambda a: a.clamp(max=0.3), [away(3, 4) + 0.3]),
    "where": (lambda a, b: fs.where(MASK, a, b), lambda a, b: torch.where(torch.from_numpy(MASK), a, b),
              [randn(3, 4), randn(4)]),
    "where_scalar": (lambda a: fs.where(MASK, a, 0.5), lambda a: torch.where(torch.from_numpy(MASK), a, 0.5),
                     [randn(3, 4)]),
    "where_tensor_cond": (lambda a: fs.where(a > 0, a, -a), lambda a: torch.where(a > 0, a, -a), [away(3, 4)]),
    "masked_fill": (lambda a: a.masked_fill(MASK, -1.0), lambda a: a.masked_fill(torch.from_numpy(MASK), -1.0),
                    [randn(3, 4)]),
    # reductions
    "sum": (lambda a: a.sum(), torch.sum, [randn(3, 4)]),
    "sum_axis": (lambda a: a.sum(1), lambda a: a.sum(1), [randn(3, 4)]),
    "sum_neg_axis_keep": (lambda a: a.sum(-1, keepdims=True), lambda a: a.sum(-1, keepdim=True), [randn(2, 3, 4)]),
    "sum_tuple": (lambda a: a.sum((0, 2)), lambda a: a.sum((0, 2)), [randn(2, 3, 4)]),
    "mean": (lambda a: a.mean(), torch.mean, [randn(3, 4)]),
    "mean_axis_keep": (lambda a: a.mean(0, keepdims=True), lambda a: a.mean(0, keepdim=True), [randn(3, 4)]),
    "mean_tuple": (lambda a: a.mean((-1, 0)), lambda a: a.mean((-1, 0)), [randn(2, 3, 4)]),
    "max": (lambda a: a.max(), torch.amax, [randn(3, 4)]),
    "max_axis": (lambda a: a.max(1), lambda a: torch.amax(a, 1), [randn(3, 4)]),
    "max_tuple_keep": (lambda a: a.max((0, 2), keepdims=True), lambda a: torch.amax(a, (0, 2), keepdim=True),
                       [randn(2, 3, 4)]),
    "min": (lambda a: a.min(), torch.amin, [randn(3, 4)]),
    "min_axis_keep": (lambda a: a.min(-1, keepdims=True), lambda a: torch.amin(a, -1, keepdim=True),
                      [randn(3, 4)]),
    "var": (lambda a: a.var(), torch.var, [randn(3, 4)]),
    "var_axis": (lambda a: a.var(1), lambda a: a.var(1), [randn(3, 4)]),
    "var_tuple_keep": (lambda a: a.var((0, 1), keepdims=True), lambda a: a.var((0, 1), keepdim=True),
                       [randn(2, 3, 4)]),
    "var_biased": (lambda a: a.var(0, correction=0), lambda a: a.var(0, correction=0), [randn(3, 4)]),
    "std": (lambda a: a.std(-1), lambda a: a.std(-1), [randn(3, 4)]),
    # shape
    "reshape_varargs": (lambda a: a.reshape(4, 3), lambda a: a.reshape(4, 3), [randn(3, 4)]),
    "reshape_tuple": (lambda a: a.reshape((2, -1)), lambda a: a.reshape((2, -1)), [randn(3, 4)]),
    "view": (lambda a: a.view(-1), lambda a: a.view(-1), [randn(3, 4)]),
    "transpose": (lambda a: a.transpose(0, 2), lambda a: a.transpose(0, 2), [randn(2, 3, 4)]),
    "transpose_neg": (lambda a: a.transpose(-1, -3), lambda a: a.transpose(-1, -3), [randn(2, 3, 4)]),
    "transpose_default": (lambda a: a.transpose(), lambda a: a.transpose(-2, -1), [randn(2, 3, 4)]),
    "T": (lambda a: a.T, lambda a: a.T, [randn(3, 4)]),
    "permute": (lambda a: a.permute(2, 0, 1), lambda a: a.permute(2, 0, 1), [randn(2, 3, 4)]),
    "permute_tuple_neg": (lambda a: a.permute((-1, 0, 1)), lambda a: a.permute(2, 0, 1), [randn(2, 3, 4)]),
    "swapaxes": (lambda a: a.swapaxes(0, -1), lambda a: a.swapaxes(0, -1), [randn(2, 3, 4)]),
    "squeeze": (lambda a: a.squeeze(), lambda a: a.squeeze(), [randn(1, 3, 1, 4)]),
    "squeeze_axis": (lambda a: a.squeeze(-2), lambda a: a.squeeze(-2), [randn(1, 3, 1, 4)]),
    "unsqueeze": (lambda a: a.unsqueeze(1), lambda a: a.unsqueeze(1), [randn(3, 4)]),
    "unsqueeze_neg": (lambda a: a.unsqueeze(-1), lambda a: a.unsqueeze(-1), [randn(3, 4)]),
    "expand": (lambda a: a.expand(2, 3, 4), lambda a: a.expand(2, 3, 4), [randn(3, 1)]),
    "expand_keep": (lambda a: a.expand((2, -1, 4)), lambda a: a.expand(2, -1, 4), [randn(3, 1)]),
    "broadcast_to": (lambda a: a.broadcast_to((2, 3, 4)), lambda a: a.broadcast_to((2, 3, 4)), [randn(4)]),
    "flatten": (lambda a: a.flatten(), lambda a: a.flatten(), [randn(2, 3, 4)]),
    "flatten_range": (lambda a: a.flatten(1), lambda a: a.flatten(1), [randn(2, 3, 4)]),
    "flatten_mid": (lambda a: a.flatten(0, 1), lambda a: a.flatten(0, 1), [randn(2, 3, 4)]),
    # indexing
    "getitem_int": (lambda a: a[1], lambda a: a[1], [randn(3, 4)]),
    "getitem_neg_int": (lambda a: a[-1, 2], lambda a: a[-1, 2], [randn(3, 4)]),
    "getitem_slice": (lambda a: a[1:, :3], lambda a: a[1:, :3], [randn(3, 4)]),
    "getitem_step": (lambda a: a[::2, 1::2], lambda a: a[::2, 1::2], [randn(3, 4)]),
    "getitem_neg_step": (lambda a: a[::-1], lambda a: torch.flip(a, [0]), [randn(3, 4)]),
    "getitem_neg_step2": (lambda a: a[:, ::-2], lambda a: torch.flip(a, [1])[:, ::2], [randn(3, 5)]),
    "getitem_none": (lambda a: a[None, :, None], lambda a: a[None, :, None], [randn(3, 4)]),
    "getitem_ellipsis": (lambda a: a[..., 1], lambda a: a[..., 1], [randn(2, 3, 4)]),
    "getitem_mixed": (lambda a: a[1:, None, ..., -1], lambda a: a[1:, None, ..., -1], [randn(2, 3, 4)]),
    "getitem_repeated": (lambda a: a[[0, 0, 1]], lambda a: a[[0, 0, 1]], [randn(3, 4)]),
    "getitem_int_array": (lambda a: a[np.array([[2, 0], [2, 2]])], lambda a: a[torch.tensor([[2, 0], [2, 2]])],
                          [randn(3, 4)]),
    "getitem_int_tensor": (lambda a: a[Tensor([1, 1, 0])], lambda a: a[torch.tensor([1, 1, 0])], [randn(3, 4)]),
    "getitem_pairs": (lambda a: a[[0, 2, 0], [1, 1, 1]], lambda a: a[[0, 2, 0], [1, 1, 1]], [randn(3, 4)]),
    "getitem_slice_array": (lambda a: a[:, [3, 0, 3]], lambda a: a[:, [3, 0, 3]], [randn(3, 4)]),
    "getitem_bool": (lambda a: a[MASK], lambda a: a[torch.from_numpy(MASK)], [randn(3, 4)]),
    "getitem_bool_rows": (lambda a: a[np.array([True, False, True])], lambda a: a[torch.tensor([True, False, True])],
                          [randn(3, 4)]),
    "getitem_bool_tensor": (lambda a: a[a > 0], lambda a: a[a > 0], [away(3, 4)]),
    # joining and splitting
    "Tensor.cat": (lambda a, b: Tensor.cat([a, b], axis=1), lambda a, b: torch.cat([a, b], 1),
                   [randn(2, 3), randn(2, 2)]),
    "cat": (lambda a, b, c: fs.cat([a, b, c]), lambda a, b, c: torch.cat([a, b, c]),
            [randn(1, 3), randn(2, 3), randn(1, 3)]),
    "cat_neg_axis": (lambda a, b: fs.cat((a, b), axis=-1), lambda a, b: torch.cat((a, b), -1),
                     [randn(2, 2, 1), randn(2, 2, 3)]),
    "stack": (lambda a, b: fs.stack([a, b]), lambda a, b: torch.stack([a, b]), [randn(3, 4), randn(3, 4)]),
    "Tensor.stack_last": (lambda a, b: Tensor.stack([a, b], axis=-1), lambda a, b: torch.stack([a, b], -1),
                          [randn(3, 4), randn(3, 4)]),
    "split": (lambda a: a.split(2, axis=1), lambda a: a.split(2, dim=1), [randn(3, 5)]),
    "split_sizes": (lambda a: a.split([1, 3], axis=-1), lambda a: a.split([1, 3], dim=-1), [randn(3, 4)]),
    "chunk": (lambda a: a.chunk(3), lambda a: a.chunk(3), [randn(7, 2)]),
}


@pytest.mark.parametrize("name", CASES)
def test_matches_torch(torch_parity, name):
    ours, theirs, arrays = CASES[name]
    torch_parity(ours, theirs, *arrays)


@pytest.mark.parametrize("name", CASES)
def test_gradcheck(finite_diff, name):
    ours, _, arrays = CASES[name]
    finite_diff(ours, *arrays)


# ---------------------------------------------------------------- ties and special points

def test_max_min_ties_share_the_gradient_like_torch_amax(torch_parity):
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    torch_parity(lambda a: a.max(1), lambda a: torch.amax(a, 1), x)
    torch_parity(lambda a: a.min(), lambda a: torch.amin(a), x)
    torch_parity(lambda a: a.max(), lambda a: torch.amax(a), x)


def test_maximum_minimum_ties_split_the_gradient(torch_parity):
    a, b = np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 3.0])
    torch_parity(lambda x, y: x.maximum(y), torch.maximum, a, b)
    torch_parity(lambda x, y: x.minimum(y), torch.minimum, a, b)


def test_kinks_follow_torch(torch_parity):
    x = np.array([-1.0, 0.0, 1.0, 2.0])
    torch_parity(lambda a: a.relu(), torch.relu, x)
    torch_parity(lambda a: a.abs(), torch.abs, x)
    torch_parity(lambda a: a.clip(0.0, 1.0), lambda a: a.clamp(0.0, 1.0), x)  # ends pass the gradient


@pytest.mark.filterwarnings("ignore:divide by zero", "ignore:invalid value")  # 0 ** -1 on the way to masking it
def test_pow_gradients_at_zero_base_and_zero_exponent(torch_parity):
    torch_parity(lambda a, b: a ** b, lambda a, b: a ** b, np.array([0.0, 0.0, 2.0]), np.array([2.0, 0.0, 1.5]))


def test_reflected_ndarray_ops_return_tensors():
    x = Tensor([1.0, 2.0], requires_grad=True)
    for out in [np.ones(2) + x, np.ones(2) - x, np.ones(2) * x, np.ones(2) / x, np.ones(2) ** x,
                np.ones((3, 2)) @ x, np.float64(2) * x, np.float32(2) + x]:
        assert isinstance(out, Tensor) and out.requires_grad and out.dtype == np.float32


def test_split_and_chunk_sizes_follow_torch():
    x = Tensor(np.arange(7.0))
    assert [p.shape for p in x.split(3)] == [(3,), (3,), (1,)]
    assert [p.shape for p in x.chunk(3)] == [(3,), (3,), (1,)]
    assert [p.shape for p in x.split([2, 5])] == [(2,), (5,)]
    np.testing.assert_array_equal(fs.cat(x.chunk(2)).data, x.data)


# ---------------------------------------------------------------- errors name the op and the shapes

@pytest.mark.parametrize("op, name, sym", [
    (lambda a, b: a + b, "add", "+"), (lambda a, b: a - b, "sub", "-"), (lambda a, b: a * b, "mul", "*"),
    (lambda a, b: a / b, "div", "/"), (lambda a, b: a ** b, "pow", "**"),
    (lambda a, b: a.maximum(b), "maximum", "and"), (lambda a, b: a.minimum(b), "minimum", "and"),
])
def test_binary_shape_mismatch_names_op_and_shapes(op, name, sym):
    a, b, sym = fs.ones(2, 3), fs.ones(4), re.escape(sym)
    with pytest.raises(ValueError, match=rf"^{name}: \(2, 3\) {sym} \(4,\): shapes cannot broadcast"):
        op(a, b)
    with pytest.raises(ValueError, match=rf"^{name}: \(2, 3\) {sym} \(4,\)"):
        op(a, np.ones(4))  # an ndarray operand is named the same way


def test_matmul_errors_name_both_shapes():
    with pytest.raises(ValueError, match=r"^matmul: \(16, 10, 64\) @ \(32, 64\): inner dimensions 64 and 32 differ$"):
        fs.ones(16, 10, 64) @ fs.ones(32, 64)
    with pytest.raises(ValueError, match=r"^matmul: \(3,\) @ \(4,\): inner dimensions 3 and 4 differ"):
        fs.ones(3) @ fs.ones(4)
    with pytest.raises(ValueError, match=r"^matmul: \(2, 3, 4\) @ \(5, 4, 2\): batch dimensions cannot broadcast"):
        fs.ones(2, 3, 4) @ fs.ones(5, 4, 2)
    with pytest.raises(ValueError, match=r"^matmul: \(\) @ \(3,\)"):
        Tensor(2.0) @ fs.ones(3)


def test_other_shape_errors_name_the_shapes():
    x = fs.ones(2, 3)
    with pytest.raises(ValueError, match=r"where: condition \(2, 3\), \(2, 3\), \(4,\): shapes cannot broadcast"):
        fs.where(np.ones((2, 3), bool), x, fs.ones(4))
    with pytest.raises(ValueError, match=r"cat: shapes \(2, 3\), \(2, 4\) differ outside axis 0"):
        fs.cat([x, fs.ones(2, 4)])
    with pytest.raises(ValueError, match=r"reshape: cannot reshape \(2, 3\) \(6 elements\) to \(4, 2\)"):
        x.reshape(4, 2)
    with pytest.raises(ValueError, match=r"expand: cannot broadcast \(2, 3\) to \(2, 4\)"):
        x.expand(2, 4)
    with pytest.raises(ValueError, match=r"permute: \(0, 0\) is not a permutation of the 2 axes of \(2, 3\)"):
        x.permute(0, 0)
    with pytest.raises(IndexError, match=r"getitem: .*\(tensor shape \(2, 3\)\)"):
        x[5]


@pytest.mark.parametrize("method", ["sum", "mean", "max", "min", "var", "std", "argmax"])
def test_reduction_over_missing_axis_names_axis_and_shape(method):
    x = fs.ones(2, 3)
    with pytest.raises(ValueError, match=r"axis 2 is out of range for a tensor of shape \(2, 3\)"):
        getattr(x, method)(2)
    if method != "argmax":
        with pytest.raises(ValueError, match=rf"^{method if method != 'std' else 'var'}: axis -3 is out of range"):
            getattr(x, method)((0, -3))
