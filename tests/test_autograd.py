"""The backward walk: seeds, accumulation, freed graphs, grad modes, anomaly detection, deep graphs, dtypes."""
import numpy as np
import pytest

import from_scratch as fs
import from_scratch.functional as F
from from_scratch import Function, Tensor
from from_scratch.autograd import ops, special
from from_scratch.testing import gradcheck


def leaf(*values, dtype=np.float64):
    return Tensor(np.array(values, dtype=dtype), requires_grad=True, dtype=dtype)


# ---------------------------------------------------------------- seeding backward

def test_backward_on_non_scalar_needs_a_grad():
    x = leaf(1.0, 2.0)
    with pytest.raises(RuntimeError, match=r"grad can be implied only for a one-element tensor, .*shape \(2,\)"):
        (x * 2).backward()
    (x * 2).backward(np.array([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad, [2, 20])
    with pytest.raises(ValueError, match=r"backward: grad of shape \(3,\) for a tensor of shape \(2,\)"):
        (x * 2).backward(np.ones(3))


def test_backward_without_grad_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).sum().backward()


def test_one_element_and_leaf_backward():
    x = leaf(3.0)
    (x * x).backward()  # shape (1,): one element, grad implied
    x.backward(Tensor([0.5], dtype=np.float64))  # a leaf adds the seed to its own grad
    np.testing.assert_array_equal(x.grad, [6.5])


def test_only_leaves_keep_grads_and_constants_get_none():
    x, c = leaf(1.0, 2.0), Tensor([3.0, 4.0], dtype=np.float64)
    y = x * c
    (y * y).sum().backward()
    assert y.grad is None and c.grad is None
    np.testing.assert_allclose(x.grad, 2 * x.data * c.data ** 2)


# ---------------------------------------------------------------- accumulation and shared subexpressions

def test_grads_accumulate_across_backward_calls_until_zeroed():
    x = leaf(1.0, -2.0)
    for _ in range(3):
        (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, 3 * 2 * x.data)
    x.zero_grad()
    assert x.grad is None


def test_shared_subexpressions_sum_their_gradients():
    x = leaf(0.5, 1.5)
    a = x * 2  # used three times below
    y = a * a + a.exp() - a
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * (2 * a.data + np.exp(a.data) - 1))
    z = leaf(2.0)
    (z * z * z + z).backward()  # the same leaf four times
    np.testing.assert_allclose(z.grad, [3 * 4 + 1])


def test_grad_is_an_own_copy():
    x = leaf(1.0, 2.0)
    x.sum().backward()  # Sum's gradient is a read-only broadcast view
    x.grad += 1  # must be writable and not shared
    x.sum().backward()
    np.testing.assert_array_equal(x.grad, [3, 3])


# ---------------------------------------------------------------- freed graphs

def test_second_backward_through_a_freed_graph_is_a_clear_error():
    x = leaf(1.0, 2.0)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time; .*retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = leaf(1.0, 2.0)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.copy()
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * first)
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_a_graph_sharing_a_freed_part_is_refused():
    x = leaf(1.0)
    h = x * 3
    h.sum().backward()
    with pytest.raises(RuntimeError, match="second time"):
        (h * 2).sum().backward()


def test_backward_frees_saved_arrays():
    x = leaf(1.0, 2.0)
    y = x * x
    ctx = y._ctx
    y.sum().backward()
    assert ctx.released and not hasattr(ctx, "a") and not hasattr(ctx, "parents")


# ---------------------------------------------------------------- deep graphs

def test_a_100000_op_chain_back_propagates():
    x = leaf(1.0, 2.0)
    y = x
    for _ in range(100_000):
        y = y + 1.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1, 1])
    np.testing.assert_array_equal(y.data, x.data + 100_000)


def test_a_deep_unreleased_graph_can_be_dropped():
    y = leaf(1.0)
    for _ in range(100_000):
        y = y * 1.0
    del y  # freeing the chain must not overflow the C stack


# ---------------------------------------------------------------- grad modes

def test_no_grad_context_records_nothing():
    x = leaf(1.0)
    assert fs.is_grad_enabled()
    with fs.no_grad():
        assert not fs.is_grad_enabled()
        y = x * 2 + x.exp()
        with fs.enable_grad():
            z = x * 2
    assert fs.is_grad_enabled()
    assert not y.requires_grad and y._ctx is None
    assert z.requires_grad and z._ctx is not None


@pytest.mark.parametrize("decorator", [fs.no_grad(), fs.no_grad], ids=["called", "bare"])
def test_no_grad_decorator(decorator):
    @decorator
    def step(t):
        """Doc."""
        assert not fs.is_grad_enabled()
        return t * 2

    out = step(leaf(1.0))
    assert not out.requires_grad and out._ctx is None and fs.is_grad_enabled()
    assert step.__doc__ == "Doc."


def test_grad_mode_is_restored_after_an_exception():
    with pytest.raises(KeyError):
        with fs.no_grad():
            raise KeyError
    assert fs.is_grad_enabled()


def test_ops_on_constants_record_nothing():
    a, b = Tensor([1.0]), Tensor([2.0])
    out = (a * b).exp()
    assert not out.requires_grad and out._ctx is None


# ---------------------------------------------------------------- anomaly detection

