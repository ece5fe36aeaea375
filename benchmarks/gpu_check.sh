#!/usr/bin/env bash
# The GPU check, in one go, for a machine with an NVIDIA GPU, CuPy and a CUDA build of PyTorch (no pip, no
# internet needed). Run from the repository root:
#
#     bash benchmarks/gpu_check.sh            # writes everything under $OUT (default: ./gpu_check_out)
#
# 1. the GPU tests (pytest -m gpu: the device-parametrised suite on "cuda", float64 parity with the CPU,
#    a short end-to-end training), 2. `bbml reverse train --device cuda` with the defaults, then
#    `bbml reverse eval --device cuda` on 10,000 fresh sequences, 3. benchmarks/speed.py --device cuda (ours
#    against PyTorch CUDA eager, the issue's four sizes, time and peak GPU memory). Each part has its own
#    time limit, so one that hangs still leaves the others' results; under 10 minutes in all.
# Exits 2 at once when CuPy or a GPU is not usable; otherwise 1 if any part failed, 0 if all passed.
#
# Pure-Python packages the package or pytest needs and that machine may lack (threadpoolctl, pytest) can be
# prepared here and carried along: pip install --target .gpu_deps threadpoolctl pytest  (.gpu_deps/ is
# added to PYTHONPATH when present; git ignores it).
set -u
OUT=${OUT:-$PWD/gpu_check_out}
mkdir -p "$OUT"
PY=${PYTHON:-python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .gpu_deps ]; then export PYTHONPATH="$PYTHONPATH:$PWD/.gpu_deps"; fi
export MPLBACKEND=Agg OPENBLAS_NUM_THREADS=1 PYTHONUNBUFFERED=1
START=$(date +%s)
log() { echo "[gpu_check +$(( $(date +%s) - START ))s] $*" | tee -a "$OUT/summary.txt"; }
limit() { if command -v timeout >/dev/null; then timeout "$@"; else shift; "$@"; fi; }

# 0. What is there: versions, the GPU, whether the library and PyTorch both see it.
"$PY" - > "$OUT/environment.txt" 2>&1 <<'EOF'
import importlib, sys
print("python", sys.version.split()[0])
for name in ("numpy", "cupy", "torch", "safetensors", "threadpoolctl", "pytest", "matplotlib", "tqdm"):
    try:
        print(name, getattr(importlib.import_module(name), "__version__", "?"))
    except Exception as e:
        print(name, "MISSING:", type(e).__name__, e)
import torch
print("torch.cuda.is_available():", torch.cuda.is_available(), "CUDA", torch.version.cuda)
from from_scratch import backend
print("from_scratch.backend.is_available():", backend.is_available())
EOF
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
log "environment: $(tr '\n' ';' < "$OUT/environment.txt")"
if ! "$PY" -c "from from_scratch import backend; import sys; sys.exit(0 if backend.is_available() else 1)" 2>/dev/null; then
    log "CuPy or a GPU is not usable here: nothing to check ($(grep -m1 -i 'cupy' "$OUT/environment.txt"))"
    exit 2
fi
FAILED=0

# 1. The GPU tests: first this task's (short), then every device-parametrised test on "cuda", verbose so a part
#    cut off by its time limit still shows each result so far. --continue-on-collection-errors: a test file whose
#    optional imports are missing there (hypothesis, scikit-learn, mpi4py) must not stop the others.
if "$PY" -c "import pytest" 2>/dev/null; then
    PYTEST=("$PY" -m pytest -m gpu --continue-on-collection-errors -p no:cacheprovider -rfEs --tb=short)
    limit 100 "${PYTEST[@]}" -v tests/test_device_task.py > "$OUT/pytest_gpu_task.txt" 2>&1
    code=$?; [ $code -ne 0 ] && FAILED=1
    log "pytest -m gpu tests/test_device_task.py: exit $code ($(tail -n 1 "$OUT/pytest_gpu_task.txt"))"
    limit 150 "${PYTEST[@]}" -v --durations=10 tests/ --deselect tests/test_device_task.py \
        > "$OUT/pytest_gpu_all.txt" 2>&1
    code=$?; [ $code -ne 0 ] && FAILED=1
    log "pytest -m gpu tests/ (the device suite on cuda): exit $code ($(tail -n 1 "$OUT/pytest_gpu_all.txt"))"
else
    log "pytest is not installed there: GPU tests skipped (carry .gpu_deps, see the header)"
fi

# 2. The reversal task with the defaults on the GPU, then the held-out evaluation (target: 100.00%).
limit 130 "$PY" -m from_scratch.cli reverse train --device cuda --out "$OUT/reverse_run" --force \
    > "$OUT/reverse_train.txt" 2>&1
code=$?; [ $code -ne 0 ] && FAILED=1
log "bbml reverse train --device cuda: exit $code ($(grep -m1 'trained ' "$OUT/reverse_train.txt"; tail -n 1 "$OUT/reverse_train.txt"))"
limit 50 "$PY" -m from_scratch.cli reverse eval --device cuda --ckpt "$OUT/reverse_run" --json \
    > "$OUT/reverse_eval.json" 2> "$OUT/reverse_eval.err"
code=$?; [ $code -ne 0 ] && FAILED=1
log "bbml reverse eval --device cuda: exit $code ($(grep -m1 '"exact_match"' "$OUT/reverse_eval.json"; tail -n 1 "$OUT/reverse_eval.err"))"

# 3. The benchmark: ours against PyTorch CUDA eager, same GPU, alternating rounds.
limit 140 "$PY" benchmarks/speed.py --device cuda --rounds 5 > "$OUT/speed_cuda.txt" 2>&1
code=$?; [ $code -ne 0 ] && FAILED=1
log "benchmarks/speed.py --device cuda: exit $code"
cat "$OUT/speed_cuda.txt" >> "$OUT/summary.txt"
log "done (failed parts: $FAILED)"
exit $FAILED
