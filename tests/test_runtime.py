"""ember's runtime settings (matmul precision, deterministic algorithms, threads) and memory
formats against torch 2.13."""
from __future__ import annotations

import copy
import pickle
import sys

import pytest
import torch

import ember
from ember import _runtime


@pytest.fixture
def restore_runtime():
    saved = dict(vars(_runtime.state))
    yield
    for k in list(vars(_runtime.state)):
        delattr(_runtime.state, k)
    vars(_runtime.state).update(saved)
    torch.set_float32_matmul_precision("highest")
    torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize("precision", ["highest", "high", "medium", "highest"])
def test_matmul_precision_round_trips(restore_runtime, precision):
    for m in (ember, torch):
        m.set_float32_matmul_precision(precision)
        assert m.get_float32_matmul_precision() == precision


@pytest.mark.parametrize("bad", ["bad", "HIGH", ""])
def test_matmul_precision_unknown_name_warns_and_keeps(restore_runtime, bad):
    for m in (ember, torch):
        m.set_float32_matmul_precision("medium")
        with pytest.warns(UserWarning, match=f"{bad} is not one of 'highest', 'high', or "):
            m.set_float32_matmul_precision(bad)
        assert m.get_float32_matmul_precision() == "medium"


@pytest.mark.parametrize("bad", [1, None, 1.0])
def test_matmul_precision_non_str_raises(bad):
    for m in (ember, torch):
        with pytest.raises(RuntimeError, match="set_float32_matmul_precision expects a str, "
                                               f"but got {type(bad).__name__}"):
            m.set_float32_matmul_precision(bad)


@pytest.mark.parametrize("mode,warn_only", [(True, False), (True, True), (False, True),
                                            (False, False)])
def test_deterministic_flags(restore_runtime, mode, warn_only):
    for m in (ember, torch):
        m.use_deterministic_algorithms(mode, warn_only=warn_only)
        got = (m.are_deterministic_algorithms_enabled(),
               m.is_deterministic_algorithms_warn_only_enabled(), m.get_deterministic_debug_mode())
        want = (mode, warn_only, 0 if not mode else (1 if warn_only else 2))
        assert got == want, m


@pytest.mark.parametrize("value", ["default", "warn", "error", 0, 1, 2])
def test_deterministic_debug_mode(restore_runtime, value):
    for m in (ember, torch):
        m.set_deterministic_debug_mode(value)
        assert m.get_deterministic_debug_mode() == (
            value if isinstance(value, int) else ["default", "warn", "error"].index(value))


BAD_DETERMINISTIC = {
    "mode=1": (lambda m: m.use_deterministic_algorithms(1), TypeError),
    "mode='a'": (lambda m: m.use_deterministic_algorithms("a"), TypeError),
    "positional warn_only": (lambda m: m.use_deterministic_algorithms(True, True), TypeError),
    "warn_only=1": (lambda m: m.use_deterministic_algorithms(True, warn_only=1), TypeError),
    "debug 'x'": (lambda m: m.set_deterministic_debug_mode("x"), RuntimeError),
    "debug 5": (lambda m: m.set_deterministic_debug_mode(5), RuntimeError),
}


@pytest.mark.parametrize("name", list(BAD_DETERMINISTIC))
def test_deterministic_bad_input(restore_runtime, name):
    fn, exc = BAD_DETERMINISTIC[name]
    for m in (ember, torch):
        with pytest.raises(exc):
            fn(m)


@pytest.mark.parametrize("fn", ["set_num_threads", "set_num_interop_threads"])
@pytest.mark.parametrize("bad,match", [(0, "expects a positive integer"),
                                       (-1, "expects a positive integer"),
                                       (1.5, "expects an int, but got float"),
                                       ("2", "expects an int, but got str"),
                                       (True, "expects an int, but got bool")])
def test_thread_count_bad_input(fn, bad, match):
    for m in (ember, torch):
        with pytest.raises(RuntimeError, match=f"{fn} {match}"):
            getattr(m, fn)(bad)


def test_num_threads_sets_blas_through_threadpoolctl(restore_runtime):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    blas = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    assert blas, "NumPy's BLAS is not visible to threadpoolctl"
    before = ember.get_num_threads()
    assert before == max(p["num_threads"] for p in blas)
    try:
        ember.set_num_threads(2)
        assert ember.get_num_threads() == 2
        assert {p["num_threads"] for p in threadpoolctl.threadpool_info()
                if p["user_api"] == "blas"} == {2}
    finally:
        ember.set_num_threads(before)
    assert ember.get_num_threads() == before


def test_num_threads_without_threadpoolctl_records_only(restore_runtime, monkeypatch):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import fails
    # no value recorded yet (an earlier test in this process may have set one: recipes run
    # in-process set their --threads)
    monkeypatch.setattr(_runtime.state, "num_threads", None)
    assert ember.get_num_threads() == _runtime._cpu_count()
    ember.set_num_threads(3)
    assert ember.get_num_threads() == 3


def test_num_interop_threads_can_be_set_once(restore_runtime):
    _runtime.state.num_interop_threads = None
    assert ember.get_num_interop_threads() == _runtime._cpu_count()
    ember.set_num_interop_threads(2)
    assert ember.get_num_interop_threads() == 2
    with pytest.raises(RuntimeError, match="cannot set number of interop threads"):
        ember.set_num_interop_threads(3)
    # (torch refuses a second call the same way; not called here, since a first call would
    # change the interop pool of the torch every later test uses)


FORMATS = ["contiguous_format", "channels_last", "channels_last_3d", "preserve_format"]


@pytest.mark.parametrize("name", FORMATS)
def test_memory_formats_print_and_pickle_as_torch(name):
    e, t = getattr(ember, name), getattr(torch, name)
    assert repr(e) == repr(t).replace("torch.", "ember.") == str(e) == f"ember.{name}"
    assert type(e) is ember.memory_format and type(t) is torch.memory_format
    assert pickle.loads(pickle.dumps(e)) is e
    assert copy.deepcopy(e) is e and copy.copy(e) is e
    assert e == e and hash(e) == hash(e)
    assert all(e != getattr(ember, other) for other in FORMATS if other != name)


def test_memory_format_cannot_be_made():
    for m in (ember, torch):
        with pytest.raises(TypeError, match="cannot create '.*memory_format' instances"):
            m.memory_format()
