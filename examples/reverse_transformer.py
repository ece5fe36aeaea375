"""Sequence reversal with an encoder-decoder Transformer: data, masks, training loop and greedy decoding.

    python examples/reverse_transformer.py        # writes runs/reverse_transformer/attention.png

The same task as `bbml reverse train`, written out step by step against the library API. The
data, the held-out evaluation and the cached decoder come from ``from_scratch.tasks.reverse``;
the training loop and a plain greedy decoder are spelled out here.

Token ids (vocabulary V = 20): 0 = PAD, content 1..17, 18 = SOS, 19 = EOS. For the content
``5 12 7``: source ``5 12 7``, decoder input ``SOS 7 12 5``, target ``7 12 5 EOS``.
"""
from __future__ import annotations

import sys
import time
from typing import Sequence

import numpy as np
from _common import make_parser, setup
from tqdm import tqdm

import from_scratch as fs
import from_scratch.functional as F
from from_scratch import nn
from from_scratch.optim import Adam, WarmupCosineLR, clip_grad_norm_
from from_scratch.random import get_rng
from from_scratch.tasks.reverse import PAD, TokenLayout, evaluate, format_table, greedy_decode, heldout_sequences
from from_scratch.tasks.reverse import make_batch, random_sequences
from from_scratch.tasks.reverse.plots import plot_attention


@fs.no_grad()
def greedy(model: nn.Transformer, tokens: Sequence[int], layout: TokenLayout) -> list[int]:
    """Reverse one sequence the plain way: encode once, then rerun the decoder on the growing output."""
    model.eval()
    device = model.parameters()[0].device
    src = np.array([tokens])
    src_mask = F.create_padding_mask(src, PAD).to(device)  # (1, 1, 1, S): no padding here, all zeros
    memory = model.encode(fs.Tensor(src, device=device), src_mask)
    out = [layout.sos]
    for _ in range(2 * len(tokens) + 1):
        tgt = fs.Tensor([out], device=device)  # the plain way: the whole prefix goes to the device every step
        hidden = model.decode(tgt, memory, src_mask, F.create_causal_mask(len(out)).to(device))
        nxt = int(model.final_linear(hidden[:, -1]).numpy().argmax())  # the likeliest next token
        out.append(nxt)
        if nxt == layout.eos:
            break
    return out[1:]


def main(argv: Sequence[str] | None = None) -> dict:
    parser = make_parser("reverse_transformer", __doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--max-len", type=int, default=16, help="train on lengths 1..max-len")
    parser.add_argument("--n-eval", type=int, default=2000, help="held-out sequences to score")
    args = parser.parse_args(argv)
    out_dir = setup(args)
    steps, max_len, n_eval = (150, 6, 500) if args.quick else (args.steps, args.max_len, args.n_eval)
    layout = TokenLayout(vocab_size=20)

    # 1. Data: a batch pads every sequence to the longest; the masks hide the padding (and the future).
    demo = make_batch([[5, 12, 7], [3, 9]], layout)
    print("a batch of two sequences, 5 12 7 and 3 9:")
    print(f"  src     {demo.src.tolist()}        src_mask {demo.src_mask.shape} (B, 1, 1, S)")
    print(f"  tgt_in  {demo.tgt_in.tolist()}  tgt_mask {demo.tgt_mask.shape} (B, 1, T, T): causal + padding")
    print(f"  tgt_out {demo.tgt_out.tolist()}  (the loss ignores PAD = {PAD})")

    # 2. The model: a small pre-norm encoder-decoder Transformer.
    model = nn.Transformer(layout.vocab_size, hidden_size=64, num_layers=2, num_heads=4, ff_size=128,
                           max_len=64, norm_first=True).to(args.device)  # built on the CPU, then moved
    print(f"Transformer: {model.num_parameters():,} parameters")

    # 3. Training: fresh random sequences every step, cross-entropy on the targets, Adam with warmup + cosine.
    optimizer = Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.98), eps=1e-9)
    schedule = WarmupCosineLR(optimizer, warmup_steps=min(100, steps // 5), total_steps=steps)
    start = time.perf_counter()
    model.train()
    bar = tqdm(range(steps), desc="training")
    for step in bar:
        batch = make_batch(random_sequences(get_rng(), args.batch_size, 1, max_len, layout), layout)
        batch = batch.to(args.device)  # ids and masks made on the host, copied to the device once
        logits = model(batch.src, batch.tgt_in, batch.src_mask, batch.tgt_mask)  # (B, T, V)
        loss = F.cross_entropy(logits, batch.tgt_out, ignore_index=PAD)
        optimizer.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    seconds = time.perf_counter() - start

    # 4. Decoding: the plain loop above, and the library's batched decoder with its key/value cache.
    example = [5, 12, 7, 3, 9, 11][:max_len]
    plain = greedy(model, example, layout)
    cached = greedy_decode(model, np.array([example]), layout)[0].tolist()
    show = " ".join("EOS" if t == layout.eos else str(t) for t in plain)
    print(f"reverse {' '.join(map(str, example))} -> {show}  (cached decoder agrees: {plain == cached})")
    plot_attention(model, np.array(example), layout, str(out_dir / "attention.png"))

    # 5. Held-out evaluation: sequences from a generator stream no training batch used.
    result = evaluate(model, heldout_sequences(args.seed, n_eval, 1, max_len, layout), layout)
    print(format_table(result))
    print(f"held-out exact match: {result['exact_match']:.2%}, token accuracy {result['token_accuracy']:.2%} "
          f"(guessing: {1 / (layout.vocab_size - 1):.1%} per token), trained {steps} steps in {seconds:.0f} s")
    return {"exact_match": result["exact_match"], "token_accuracy": result["token_accuracy"],
            "chance_token_accuracy": 1 / (layout.vocab_size - 1), "plain_equals_cached": plain == cached,
            "seconds": seconds}


if __name__ == "__main__":
    main(sys.argv[1:])
