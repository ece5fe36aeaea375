"""MLP regression: fit a noisy 1-D curve with Sequential(Linear, ReLU, ...) and SGD with momentum, and plot the fit.

    python examples/mlp_regression.py            # writes runs/mlp_regression/fit.png
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
from from_scratch import nn
from from_scratch.optim import SGD
from from_scratch.random import get_rng


def target_fn(x: np.ndarray) -> np.ndarray:
    return np.sin(2 * x) + 0.3 * x


def main(argv: Sequence[str] | None = None) -> dict:
    parser = make_parser("mlp_regression", __doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    args = parser.parse_args(argv)
    out_dir = setup(args)
    epochs = 60 if args.quick else args.epochs

    # Data: y = sin(2x) + 0.3x + noise on [-3, 3]; a held-out test set from the same curve.
    rng = get_rng()
    x_train = rng.uniform(-3, 3, (256, 1)).astype(np.float32)
    y_train = (target_fn(x_train) + rng.normal(0, 0.1, x_train.shape)).astype(np.float32)
    x_test = rng.uniform(-3, 3, (256, 1)).astype(np.float32)
    y_test = target_fn(x_test).astype(np.float32)

    model = nn.Sequential(nn.Linear(1, args.hidden), nn.ReLU(), nn.Linear(args.hidden, args.hidden), nn.ReLU(),
                          nn.Linear(args.hidden, 1)).to(args.device)
    # The training set is small: copy it to the device once; each batch is then picked there.
    x_dev, y_dev = fs.Tensor(x_train, device=args.device), fs.Tensor(y_train, device=args.device)
    optimizer = SGD(model.parameters(), lr=args.lr, momentum=0.9)
    batch_size = 32
    for _ in tqdm(range(epochs), desc="epochs"):
        order = rng.permutation(len(x_train))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            loss = F.mse_loss(model(x_dev[idx]), y_dev[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    with fs.no_grad():
        test_mse = F.mse_loss(model(fs.Tensor(x_test, device=args.device)),
                              fs.Tensor(y_test, device=args.device)).item()
        grid = np.linspace(-3, 3, 200, dtype=np.float32)[:, None]
        fit = model(fs.Tensor(grid, device=args.device)).numpy()
    baseline = float(((y_test - y_train.mean()) ** 2).mean())  # always predicting the training mean

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(x_train[:, 0], y_train[:, 0], s=8, alpha=0.5, label="training data")
    ax.plot(grid[:, 0], target_fn(grid[:, 0]), "k--", label="true curve")
    ax.plot(grid[:, 0], fit[:, 0], "r", lw=2, label=f"MLP fit (test MSE {test_mse:.4f})")
    ax.legend()
    ax.set_title("MLP regression with SGD + momentum")
    fig.tight_layout()
    fig.savefig(out_dir / "fit.png", dpi=100)
    plt.close(fig)

    print(f"test MSE: {test_mse:.4f} (predicting the mean: {baseline:.4f})")
    return {"test_mse": test_mse, "baseline_mse": baseline}


if __name__ == "__main__":
    main(sys.argv[1:])
