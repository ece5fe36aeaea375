"""The PyTorch-style Tensor API: dim=/keepdim= beside axis=/keepdims=, max/min(dim=) pairs, size()/numel()/
dim(), Python numbers from one-element tensors, casts and clone, fs.tensor and the *_like factories.
Each checked against torch in float64 (values and gradients). The new ops are in test_tensor_api_ops.py."""
import operator

import numpy as np
import pytest
import torch

import from_scratch as fs
import from_scratch.functional as F
from from_scratch import Tensor

rng = np.random.default_rng(0)


def randn(*shape):
    return rng.standard_normal(shape)


X = randn(3, 4, 5)

# name -> (ours, torch): the same call written with PyTorch's dim=/keepdim= on both sides
DIM_KEYWORDS = {
    "sum": (lambda a: a.sum(dim=1, keepdim=True), lambda a: a.sum(dim=1, keepdim=True)),
    "sum_tuple": (lambda a: a.sum(dim=(0, 2)), lambda a: a.sum(dim=(0, 2))),
    "mean": (lambda a: a.mean(dim=-1), lambda a: a.mean(dim=-1)),
    "var": (lambda a: a.var(dim=0, keepdim=True), lambda a: a.var(dim=0, keepdim=True)),
    "std": (lambda a: a.std(dim=2), lambda a: a.std(dim=2)),
    "logsumexp": (lambda a: a.logsumexp(dim=1, keepdim=True), lambda a: a.logsumexp(dim=1, keepdim=True)),
    "softmax": (lambda a: a.softmax(dim=1), lambda a: a.softmax(dim=1)),
    "log_softmax": (lambda a: a.log_softmax(dim=0), lambda a: a.log_softmax(dim=0)),
    "F.softmax": (lambda a: F.softmax(a, dim=1), lambda a: torch.nn.functional.softmax(a, dim=1)),
    "F.log_softmax": (lambda a: F.log_softmax(a, dim=1), lambda a: torch.nn.functional.log_softmax(a, dim=1)),
    "cumsum": (lambda a: a.cumsum(dim=2), lambda a: a.cumsum(dim=2)),
    "prod": (lambda a: a.prod(dim=1, keepdim=True), lambda a: a.prod(dim=1, keepdim=True)),
    "norm": (lambda a: a.norm(dim=(0, 1), keepdim=True), lambda a: a.norm(dim=(0, 1), keepdim=True)),
    "squeeze": (lambda a: a[:, :1].squeeze(dim=1), lambda a: a[:, :1].squeeze(dim=1)),
    "unsqueeze": (lambda a: a.unsqueeze(dim=-1), lambda a: a.unsqueeze(dim=-1)),
    "split": (lambda a: a.split(2, dim=1), lambda a: a.split(2, dim=1)),
    "chunk": (lambda a: a.chunk(2, dim=2), lambda a: a.chunk(2, dim=2)),
    "cat": (lambda a: fs.cat([a, a * 2], dim=1), lambda a: torch.cat([a, a * 2], dim=1)),
    "Tensor.cat": (lambda a: Tensor.cat([a, a], dim=-1), lambda a: torch.cat([a, a], dim=-1)),
    "stack": (lambda a: fs.stack([a, a * 2], dim=3), lambda a: torch.stack([a, a * 2], dim=3)),
    "flatten": (lambda a: a.flatten(start_dim=1), lambda a: a.flatten(start_dim=1)),
    "transpose": (lambda a: a.transpose(dim0=0, dim1=2), lambda a: a.transpose(dim0=0, dim1=2)),
}


@pytest.mark.parametrize("name", sorted(DIM_KEYWORDS))
def test_dim_keywords_match_torch(torch_parity, name):
    torch_parity(*DIM_KEYWORDS[name], X)


