"""In-place ops (``+=``, ``-=``, ``*=``, ``/=``, ``x[idx] = v``, ``zero_``, ``fill_``) and the version counter:
PyTorch's rules, each error case and each case that must work, values and gradients checked against torch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from from_scratch import Tensor, nn, no_grad, optim

INPLACE_ERROR = "modified by an inplace operation"


def _pair(a, requires_grad=True):
    a = np.asarray(a, dtype=np.float64)
    return Tensor(a.copy(), requires_grad=requires_grad, dtype=np.float64), torch.tensor(a, requires_grad=requires_grad)


def _same_as_torch(results, leaves):
    """``results`` = [(our loss, our changed tensor), (torch's loss, torch's tensor)]: the changed tensors
    hold the same values, and after backward every (ours, torch's) leaf pair has the same gradient."""
    (ours, x), (theirs, tx) = results
    np.testing.assert_allclose(x.data, tx.detach().numpy())
    ours.backward()
    theirs.backward()
    for leaf, tleaf in leaves:
        np.testing.assert_allclose(leaf.grad, tleaf.grad.numpy())


# ---------------------------------------------------------------- the version counter and backward's check

def _issue_graph():
    w = Tensor([[1., 2.], [3., 4.]], requires_grad=True, dtype=np.float64)
    x = Tensor([[1., -1.]], requires_grad=True, dtype=np.float64)
    return w, x, (x @ w).tanh().sum()


def test_an_optimizer_step_between_forward_and_backward_is_an_error_naming_the_op():
    """The issue's case: the gradient silently came out at the new weights."""
    w, x, y = _issue_graph()
    w.grad = np.ones((2, 2))
    optim.SGD([w], lr=0.5).step()
    w.grad = None
    assert w._version == 1
    with pytest.raises(RuntimeError, match=INPLACE_ERROR) as err:
        y.backward()
    assert "MatMul" in str(err.value) and "SGD.step" in str(err.value) and "version 1" in str(err.value)
    assert x.grad is None  # nothing was half-done


@pytest.mark.parametrize("make", [lambda ps: optim.Adam(ps), lambda ps: optim.AdamW(ps), lambda ps: optim.RMSprop(ps),
                                  lambda ps: optim.Adagrad(ps),
                                  lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9)])
def test_every_optimizer_step_counts_as_an_inplace_change(make):
    w, x, y = _issue_graph()
    w.grad = np.ones((2, 2))
    opt = make([w])
    opt.step()
    with pytest.raises(RuntimeError, match=type(opt).__name__ + ".step"):
        y.backward()


def test_load_state_dict_between_forward_and_backward_is_an_error():
    layer = nn.Linear(2, 2)
    y = layer(Tensor(np.ones((1, 2)))).sum()
    layer.load_state_dict(nn.Linear(2, 2).state_dict())
    with pytest.raises(RuntimeError, match="load_state_dict"):
        y.backward()


