"""Each tests/programs/*.py runs twice, with real PyTorch (``python prog.py``) and on ember
(``python -m ember.run prog.py``), and the final JSON lines must agree.

A program makes its starting weights and data with NumPy from a fixed seed, so both runs start
equal, and ends by printing one JSON line. Numbers are compared with ``math.isclose`` at a
relative tolerance of 1e-4 (absolute 1e-6) unless the program sets ``RTOL = ...`` /
``ATOL = ...`` at its top level; everything else (strings, bools, keys, lengths) must be equal.
A new program needs no change here.
"""
import ast
import glob
import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = sorted(glob.glob(os.path.join(ROOT, "tests", "programs", "*.py")))
TIMEOUT = 300


def _tolerances(path):
    """``RTOL``/``ATOL`` assigned at the program's top level, else the defaults."""
    tol = {"RTOL": 1e-4, "ATOL": 1e-6}
    for node in ast.parse(open(path).read()).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id in tol):
            tol[node.targets[0].id] = float(ast.literal_eval(node.value))
    return tol["RTOL"], tol["ATOL"]


def _start(args, cwd):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    # one thread each: the two runs go side by side, and small ops gain nothing from more
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _result(proc, label):
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"{label} run timed out after {TIMEOUT}s\n{err[-3000:]}")
    assert proc.returncode == 0, f"{label} run failed (exit {proc.returncode}):\n{err[-4000:]}"
    lines = [line for line in out.strip().splitlines() if line.strip()]
    assert lines, f"{label} run printed nothing"
    return json.loads(lines[-1])


def _compare(a, b, rtol, atol, path="result"):
    """Assert the torch result ``a`` and the ember result ``b`` agree, naming the first
    difference by its path in the JSON."""
    if isinstance(a, bool) or isinstance(b, bool) or not (
            isinstance(a, (int, float)) and isinstance(b, (int, float))):
        if isinstance(a, dict) and isinstance(b, dict):
            assert sorted(a) == sorted(b), f"{path}: keys {sorted(a)} != {sorted(b)}"
            for k in a:
                _compare(a[k], b[k], rtol, atol, f"{path}[{k!r}]")
        elif isinstance(a, list) and isinstance(b, list):
            assert len(a) == len(b), f"{path}: length {len(a)} != {len(b)}"
            for i, (x, y) in enumerate(zip(a, b)):
                _compare(x, y, rtol, atol, f"{path}[{i}]")
        else:
            assert type(a) is type(b) and a == b, f"{path}: torch {a!r} != ember {b!r}"
        return
    if math.isnan(a) or math.isnan(b):
        assert math.isnan(a) and math.isnan(b), f"{path}: torch {a} != ember {b}"
        return
    assert math.isclose(a, b, rel_tol=rtol, abs_tol=atol), (
        f"{path}: torch {a} vs ember {b} (rtol {rtol}, atol {atol})")


def test_programs_found():
    assert len(PROGRAMS) >= 3


@pytest.mark.parametrize("path", PROGRAMS, ids=[os.path.basename(p)[:-3] for p in PROGRAMS])
def test_program_matches_torch(path, tmp_path):
    rtol, atol = _tolerances(path)
    (tmp_path / "torch").mkdir()
    (tmp_path / "ember").mkdir()
    # the two runs side by side, each in its own folder (a program may write files)
    real = _start([path], tmp_path / "torch")
    ours = _start(["-m", "ember.run", path], tmp_path / "ember")
    expected = _result(real, "torch")
    got = _result(ours, "ember")
    _compare(expected, got, rtol, atol)


@pytest.mark.parametrize("a,b,ok", [
    ({"x": [1.0, 2.0]}, {"x": [1.00001, 2.0]}, True),
    ({"x": [1.0, 2.0]}, {"x": [1.001, 2.0]}, False),
    ({"x": 0.0}, {"x": 1e-7}, True),
    ({"x": "abc"}, {"x": "abd"}, False),
    ({"x": [1]}, {"x": [1, 2]}, False),
    ({"x": 1}, {"y": 1}, False),
    ({"x": True}, {"x": 1}, False),
    ({"x": float("nan")}, {"x": float("nan")}, True),
])
def test_compare(a, b, ok):
    if ok:
        _compare(a, b, 1e-4, 1e-6)
    else:
        with pytest.raises(AssertionError):
            _compare(a, b, 1e-4, 1e-6)
