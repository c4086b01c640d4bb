"""``ember.utils.benchmark`` (``torch.utils.benchmark``'s Timer and Measurement): statistics
and printed summaries equal torch's on the same block times; timing runs the statement with
the caller's globals; bad arguments raise torch's exception types."""
import re

import pytest
import torch
import torch.utils.benchmark as tb

import ember
import ember.utils.benchmark as eb

TIMES = [
    [1.0e-3],
    [2.1e-6, 2.0e-6, 2.3e-6, 2.2e-6, 9.0e-6],
    [5e-9 * k for k in (3, 1, 4, 1, 5, 9, 2, 6, 5, 3)],
    [0.5, 0.52, 0.49, 0.51],
]


def _strip_address(text):
    return re.sub(r"<.* object at 0x[0-9a-f]+>", "<obj>", text)


@pytest.mark.parametrize("raw", TIMES)
@pytest.mark.parametrize("number", [1, 10])
@pytest.mark.parametrize("spec", [dict(stmt="f(x)"),
                                  dict(stmt="a = 1\nf(a)", setup="x = 2", label="L",
                                       sub_label="s", description="d", num_threads=2),
                                  dict(stmt="a = 1\nb = 2", sub_label="s")])
def test_measurement_matches_torch(raw, number, spec):
    spec = dict(dict(setup="pass"), **spec)
    e = eb.Measurement(number, raw, eb.TaskSpec(**spec))
    t = tb.Measurement(number, raw, tb.TaskSpec(**spec))
    for name in ("times", "median", "mean", "iqr", "has_warnings", "title", "as_row_name"):
        assert getattr(e, name) == pytest.approx(getattr(t, name), rel=1e-12), name
    if len(raw) > 1:
        assert e.significant_figures == t.significant_figures
    assert _strip_address(repr(e)) == _strip_address(repr(t))
    assert e.stmt == t.stmt and e.num_threads == t.num_threads  # TaskSpec fields read through


def test_merge_matches_torch():
    spec = dict(stmt="f()", setup="pass")
    ms = [(2, [1e-3, 2e-3]), (1, [3e-3])]
    e = eb.Measurement.merge([eb.Measurement(n, r, eb.TaskSpec(**spec)) for n, r in ms])
    t = tb.Measurement.merge([tb.Measurement(n, r, tb.TaskSpec(**spec)) for n, r in ms])
    assert len(e) == len(t) == 1
    assert e[0].times == pytest.approx(t[0].times) and e[0].number_per_run == 1


@pytest.mark.parametrize("t", [3e-9, 4.5e-6, 7e-4, 2.0, 120.0])
def test_select_unit(t):
    assert eb.select_unit(t) == tb.select_unit(t)


def test_timer_runs_statement_with_globals_and_setup():
    calls = []
    timer = eb.Timer(stmt="f(x)", setup="x = 3", globals={"f": calls.append})
    m = timer.timeit(50)
    # warm-up of max(50 // 100, 2) runs, then 50 timed
    assert calls == [3] * 52
    assert m.number_per_run == 50 and len(m.raw_times) == 1 and m.mean > 0


def test_timer_puts_ember_in_globals_and_restores_threads():
    before = ember.get_num_threads()
    seen = []
    m = eb.Timer("seen.append((torch, torch.get_num_threads()))", globals={"seen": seen},
                 num_threads=1).blocked_autorange(min_run_time=0.01)
    assert seen[0] == (ember, 1)
    assert ember.get_num_threads() == before
    assert sum(m.raw_times) >= 0.01 and m.number_per_run >= 1


def test_adaptive_autorange_stops_on_spread_or_time():
    m = eb.Timer("sum(range(50))").adaptive_autorange(threshold=10.0, max_run_time=0.5)
    assert len(m.raw_times) >= 4  # at least four blocks before the spread is judged
    m = eb.Timer("sum(range(50))").adaptive_autorange(threshold=0.0, max_run_time=0.05)
    assert sum(m.raw_times) > 0.05  # a spread of 0 is never met: stops on time


def test_timer_dedents_block_strings():
    t = eb.Timer("""
        x = 1
        y = x + 1
    """)
    assert t._task_spec.stmt == "x = 1\ny = x + 1"
    assert tb.Timer("""
        x = 1
        y = x + 1
    """)._task_spec.stmt == t._task_spec.stmt


@pytest.mark.parametrize("lib", [tb, eb], ids=["torch", "ember"])
@pytest.mark.parametrize("kwargs,exc", [
    (dict(stmt=lambda: None), ValueError),
    (dict(stmt="pass", global_setup="x = 1"), ValueError),
    (dict(stmt="pass", language="fortran"), ValueError),
])
def test_bad_arguments_raise_torch_types(lib, kwargs, exc):
    with pytest.raises(exc):
        lib.Timer(**kwargs)


@pytest.mark.parametrize("lib", [tb, eb], ids=["torch", "ember"])
@pytest.mark.parametrize("method", ["repeat", "autorange"])
def test_repeat_and_autorange_point_to_blocked_autorange(lib, method):
    with pytest.raises(NotImplementedError, match="blocked_autorange"):
        getattr(lib.Timer("pass"), method)()


def test_cpp_language_is_refused():
    with pytest.raises(NotImplementedError, match="Python statements only"):
        eb.Timer("int x = 1;", language="cpp")