def test_the_usual_training_loop_is_untouched():
    """Step after backward, then a new forward: the versions have moved on, nothing to report."""
    layer = nn.Linear(3, 1)
    opt = optim.Adam(layer.parameters(), lr=0.1)
    x = Tensor(np.random.default_rng(0).standard_normal((8, 3)))
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = (layer(x) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert layer.weight._version == 5


def test_a_change_to_an_input_backward_does_not_read_is_allowed():
    """Add's gradient does not depend on its inputs' values (PyTorch: no error either)."""
    w, tw = _pair([1., 2.])
    c, tc = _pair([5., 6.], requires_grad=False)
    y, ty = (w + c) * w, (tw + tc) * tw
    c += 1
    tc += 1
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(w.grad, tw.grad.numpy())


def test_changing_a_saved_output_is_an_error():
    """exp keeps its output for the gradient; changing it in place would poison it (PyTorch raises too)."""
    w, tw = _pair([0.5, 1.0])
    y = w.exp()
    with no_grad():
        y += 1
    with pytest.raises(RuntimeError, match="Exp needs its output"):
        y.sum().backward()
    ty = tw.exp()
    with torch.no_grad():
        ty += 1
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        ty.sum().backward()


def test_views_share_the_version_counter():
    base = Tensor(np.zeros((2, 3)))
    views = [base.reshape(6), base.T, base[0], base.detach(), base.unsqueeze(0), base.expand(2, 2, 3)]
    base += 1
    assert [v._version for v in views] == [1] * len(views)
    views[2] += 1  # through a view: the base sees it, and so does every view
    np.testing.assert_array_equal(base.data, [[2, 2, 2], [1, 1, 1]])
    assert base._version == 2
    assert base[[0, 1]]._version == 0  # fancy indexing copies


def test_a_change_through_a_detached_view_is_caught():
    w, _ = _pair([[1., 2.], [3., 4.]])
    y = (w @ w).sum()
    d = w.detach()
    d += 1  # changes w's data (as in PyTorch, detach shares it)
    with pytest.raises(RuntimeError, match="MatMul needs its input"):
        y.backward()


# ---------------------------------------------------------------- rules of the in-place ops

def test_inplace_on_a_leaf_that_requires_grad_is_an_error_outside_no_grad():
    w, tw = _pair([1., 2.])
    for change in (lambda t: t.__iadd__(1), lambda t: t.__setitem__(0, 5.), lambda t: t.zero_(),
                   lambda t: t.fill_(2.), lambda t: t.__imul__(2)):
        with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
            change(w)
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            change(tw)
    np.testing.assert_array_equal(w.data, [1., 2.])
    assert w._version == 0
    with no_grad():
        w += 1
        w[0] = 7.
    np.testing.assert_array_equal(w.data, [7., 3.])
    assert w._version == 2 and w.is_leaf and w.requires_grad


@pytest.mark.parametrize("op", ["+=", "-=", "*=", "/="])
def test_inplace_arithmetic_on_a_non_leaf_is_recorded(op):
    """As PyTorch: a non-leaf changed in place records the change, and the gradient goes through it."""
    rng = np.random.default_rng(0)
    w, tw = _pair(rng.uniform(1, 2, (2, 3)))
    z, tz = _pair(rng.uniform(1, 2, (3,)))
    outs = []
    for x, y in ((w * 2, z), (tw * 2, tz)):
        before = x
        exec(f"x {op} y")
        assert x is before  # the same tensor object, changed
        outs.append(((x * x).sum(), x))
    _same_as_torch(outs, [(w, tw), (z, tz)])


def test_earlier_uses_of_a_changed_tensor_get_the_old_value_gradient():
    """b used a before a *= 3: b's gradient must reach w through the old a, not through the *= 3."""
    w, tw = _pair([1., 2.])
    grads = []
    for v in (w, tw):
        a = v + 0
        b = a + 1
        a *= 3
        (a + b).sum().backward()
        grads.append(v.grad)
    np.testing.assert_allclose(grads[0], grads[1].numpy())
    np.testing.assert_allclose(grads[0], [4., 4.])


def test_setitem_on_a_tensor_in_the_graph():
    rng = np.random.default_rng(1)
    w, tw = _pair(rng.standard_normal((3, 4)))
    v, tv = _pair(rng.standard_normal(4))
    results = []
    for a, b in ((w, v), (tw, tv)):
        h = a * 1.5
        h[1] = b * 2  # a row from another tensor
        h[:, 0] = 0.0  # a constant, broadcast
        h[[0, 2], 3] = b[:2]  # fancy indexing
        results.append(((h * h).sum(), h))
    _same_as_torch(results, [(w, tw), (v, tv)])


def test_setitem_into_a_constant_tensor_builds_a_graph():
    w, tw = _pair([1., 2., 3.])
    x, tx = Tensor(np.zeros((2, 3))), torch.zeros((2, 3), dtype=torch.float64)
    x[0] = w
    tx[0] = tw
    assert x.requires_grad and not x.is_leaf
    (x * x).sum().backward()
    (tx * tx).sum().backward()
    np.testing.assert_allclose(w.grad, tw.grad.numpy())


def test_zero_and_fill_on_non_leaves():
    w, tw = _pair([1., 2.])
    s, ts = _pair(3.0)
    for a, b in ((w, s), (tw, ts)):
        y = a * 2
        y.zero_()
        y2 = a * 1
        y2.fill_(b)
        (y + y2 * a).sum().backward()
    np.testing.assert_allclose(w.grad, tw.grad.numpy())
    np.testing.assert_allclose(s.grad, ts.grad.numpy())
    x = Tensor(np.ones(3))
    assert x.zero_() is x and not x.data.any()
    x.fill_(2.5)
    np.testing.assert_array_equal(x.data, [2.5] * 3)
    assert x._version == 2


def test_plain_tensors_change_in_place_without_a_graph():
    x = Tensor(np.arange(6.).reshape(2, 3))
    x += 1
    x *= Tensor(np.array([1., 2., 3.]))
    x[0, 0] = -1
    x[1] -= 1  # Python: view = x[1]; view -= 1; x[1] = view
    np.testing.assert_array_equal(x.data, [[-1., 4., 9.], [3., 9., 17.]])
    assert not x.requires_grad and x._version == 5 and x.dtype == np.float32


def test_inplace_keeps_shape_and_dtype():
    """PyTorch: the result must broadcast to the tensor, and an integer tensor cannot take a float result."""
    x = Tensor(np.ones(3))
    with pytest.raises(ValueError, match=r"\+=: the result has shape \(2, 3\), the tensor \(3,\)"):
        x += Tensor(np.ones((2, 3)))
    i = Tensor(np.array([1, 2, 3]))
    for op in ("i += 0.5", "i /= 2", "i *= Tensor([1.5, 1.5, 1.5])"):
        with pytest.raises(TypeError, match="cannot be stored in place in a int64 tensor"):
            exec(op)
    ti = torch.tensor([1, 2, 3])
    with pytest.raises(RuntimeError, match="can't be cast"):
        ti += 0.5
    i += 2
    i[0] = 7.9  # item assignment casts, as in PyTorch (and NumPy)
    np.testing.assert_array_equal(i.data, [7, 4, 5])
    assert i.dtype == np.int64


def test_inplace_on_a_view_in_the_graph_is_a_clear_error():
    w, _ = _pair([[1., 2.], [3., 4.]])
    h = w * 1
    row = h[0]
    with pytest.raises(RuntimeError, match="is a view .*GetItem"):
        row += 1
    h[0] = h[0] + 1  # the supported spelling
    h.sum().backward()
    np.testing.assert_array_equal(w.grad, np.ones((2, 2)))


def test_inplace_on_an_expanded_view_is_a_clear_error():
    x = Tensor(np.ones(3)).expand(2, 3)
    with pytest.raises(ValueError, match="read-only"):
        x += 1


def test_setitem_errors_name_the_shapes():
    x = Tensor(np.zeros((2, 3)))
    with pytest.raises(IndexError, match=r"setitem: .*tensor shape \(2, 3\)"):
        x[5] = 1.0
    with pytest.raises(ValueError, match=r"setitem: .*value shape \(4,\)"):
        x[0] = np.ones(4)


def test_backward_twice_through_an_inplace_graph_with_retain_graph():
    w, tw = _pair([1., 2.])
    for v in (w, tw):
        y = v * v
        y += v
        y.sum().backward(retain_graph=True)
        y.sum().backward()
    np.testing.assert_allclose(w.grad, tw.grad.numpy())
