"""Convolutional network on scikit-learn's 8x8 digits: two Conv2d + BatchNorm2d + ReLU + MaxPool2d blocks, a linear head.

    python examples/cnn_digits.py                 # writes runs/cnn_digits/curves.png

The next chapter after the Vision Transformer, on the same images and the same fixed train/test split
(``vit_digits.load_data``): instead of cutting the image into patches that attend to each other, small
3x3 filters slide over it. Each block convolves, normalises each channel over the batch (BatchNorm2d),
applies ReLU and halves the resolution (MaxPool2d): 1x8x8 -> 32x4x4 -> 64x2x2 -> 10 logits. Trained
with AdamW, a linear-warmup + cosine learning rate and the ViT example's random one-pixel shifts;
the batches come from ``from_scratch.data.DataLoader`` (shuffled each epoch by the seeded generator).
"""
from __future__ import annotations

import sys
import time
from typing import Sequence

from _common import make_parser, setup
from tqdm import tqdm
from vit_digits import accuracy, load_data, report, shift

import from_scratch as fs
import from_scratch.functional as F
from from_scratch import nn
from from_scratch.data import DataLoader, TensorDataset
from from_scratch.optim import AdamW, WarmupCosineLR
from from_scratch.random import get_rng


class CNN(nn.Module):
    """Shape: images (B, 8, 8) -> logits (B, num_classes)."""

    def __init__(self, channels: tuple[int, int] = (32, 64), num_classes: int = 10):
        super().__init__()

        def block(c_in: int, c_out: int) -> nn.Sequential:
            # no conv bias: BatchNorm's shift replaces it
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                                 nn.ReLU(), nn.MaxPool2d(2))

        self.features = nn.Sequential(block(1, channels[0]), block(channels[0], channels[1]))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels[1] * 2 * 2, num_classes))

    def forward(self, images: fs.Tensor) -> fs.Tensor:
        return self.head(self.features(images.unsqueeze(1)))  # (B, 8, 8) -> one channel (B, 1, 8, 8)


def main(argv: Sequence[str] | None = None) -> dict:
    parser = make_parser("cnn_digits", __doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--channels", type=int, nargs=2, default=[32, 64])
    args = parser.parse_args(argv)
    out_dir = setup(args)
    epochs = 4 if args.quick else args.epochs
    x_train, x_test, y_train, y_test = load_data()

    model = CNN(tuple(args.channels)).to(args.device)
    optimizer = AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True)
    total = epochs * len(loader)
    schedule = WarmupCosineLR(optimizer, warmup_steps=max(1, total // 10), total_steps=total)
    print(f"CNN: {model.num_parameters():,} parameters; {len(x_train)} training and {len(x_test)} test images")

    start, history = time.perf_counter(), []
    bar = tqdm(range(epochs), desc="epochs")
    for _ in bar:
        running = 0.0
        for images, labels in loader:
            images = fs.Tensor(shift(images.numpy(), get_rng()), device=args.device)  # augmented on the host
            loss = F.cross_entropy(model(images), labels.to(args.device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            running += loss.item() * len(labels)
        history.append((running / len(x_train), accuracy(model, x_test, y_test)))
        bar.set_postfix(loss=f"{history[-1][0]:.3f}", test=f"{history[-1][1]:.1%}")
    seconds = time.perf_counter() - start
    return report(history, y_test, seconds, out_dir, "CNN on 8x8 digits")


if __name__ == "__main__":
    main(sys.argv[1:])