@pytest.mark.parametrize("name, call_dim, call_axis", [
    ("sum", lambda a: a.sum(dim=1, keepdim=True), lambda a: a.sum(axis=1, keepdims=True)),
    ("mean", lambda a: a.mean(dim=(0, 2)), lambda a: a.mean(axis=(0, 2))),
    ("argmax", lambda a: a.argmax(dim=1, keepdim=True), lambda a: a.argmax(axis=1, keepdims=True)),
    ("softmax", lambda a: F.softmax(a, dim=0), lambda a: F.softmax(a, axis=0)),
    ("cumsum", lambda a: a.cumsum(dim=1), lambda a: a.cumsum(axis=1)),
    ("sort", lambda a: a.sort(dim=0).values, lambda a: a.sort(axis=0).values),
])
def test_axis_is_an_alias_of_dim(name, call_dim, call_axis):
    np.testing.assert_array_equal(call_dim(Tensor(X)).data, call_axis(Tensor(X)).data)


@pytest.mark.parametrize("call", [lambda a: a.sum(dim=0, axis=0), lambda a: a.mean(keepdim=True, keepdims=True),
                                  lambda a: a.cumsum(dim=0, axis=1), lambda a: F.softmax(a, dim=0, axis=0),
                                  lambda a: fs.cat([a], dim=0, axis=0)])
def test_dim_and_axis_together_is_an_error(call):
    with pytest.raises(TypeError, match=r"got both .*=.*=; pass one"):
        call(Tensor(X))


# ---------------------------------------------------------------- max / min

@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_with_dim_return_values_and_indices_like_torch(torch_parity, largest, keepdim):
    x = np.round(randn(4, 6) * 2) / 2  # ties: the gradient goes to the index returned (the first)
    name = "max" if largest else "min"
    ours = torch_parity(lambda a: getattr(a, name)(dim=1, keepdim=keepdim).values,
                        lambda a: getattr(a, name)(dim=1, keepdim=keepdim).values, x)
    theirs = getattr(torch.from_numpy(x), name)(dim=1, keepdim=keepdim)
    got = getattr(Tensor(x), name)(dim=1, keepdim=keepdim)
    assert type(got).__name__ == name and got.indices.dtype == np.int64
    np.testing.assert_array_equal(got.indices.data, theirs.indices.numpy())
    values, indices = got  # unpacks like torch.return_types
    np.testing.assert_array_equal(values.data, ours[0].data)


def test_max_min_without_dim_keep_numpy_amax_meaning(torch_parity):
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])  # ties share the gradient, as torch.amax
    torch_parity(lambda a: a.max(1), lambda a: torch.amax(a, 1), x)
    torch_parity(lambda a: a.max(axis=1, keepdim=True), lambda a: torch.amax(a, 1, keepdim=True), x)
    torch_parity(lambda a: a.min(), lambda a: a.min(), x)


def test_max_with_dim_errors():
    with pytest.raises(TypeError, match="max: dim= takes one dim"):
        Tensor(X).max(dim=(0, 1))
    with pytest.raises(TypeError, match="min: got dim= and an axis too"):
        Tensor(X).min(1, dim=1)
    with pytest.raises(ValueError, match=r"max: axis 3 is out of range .*\(3, 4, 5\)"):
        Tensor(X).max(dim=3)


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("dim, keepdim", [(None, False), (None, True), (0, False), (-1, True)])
def test_argmax_argmin_like_torch(name, dim, keepdim):
    x = np.round(randn(3, 4, 5))  # ties: the first index, as torch
    got = getattr(Tensor(x), name)(dim=dim, keepdim=keepdim)
    want = getattr(torch.from_numpy(x), name)(dim=dim, keepdim=keepdim)
    assert got.dtype == np.int64 and got.shape == tuple(want.shape)
    np.testing.assert_array_equal(got.data, want.numpy())


def test_argmax_of_an_empty_dim_names_the_op():
    with pytest.raises(ValueError, match=r"argmin: the tensor of shape \(2, 0\) is empty"):
        Tensor(np.zeros((2, 0))).argmin(dim=1)


# ---------------------------------------------------------------- size, numbers

