"""What every example shares: its command line (--quick, --seed, --out, --device) and its output folder."""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
from threadpoolctl import threadpool_limits

import from_scratch

matplotlib.use("Agg")  # figures are written to files, never shown; works without a display


def make_parser(name: str, description: str) -> argparse.ArgumentParser:
    """Return a parser with the flags every example takes; the example adds its own."""
    parser = argparse.ArgumentParser(prog=f"python examples/{name}.py", description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few-second run for the tests")
    parser.add_argument("--seed", type=int, default=0, help="seed for init, dropout and data order")
    parser.add_argument("--out", type=Path, default=Path("runs") / name, help="folder for figures")
    parser.add_argument("--device", default="cpu", help="where the model runs: cpu, cuda or cuda:N (cuda needs "
                                                        "CuPy: pip install -e '.[cuda]')")
    return parser


def setup(args: argparse.Namespace) -> Path:
    """Check ``--device`` (replaced by the Device it names), seed the library's generator, use one BLAS thread,
    and create the output folder; return it.

    Models are built on the CPU (the same seed gives the same weights on every device) and moved to
    ``args.device``; the data is made on the host and copied there batch by batch.
    Raises SystemExit with one line for a device that cannot be used (cuda without CuPy or a GPU).
    """
    try:
        args.device = from_scratch.device(args.device)
        from_scratch.backend.device_module(args.device)
    except (ValueError, RuntimeError) as e:
        raise SystemExit(f"error: {e}") from None
    from_scratch.manual_seed(args.seed)
    # Small matrices run fastest on one BLAS thread. `import from_scratch` sets OPENBLAS_NUM_THREADS=1,
    # but only takes effect before NumPy loads; here NumPy came first, so limit the loaded BLAS instead.
    # (threadpoolctl comes with scikit-learn.)
    threadpool_limits(1, user_api="blas")
    args.out.mkdir(parents=True, exist_ok=True)
    return args.out
