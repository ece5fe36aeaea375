"""Issue 11's wrong answers, each kind as a test: gradients where PyTorch's are finite, fully masked attention
rows, type promotion, empty reductions, shape-op arguments, ``_creator``, and the written-down conventions.
(Zero-size inputs: test_zero_size.py; in-place ops and versions: test_inplace.py.)"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import from_scratch.functional as F
from from_scratch import Tensor, cat, manual_seed, nn, no_grad, where
from from_scratch.optim import clip_grad_norm_

TF = torch.nn.functional
INF = np.inf


def _pair(a):
    a = np.asarray(a, dtype=np.float64)
    return Tensor(a.copy(), requires_grad=True, dtype=np.float64), torch.tensor(a, requires_grad=True)


def _close(ours, theirs, what=""):
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    np.testing.assert_allclose(ours, theirs, rtol=1e-7, atol=1e-12, err_msg=what)


# ---------------------------------------------------------------- 1. finite gradients at constant data

@pytest.mark.parametrize("name", ["std", "var"])
@pytest.mark.parametrize("axis,keepdims,correction", [(None, False, 1), (0, False, 1), (1, True, 1), (1, False, 0),
                                                      ((0, 1), False, 1)])
def test_std_and_var_gradients_at_constant_data(name, axis, keepdims, correction):
    """x.std().backward() at constant x gave NaN; PyTorch gives 0 (and the usual gradient elsewhere)."""
    data = np.array([[3., 3., 3.], [1., 2., 4.], [5., 5., 5.]])
    x, tx = _pair(data)
    y = getattr(x, name)(axis=axis, keepdims=keepdims, correction=correction)
    dim = axis if axis is not None else None
    ty = getattr(tx, name)(dim=dim, keepdim=keepdims, correction=correction)
    _close(y.data, ty, "value")
    w = np.arange(1, y.data.size + 1, dtype=np.float64).reshape(y.shape)
    (y * w).sum().backward()
    (ty * torch.tensor(w)).sum().backward()
    assert np.isfinite(x.grad).all()
    _close(x.grad, tx.grad, "gradient")


def test_std_of_one_element_is_nan_as_in_pytorch():
    x, tx = _pair([3.])
    with np.errstate(all="ignore"):
        y = x.std()
        y.backward()
    with pytest.warns(UserWarning):
        ty = tx.std()
    ty.backward()
    assert np.isnan(y.item()) and np.isnan(ty.item())
    assert np.isnan(x.grad).all() and torch.isnan(tx.grad).all()


# ---------------------------------------------------------------- 2. fully masked attention rows

MASKS = {
    "additive -inf": np.array([[0., 0., -INF], [-INF, -INF, -INF]]),
    "boolean": np.array([[True, True, False], [False, False, False]]),
}


@pytest.mark.parametrize("kind", MASKS)
def test_sdpa_fully_masked_row_gives_zero_output_and_gradient(kind):
    rng = np.random.default_rng(0)
    (q, tq), (k, tk), (v, tv) = (_pair(rng.standard_normal(s)) for s in [(2, 2, 4), (2, 3, 4), (2, 3, 5)])
    mask = MASKS[kind]
    out, weights = F.scaled_dot_product_attention(q, k, v, mask=mask, return_weights=True)
    ref = TF.scaled_dot_product_attention(tq, tk, tv, attn_mask=torch.tensor(mask))
    _close(out.data, ref, "output")
    np.testing.assert_array_equal(out.data[:, 1], 0)
    np.testing.assert_array_equal(weights.data[:, 1], 0)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    ref.backward(torch.tensor(g))
    for ours, theirs, name in [(q, tq, "q"), (k, tk, "k"), (v, tv, "v")]:
        assert np.isfinite(ours.grad).all(), name
        _close(ours.grad, theirs.grad, f"d{name}")
    np.testing.assert_array_equal(q.grad[:, 1], 0)


def test_sdpa_trainable_additive_mask_gets_zero_gradient_on_a_fully_masked_row():
    rng = np.random.default_rng(1)
    (q, tq), (k, tk), (v, tv) = (_pair(rng.standard_normal(s)) for s in [(2, 4), (3, 4), (3, 4)])
    m, tm = _pair(MASKS["additive -inf"])
    out = F.scaled_dot_product_attention(q, k, v, mask=m)
    out.sum().backward()
    TF.scaled_dot_product_attention(tq, tk, tv, attn_mask=tm).sum().backward()
    _close(m.grad, tm.grad, "mask gradient")
    np.testing.assert_array_equal(m.grad[1], 0)


def test_a_finite_large_negative_mask_is_an_ordinary_score():
    """-1e9 (the tutorials' MASK_VALUE) everywhere in a row is not "fully masked": the row is not zeroed, as
    in PyTorch with that mask (softmax ignores the common shift; in float32 the scores round to one value)."""
    rng = np.random.default_rng(2)
    (q, tq), (k, tk), (v, tv) = (_pair(rng.standard_normal(s)) for s in [(2, 4), (3, 4), (3, 4)])
    mask = np.array([[0., 0., -1e9], [-1e9, -1e9, -1e9]])
    out = F.scaled_dot_product_attention(q, k, v, mask=mask)
    _close(out.data, TF.scaled_dot_product_attention(tq, tk, tv, attn_mask=torch.tensor(mask)))
    assert np.abs(out.data[1]).min() > 0


def _torch_mha(layer: nn.MultiHeadAttention, q, k, v, mask):
    """The same multi-head attention in PyTorch: projections, SDPA per head, output projection."""
    p = {n: torch.tensor(t.data, requires_grad=True) for n, t in layer.named_parameters()}

    def split(x):
        b, t, h = x.shape
        return x.reshape(b, t, layer.num_heads, h // layer.num_heads).transpose(1, 2)
    qh, kh, vh = (split(TF.linear(x, p[f"{n}_linear.weight"], p[f"{n}_linear.bias"]))
                  for x, n in ((q, "q"), (k, "k"), (v, "v")))
    ctx = TF.scaled_dot_product_attention(qh, kh, vh, attn_mask=torch.tensor(mask))
    ctx = ctx.transpose(1, 2).reshape(q.shape)
    return TF.linear(ctx, p["fc.weight"], p["fc.bias"]), p


@pytest.mark.parametrize("kind", MASKS)
@pytest.mark.parametrize("path", ["fused", "unfused"])
def test_multi_head_attention_fully_masked_rows(kind, path):
    """The fused node (k is v, no weights asked) and the unfused path follow the same rule as SDPA."""
    manual_seed(0)
    layer = nn.MultiHeadAttention(4, 2)
    for t in layer.parameters():
        t.data = t.data.astype(np.float64)
    rng = np.random.default_rng(3)
    (x, tx), (mem, tmem) = _pair(rng.standard_normal((2, 2, 4))), _pair(rng.standard_normal((2, 3, 4)))
    mask = MASKS[kind][None, None]
    if path == "fused":
        out = layer(x, mem, mem, mask=mask)
    else:
        out, _ = layer(x, mem, mem, mask=mask, return_weights=True)
    ref, params = _torch_mha(layer, tx, tmem, tmem, mask)
    _close(out.data, ref, "output")
    _close(out.data[:, 1], np.broadcast_to(layer.fc.bias.data, (2, 4)), "a fully masked query's output is fc(0)")
    g = rng.standard_normal(out.shape)
    out.backward(g)
    ref.backward(torch.tensor(g))
    _close(x.grad, tx.grad, "dx")
    _close(mem.grad, tmem.grad, "dmemory")
    for name, t in layer.named_parameters():
        _close(t.grad, params[name].grad, name)


def test_cached_decoder_with_a_source_hidden_entirely():
    """A source row whose every position is hidden: the cached decode_step and the full decoder agree, no NaN."""
    manual_seed(0)
    model = nn.Transformer(vocab_size=7, hidden_size=8, num_layers=2, num_heads=2, ff_size=16, max_len=10)
    model.eval()
    src = np.array([[3, 4, 5], [2, 2, 2]])
    src_mask = np.ones((2, 1, 1, 3), bool)
    src_mask[1] = False  # row 1 may see none of its source
    tgt = np.array([[1, 3, 4], [1, 6, 2]])
    with no_grad():
        memory = model.encode(src, src_mask)
        cache = model.init_cache()
        steps = [model.decode_step(tgt[:, i:i + 1], memory, src_mask, cache).data for i in range(3)]
        causal = np.tril(np.ones((3, 3), bool))[None, None]
        full = model(src, tgt, src_mask, causal).data
    for i, logits in enumerate(steps):
        assert np.isfinite(logits).all()
        np.testing.assert_allclose(logits, full[:, i], rtol=1e-4, atol=1e-5)
    additive = np.where(src_mask, 0.0, -np.inf).astype(np.float32)
    with no_grad():
        np.testing.assert_allclose(model(src, tgt, additive, causal).data, full, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- 3. type promotion

KINDS = {"int64": np.array([1, 2]), "int32": np.array([1, 2], np.int32), "bool": np.array([True, False]),
         "float32": np.array([1., 2.], np.float32), "float64": np.array([1., 2.])}
BINARY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b,
          "**": lambda a, b: a ** b, "@": lambda a, b: a @ b,
          "maximum": lambda a, b: a.maximum(b) if isinstance(a, Tensor) else torch.maximum(a, b),
          "minimum": lambda a, b: a.minimum(b) if isinstance(a, Tensor) else torch.minimum(a, b),
          "where": lambda a, b: (where if isinstance(a, Tensor) else torch.where)(
              Tensor(np.array([True, False])) if isinstance(a, Tensor) else torch.tensor([True, False]), a, b),
          "cat": lambda a, b: (cat if isinstance(a, Tensor) else torch.cat)([a, b])}
UNARY = ["exp", "log", "sqrt", "tanh", "sigmoid", "abs", "relu", "sum", "mean", "neg", "std", "var"]


def _dtype_or_error(fn) -> str:
    try:
        return str(fn().dtype).replace("torch.", "")
    except (RuntimeError, TypeError, ValueError):
        return "error"


def _ours(a: np.ndarray) -> Tensor:
    return Tensor(a, dtype=a.dtype)


@pytest.mark.parametrize("op", BINARY)
def test_tensor_tensor_promotion_matches_pytorch(op):
    f = BINARY[op]
    for (ka, a), (kb, b) in itertools.product(KINDS.items(), repeat=2):
        expected = _dtype_or_error(lambda: f(torch.tensor(a), torch.tensor(b)))
        if expected == "error":  # PyTorch refuses (bool - bool, int @ float): we may compute; not specified
            continue
        with np.errstate(all="ignore"):
            assert _dtype_or_error(lambda: f(_ours(a), _ours(b))) == expected, f"{ka} {op} {kb}"


@pytest.mark.parametrize("op", ["+", "-", "*", "/", "**"])
@pytest.mark.parametrize("scalar", [2, 0.5, True])
def test_tensor_scalar_promotion_matches_pytorch(op, scalar):
    """The issue's cases: int / 2, int * 1.5, int + 0.5, int ** 0.5 were float64; float32 op scalar stays float32."""
    f = BINARY[op]
    for ka, a in KINDS.items():
        for flip in (False, True):
            g = (lambda x: f(scalar, x)) if flip else (lambda x: f(x, scalar))
            expected = _dtype_or_error(lambda: g(torch.tensor(a)))
            if expected == "error" or (ka == "bool" and isinstance(scalar, bool) and op == "**"):
                continue
            with np.errstate(all="ignore"):
                assert _dtype_or_error(lambda: g(_ours(a))) == expected, f"{ka} {op} {scalar!r} flipped={flip}"


@pytest.mark.parametrize("name", UNARY)
def test_unary_and_reduction_promotion_matches_pytorch(name):
    for ka, a in KINDS.items():
        expected = _dtype_or_error(lambda: (-torch.tensor(a)) if name == "neg" else getattr(torch.tensor(a), name)())
        ours = _dtype_or_error(lambda: (-_ours(a)) if name == "neg" else getattr(_ours(a), name)())
        if expected == "error":  # PyTorch refuses the mean of integers; ours is the default float dtype
            assert ours in ("error", "float32", ka), f"{name}({ka})"
            continue
        assert ours == expected, f"{name}({ka})"


def test_the_issue_promotion_cases_are_float32():
    i = Tensor([1, 2, 3])
    for result in (i / 2, i * 1.5, i + 0.5, i ** 0.5, i.sqrt(), i.exp(), i / Tensor([2, 2, 2]), 1.5 * i,
                   Tensor(np.ones(3, np.float32)) * np.float64(2.0), i.mean()):
        assert result.dtype == np.float32
    assert (i + 1).dtype == np.int64 and (i * 2).dtype == np.int64


# ---------------------------------------------------------------- 4. empty reductions

@pytest.mark.filterwarnings("ignore:var")
def test_empty_reductions_match_pytorch():
    """The mean of nothing is NaN (it was 0), as is the variance; the sum is 0."""
    for shape, axis in [((0,), None), ((3, 0), 1), ((0, 3), 0), ((0, 3), 1), ((2, 0, 3), (0, 1))]:
        x, tx = Tensor(np.zeros(shape)), torch.zeros(shape)
        for name in ("sum", "mean", "var"):
            with np.errstate(all="ignore"):
                ours = getattr(x, name)(axis=axis)
            theirs = getattr(tx, name)() if axis is None else getattr(tx, name)(dim=axis)
            assert ours.dtype == np.float32
            np.testing.assert_array_equal(ours.data, theirs.numpy(), err_msg=f"{name} {shape} axis={axis}")


def test_max_over_an_empty_axis_is_a_clear_error():
    with pytest.raises(ValueError, match=r"max: cannot reduce over an empty axis \(tensor shape \(3, 0\)"):
        Tensor(np.zeros((3, 0))).max(axis=1)
    with pytest.raises(ValueError, match="min: cannot reduce"):
        Tensor(np.zeros(0)).min()
    assert Tensor(np.zeros((0, 3))).max(axis=1).shape == (0,)


# ---------------------------------------------------------------- 7. shape ops: PyTorch's rules, our messages

BAD_SHAPE_ARGS = {
    "chunk(0)": (lambda t: t.chunk(0), ValueError, "chunk: chunks must be a positive integer, got 0"),
    "chunk(-1)": (lambda t: t.chunk(-1), ValueError, "chunk: chunks must be a positive integer, got -1"),
    "chunk(2.5)": (lambda t: t.chunk(2.5), ValueError, "chunk: chunks must be a positive integer"),
    "split(0)": (lambda t: t.split(0), ValueError, "split: size must be positive .* got 0 for an axis of length 6"),
    "split(-1)": (lambda t: t.split(-1), ValueError, "split: size must be positive"),
    "split([2, 2])": (lambda t: t.split([2, 2]), ValueError, r"split: sizes \[2, 2\] must be non-negative and add up to 6"),
    "split([2, -1, 5])": (lambda t: t.split([2, -1, 5]), ValueError, "must be non-negative"),
    "split(2.5)": (lambda t: t.split(2.5), TypeError, "split: takes a piece size"),
    "expand(-1, 6)": (lambda t: t.expand(-1, 6), ValueError, "expand: .* -1 in a new leading dimension"),
    "expand(3)": (lambda t: t.expand(3), ValueError, r"expand: cannot broadcast \(6,\) to \(3,\)"),
    "expand fewer dims": (lambda t: t.reshape(2, 3).expand(3), ValueError, "expand: .* fewer dimensions"),
    "reshape(4, -1)": (lambda t: t.reshape(4, -1), ValueError, r"reshape: cannot reshape \(6,\)"),
    "reshape(-1, -1)": (lambda t: t.reshape(-1, -1), ValueError, "reshape: cannot reshape"),
    "reshape(2.0, 3)": (lambda t: t.reshape(2.0, 3), TypeError, "reshape: sizes must be integers"),
    "permute(0, 3)": (lambda t: t.reshape(2, 3).permute(0, 3), ValueError, "permute: .* is not a permutation"),
    "permute(0)": (lambda t: t.reshape(2, 3).permute(0), ValueError, "permute: .* is not a permutation"),
    "transpose(0, 3)": (lambda t: t.transpose(0, 3), ValueError, "transpose: axis 3 is out of range"),
    "squeeze(3)": (lambda t: t.squeeze(3), ValueError, "squeeze: axis 3 is out of range"),
    "unsqueeze(3)": (lambda t: t.unsqueeze(3), ValueError, "unsqueeze: axis 3 is out of range"),
    "cat([])": (lambda t: cat([]), ValueError, "cat: got no tensors"),
    "cat ndim": (lambda t: cat([t, t.reshape(2, 3)]), ValueError, "cat: shapes"),
    "t[7]": (lambda t: t[7], IndexError, "getitem: index 7 is out of bounds"),
    "t[1.5]": (lambda t: t[1.5], IndexError, "getitem: only integers"),
    "split axis 3": (lambda t: t.split(2, axis=3), ValueError, "split: axis 3 is out of range"),
}


@pytest.mark.parametrize("case", BAD_SHAPE_ARGS)
def test_shape_ops_reject_bad_arguments_as_pytorch_does(case):
    fn, error, message = BAD_SHAPE_ARGS[case]
    with pytest.raises(error, match=message):
        fn(Tensor(np.arange(6.)))
    with pytest.raises((RuntimeError, IndexError, TypeError, ValueError)):  # PyTorch refuses it too
        torch_fn = {"cat([])": lambda t: torch.cat([]), "cat ndim": lambda t: torch.cat([t, t.reshape(2, 3)])}.get(case)
        (torch_fn or (lambda t: fn(_TorchAsOurs(t))))(torch.arange(6.))


class _TorchAsOurs:
    """A torch tensor answering to our spelling (axis=) so one lambda drives both."""

    def __init__(self, t):
        self.t = t

    def __getattr__(self, name):
        attr = getattr(self.t, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            if "axis" in kwargs:
                kwargs["dim"] = kwargs.pop("axis")
            out = attr(*args, **kwargs)
            return _TorchAsOurs(out) if isinstance(out, torch.Tensor) else out
        return call

    def __getitem__(self, index):
        return self.t[index]


@pytest.mark.parametrize("n,arg,op", [(6, 4, "chunk"), (6, 3, "chunk"), (5, 2, "chunk"), (0, 3, "chunk"),
                                      (0, 2, "split"), (0, 0, "split"), (7, 3, "split"), (6, [1, 0, 5], "split")])
def test_split_and_chunk_piece_sizes_match_pytorch(n, arg, op):
    ours = [p.shape for p in getattr(Tensor(np.arange(float(n))), op)(arg)]
    theirs = [tuple(p.shape) for p in getattr(torch.arange(float(n)), op)(arg)]
    assert ours == theirs


def test_squeeze_takes_a_tuple_of_axes():
    x = Tensor(np.zeros((1, 3, 1, 2)))
    assert x.squeeze((0, 2)).shape == (3, 2)
    assert x.squeeze((0, 1)).shape == (3, 1, 2)  # a named axis of length > 1 stays, as in PyTorch
    assert x.squeeze().shape == (3, 2)


# ---------------------------------------------------------------- 8. the tutorial's _creator

def test_creator_is_the_function_that_made_the_tensor():
    a = Tensor([1., 2.], requires_grad=True)
    b = a * 2
    c = b.sum()
    assert a._creator is None and b._creator is b._ctx and c._creator is c._ctx
    assert type(b._creator).__name__ == "Mul" and b._creator.parents[0] is a
    assert c._creator.parents == (b,)


# ---------------------------------------------------------------- conventions written down

def test_cross_entropy_with_every_target_ignored_is_nan_with_zero_gradient_as_pytorch():
    rng = np.random.default_rng(4)
    x, tx = _pair(rng.standard_normal((3, 4)))
    target = np.full(3, -100)
    for ours, theirs in [(F.cross_entropy, TF.cross_entropy), (F.nll_loss, TF.nll_loss)]:
        x.grad, tx.grad = None, None
        with np.errstate(all="ignore"):
            loss = ours(x, target, ignore_index=-100)
        ref = theirs(tx, torch.tensor(target), ignore_index=-100)
        assert np.isnan(loss.item()) and torch.isnan(ref)
        loss.backward()
        ref.backward()
        _close(x.grad, tx.grad)
    partly = np.array([1, -100, 2])
    _close(F.cross_entropy(x, partly, ignore_index=-100).data, TF.cross_entropy(tx, torch.tensor(partly)))


def test_clip_grad_norm_with_a_nan_gradient_leaves_the_gradients_alone():
    """Our convention (PyTorch instead multiplies every gradient by NaN): the norm is NaN, the step should be skipped."""
    a, b = Tensor(np.ones(2), requires_grad=True), Tensor(np.ones(2), requires_grad=True)
    a.grad, b.grad = np.array([np.nan, 1.]), np.array([3., 4.])
    total = clip_grad_norm_([a, b], 1.0)
    assert np.isnan(total)
    np.testing.assert_array_equal(b.grad, [3., 4.])