def test_size_numel_dim_like_torch():
    x, t = Tensor(X), torch.from_numpy(X)
    assert x.size() == tuple(t.size()) and x.size(1) == t.size(1) and x.size(-1) == t.size(-1)
    assert x.numel() == t.numel() and x.dim() == t.dim()
    assert x.size == 60 and isinstance(x.size, int)  # NumPy's attribute still holds
    with pytest.raises(IndexError, match=r"size: dim 3 is out of range for a tensor of shape \(3, 4, 5\)"):
        x.size(3)


def test_python_numbers_from_one_element_tensors():
    assert float(Tensor([[2.5]])) == 2.5 and int(Tensor(-2.7)) == -2 and int(Tensor([7])) == 7
    assert operator.index(Tensor(3)) == 3 and [10, 20, 30][Tensor(1)] == 20 and range(Tensor(3)) == range(3)
    assert np.arange(5)[Tensor([1, 3])].tolist() == [1, 3]  # a many-element index is still an array
    with pytest.raises(ValueError, match=r"float: a tensor of shape \(2,\) \(2 elements\) cannot be converted"):
        float(Tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="index: only integer tensors of one element"):
        operator.index(Tensor(2.0))


# ---------------------------------------------------------------- casts and clone

def test_clone_is_a_differentiable_copy(torch_parity):
    torch_parity(lambda a: a.clone() * 3, lambda a: a.clone() * 3, X)
    x = Tensor(X)
    y = x.clone()
    y.data[0, 0, 0] = 100.0
    assert x.data[0, 0, 0] != 100.0


def test_float_casts_stay_in_the_graph():
    x = Tensor(X, requires_grad=True, dtype=np.float64)
    y = x.float()
    assert y.dtype == np.float32 and y.requires_grad
    (y * 2).sum().backward()
    assert x.grad.dtype == np.float64 and np.all(x.grad == 2)
    h = Tensor(X, dtype=np.float32)
    assert h.half().dtype == np.float16 and h.double().dtype == np.float64 and h.to(np.float64).dtype == np.float64
    assert h.float() is h and h.to("float32") is h and h.to(np.float32, copy=True) is not h


def test_integer_casts_leave_the_graph_like_torch():
    x = Tensor(np.array([1.7, -2.2, 0.0]), requires_grad=True)
    want = torch.tensor([1.7, -2.2, 0.0])
    for ours, theirs in [(x.long(), want.long()), (x.int(), want.int()), (x.bool(), want.bool())]:
        assert not ours.requires_grad and ours.tolist() == theirs.tolist()
    assert x.long().dtype == np.int64 and x.int().dtype == np.int32 and x.bool().dtype == np.bool_
    assert x.to(Tensor([1, 2])).dtype == np.int64  # to(other): other's dtype


@pytest.mark.parametrize("args, kwargs, match", [
    ((object(),), {}, "to: <object object at .*> is neither a device nor a dtype"),
    (("U5",), {}, "to: a Tensor cannot hold dtype <U5"),
])
def test_to_errors(args, kwargs, match):
    with pytest.raises(TypeError, match=match):
        Tensor(X).to(*args, **kwargs)


# ---------------------------------------------------------------- fs.tensor and *_like

@pytest.mark.parametrize("data", [1.5, [1.0, 2.0], [1, 2], 7, True, [[True, False]], np.ones(3),
                                  np.ones(2, np.float32), np.arange(3, dtype=np.int32), np.float64(2.5)])
def test_tensor_infers_dtype_like_torch_tensor(data):
    ours, theirs = fs.tensor(data), torch.tensor(data)
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
    assert ours.tolist() == theirs.tolist()


def test_tensor_copies_and_takes_dtype_and_requires_grad():
    a = np.ones(3)
    t = fs.tensor(a, dtype=np.float32, requires_grad=True)
    assert t.dtype == np.float32 and t.requires_grad
    a[0] = 5
    assert fs.tensor(a).data is not a and fs.tensor(a).tolist() == [5.0, 1.0, 1.0]
    src = Tensor([1.0, 2.0], requires_grad=True) * 2
    copy = fs.tensor(src)
    assert not copy.requires_grad and copy.data is not src.data
    assert fs.tensor([fs.tensor(1.0), fs.tensor(2.0)]).tolist() == [1.0, 2.0]


