"""Breast-cancer classifier: standardised features, an MLP with a sigmoid output, binary cross-entropy, Adam + L2.

    python examples/breast_cancer_mlp.py          # writes runs/breast_cancer_mlp/breast_cancer.png

The data (569 tumours, 30 features, malignant or benign) ships with scikit-learn; the split is
fixed and stratified, so every run tests on the same 114 tumours.
"""
from __future__ import annotations

import sys
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from _common import make_parser, setup
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import from_scratch as fs
import from_scratch.functional as F
from from_scratch import nn
from from_scratch.optim import Adam
from from_scratch.random import get_rng


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Return standardised float32 features and 0/1 labels for a fixed stratified 80/20 split."""
    data = load_breast_cancer()
    x_train, x_test, y_train, y_test = train_test_split(data.data, data.target, test_size=0.2,
                                                        stratify=data.target, random_state=42)
    # Standardise with the training set's statistics only: the test set stays unseen.
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    return (x_train.astype(np.float32), x_test.astype(np.float32), y_train.astype(np.float32),
            y_test.astype(np.float32), list(data.target_names))


def main(argv: Sequence[str] | None = None) -> dict:
    parser = make_parser("breast_cancer_mlp", __doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=5e-2, help="L2 penalty (Adam's weight_decay)")
    parser.add_argument("--dropout", type=float, default=0.2)
    args = parser.parse_args(argv)
    out_dir = setup(args)
    epochs = 15 if args.quick else args.epochs
    x_train, x_test, y_train, y_test, classes = load_data()

    model = nn.Sequential(nn.Linear(30, args.hidden), nn.ReLU(), nn.Dropout(args.dropout), nn.Linear(args.hidden, 1),
                          nn.Sigmoid()).to(args.device)
    x_dev, y_dev = fs.Tensor(x_train, device=args.device), fs.Tensor(y_train, device=args.device)  # copied once
    optimizer = Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    batch_size, losses = 32, []
    for _ in tqdm(range(epochs), desc="epochs"):
        model.train()
        order, total = get_rng().permutation(len(x_train)), 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            prob = model(x_dev[idx]).reshape(-1)
            loss = F.binary_cross_entropy(prob, y_dev[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        losses.append(total / len(x_train))

    model.eval()
    with fs.no_grad():
        pred = (model(fs.Tensor(x_test, device=args.device)).numpy().reshape(-1) > 0.5).astype(int)
    accuracy = float((pred == y_test).mean())
    majority = float(max(y_test.mean(), 1 - y_test.mean()))  # always answering the commoner class
    cm = confusion_matrix(y_test.astype(int), pred)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.8))
    ax1.plot(range(1, epochs + 1), losses)
    ax1.set(xlabel="epoch", ylabel="training BCE", title="training loss")
    ax2.imshow(cm, cmap="Blues")
    for (i, j), n in np.ndenumerate(cm):
        ax2.text(j, i, str(n), ha="center", va="center", color="white" if n > cm.max() / 2 else "black")
    ax2.set(xticks=[0, 1], yticks=[0, 1], xticklabels=classes, yticklabels=classes, xlabel="predicted",
            ylabel="true", title=f"test accuracy {accuracy:.1%}")
    fig.tight_layout()
    fig.savefig(out_dir / "breast_cancer.png", dpi=100)
    plt.close(fig)

    print("confusion matrix (rows: true, columns: predicted):")
    print(f"{'':>10}" + "".join(f"{c:>10}" for c in classes))
    for c, row in zip(classes, cm):
        print(f"{c:>10}" + "".join(f"{n:>10}" for n in row))
    print(f"test accuracy: {accuracy:.2%} (majority class: {majority:.2%})")
    return {"accuracy": accuracy, "majority": majority, "confusion": cm}


if __name__ == "__main__":
    main(sys.argv[1:])
