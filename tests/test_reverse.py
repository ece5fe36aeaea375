"""The reversal task: token layout, batches and masks, decoding, checkpoints, resume, and learning."""
import json
import os
import signal

import numpy as np
import pytest

import from_scratch.functional as F
from from_scratch import Tensor, no_grad
from from_scratch.serialization import load, load_metadata
from from_scratch.tasks.reverse import (PAD, ReverseConfig, TokenLayout, batch_for_step, beam_search, build_model,
                                        evaluate, greedy_decode, heldout_sequences, load_model, make_batch,
                                        parse_tokens, predict, random_sequences, train)

LAYOUT = TokenLayout(20)
# Small enough to train in a few seconds, big enough to reverse lengths 1..4 almost always.
TINY = dict(hidden_size=32, num_layers=1, num_heads=2, ff_size=64, max_len=4, steps=400, lr=0.01, warmup=20,
            batch_size=32, eval_every=100, checkpoint_every=100)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("run"))
    result = train(ReverseConfig(**TINY), out=out, log=lambda m: None)
    return result, out


def _pad(seqs):
    src = np.zeros((len(seqs), max(map(len, seqs))), dtype=np.int64)
    for i, s in enumerate(seqs):
        src[i, :len(s)] = s
    return src


# ---------------------------------------------------------------- data layout

def test_token_layout_ids():
    assert (LAYOUT.pad, LAYOUT.sos, LAYOUT.eos, LAYOUT.max_content) == (0, 18, 19, 17)
    assert TokenLayout(10).to_dict() == {"vocab_size": 10, "pad": 0, "content": [1, 7], "sos": 8, "eos": 9}
    with pytest.raises(ValueError, match="vocab_size"):
        TokenLayout(3)


def test_make_batch_pads_reverses_and_places_eos():
    b = make_batch([np.array([5, 12, 7]), np.array([3])], LAYOUT)
    np.testing.assert_array_equal(b.src, [[5, 12, 7], [3, 0, 0]])
    np.testing.assert_array_equal(b.tgt_out, [[7, 12, 5, 19], [3, 19, 0, 0]])
    np.testing.assert_array_equal(b.tgt_in, [[18, 7, 12, 5], [18, 3, 0, 0]])
    np.testing.assert_array_equal(b.lengths, [3, 1])


def test_batch_masks_hide_padding_and_the_future():
    b = make_batch([np.array([5, 12, 7]), np.array([3])], LAYOUT)
    assert b.src_mask.shape == (2, 1, 1, 3)
    np.testing.assert_array_equal(b.src_mask.data[:, 0, 0] < 0, [[False, False, False], [False, True, True]])
    assert b.tgt_mask.shape == (2, 1, 4, 4)
    hidden = b.tgt_mask.data[:, 0] < 0
    causal = np.triu(np.ones((4, 4), bool), k=1)
    np.testing.assert_array_equal(hidden[0], causal)
    np.testing.assert_array_equal(hidden[1], causal | np.array([False, False, True, True])[None, :])
    assert b.tgt_mask.data.min() == F.MASK_VALUE  # hidden once, not twice
    assert not hidden.all(axis=-1).any()  # every query sees at least SOS


def test_random_sequences_cover_lengths_and_content_only():
    seqs = random_sequences(np.random.default_rng(0), 3000, 1, 16, LAYOUT)
    lengths = np.array([len(s) for s in seqs])
    tokens = np.concatenate(seqs)
    assert lengths.min() == 1 and lengths.max() == 16
    assert tokens.min() == 1 and tokens.max() == 17  # never PAD, SOS or EOS
    with pytest.raises(ValueError, match="min_len"):
        random_sequences(np.random.default_rng(0), 3, 5, 4, LAYOUT)


def test_proportional_length_sampling_favours_long_sequences():
    seqs = random_sequences(np.random.default_rng(0), 20000, 1, 4, LAYOUT, length_sampling="proportional")
    counts = np.bincount([len(s) for s in seqs], minlength=5)[1:]
    np.testing.assert_allclose(counts / len(seqs), [0.1, 0.2, 0.3, 0.4], atol=0.015)
    with pytest.raises(ValueError, match="length_sampling"):
        random_sequences(np.random.default_rng(0), 3, 1, 4, LAYOUT, length_sampling="longest")


def test_training_batches_are_a_function_of_seed_and_step():
    a, b = (batch_for_step(3, 7, 16, 1, 16, LAYOUT) for _ in range(2))
    np.testing.assert_array_equal(a.src, b.src)
    assert not np.array_equal(a.src, batch_for_step(3, 8, 16, 1, 16, LAYOUT).src)
    assert not np.array_equal(a.src, batch_for_step(4, 7, 16, 1, 16, LAYOUT).src)
    lengths = batch_for_step(0, 0, 64, 1, 16, LAYOUT).lengths
    assert len(set(lengths.tolist())) > 5  # lengths are mixed within a batch


