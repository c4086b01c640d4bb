"""What the profiler records and how it reports it: ``FunctionEvent`` (one op call or one
``record_function`` range), ``EventList`` (``key_averages``, ``table``, the Chrome trace) and
``FunctionEventAvg`` (PyTorch's ``torch.autograd.profiler_util``).  Times are microseconds."""
from __future__ import annotations

import os

__all__ = ["FunctionEvent", "FunctionEventAvg", "EventList"]


class FunctionEvent:
    """One recorded call: ``name``, start/end in µs, input shapes, and its children."""

    def __init__(self, id, name, thread, start_us, input_shapes=None, is_user_annotation=False,
                 is_backward=False):
        self.id = id
        self.name = name
        self.thread = thread
        self.start_us = start_us
        self.end_us = start_us
        self.input_shapes = input_shapes if input_shapes is not None else []
        self.is_user_annotation = is_user_annotation
        self.is_backward = is_backward  # run by the backward pass (its op counts as an op)
        self.children = []
        self.cpu_parent = None
        self.count = 1
        self.own_memory = 0  # bytes of the outputs this call made (profile_memory=True)

    @property
    def key(self) -> str:
        return self.name

    @property
    def cpu_time_total(self) -> float:
        return self.end_us - self.start_us

    @property
    def self_cpu_time_total(self) -> float:
        """Total time less the time of the events nested directly inside this one."""
        return self.cpu_time_total - sum(c.cpu_time_total for c in self.children)

    cpu_time = cpu_time_total

    @property
    def self_cpu_memory_usage(self) -> int:
        return self.own_memory

    @property
    def cpu_memory_usage(self) -> int:
        """Bytes allocated by this call and everything nested in it."""
        return self.own_memory + sum(c.cpu_memory_usage for c in self.children)

    def __repr__(self):
        return (f"<FunctionEvent id={self.id} name={self.name} "
                f"cpu_time_total={self.cpu_time_total:.3f} input_shapes={self.input_shapes}>")


class FunctionEventAvg:
    """Events of one key (name, and shapes when grouped by them) added up."""

    def __init__(self, key, input_shapes=None):
        self.key = key
        self.input_shapes = input_shapes if input_shapes is not None else []
        self.count = 0
        self.cpu_time_total = 0.0
        self.self_cpu_time_total = 0.0
        self.cpu_memory_usage = 0
        self.self_cpu_memory_usage = 0
        self.is_user_annotation = False

    def add(self, evt) -> "FunctionEventAvg":
        self.count += evt.count
        self.cpu_time_total += evt.cpu_time_total
        self.self_cpu_time_total += evt.self_cpu_time_total
        self.cpu_memory_usage += evt.cpu_memory_usage
        self.self_cpu_memory_usage += evt.self_cpu_memory_usage
        self.is_user_annotation = evt.is_user_annotation
        return self

    @property
    def cpu_time(self) -> float:
        """Average total time per call."""
        return self.cpu_time_total / self.count if self.count else 0.0

    def __repr__(self):
        return (f"<FunctionEventAvg key={self.key} self_cpu_time={self.self_cpu_time_total:.3f}"
                f" cpu_time={self.cpu_time:.3f} input_shapes={self.input_shapes}>")


def _format_time(us: float) -> str:
    """PyTorch's unit choice: s, ms or us, three decimals."""
    if us >= 1e6:
        return f"{us / 1e6:.3f}s"
    if us >= 1e3:
        return f"{us / 1e3:.3f}ms"
    return f"{us:.3f}us"


def _format_memory(nbytes: int) -> str:
    """PyTorch's memory column: B, KB, MB or GB (binary), two decimals above bytes."""
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if abs(nbytes) >= size:
            return f"{nbytes / size:.2f} {unit}"
    return f"{nbytes} B"


def _format_share(us: float, total: float) -> str:
    return "NaN" if total == 0 else f"{us * 100.0 / total:.2f}%"


