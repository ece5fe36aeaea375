"""Package code never creates an array without naming its device.

NumPy's creation functions (``np.zeros(shape)``, ``np.arange(n)``, ``np.asarray(list)``, draws from a NumPy
generator) make host arrays; on a GPU the next op would fail, or worse, quietly compute on the CPU. So in
the package every array is made either from another array (``np.zeros_like(x)``, ``x.astype``: same
device), through the device's array module (``backend.device_module(device).zeros``), or on purpose on
the host, which the line says with a ``# host`` comment (data generation, checkpoints, decoding
bookkeeping). This test reads the source and lists every call that does none of these.
"""
import ast
import pathlib

import from_scratch

PACKAGE = pathlib.Path(from_scratch.__file__).parent
CREATORS = {"zeros", "ones", "empty", "full", "arange", "eye", "identity", "array", "asarray", "ascontiguousarray",
            "linspace", "tri", "triu", "tril", "frombuffer", "fromiter", "default_rng"}
EXEMPT = {"backend.py"}  # the device seam itself


def _host_creations(path: pathlib.Path) -> list[str]:
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        f = node.func
        base = f.value
        is_np = isinstance(base, ast.Name) and base.id == "np"
        is_np_random = (isinstance(base, ast.Attribute) and base.attr == "random"
                        and isinstance(base.value, ast.Name) and base.value.id == "np")
        if (is_np and f.attr in CREATORS) or is_np_random:
            span = lines[node.lineno - 1:(node.end_lineno or node.lineno)]
            if not any("# host" in line for line in span):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    return found


def test_every_array_is_made_on_a_named_device():
    offenders = [hit for path in sorted(PACKAGE.rglob("*.py")) if path.name not in EXEMPT
                 for hit in _host_creations(path)]
    assert not offenders, (f"{len(offenders)} host array creations without a '# host' reason:\n"
                           + "\n".join(offenders))


def test_the_check_finds_what_it_should(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import numpy as np\na = np.zeros(3)\nb = np.zeros_like(a)\nc = np.arange(4)  # host: ids\n"
                      "d = np.random.default_rng(0)\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path
    try:
        hits = _host_creations(sample)
    finally:
        PACKAGE = saved
    assert [h.split(":")[1] for h in hits] == ["2", "5"]