def test_loss_ignores_padding():
    model = build_model(ReverseConfig(hidden_size=16, num_layers=1, num_heads=2, ff_size=32))
    b = make_batch([np.array([5, 12, 7]), np.array([3])], LAYOUT)
    logits = model(b.src, b.tgt_in, b.src_mask, b.tgt_mask)
    loss = F.cross_entropy(logits, b.tgt_out, ignore_index=PAD).item()
    x = logits.data.astype(np.float64)
    logp = x - x.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    real = b.tgt_out != PAD
    expected = -np.take_along_axis(logp, b.tgt_out[..., None], -1)[..., 0][real].mean()
    assert real.sum() == 6
    assert loss == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------- input validation

def test_parse_tokens_accepts_content():
    np.testing.assert_array_equal(parse_tokens("5 12 7", LAYOUT, 10), [5, 12, 7])
    np.testing.assert_array_equal(parse_tokens(["1", 17], LAYOUT, 10), [1, 17])


@pytest.mark.parametrize("text, message", [
    ("5 x 7", "unknown token 'x'"), ("5 0", "unknown token 0"), ("18", "unknown token 18"),
    ("19 1", "unknown token 19"), ("-3", "unknown token -3"), ("2.5", "unknown token '2.5'"),
    ("", "empty input"), ("   ", "empty input"), ("1 " * 11, "longer than this model's maximum of 10"),
])
def test_parse_tokens_rejects_bad_input_in_one_line(text, message):
    with pytest.raises(ValueError, match=message) as info:
        parse_tokens(text, LAYOUT, 10)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- decoding

def test_cached_greedy_equals_full_recomputation(trained):
    model = trained[0].model
    src = _pad(heldout_sequences(9, 40, 1, 6, LAYOUT))  # lengths 5 and 6 untrained: rows stop at different steps
    fast, fast_logits = greedy_decode(model, src, LAYOUT, return_logits=True)
    slow, slow_logits = greedy_decode(model, src, LAYOUT, use_cache=False, return_logits=True)
    assert len({len(s) for s in fast}) > 2
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.isnan(fast_logits), np.isnan(slow_logits))
    np.testing.assert_allclose(np.nan_to_num(fast_logits), np.nan_to_num(slow_logits), atol=1e-4)


def test_cached_greedy_equals_full_recomputation_without_eos():
    model = build_model(ReverseConfig(hidden_size=16, num_layers=2, num_heads=2, ff_size=32, seed=1)).eval()
    src = _pad(heldout_sequences(2, 8, 1, 6, LAYOUT))
    fast, fast_logits = greedy_decode(model, src, LAYOUT, max_new_tokens=9, return_logits=True)
    slow, slow_logits = greedy_decode(model, src, LAYOUT, max_new_tokens=9, use_cache=False, return_logits=True)
    assert [len(s) for s in fast] == [len(s) for s in slow]
    assert max(len(s) for s in fast) == 9  # an untrained model runs to the limit
    np.testing.assert_allclose(np.nan_to_num(fast_logits), np.nan_to_num(slow_logits), atol=1e-4)


def test_beam_of_one_is_greedy(trained):
    model = trained[0].model
    src = _pad(heldout_sequences(5, 60, 1, 7, LAYOUT))
    for a, b in zip(greedy_decode(model, src, LAYOUT), beam_search(model, src, LAYOUT, beam_size=1)):
        np.testing.assert_array_equal(a, b)
    untrained = build_model(ReverseConfig(hidden_size=16, num_layers=1, num_heads=2, ff_size=32, seed=3)).eval()
    for a, b in zip(greedy_decode(untrained, src, LAYOUT, max_new_tokens=6),
                    beam_search(untrained, src, LAYOUT, beam_size=1, max_new_tokens=6)):
        np.testing.assert_array_equal(a, b)


def test_beam_search_reverses_and_ends_with_eos(trained):
    model = trained[0].model
    seqs = heldout_sequences(6, 50, 1, 4, LAYOUT)
    outs = beam_search(model, _pad(seqs), LAYOUT, beam_size=4)
    correct = [np.array_equal(o, np.append(s[::-1], LAYOUT.eos)) for s, o in zip(seqs, outs)]
    assert np.mean(correct) >= 0.9
    assert all(o[-1] == LAYOUT.eos for o in outs)
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(model, _pad(seqs), LAYOUT, beam_size=0)


