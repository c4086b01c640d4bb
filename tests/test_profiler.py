"""ember.profiler / autograd.profiler (a dispatch mode, NOTE [ Modes ]) against torch's."""
import json
import os

import pytest
import torch

import ember
from ember.autograd.modes import current_modes


def _train_step(m, x, w):
    with m.profiler.record_function("forward_block"):
        y = (x @ w).relu().sum()
    y.backward()
    return y


def _run(m, **kw):
    x = m.ones(4, 3, requires_grad=True)
    w = m.ones(3, 2)
    with m.profiler.profile(activities=[m.profiler.ProfilerActivity.CPU], **kw) as prof:
        _train_step(m, x, w)
    return prof


def test_names_counts_and_nesting_as_torch():
    names = {}
    for m in (ember, torch):
        prof = _run(m, record_shapes=True)
        names[m] = {e.key: e.count for e in prof.key_averages()}
    assert names[ember]["forward_block"] == names[torch]["forward_block"] == 1
    for op in ("aten::relu", "aten::sum", "aten::mm"):
        assert op in names[ember] and op in names[torch]
    assert names[ember]["aten::mm"] == names[torch]["aten::mm"] == 2  # forward + one backward
    assert current_modes() == ()
    prof = _run(ember)
    block = [e for e in prof.events() if e.name == "forward_block"][0]
    assert {c.name for c in block.children} == {"aten::mm", "aten::relu", "aten::sum"}
    assert block.self_cpu_time_total <= block.cpu_time_total
    assert abs(block.self_cpu_time_total + sum(c.cpu_time_total for c in block.children)
               - block.cpu_time_total) < 1e-6


def test_table_layout_as_torch():
    tables = {m: _run(m, record_shapes=True).key_averages(group_by_input_shape=True)
              .table(sort_by="cpu_time_total", row_limit=3) for m in (ember, torch)}
    for m, text in tables.items():
        lines = text.strip().splitlines()
        head = lines[1].split()
        assert head[:3] == ["Name", "Self", "CPU"] and "Input" in head and "Calls" in head
        assert lines[0].startswith("-") and lines[-1].startswith("Self CPU time total:")
        assert len(lines) == 3 + 3 + 2  # header block, 3 rows, rule and total
    full = _run(ember, record_shapes=True).key_averages(group_by_input_shape=True).table()
    rows = [r for r in full.splitlines() if "aten::mm" in r]  # forward and backward shapes
    assert any("[[4, 3], [3, 2]]" in r for r in rows)
    row = rows[0]
    assert "us" in row or "ms" in row


def test_key_averages_sort_and_sum():
    prof = _run(ember)
    avgs = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in prof.events())
    assert abs(sum(a.self_cpu_time_total for a in avgs) - total) < 1e-6
    rows = avgs.table(sort_by="self_cpu_time_total").splitlines()[3:-2]
    firsts = [r.split()[0] for r in rows]
    best = max(avgs, key=lambda a: a.self_cpu_time_total).key
    assert firsts[0] == best


def test_chrome_trace_has_trace_event_keys(tmp_path):
    prof = _run(ember, record_shapes=True)
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(str(path))
    doc = json.loads(path.read_text())
    evs = doc["traceEvents"]
    assert len(evs) == len(prof.events())
    for ev in evs:
        assert ev["ph"] == "X" and {"name", "pid", "tid", "ts", "dur", "cat"} <= set(ev)
        assert ev["dur"] >= 0
    mm = [ev for ev in evs if ev["name"] == "aten::mm"][0]
    assert mm["args"]["Input Dims"] == [[4, 3], [3, 2]]
    assert [ev for ev in evs if ev["name"] == "forward_block"][0]["cat"] == "user_annotation"


