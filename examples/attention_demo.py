"""Attention: dot-product attention on toy keys and values, a multi-head shape walk-through, a learned lookup.

    python examples/attention_demo.py             # writes runs/attention_demo/attention.png

Attention is a soft dictionary lookup: a query is compared with every key (dot products, scaled
by 1/sqrt(d)), softmax turns the scores into weights that sum to 1, and the answer is the
weighted average of the values.
"""
from __future__ import annotations

import sys
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from _common import make_parser, setup
from tqdm import tqdm

import from_scratch as fs
import from_scratch.functional as F
from from_scratch import backend, nn
from from_scratch.optim import Adam
from from_scratch.random import get_rng


def toy_lookup(device: fs.Device) -> np.ndarray:
    """Part 1: one query against four keys; return the attention weights of three queries (on the host)."""
    words = ["cat", "dog", "car", "bus"]
    # Keys: animals point one way, vehicles another; the values are just the words' numbers 0..3.
    keys = fs.Tensor([[2.0, 0.4, 0.0, 0.0], [1.6, 0.0, 1.2, 0.0], [0.0, 2.0, 0.0, 0.4], [0.2, 1.8, 0.0, 0.0]],
                     device=device)
    values = fs.Tensor(np.eye(4), device=device)
    queries = fs.Tensor([[1.6, 0.2, 0.0, 0.0],   # something like "cat"
                         [0.0, 1.6, 0.0, 0.0],   # something like a vehicle
                         [4.8, 0.6, 0.0, 0.0]],  # "cat" again, three times louder: sharper weights
                        device=device)
    out, weights = F.scaled_dot_product_attention(queries, keys, values, return_weights=True)
    print("Part 1: softmax(q k^T / sqrt(4)) v with one-hot values, so the output is the weights")
    print("  query            " + "".join(f"{w:>7}" for w in words))
    for name, row in zip(["cat-like", "vehicle-like", "3 x cat-like"], weights.numpy()):
        print(f"  {name:<16} " + "".join(f"{w:7.3f}" for w in row))
    assert np.allclose(out.numpy(), weights.numpy())  # values are one-hot: output row = weight row
    return weights.numpy()


def shape_walkthrough(device: fs.Device, batch: int = 2, seq: int = 5, hidden: int = 16, heads: int = 4) -> float:
    """Part 2: run MultiHeadAttention's steps by hand, print each shape, and compare with the layer."""
    print(f"\nPart 2: MultiHeadAttention(hidden_size={hidden}, num_heads={heads}) on x of shape "
          f"(B={batch}, T={seq}, H={hidden})")
    mha = nn.MultiHeadAttention(hidden, heads).to(device)
    x = fs.randn(batch, seq, hidden).to(device)  # drawn on the CPU: the same numbers on every device
    causal = F.create_causal_mask(seq).to(device)
    d = hidden // heads

    def split(t: fs.Tensor) -> fs.Tensor:  # (B, T, H) -> (B, heads, T, H / heads)
        return t.reshape(batch, seq, heads, d).permute(0, 2, 1, 3)

    q, k, v = mha.q_linear(x), mha.k_linear(x), mha.v_linear(x)
    print(f"  q = q_linear(x), k, v alike     {q.shape}")
    q, k, v = split(q), split(k), split(v)
    print(f"  split into heads                {q.shape}   (B, heads, T, H / heads)")
    scores = q @ k.swapaxes(-2, -1) * (1 / np.sqrt(d))
    print(f"  scores = q k^T / sqrt({d})        {scores.shape}   (B, heads, T_q, T_k)")
    weights = F.softmax(scores + causal)
    print(f"  weights = softmax(scores + causal mask), each row sums to 1: "
          f"{np.allclose(weights.numpy().sum(-1), 1)}")
    heads_out = weights @ v
    print(f"  weights @ v                     {heads_out.shape}")
    merged = heads_out.permute(0, 2, 1, 3).reshape(batch, seq, hidden)
    print(f"  heads side by side again        {merged.shape}")
    out = mha.fc(merged)
    print(f"  out = fc(...)                   {out.shape}")
    gap = float(np.abs(out.numpy() - mha(x, x, x, mask=causal).numpy()).max())
    print(f"  max |by hand - mha(x, x, x, mask)| = {gap:.1e}")
    return gap