class EventList(list):
    """A list of events with PyTorch's summaries."""

    def key_averages(self, group_by_input_shape: bool = False, group_by_stack_n: int = 0,
                     group_by_overload_name: bool = False) -> "EventList":
        """One ``FunctionEventAvg`` per name (and per input shapes when asked), in first-seen
        order."""
        groups = {}
        for evt in self:
            key = (evt.key, str(evt.input_shapes)) if group_by_input_shape else evt.key
            avg = groups.get(key)
            if avg is None:
                avg = groups[key] = FunctionEventAvg(
                    evt.key, evt.input_shapes if group_by_input_shape else None)
            avg.add(evt)
        return EventList(groups.values())

    def total_average(self) -> FunctionEventAvg:
        total = FunctionEventAvg("Total")
        for evt in self:
            total.add(evt)
        return total

    @property
    def self_cpu_time_total(self) -> float:
        return sum(e.self_cpu_time_total for e in self)

    def table(self, sort_by=None, row_limit: int = 100, max_src_column_width: int = 75,
              max_name_column_width: int = 55, max_shapes_column_width: int = 80, header=None,
              top_level_events_only: bool = False, time_unit=None) -> str:
        """The summary table, laid out as PyTorch's ``_build_table`` (CPU columns)."""
        events = list(self)
        if not events:
            return ""
        if top_level_events_only:
            events = [e for e in events if getattr(e, "cpu_parent", None) is None]
        if sort_by is not None:
            events.sort(key=lambda e: getattr(e, sort_by.replace("cuda", "device")),
                        reverse=True)
        name_w = max(len(e.key) for e in events) + 4
        if max_name_column_width is not None:
            name_w = min(name_w, max_name_column_width)
        has_shapes = any(e.input_shapes for e in events)
        shapes_w = max(len(str(e.input_shapes)) for e in events) + 4
        if max_shapes_column_width is not None:
            shapes_w = min(shapes_w, max_shapes_column_width)
        has_mem = any(e.self_cpu_memory_usage for e in events)
        headers = ["Name", "Self CPU %", "Self CPU", "CPU total %", "CPU total",
                   "CPU time avg"] + (["CPU Mem", "Self CPU Mem"] if has_mem else []) + \
            ["# of Calls"]
        widths = [name_w] + [12] * (len(headers) - 1)
        if has_shapes:
            headers.append("Input Shapes")
            widths.append(shapes_w)
        row_fmt = "".join("{:>" + str(w) + "}  " for w in widths)
        sep = "".join("-" * w + "  " for w in widths)
        line_len = sum(w + 2 for w in widths) - 2
        total = sum(e.self_cpu_time_total for e in events)
        out = []
        if header is not None:
            out += ["=" * line_len, header]
        if top_level_events_only:
            out += ["=" * line_len, "This report only display top-level ops statistics"]
        out += [sep, row_fmt.format(*headers), sep]
        for e in events[:row_limit] if row_limit is not None and row_limit > 0 else events:
            name = e.key
            if len(name) >= name_w - 3:  # PyTorch cuts long names with an ellipsis
                name = name[:name_w - 3 - 3] + "..."
            row = [name, _format_share(e.self_cpu_time_total, total),
                   _format_time(e.self_cpu_time_total),
                   _format_share(e.cpu_time_total, total), _format_time(e.cpu_time_total),
                   _format_time(e.cpu_time_total / max(e.count, 1))]
            if has_mem:
                row += [_format_memory(e.cpu_memory_usage),
                        _format_memory(e.self_cpu_memory_usage)]
            row.append(e.count)
            if has_shapes:
                shapes = str(e.input_shapes)
                row.append(shapes[:shapes_w - 4] if len(shapes) > shapes_w - 4 else shapes)
            out.append(row_fmt.format(*row))
        out += [sep, f"Self CPU time total: {_format_time(total)}"]
        return "\n".join(out) + "\n"

    def __str__(self):
        return self.table()

    def export_chrome_trace(self, path: str) -> None:
        """Write the events as Chrome trace-event JSON (chrome://tracing, Perfetto)."""
        import json  # only when a trace is written: import ember stays light
        with open(path, "w") as f:
            json.dump(chrome_trace(self), f)


def chrome_trace(events) -> dict:
    """The trace-event document: complete ("X") events in µs, one per recorded call."""
    pid = os.getpid()
    trace = []
    for i, e in enumerate(sorted(events, key=lambda e: e.start_us)):
        args = {"External id": e.id, "Ev Idx": i}
        if e.input_shapes:
            args["Input Dims"] = e.input_shapes
        trace.append({"ph": "X", "cat": "user_annotation" if e.is_user_annotation else "cpu_op",
                      "name": e.name, "pid": pid, "tid": e.thread, "ts": e.start_us,
                      "dur": e.cpu_time_total, "args": args})
    return {"schemaVersion": 1, "displayTimeUnit": "ms", "traceName": "ember",
            "traceEvents": trace}