def test_schedule_matches_torch_and_trace_handler_writes(tmp_path):
    for m in (ember, torch):
        sched = m.profiler.schedule(wait=1, warmup=1, active=2, repeat=2, skip_first=1)
        acts = [sched(i).name for i in range(12)]
        if m is ember:
            ember_acts = acts
    assert ember_acts == acts
    saved = []
    x = ember.ones(2, 2)
    with ember.profiler.profile(schedule=ember.profiler.schedule(wait=1, warmup=1, active=2),
                                on_trace_ready=saved.append) as prof:
        for step in range(8):
            (x * step).sum()
            prof.step()
    assert len(saved) == 2  # two full cycles of wait/warm-up/2 active steps
    steps = sorted(e.name for e in prof.events() if e.name.startswith("ProfilerStep"))
    assert steps == ["ProfilerStep#6", "ProfilerStep#7"]
    assert [e.name for e in prof.events()].count("aten::mul") == 2
    handler = ember.profiler.tensorboard_trace_handler(str(tmp_path), worker_name="w0")
    handler(prof)
    (name,) = os.listdir(tmp_path)
    assert name.startswith("w0.") and name.endswith(".pt.trace.json")
    assert json.load(open(tmp_path / name))["traceEvents"]


def test_bad_schedule_raises_assertion_as_torch():
    for m in (ember, torch):
        with pytest.raises(AssertionError, match="Invalid profiler schedule arguments"):
            m.profiler.schedule(wait=1, warmup=1, active=0)
        with pytest.warns(UserWarning, match="won't be using warmup"):
            m.profiler.schedule(wait=1, warmup=0, active=1)


def test_record_function_as_decorator_and_without_profiler():
    @ember.profiler.record_function("helper")
    def helper(t):
        return t.exp()

    assert helper(ember.zeros(1)).item() == 1.0  # no profiler: nothing recorded, no error
    with ember.profiler.profile() as prof:
        helper(ember.zeros(1))
    (evt,) = [e for e in prof.events() if e.name == "helper"]
    assert [c.name for c in evt.children] == ["aten::exp"]


def test_legacy_autograd_profiler():
    results = {}
    for m in (ember, torch):
        x = m.ones(3, requires_grad=True)
        with m.autograd.profiler.profile(record_shapes=True) as prof:
            with m.autograd.profiler.record_function("label"):
                (x * 2).sum().backward()
        results[m] = {e.key for e in prof.key_averages()}
        assert "Self CPU time total" in prof.key_averages().table()
    assert {"label", "aten::mul", "aten::sum"} <= results[ember] & results[torch]
    with pytest.raises(RuntimeError, match="Profiler didn't finish running"):
        ember.autograd.profiler.profile().key_averages()
    with ember.autograd.profiler.profile(enabled=False) as prof:
        ember.ones(2).exp()
    with pytest.raises(RuntimeError, match="didn't finish"):
        prof.table()


def test_events_before_start_raise_assertion_as_torch():
    for m in (ember, torch):
        with pytest.raises(AssertionError):
            m.profiler.profile().events()


def test_profile_memory_columns_as_torch():
    rows = {}
    for m in (ember, torch):
        x = m.ones(100, 100)
        with m.profiler.profile(profile_memory=True) as prof:
            (x * 2).exp()
        text = prof.key_averages().table(sort_by="self_cpu_memory_usage", row_limit=20)
        assert "CPU Mem" in text.splitlines()[1] and "Self CPU Mem" in text.splitlines()[1]
        rows[m] = [r.split()[-5:] for r in text.splitlines() if "aten::mul" in r][0]
        mul = [e for e in prof.key_averages() if e.key == "aten::mul"][0]
        assert mul.cpu_memory_usage == 100 * 100 * 4
    assert rows[ember][:4] == rows[torch][:4] == ["39.06", "KB", "39.06", "KB"]
    assert "CPU Mem" not in _run(ember).key_averages().table()


def test_emit_nvtx_and_itt_run_the_block():
    for cm in (ember.autograd.profiler.emit_nvtx, ember.autograd.profiler.emit_itt):
        with cm(record_shapes=True):
            assert ember.ones(2).exp().sum().item() == pytest.approx(2 * 2.718281828)