def _log_prob(model, src, output):
    """Summed log-probability of ``output`` (EOS included) for ``src``, by one teacher-forced pass."""
    tgt_in = np.concatenate([[LAYOUT.sos], output[:-1]])[None]
    with no_grad():
        logits = model(src[None], tgt_in, F.create_padding_mask(src[None]), F.create_causal_mask(len(output)))
    return F.log_softmax(logits).data[0, np.arange(len(output)), output].astype(np.float64).sum()


def test_beam_search_finds_better_scored_outputs_than_greedy(trained):
    # Beam search is a heuristic: pruning, and stopping once no unfinished beam would beat the best
    # finished one if it ended now, can miss greedy's pick for a source (a beam's length-normalised
    # score can still rise). Over many uncertain sources it must do at least as well almost always.
    model = trained[0].model
    seqs = heldout_sequences(8, 150, 3, 6, LAYOUT)  # 5 and 6 are longer than trained on: uncertain outputs
    src = _pad(seqs)
    diffs = [_log_prob(model, s, b) / len(b) - _log_prob(model, s, g) / len(g)
             for s, g, b in zip(seqs, greedy_decode(model, src, LAYOUT), beam_search(model, src, LAYOUT, beam_size=4))
             if g[-1] == LAYOUT.eos]
    assert len(diffs) > 100
    assert np.mean(np.array(diffs) >= -1e-4) >= 0.95, sorted(diffs)[:5]


class _PeakedModel:
    """A stand-in decoder for V = 6 (content 1..3): sure of the answer 1 1 1 1 1 1 EOS, and after any
    other token unsure of everything. The alternatives' beams fall below the right beam's EOS, so
    wrong early endings fill the finished list while the right answer is still being written."""

    max_len = 20
    layout = TokenLayout(6)

    def encode(self, src, src_mask):
        return Tensor(np.zeros((len(src), src.shape[1], 1)))

    def init_cache(self):
        return {}

    def reorder_cache(self, cache, index):
        cache["history"] = cache["history"][index]

    def decode_step(self, tokens, memory, src_mask, cache):
        history = np.concatenate([cache.get("history", np.zeros((len(tokens), 0), int)), tokens], axis=1)
        cache["history"] = history
        answer = [self.layout.sos] + [1] * 6 + [self.layout.eos]
        t = history.shape[1]
        on_track = (history == answer[:t]).all(axis=1)
        sure = np.log([1e-5] * 5 + [1e-3])  # EOS the likeliest mistake
        sure[answer[t]] = 0.0
        return Tensor(np.where(on_track[:, None], sure, 0.0))


def test_beam_search_keeps_going_while_an_unfinished_beam_is_better():
    model, layout = _PeakedModel(), _PeakedModel.layout
    src = np.ones((2, 3), dtype=np.int64)
    expected = [1] * 6 + [layout.eos]
    np.testing.assert_array_equal(greedy_decode(model, src, layout)[0], expected)
    for k in (1, 2, 3, 5):
        for out in beam_search(model, src, layout, beam_size=k):
            np.testing.assert_array_equal(out, expected, err_msg=f"beam {k}")


def test_predict_keeps_input_order(trained):
    model = trained[0].model
    seqs = [np.array([3, 1, 4]), np.array([9]), np.array([2, 7]), np.array([1, 2, 3, 4])]
    outs = predict(model, seqs, LAYOUT, batch_size=3)
    assert [len(o) for o in outs] == [4, 2, 3, 5]  # sorted into batches by length, returned as given


# ---------------------------------------------------------------- training and checkpoints

def test_short_training_run_learns_to_reverse(trained):
    result, _ = trained
    report = evaluate(result.model, heldout_sequences(11, 500, 1, 4, LAYOUT), LAYOUT, trained_max_len=4)
    assert report["exact_match"] >= 0.95
    assert [r["length"] for r in report["by_length"]] == [1, 2, 3, 4]
    assert result.metrics[0]["loss"] > 5 * result.metrics[-1]["loss"]
    longer = evaluate(result.model, heldout_sequences(11, 50, 6, 6, LAYOUT), LAYOUT, trained_max_len=4)
    assert longer["by_length"][0]["beyond_training"]


