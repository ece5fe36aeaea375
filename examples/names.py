"""Character-level name generation on US census first names with an RNN, an LSTM, a GRU or a decoder-only Transformer.

    python examples/names.py --model lstm         # also: --model rnn, --model gru, --model transformer

Each name becomes ".emma." : the model reads ". e m m a" and learns to predict "e m m a ." one
character at a time (the dot starts and ends a name). Names of different lengths share a batch by
padding with PAD, which the loss ignores. The score is the validation loss in nats per character;
a model that knows nothing (uniform over the 27 symbols) scores log(27) = 3.30.
"""
from __future__ import annotations

import importlib.metadata
import math
import string
import sys
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from _common import make_parser, setup
from tqdm import tqdm

import from_scratch as fs
import from_scratch.functional as F
from from_scratch import nn
from from_scratch.optim import Adam, WarmupCosineLR, clip_grad_norm_
from from_scratch.random import get_rng

PAD, DOT = 0, 1                       # token ids: padding, the start/end dot, then a..z
CHARS = "." + string.ascii_lowercase  # DOT + letters: the 27 symbols a model can predict
VOCAB = 1 + len(CHARS)
MAX_LEN = 16                          # positions: the longest census name has 11 letters + the dot


def load_names() -> list[str]:
    """Return the census first names (female and male lists, merged), lower case and sorted."""
    # The `names` package ships the lists as data files. (Found through its installed files, not
    # `import names`: this script is itself called names.py and would import itself.)
    dist = importlib.metadata.distribution("names")
    found = set()
    for part in ("female", "male"):
        text = dist.locate_file(f"names/dist.{part}.first").read_text()
        found.update(line.split()[0].lower() for line in text.splitlines() if line.strip())
    return sorted(found)


