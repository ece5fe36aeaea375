"""The BLAS thread policy (from_scratch/threads.py): one thread below the size threshold, more above it;
set_num_threads and the environment win; the import order changes nothing; results do not depend on it.

The thread counts are read back from the BLAS itself through threadpoolctl. Anything that changes the
process-wide policy runs in a fresh interpreter, so the tests do not depend on each other's order.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import from_scratch
from from_scratch import threads

ROOT = Path(__file__).resolve().parents[1]
SMALL = (160, 64, 192)    # the tutorial's q/k/v projection: far below the threshold
LARGE = (2048, 256, 1024)  # the large size's feed-forward: far above it


def run_python(code: str, **env: str) -> dict:
    """Run ``code`` in a fresh interpreter with no thread variables but ``env``; return the JSON it prints."""
    clean = {k: v for k, v in os.environ.items() if k not in threads.ENV_VARS}
    clean.update(env, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=clean,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# Prints the BLAS thread count after a small and after a large product through the library's helper.
PRODUCTS = f"""
    import json
    import numpy as np
    from threadpoolctl import threadpool_info
    import from_scratch as fs
    from from_scratch import threads

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    def after(m, k, n):
        threads.matmul(np.ones((m, k), np.float32), np.ones((k, n), np.float32))
        return blas_threads()

    at_import = blas_threads()
    large, small = after(*{LARGE}), after(*{SMALL})
"""
REPORT = """
    print(json.dumps(dict(at_import=at_import, small=small, large=large, get=fs.get_num_threads())))
"""


def test_threshold_separates_the_products_it_is_meant_to():
    assert np.prod(SMALL) < threads.PARALLEL_MIN_WORK <= np.prod(LARGE)


def test_large_products_use_more_threads_than_small_ones():
    code = PRODUCTS.replace("at_import = blas_threads()", "fs.set_num_threads(2)\n    at_import = blas_threads()")
    assert run_python(code + REPORT) == dict(at_import=[1], small=[1], large=[2], get=2)


@pytest.mark.parametrize("env, expected", [
    ({"OMP_NUM_THREADS": "3"}, 3),
    ({"MKL_NUM_THREADS": "2", "OMP_NUM_THREADS": "3"}, 2),
    ({"OPENBLAS_NUM_THREADS": "4", "OMP_NUM_THREADS": "3"}, 4),
    ({"OPENBLAS_NUM_THREADS": "1"}, 1),
])
def test_environment_variables_set_the_count_for_large_products(env, expected):
    out = run_python(PRODUCTS + REPORT, **env)
    assert out == dict(at_import=[1], small=[1], large=[expected], get=expected)


def test_set_num_threads_wins_over_the_environment():
    code = PRODUCTS.replace("at_import = blas_threads()", "fs.set_num_threads(3)\n    at_import = blas_threads()")
    assert run_python(code + REPORT, OMP_NUM_THREADS="2") == dict(at_import=[1], small=[1], large=[3], get=3)
    back = code + f"    fs.set_num_threads(None)\n    large, small = after(*{LARGE}), after(*{SMALL})\n"
    assert run_python(back + REPORT, OMP_NUM_THREADS="2") == dict(at_import=[1], small=[1], large=[2], get=2)


def test_default_uses_the_cores_other_processes_leave_idle(monkeypatch):
    big = np.ones(LARGE[:2], np.float32), np.ones(LARGE[1:], np.float32)
    monkeypatch.setattr(threads, "_requested", None)  # neither set_num_threads nor the environment
    one_second_ago = (threads.time.monotonic() - 1, 0.0, threads.time.process_time())
    # other processes kept every core of the machine busy over the last second
    monkeypatch.setattr(threads, "_machine_busy_seconds", lambda: float(os.cpu_count()))
    monkeypatch.setattr(threads, "_sample", one_second_ago)
    assert threads.threads_for(*big) == 1
    # an idle machine: every core of this process is free
    monkeypatch.setattr(threads, "_machine_busy_seconds", lambda: 0.0)
    monkeypatch.setattr(threads, "_sample", one_second_ago)
    monkeypatch.setattr(threads.time, "process_time", lambda: one_second_ago[2])
    assert threads.threads_for(*big) == threads.get_num_threads() == len(os.sched_getaffinity(0))
    assert threads.threads_for(big[0][:160, :64], big[1][:64, :192]) == 1


def test_importing_numpy_first_changes_nothing():
    # NumPy's BLAS is loaded and running 4 threads before the library is imported (as after
    # `import numpy` on a 4-core machine); the library still runs small products on one thread.
    out = run_python("""
        import json
        import numpy as np
        from threadpoolctl import threadpool_limits, threadpool_info
        threadpool_limits(4, user_api="blas")
        before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
        import from_scratch as fs
        from from_scratch import nn, Tensor
        at_import = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
        layer = nn.Linear(64, 192)
        layer(Tensor(np.ones((160, 64), np.float32))).sum().backward()
        after_step = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
        print(json.dumps(dict(before=before, at_import=at_import, after_step=after_step)))
    """)
    assert out == dict(before=[4], at_import=[1], after_step=[1])


def test_set_num_threads_rejects_bad_counts():
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="set_num_threads"):
            from_scratch.set_num_threads(bad)


@pytest.mark.parametrize("shapes", [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)),
                                    ((2, 1, 3, 4), (5, 4, 2)), (LARGE[:2], LARGE[1:])])
def test_matmul_is_numpys_matmul(shapes):
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(s).astype(np.float32) for s in shapes)
    np.testing.assert_array_equal(threads.matmul(a, b), a @ b)
    out = np.empty(np.broadcast_shapes((a @ b).shape), np.float32)
    assert threads.matmul(a, b, out=out) is out
    np.testing.assert_array_equal(out, a @ b)


def test_thread_counts_change_results_only_by_float32_rounding(tmp_path):
    # Two training steps of a model whose products are all above the threshold, on 1 and on 2 BLAS threads.
    run_python(f"""
        import json
        import numpy as np
        import from_scratch as fs
        from from_scratch import nn, Tensor
        from from_scratch.optim import Adam

        def train(threads):
            fs.set_num_threads(threads)
            fs.manual_seed(0)
            model = nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 256))
            x = Tensor(np.random.default_rng(0).standard_normal((2048, 256)).astype(np.float32))
            optimizer = Adam(model.parameters(), lr=1e-3)
            for _ in range(2):
                loss = (model(x) ** 2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            return [loss.data, *(p.data for p in model.parameters())]

        np.savez("{tmp_path / 'one.npz'}", *train(1))
        np.savez("{tmp_path / 'two.npz'}", *train(2))
        print("{{}}")
    """)
    one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    for name in one.files:
        assert one[name].dtype == np.float32
        np.testing.assert_allclose(two[name], one[name], rtol=1e-5, atol=1e-6, err_msg=name)