def test_checkpoint_contents(trained):
    result, out = trained
    assert sorted(os.listdir(out)) == ["config.json", "loss.png", "metrics.csv", "model.safetensors",
                                       "train_state.safetensors"]
    with open(os.path.join(out, "config.json")) as f:
        config = json.load(f)
    assert config["task"] == "reverse" and config["library_version"]
    assert config["tokens"] == {"vocab_size": 20, "pad": 0, "content": [1, 17], "sos": 18, "eos": 19}
    assert config["config"]["hidden_size"] == 32 and config["config"]["steps"] == 400
    weights = load(os.path.join(out, "model.safetensors"))
    for name, value in result.model.state_dict().items():
        np.testing.assert_array_equal(weights[name], value)
    state = load(os.path.join(out, "train_state.safetensors"))
    meta = load_metadata(os.path.join(out, "train_state.safetensors"))
    assert meta["step"] == "400" and json.loads(meta["rng_state"])["bit_generator"] == "PCG64"
    assert {k.split(".")[0] for k in state} == {"model", "optimizer", "scheduler", "pending_losses"}
    assert int(state["scheduler.last_epoch"]) == 400
    with open(os.path.join(out, "metrics.csv")) as f:
        lines = f.read().splitlines()
    assert lines[0] == "step,loss,lr,exact_match" and lines[-1].startswith("400,")
    assert len(lines) == 1 + 400 // 10
    with open(os.path.join(out, "loss.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    model, loaded = load_model(out)
    assert loaded.hidden_size == 32 and not model.training


def test_load_model_errors_name_the_problem(tmp_path, trained):
    with pytest.raises(FileNotFoundError, match="no checkpoint folder"):
        load_model(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="no config.json"):
        load_model(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"task": "mnist", "config": {}}))
    with pytest.raises(ValueError, match="task is 'mnist'"):
        load_model(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="unreadable"):
        load_model(str(tmp_path))
    (tmp_path / "config.json").write_text(open(os.path.join(trained[1], "config.json")).read())
    with pytest.raises(ValueError, match="no model.safetensors"):
        load_model(str(tmp_path))
    (tmp_path / "model.safetensors").write_bytes(b"\x80\x04garbage")
    with pytest.raises(ValueError, match="not a valid safetensors"):
        load_model(str(tmp_path))


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    # Dropout on, so the saved generator state matters too.
    config = ReverseConfig(hidden_size=16, num_layers=1, num_heads=2, ff_size=32, max_len=5, steps=24, warmup=4,
                           dropout=0.1, batch_size=8, log_every=3, eval_every=6, eval_size=20, checkpoint_every=5)
    full = train(config, out=str(tmp_path / "full"), log=lambda m: None)
    part = train(config, out=str(tmp_path / "part"), on_step=lambda step, loss: step == 13, log=lambda m: None)
    assert part.interrupted and part.step == 13
    resumed = train(config, out=str(tmp_path / "part"), resume=True, log=lambda m: None)
    assert resumed.step == 24 and not resumed.interrupted
    for name, value in full.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[name], value, err_msg=name)
    full_state, part_state = load(str(tmp_path / "full/train_state.safetensors")), \
        load(str(tmp_path / "part/train_state.safetensors"))
    assert full_state.keys() == part_state.keys()
    for key in full_state:
        np.testing.assert_array_equal(full_state[key], part_state[key], err_msg=key)
    assert full.metrics == resumed.metrics  # the resumed run's metrics.csv continues the interrupted one


def test_sigint_saves_and_stops(tmp_path):
    config = ReverseConfig(hidden_size=16, num_layers=1, num_heads=2, ff_size=32, max_len=4, steps=50, warmup=2,
                           batch_size=8, eval_size=10, checkpoint_every=100)
    old = signal.getsignal(signal.SIGINT)

    def interrupt(step, loss):
        if step == 5:
            os.kill(os.getpid(), signal.SIGINT)
        return False

    result = train(config, out=str(tmp_path), on_step=interrupt, log=lambda m: None)
    assert result.interrupted and result.signal == signal.SIGINT and 5 <= result.step < 50
    assert load_metadata(str(tmp_path / "train_state.safetensors"))["step"] == str(result.step)
    assert signal.getsignal(signal.SIGINT) is old  # the handler is put back


def test_resume_without_a_saved_state_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train(ReverseConfig(), out=str(tmp_path), resume=True)


def test_config_rejects_bad_settings():
    with pytest.raises(ValueError, match="multiple of num_heads"):
        ReverseConfig(hidden_size=30, num_heads=4)
    with pytest.raises(ValueError, match="max_positions"):
        ReverseConfig(max_len=64)
    with pytest.raises(ValueError, match="warmup"):
        ReverseConfig(steps=10, warmup=10)
    with pytest.raises(ValueError, match="batch_size must be in 1..65,536, got 0"):
        ReverseConfig(batch_size=0)
    with pytest.raises(ValueError, match="hidden_size must be int, got '64'"):
        ReverseConfig(hidden_size="64")
    with pytest.raises(ValueError, match="norm_first must be bool"):
        ReverseConfig(norm_first=1)
    with pytest.raises(ValueError, match="dropout"):
        ReverseConfig(dropout=float("nan"))