def encode(batch: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Return (inputs, targets) as PAD-padded (B, T) int arrays: ".name" -> "name.", T = longest + 1."""
    width = max(map(len, batch)) + 1
    inputs = np.full((len(batch), width), PAD, np.int64)
    targets = np.full((len(batch), width), PAD, np.int64)
    for row, name in enumerate(batch):
        ids = [1 + CHARS.index(c) for c in name]
        inputs[row, :len(ids) + 1] = [DOT] + ids
        targets[row, :len(ids) + 1] = ids + [DOT]
    return inputs, targets


class RecurrentLM(nn.Module):
    """Embedding -> RNN, LSTM or GRU over the whole padded batch -> logits for the next character.

    Shape: ids (B, T) -> logits (B, T, VOCAB).
    """

    def __init__(self, cell: str, embed_size: int, hidden_size: int, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, embed_size, padding_idx=PAD)
        layer = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = layer(embed_size, hidden_size, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, VOCAB)

    def forward(self, ids: fs.Tensor) -> fs.Tensor:
        # Padding sits at the end of each row, so it never feeds into a real position's state.
        output, _ = self.rnn(self.dropout(self.embedding(ids)))
        return self.head(self.dropout(output))


class TransformerLM(nn.Module):
    """A decoder-only (GPT-style) Transformer: causal self-attention, so position t sees only positions <= t.

    Token and learned position embeddings, pre-norm layers, a final LayerNorm, then logits.

    Shape: ids (B, T) -> logits (B, T, VOCAB).
    """

    def __init__(self, hidden_size: int, num_layers: int, num_heads: int, dropout: float):
        super().__init__()
        self.token_embedding = nn.Embedding(VOCAB, hidden_size, padding_idx=PAD)
        self.position_embedding = nn.Embedding(MAX_LEN, hidden_size)
        nn.init.normal_(self.token_embedding.weight, std=0.1)
        nn.init.normal_(self.position_embedding.weight, std=0.1)
        self.dropout = nn.Dropout(dropout)
        # An Encoder stack with a causal mask is a decoder-only model: no cross-attention needed.
        self.blocks = nn.Encoder(num_layers, hidden_size, num_heads, 4 * hidden_size, dropout, norm_first=True)
        self.head = nn.Linear(hidden_size, VOCAB)

    def forward(self, ids: fs.Tensor) -> fs.Tensor:
        t = ids.shape[1]
        positions = fs.arange(t, device=ids.device)
        x = self.dropout(self.token_embedding(ids) + self.position_embedding(positions))
        return self.head(self.blocks(x, mask=F.create_causal_mask(t).to(ids.device)))


def build_model(kind: str, quick: bool) -> nn.Module:
    if kind == "transformer":
        return TransformerLM(hidden_size=64, num_layers=2, num_heads=4, dropout=0.1)
    return RecurrentLM(kind, embed_size=32, hidden_size=64 if quick else 128, dropout=0.1)


def on_device(device: fs.Device, *arrays: np.ndarray) -> list[fs.Tensor]:
    """Host arrays (a batch made by ``encode``) as Tensors on ``device``: one copy each."""
    return [fs.Tensor(a, device=device) for a in arrays]


@fs.no_grad()
def evaluate(model: nn.Module, names: list[str], batch_size: int = 256) -> float:
    """Return the mean loss per predicted character (nats), the end dot included."""
    model.eval()
    device = model.parameters()[0].device
    total, count = 0.0, 0
    for start in range(0, len(names), batch_size):
        inputs, targets = encode(names[start:start + batch_size])
        scores = model(*on_device(device, inputs))
        total += F.cross_entropy(scores, *on_device(device, targets), ignore_index=PAD, reduction="sum").item()
        count += int((targets != PAD).sum())
    model.train()
    return total / count


@fs.no_grad()
def sample(model: nn.Module, n: int, temperature: float) -> list[str]:
    """Draw n names one character at a time from softmax(logits / temperature), all rows in parallel."""
    model.eval()
    rng, device = get_rng(), model.parameters()[0].device
    seqs = np.full((n, 1), DOT, np.int64)
    done = np.zeros(n, bool)
    for _ in range(MAX_LEN - 1):
        # Re-reading the whole prefix each step keeps this short; names are at most 15 characters.
        # (the prefix goes to the device and the probabilities come back: two copies a character)
        probs = F.softmax(model(*on_device(device, seqs))[:, -1] * (1 / temperature)).numpy().astype(np.float64)
        probs[:, PAD] = 0
        cdf = probs.cumsum(axis=1)  # inverse-CDF sampling, one uniform draw per row
        nxt = (cdf > rng.random((n, 1)) * cdf[:, -1:]).argmax(axis=1)
        nxt[done] = PAD
        done |= nxt == DOT
        seqs = np.concatenate([seqs, nxt[:, None]], axis=1)
        if done.all():
            break
    model.train()
    return ["".join(CHARS[i - 1] for i in row[1:] if i > DOT) for row in seqs]


def main(argv: Sequence[str] | None = None) -> dict:
    parser = make_parser("names", __doc__.splitlines()[0])
    parser.add_argument("--model", choices=["rnn", "lstm", "gru", "transformer"], default="lstm")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--temperature", type=float, default=0.8, help="sampling: < 1 safer, > 1 wilder")
    parser.add_argument("--samples", type=int, default=12)
    args = parser.parse_args(argv)
    out_dir = setup(args)

    # A fixed split (its own seed, whatever --seed is): every run validates on the same names.
    names = load_names()
    order = np.random.default_rng(1234).permutation(len(names))
    n_val = len(names) // 10
    val = [names[i] for i in order[:n_val]]
    train = [names[i] for i in order[n_val:]]
    epochs = 2 if args.quick else args.epochs
    if args.quick:
        train = train[:1500]

    model = build_model(args.model, args.quick).to(args.device)
    steps_per_epoch = math.ceil(len(train) / args.batch_size)
    optimizer = Adam(model.parameters(), lr=args.lr)
    schedule = WarmupCosineLR(optimizer, warmup_steps=min(100, steps_per_epoch), total_steps=epochs * steps_per_epoch)
    print(f"{args.model}: {model.num_parameters():,} parameters, {len(train)} training and {len(val)} "
          f"validation names")

    history = []
    bar = tqdm(range(epochs), desc=args.model)
    lengths = np.array([len(name) for name in train])
    for _ in bar:
        rng = get_rng()
        # Batch names of similar length together (sorted by length plus noise, so batches still vary
        # from epoch to epoch), then visit the batches in random order. In a random batch the longest
        # name sets every row's length; here little padding is left to compute on.
        order = np.argsort(lengths + rng.uniform(0, 3, len(train)), kind="stable")
        batches = [order[i:i + args.batch_size] for i in range(0, len(order), args.batch_size)]
        total, count = 0.0, 0
        for b in rng.permutation(len(batches)):
            inputs, targets = encode([train[i] for i in batches[b]])
            inputs_dev, targets_dev = on_device(args.device, inputs, targets)
            loss = F.cross_entropy(model(inputs_dev), targets_dev, ignore_index=PAD)
            optimizer.zero_grad()
            loss.backward()
            clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            n = int((targets != PAD).sum())
            total, count = total + loss.item() * n, count + n
        history.append((total / count, evaluate(model, val)))
        bar.set_postfix(train=f"{history[-1][0]:.3f}", val=f"{history[-1][1]:.3f}")
    val_loss = history[-1][1]

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(range(1, epochs + 1), [h[0] for h in history], label="training")
    ax.plot(range(1, epochs + 1), [h[1] for h in history], label="validation")
    ax.axhline(math.log(len(CHARS)), color="gray", ls="--", label="uniform guess, log 27")
    ax.set(xlabel="epoch", ylabel="nats per character", title=f"names: {args.model}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / f"loss_{args.model}.png", dpi=100)
    plt.close(fig)

    samples = sample(model, args.samples, args.temperature)
    known = set(names)
    print(f"samples at temperature {args.temperature} (* = not a census name):")
    print("  " + ", ".join(s + ("" if s in known else "*") for s in samples))
    print(f"{args.model}: validation loss {val_loss:.3f} nats/char (uniform guess: {math.log(len(CHARS)):.3f})")
    return {"val_loss": val_loss, "uniform": math.log(len(CHARS)), "samples": samples, "history": history,
            "parameters": model.num_parameters(), "novel": [s not in known for s in samples]}


if __name__ == "__main__":
    main(sys.argv[1:])