def test_detect_anomaly_names_the_op_in_forward():
    x = leaf(-1.0, 2.0)
    assert np.isnan(x.log().data[0])  # off: NaN flows silently (no NumPy warning either, as in PyTorch)
    with fs.detect_anomaly(), pytest.raises(FloatingPointError, match=r"Log\.forward produced NaN or inf"):
        with np.errstate(invalid="ignore"):
            x.log()
    with fs.detect_anomaly(), pytest.raises(FloatingPointError, match=r"Log\.forward"):
        with np.errstate(invalid="ignore"):
            leaf(-1.0).sum().log()  # a 0-d result is checked too


def test_detect_anomaly_names_the_op_in_backward():
    x = leaf(0.0, 4.0)
    with fs.detect_anomaly():
        y = x.sqrt().sum()  # forward is finite, d sqrt(x)/dx is inf at 0
        with pytest.raises(FloatingPointError, match=r"Sqrt\.backward produced NaN or inf"):
            with np.errstate(divide="ignore"):
                y.backward()
    assert not fs.autograd.function.GradMode.anomaly


# ---------------------------------------------------------------- custom Functions

class Cube(Function):
    def forward(self, a, scale=1.0):
        self.a, self.scale = a, scale
        return scale * a ** 3

    def backward(self, g):
        return g * 3 * self.scale * self.a ** 2


def test_custom_function():
    x = leaf(1.0, 2.0)
    y = Cube.apply(x, scale=2.0)
    assert y._ctx.needs_input_grad == (True,)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [6, 24])
    assert gradcheck(lambda t: Cube.apply(t, scale=0.5), [leaf(0.3, -1.2)])


def test_backward_returning_a_wrong_shape_is_named():
    class Bad(Function):
        def forward(self, a):
            return a.sum()

        def backward(self, g):
            return np.ones(5)

    with pytest.raises(RuntimeError, match=r"Bad\.backward returned a gradient of shape \(5,\) for an input of shape "
                                           r"\(2,\)"):
        Bad.apply(leaf(1.0, 2.0)).backward()


# ---------------------------------------------------------------- float32 stays float32 everywhere

def _graph(root):
    seen, stack, ctxs = set(), [root], []
    while stack:
        t = stack.pop()
        if t._ctx is None or id(t) in seen:
            continue
        seen.add(id(t))
        ctxs.append(t._ctx)
        stack.extend(t._ctx.parents)
    return ctxs


def test_float32_graph_of_every_op_never_upcasts():
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 4)), requires_grad=True)
    b = Tensor(rng.uniform(0.5, 1.5, 4), requires_grad=True)
    c64 = rng.standard_normal(4)  # float64 constants must not drag the graph to float64
    h = ((x @ w + b) * c64 - 1.5) / (b + 1) + (b ** 2) ** x.tanh().abs() + (-x).exp().sqrt().log()
    h = h.sigmoid().relu().clip(0.1, 0.9).maximum(x).minimum(3.0)
    h = fs.where(x.data > 0, h, c64) + h.masked_fill(x.data < -1, 0.0)  # (2, 3, 4)
    h = fs.cat([h, h[:, ::-1], h[[0, 0]]], axis=0).permute(1, 0, 2).swapaxes(0, 1).transpose().reshape(-1, 12)
    h = h.sum(0, keepdims=True).expand(6, 12) + h.max(-1, keepdims=True) + h.min() + h.var(0)  # (6, 12)
    h = fs.stack(h.split(2, axis=0)).flatten(1)[..., None, :].squeeze(1) @ fs.ones(24).unsqueeze(-1)  # (3, 1)
    logits = x.reshape(6, 4) * h.mean() + b.broadcast_to((6, 4))
    loss = (F.cross_entropy(logits, np.array([0, 1, 2, 3, 0, 1]), label_smoothing=0.1)
            + F.log_softmax(logits).mean() + F.softmax(logits).max() + F.gelu(logits).mean()
            + F.gelu(logits, approximate="tanh").sum() + special.Erf.apply(logits).sum()
            + F.layer_norm(logits, b, b).sum() + F.binary_cross_entropy(logits.sigmoid(), 0.5 * np.ones((6, 4)))
            + F.binary_cross_entropy_with_logits(logits, np.ones((6, 4))) + F.mse_loss(logits, np.tile(c64, (6, 1)))
            + F.nll_loss(F.log_softmax(logits), np.array([1, 1, 1, 1, 1, 1])) + F.embedding([0, 2], w).sum()
            + F.scaled_dot_product_attention(x, x, x, mask=F.create_causal_mask(3)[0]).sum())
    ctxs = _graph(loss)
    used = {type(c).__name__ for c in ctxs}
    primitives = {name for name, cls in vars(ops).items() if isinstance(cls, type) and issubclass(cls, Function)
                  and cls is not Function
                  and not name.startswith("_")}
    everything = primitives | {"Softmax", "LogSoftmax", "CrossEntropy", "LayerNorm", "BinaryCrossEntropy",
                               "BCEWithLogits", "Erf", "Erfc"}
    assert everything <= used, f"not exercised: {everything - used}"
    seen_dtypes = set()
    for ctx in ctxs:  # check every gradient that flows, into and out of every op
        def checked(g, ctx=ctx, backward=ctx.backward):
            grads = backward(g)
            for out in (g, *(grads if isinstance(grads, tuple) else (grads,))):
                if out is not None:
                    seen_dtypes.add((type(ctx).__name__, np.asarray(out).dtype))
            return grads
        ctx.backward = checked
    assert loss.dtype == np.float32
    loss.backward()
    assert {d for _, d in seen_dtypes} == {np.dtype(np.float32)}, sorted(d for d in seen_dtypes if d[1] != np.float32)
    for t in (x, w, b):
        assert t.grad.dtype == np.float32 and np.isfinite(t.grad).all()
