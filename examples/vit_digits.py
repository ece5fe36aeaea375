"""Vision Transformer on scikit-learn's 8x8 digits: patches, a class token, learned positions, a pre-norm encoder.

    python examples/vit_digits.py                 # writes runs/vit_digits/curves.png

An image becomes a sequence: cut into 2x2 patches (16 of them, 4 pixels each), each patch
projected by a Linear layer to a token; a learned class token goes first, learned position
embeddings are added, a pre-norm Transformer encoder mixes the tokens, and the class token's
final state is classified. Trained with AdamW, a linear-warmup + cosine learning rate, and
random one-pixel shifts of the training images (augmentation: with 1,437 training images the
model otherwise learns them by heart).
"""
from __future__ import annotations

import math
import sys
import time
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from _common import make_parser, setup
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import from_scratch as fs
import from_scratch.functional as F
from from_scratch import nn
from from_scratch.optim import AdamW, WarmupCosineLR
from from_scratch.random import get_rng


class ViT(nn.Module):
    """Shape: images (B, S, S) -> logits (B, num_classes)."""

    def __init__(self, image_size: int = 8, patch_size: int = 2, hidden_size: int = 64, num_layers: int = 2,
                 num_heads: int = 4, ff_size: int = 128, dropout: float = 0.0, num_classes: int = 10):
        super().__init__()
        self.patch_size = patch_size
        num_patches = (image_size // patch_size) ** 2
        self.patch_embedding = nn.Linear(patch_size * patch_size, hidden_size)
        self.class_token = nn.Parameter(np.zeros((1, 1, hidden_size), np.float32))
        self.position_embedding = nn.Parameter(np.zeros((1, num_patches + 1, hidden_size), np.float32))
        nn.init.normal_(self.position_embedding, std=0.02)
        self.dropout = nn.Dropout(dropout)
        self.encoder = nn.Encoder(num_layers, hidden_size, num_heads, ff_size, dropout, norm_first=True)
        self.head = nn.Linear(hidden_size, num_classes)

    def patchify(self, images: fs.Tensor) -> fs.Tensor:
        """(B, S, S) -> (B, (S/p)^2, p*p): row-major patches, each flattened row-major."""
        b, s, _ = images.shape
        p, n = self.patch_size, s // self.patch_size
        # (B, n, p, n, p): axis 1 picks the patch row, 2 the pixel row inside it, 3 and 4 the same for columns;
        # bring the two patch axes together, then the two pixel axes.
        return images.reshape(b, n, p, n, p).permute(0, 1, 3, 2, 4).reshape(b, n * n, p * p)

    def forward(self, images: fs.Tensor) -> fs.Tensor:
        tokens = self.patch_embedding(self.patchify(images))             # (B, N, H)
        b = tokens.shape[0]
        cls = self.class_token.expand(b, 1, tokens.shape[-1])            # one class token per image
        x = self.dropout(fs.cat([cls, tokens], axis=1) + self.position_embedding)  # (B, N + 1, H)
        return self.head(self.encoder(x)[:, 0])                          # classify the class token


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (train images, test images, train labels, test labels): a fixed stratified 80/20 split, in [0, 1]."""
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    return train_test_split(images, digits.target, test_size=0.2, stratify=digits.target, random_state=0)


def shift(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Augment: move each image by -1, 0 or 1 pixels in each direction, filling with zeros."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    dy, dx = rng.integers(0, 3, (2, len(images)))
    rows = dy[:, None] + np.arange(8)
    cols = dx[:, None] + np.arange(8)
    return padded[np.arange(len(images))[:, None, None], rows[:, :, None], cols[:, None, :]]


@fs.no_grad()
def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    """Share of ``images`` (host arrays, copied to the model's device) whose predicted class is the label."""
    model.eval()
    pred = model(fs.Tensor(images, device=model.parameters()[0].device)).numpy().argmax(-1)
    model.train()
    return float((pred == labels).mean())


def report(history: list, y_test: np.ndarray, seconds: float, out_dir, title: str) -> dict:
    """Plot (loss, test accuracy) per epoch to ``out_dir/curves.png``, print the result line, return it."""
    epochs, test_acc = len(history), history[-1][1]
    fig, ax1 = plt.subplots(figsize=(6, 4))
    ax1.plot(range(1, epochs + 1), [h[0] for h in history], color="tab:blue")
    ax1.set(xlabel="epoch", ylabel="training loss", yscale="log", title=title)
    ax2 = ax1.twinx()
    ax2.plot(range(1, epochs + 1), [h[1] for h in history], color="tab:orange")
    ax2.set_ylabel("test accuracy", color="tab:orange")
    fig.tight_layout()
    fig.savefig(out_dir / "curves.png", dpi=100)
    plt.close(fig)

    majority = float(np.bincount(y_test).max() / len(y_test))
    print(f"test accuracy: {test_acc:.2%} after {epochs} epochs in {seconds:.0f} s (majority class: {majority:.1%})")
    return {"accuracy": test_acc, "majority": majority, "history": history, "seconds": seconds}


def main(argv: Sequence[str] | None = None) -> dict:
    parser = make_parser("vit_digits", __doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--patch-size", type=int, default=2, choices=[1, 2, 4, 8])
    parser.add_argument("--dropout", type=float, default=0.0)
    args = parser.parse_args(argv)
    out_dir = setup(args)
    epochs = 10 if args.quick else args.epochs
    x_train, x_test, y_train, y_test = load_data()

    model = ViT(patch_size=args.patch_size, hidden_size=args.hidden_size, num_layers=args.layers,
                ff_size=2 * args.hidden_size, dropout=args.dropout).to(args.device)
    optimizer = AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = math.ceil(len(x_train) / args.batch_size)
    total = epochs * steps_per_epoch
    schedule = WarmupCosineLR(optimizer, warmup_steps=max(1, total // 10), total_steps=total)
    print(f"ViT: {model.num_parameters():,} parameters; {len(x_train)} training and {len(x_test)} test images")

    start, history = time.perf_counter(), []
    bar = tqdm(range(epochs), desc="epochs")
    for _ in bar:
        rng = get_rng()
        order, running = rng.permutation(len(x_train)), 0.0
        for i in range(0, len(order), args.batch_size):
            idx = order[i:i + args.batch_size]
            images, labels = shift(x_train[idx], rng), y_train[idx]  # augmented on the host, then copied
            loss = F.cross_entropy(model(fs.Tensor(images, device=args.device)), fs.Tensor(labels, device=args.device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            running += loss.item() * len(idx)
        history.append((running / len(x_train), accuracy(model, x_test, y_test)))
        bar.set_postfix(loss=f"{history[-1][0]:.3f}", test=f"{history[-1][1]:.1%}")
    seconds = time.perf_counter() - start
    return report(history, y_test, seconds, out_dir, "ViT on 8x8 digits")


if __name__ == "__main__":
    main(sys.argv[1:])