@pytest.mark.parametrize("like, torch_like, args", [(fs.zeros_like, torch.zeros_like, ()),
                                                    (fs.ones_like, torch.ones_like, ()),
                                                    (fs.full_like, torch.full_like, (2.5,))])
@pytest.mark.parametrize("source", [np.ones((2, 3)), np.ones((2, 3), np.float32), np.arange(4)])
def test_like_factories_match_torch(like, torch_like, args, source):
    for src, kw in [(Tensor(source, dtype=source.dtype), {}), (source, {}), (source, {"dtype": np.float64})]:
        ours = like(src, *args, **kw)
        theirs = torch_like(torch.from_numpy(source), *args, **{k: torch.float64 for k in kw})
        assert ours.shape == tuple(theirs.shape) and str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
        np.testing.assert_array_equal(ours.data, theirs.numpy())
    assert like(np.ones(2), *args, requires_grad=True).requires_grad


def test_random_like_factories_draw_from_the_seeded_generator():
    source = Tensor(np.zeros((3, 2)), dtype=np.float64)
    fs.manual_seed(0)
    a, b = fs.rand_like(source), fs.randn_like(source, dtype=np.float32)
    fs.manual_seed(0)
    assert np.array_equal(fs.rand_like(source).data, a.data) and a.dtype == np.float64 and a.shape == (3, 2)
    assert b.dtype == np.float32 and 0 <= a.data.min() and a.data.max() < 1
    with pytest.raises(TypeError, match="rand_like: random draws need a floating dtype, got int64"):
        fs.rand_like(Tensor([1, 2]))
    with pytest.raises(TypeError, match="randn_like: random draws need a floating dtype, got int32"):
        fs.randn_like(np.zeros(2), dtype=np.int32)


# ---------------------------------------------------------------- pow, matmul; arrays and lists as constants

def test_pow_and_matmul_by_name(torch_parity):
    torch_parity(lambda a, b: a.matmul(b).pow(2), lambda a, b: a.matmul(b).pow(2), randn(3, 4), randn(4, 2))
    torch_parity(lambda a, b: a.abs().pow(b), lambda a, b: a.abs().pow(b), randn(3, 4), randn(4))


def test_lists_and_arrays_are_constants_in_tensor_methods(torch_parity):
    w = randn(4, 2)
    torch_parity(lambda a: a.matmul(w.tolist()), lambda a: a.matmul(torch.from_numpy(w)), randn(3, 4))
    torch_parity(lambda a: a.gather(1, [[0, 0], [2, 1], [3, 3]]),
                 lambda a: a.gather(1, torch.tensor([[0, 0], [2, 1], [3, 3]])), randn(3, 4))
    torch_parity(lambda a: a.gather(0, np.array([[2, 0, 1, 1]])),
                 lambda a: a.gather(0, torch.tensor([[2, 0, 1, 1]])), randn(3, 4))
    torch_parity(lambda a: a.scatter_add(0, [[1, 1]], [[1.0, 2.0]]),
                 lambda a: a.scatter_add(0, torch.tensor([[1, 1]]), torch.tensor([[1.0, 2.0]], dtype=a.dtype)),
                 randn(2, 2))
    torch_parity(lambda a: a.index_add(1, np.array([0, 0]), np.ones((2, 2))),
                 lambda a: a.index_add(1, torch.tensor([0, 0]), torch.ones(2, 2, dtype=a.dtype)), randn(2, 3))
    torch_parity(lambda a: a.pow([1.0, 2.0, 3.0]), lambda a: a.pow(torch.tensor([1.0, 2.0, 3.0], dtype=a.dtype)),
                 randn(2, 3))