class Recall(nn.Module):
    """Part 3: given (key, value) pairs and a query key, answer the query's value.

    The query, the keys and the values enter MultiHeadAttention separately (q, k, v); a linear
    head reads the value out of the attention output.

    Shape: pairs (B, N, 2) ids, query (B,) ids -> logits (B, num_values).
    """

    def __init__(self, num_keys: int, num_values: int, hidden: int, heads: int):
        super().__init__()
        self.key_embedding = nn.Embedding(num_keys, hidden)
        self.value_embedding = nn.Embedding(num_values, hidden)
        self.attention = nn.MultiHeadAttention(hidden, heads)
        self.head = nn.Linear(hidden, num_values)

    def forward(self, pairs: fs.Tensor, query: fs.Tensor) -> fs.Tensor:
        q = self.key_embedding(query[:, None])                       # (B, 1, H)
        k, v = self.key_embedding(pairs[..., 0]), self.value_embedding(pairs[..., 1])  # (B, N, H)
        return self.head(self.attention(q, k, v)[:, 0])


def recall_batch(batch: int, pairs: int, num_keys: int, num_values: int) -> tuple[np.ndarray, ...]:
    """Random dictionaries of distinct keys, a query key from each, and the answer."""
    rng = get_rng()
    keys = np.argsort(rng.random((batch, num_keys)), axis=1)[:, :pairs]  # distinct keys per row
    values = rng.integers(0, num_values, (batch, pairs))
    slot = rng.integers(0, pairs, batch)
    rows = np.arange(batch)
    return np.stack([keys, values], axis=-1), keys[rows, slot], values[rows, slot], slot


def main(argv: Sequence[str] | None = None) -> dict:
    parser = make_parser("attention_demo", __doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600, help="training steps for the learned lookup")
    args = parser.parse_args(argv)
    out_dir = setup(args)
    device = args.device
    toy_weights = toy_lookup(device)
    gap = shape_walkthrough(device)

    num_keys, num_values, n_pairs = 16, 16, 8
    steps = 150 if args.quick else args.steps
    model = Recall(num_keys, num_values, hidden=32, heads=2).to(device)
    optimizer = Adam(model.parameters(), lr=3e-3)
    print(f"\nPart 3: learn to look up the value of a query key among {n_pairs} (key, value) pairs")
    bar = tqdm(range(steps), desc="recall")
    for _ in bar:
        batch = recall_batch(64, n_pairs, num_keys, num_values)[:3]  # made on the host, copied to the device
        pairs, query, answer = (fs.Tensor(a, device=device) for a in batch)
        loss = F.cross_entropy(model(pairs, query), answer)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")

    with fs.no_grad():
        pairs, query, answer, slot = recall_batch(2000, n_pairs, num_keys, num_values)
        logits = model(fs.Tensor(pairs, device=device), fs.Tensor(query, device=device))
        accuracy = float((logits.numpy().argmax(-1) == answer).mean())
        attn = backend.as_numpy(model.attention.attn_weights.mean(axis=1)[:, 0])  # (B, N): averaged over heads
    on_target = float(attn[np.arange(len(slot)), slot].mean())

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.imshow(toy_weights, cmap="viridis", vmin=0, vmax=1)
    for (i, j), w in np.ndenumerate(toy_weights):
        ax1.text(j, i, f"{w:.2f}", ha="center", va="center", color="white" if w < 0.5 else "black")
    ax1.set(xticks=range(4), xticklabels=["cat", "dog", "car", "bus"], yticks=range(3),
            yticklabels=["cat-like", "vehicle-like", "3 x cat-like"], title="toy attention weights")
    show = 8
    ax2.imshow(attn[:show], cmap="viridis", vmin=0, vmax=1)
    ax2.scatter(slot[:show], range(show), marker="x", color="red", label="the query's key")
    ax2.set(xlabel="pair", ylabel="example", title=f"learned lookup: weights (accuracy {accuracy:.1%})")
    ax2.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "attention.png", dpi=100)
    plt.close(fig)

    print(f"attention on the matching key: {on_target:.1%} of the weight (uniform: {1 / n_pairs:.1%})")
    print(f"lookup accuracy: {accuracy:.1%} (chance: {1 / num_values:.1%})")
    return {"accuracy": accuracy, "chance": 1 / num_values, "on_target": on_target, "walkthrough_gap": gap}


if __name__ == "__main__":
    main(sys.argv[1:])
