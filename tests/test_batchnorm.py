"""BatchNorm1d/2d against torch in float64: training outputs and every gradient, running statistics and
state_dict over several steps (momentum, cumulative average), eval mode, options, and bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import from_scratch as fs
import from_scratch.functional as F
from from_scratch import nn

rng = np.random.default_rng(0)

CASES = [(nn.BatchNorm1d, torch.nn.BatchNorm1d, (6, 4)), (nn.BatchNorm1d, torch.nn.BatchNorm1d, (5, 4, 3)),
         (nn.BatchNorm2d, torch.nn.BatchNorm2d, (3, 4, 5, 2))]


def _state(module) -> dict:
    return {k: np.asarray(getattr(v, "numpy", lambda: v)()) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("ours_cls, theirs_cls, shape", CASES)
@pytest.mark.parametrize("options", [{}, dict(momentum=0.5, eps=1e-3), dict(momentum=None), dict(affine=False),
                                     dict(track_running_stats=False)])
def test_training_steps_then_eval_match_torch(torch_parity, ours_cls, theirs_cls, shape, options):
    ours, theirs = ours_cls(4, **options), theirs_cls(4, **options)
    if options.get("affine", True):  # non-trivial scale and shift, copied by name
        with torch.no_grad():
            theirs.weight.uniform_(0.5, 1.5)
            theirs.bias.uniform_(-1, 1)
    for step in range(3):  # training: batch statistics, outputs and every gradient (input, weight, bias)
        x = rng.standard_normal(shape) * 2 + step
        torch_parity(ours, theirs, x)
        mine, ref = _state(ours), _state(theirs)
        assert list(mine) == list(ref)  # running_mean, running_var, num_batches_tracked: PyTorch's names
        for k in ref:
            np.testing.assert_allclose(mine[k], ref[k], rtol=1e-10, err_msg=k)
    ours.eval(), theirs.eval()
    torch_parity(ours, theirs, rng.standard_normal(shape))  # eval: running statistics (or batch ones, untracked)


def test_state_dict_buffers_and_round_trip_through_torch():
    ours, theirs = nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert ours.num_batches_tracked.dtype == np.int64 and ours.running_var.dtype == np.float32
    assert [n for n, _ in ours.named_parameters()] == ["weight", "bias"]
    assert {n for n, _ in ours.named_buffers()} == {"running_mean", "running_var", "num_batches_tracked"}
    theirs.train()(torch.randn(4, 3, 2, 2) * 3 + 1)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    assert int(ours.num_batches_tracked.item()) == 1
    np.testing.assert_allclose(ours.running_var.numpy(), theirs.running_var.numpy(), rtol=1e-6)
    assert "running_mean" not in nn.BatchNorm1d(3, track_running_stats=False).state_dict()


def test_running_variance_is_unbiased_and_momentum_none_is_a_cumulative_average():
    bn = nn.BatchNorm1d(1, momentum=None)
    batches = [np.array([[1.0], [3.0]]), np.array([[0.0], [4.0], [8.0]])]
    for b in batches:
        bn(fs.Tensor(b))
    # cumulative average of the batch means (2, 4) and unbiased variances (2, 16), from the initial 0 and 1
    np.testing.assert_allclose(bn.running_mean.numpy(), [3.0], rtol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), [9.0], rtol=1e-6)


def test_eval_uses_running_statistics_and_reset():
    bn = nn.BatchNorm2d(2).eval()
    bn.running_mean.data = np.array([1.0, -1.0], np.float32)
    bn.running_var.data = np.array([4.0, 0.25], np.float32)
    x = rng.standard_normal((2, 2, 3, 3)).astype(np.float32)
    expected = (x - np.array([1, -1]).reshape(1, 2, 1, 1)) / np.sqrt(np.array([4, 0.25]).reshape(1, 2, 1, 1) + 1e-5)
    out = bn(fs.Tensor(x))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5)
    bn.reset_running_stats()
    np.testing.assert_array_equal(bn.running_var.numpy(), [1, 1])


def test_functional_batch_norm_matches_torch(torch_parity):
    x, w, b = rng.standard_normal((4, 3, 5)), rng.standard_normal(3), rng.standard_normal(3)
    mean, var = np.zeros(3), np.ones(3)
    ours_stats = [fs.Tensor(mean.copy(), dtype=np.float64), fs.Tensor(var.copy(), dtype=np.float64)]
    theirs_stats = [torch.tensor(mean), torch.tensor(var)]
    torch_parity(lambda *t: F.batch_norm(t[0], *ours_stats, *t[1:], training=True, momentum=0.3),
                 lambda *t: torch.nn.functional.batch_norm(t[0], *theirs_stats, *t[1:], training=True, momentum=0.3),
                 x, w, b)
    for o, t in zip(ours_stats, theirs_stats):
        np.testing.assert_allclose(o.numpy(), t.numpy(), rtol=1e-12)
    torch_parity(lambda *t: F.batch_norm(t[0], *ours_stats, *t[1:]),
                 lambda *t: torch.nn.functional.batch_norm(t[0], *theirs_stats, *t[1:]), x, w, b)


@pytest.mark.parametrize("params", ["weight and bias", "weight", "bias", "none"])
def test_fused_batch_norm_gradcheck_and_equals_the_composed_version(finite_diff, float64, params):
    x = rng.standard_normal((3, 2, 4, 2)) * 2 + 1
    w = rng.standard_normal(2) if "weight" in params else None
    b = rng.standard_normal(2) if "bias" in params else None
    arrays = [a for a in (x, w, b) if a is not None]

    def split(ts):  # the inputs back in (x, weight, bias) places
        it = iter(ts)
        return [next(it) if a is not None else None for a in (x, w, b)]

    finite_diff(lambda *ts: F.batch_norm(split(ts)[0], None, None, *split(ts)[1:], training=True), *arrays)
    fused = [fs.Tensor(a, requires_grad=True, dtype=np.float64) for a in arrays]
    plain = [fs.Tensor(a, requires_grad=True, dtype=np.float64) for a in arrays]
    weighting = rng.standard_normal(x.shape)
    (F.batch_norm(split(fused)[0], None, None, *split(fused)[1:], training=True) * weighting).sum().backward()
    (F.batch_norm_simple(*split(plain)) * weighting).sum().backward()
    for f, p in zip(fused, plain):
        np.testing.assert_allclose(f.grad, p.grad, rtol=1e-9, atol=1e-12)
    # the conv output's channel-first memory layout gives the same result as a contiguous input
    channel_first = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(F.batch_norm(fs.Tensor(channel_first, dtype=np.float64), None, None,
                                            training=True).numpy(),
                               F.batch_norm_simple(fs.Tensor(x, dtype=np.float64)).numpy(), rtol=1e-10)


@pytest.mark.parametrize("layer, shape, message", [
    (nn.BatchNorm1d(3), (1, 3), r"BatchNorm1d\(3, .*expected more than 1 value per channel when training, "
                                r"got input of shape \(1, 3\)"),
    (nn.BatchNorm2d(3), (1, 3, 1, 1), r"BatchNorm2d\(3, .*more than 1 value per channel.*\(1, 3, 1, 1\)"),
    (nn.BatchNorm2d(3), (2, 3, 4), r"BatchNorm2d: expected 4D input \(N, C, H, W\), got shape \(2, 3, 4\)"),
    (nn.BatchNorm1d(3), (2, 3, 4, 4), r"BatchNorm1d: expected 2D or 3D input \(N, C, L\), got shape"),
    (nn.BatchNorm1d(3), (4, 5), r"BatchNorm1d: input of shape \(4, 5\) has 5 channels, expected 3")])
def test_bad_input_names_the_layer_and_shape(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer(fs.Tensor(np.zeros(shape, np.float32)))
    assert layer.num_batches_tracked.item() == 0  # a refused batch is not counted


def test_a_batch_of_one_is_fine_in_eval():
    bn = nn.BatchNorm1d(3).eval()
    assert bn(fs.Tensor(np.ones((1, 3), np.float32))).shape == (1, 3)
