"""``repr(tensor)`` laid out as PyTorch prints it (torch/_tensor_str.py's rules)."""
from __future__ import annotations

import numpy as np  # printing is host-side: device arrays are copied to NumPy first

from . import _dtype

PRECISION = 4
THRESHOLD = 1000
EDGEITEMS = 3
LINEWIDTH = 80


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None,
                     profile=None, sci_mode=None):
    """Change how tensors print (``torch.set_printoptions``)."""
    global PRECISION, THRESHOLD, EDGEITEMS, LINEWIDTH
    if profile == "default":
        PRECISION, THRESHOLD, EDGEITEMS, LINEWIDTH = 4, 1000, 3, 80
    elif profile == "full":
        PRECISION, THRESHOLD, EDGEITEMS, LINEWIDTH = 4, float("inf"), 3, 80
    elif profile == "short":
        PRECISION, THRESHOLD, EDGEITEMS, LINEWIDTH = 2, 1000, 2, 80
    PRECISION = PRECISION if precision is None else precision
    THRESHOLD = THRESHOLD if threshold is None else threshold
    EDGEITEMS = EDGEITEMS if edgeitems is None else edgeitems
    LINEWIDTH = LINEWIDTH if linewidth is None else linewidth


class _Formatter:
    def __init__(self, values, kind):
        self.kind = kind
        self.int_mode = True
        self.sci = False
        self.width = 1
        if kind == "b":
            self.width = max((len(str(bool(v))) for v in values), default=1)
            return
        if kind != "f":
            self.width = max((len(str(int(v))) for v in values), default=1)
            return
        finite = values[np.isfinite(values)]
        nonzero = np.abs(finite[finite != 0])
        if finite.size:
            self.int_mode = bool(np.all(finite == np.ceil(finite)))
        if nonzero.size:
            mx, mn = float(nonzero.max()), float(nonzero.min())
            if self.int_mode:
                self.sci = mx > 1e8
            else:
                self.sci = mx / mn > 1000.0 or mx > 1e8 or mn < 1e-4
        self.width = max((len(self._fmt(v)) for v in values), default=1)

    def _fmt(self, v) -> str:
        if self.kind == "b":
            return str(bool(v))
        if self.kind != "f":
            return str(int(v))
        v = float(v)
        if not np.isfinite(v):
            return str(v).replace("inf", "inf").replace("nan", "nan")
        if self.sci:
            return f"{v:.{PRECISION}e}"
        if self.int_mode:
            return f"{v:.0f}."
        return f"{v:.{PRECISION}f}"

    def format(self, v) -> str:
        return self._fmt(v).rjust(self.width)


def _summ_values(a, summarize):
    if not summarize or a.ndim == 0:
        return a.reshape(-1)
    if a.ndim == 1:
        if a.shape[0] > 2 * EDGEITEMS:
            return np.concatenate([a[:EDGEITEMS], a[-EDGEITEMS:]])
        return a
    if a.shape[0] > 2 * EDGEITEMS:
        parts = [_summ_values(x, summarize) for x in list(a[:EDGEITEMS]) + list(a[-EDGEITEMS:])]
    else:
        parts = [_summ_values(x, summarize) for x in a]
    return np.concatenate(parts) if parts else np.zeros(0)


def _body(a, fmt, indent, summarize):
    if a.ndim == 0:
        return fmt.format(a.item() if fmt.kind != "f" else float(a))
    if a.ndim == 1:
        items = [fmt.format(v) for v in a.tolist()] if fmt.kind != "f" else \
            [fmt.format(v) for v in a.astype(np.float64).tolist()]
        if summarize and len(items) > 2 * EDGEITEMS:
            items = items[:EDGEITEMS] + ["..."] + items[-EDGEITEMS:]
        per_line = max(1, (LINEWIDTH - indent) // (fmt.width + 2))
        lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
        return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"
    rows = list(range(a.shape[0]))
    if summarize and a.shape[0] > 2 * EDGEITEMS:
        rows = rows[:EDGEITEMS] + [None] + rows[-EDGEITEMS:]
    parts = [("..." if r is None else _body(a[r], fmt, indent + 1, summarize)) for r in rows]
    sep = "," + "\n" * (a.ndim - 1) + " " * (indent + 1)
    return "[" + sep.join(parts) + "]"


def tensor_repr(t) -> str:
    a = t._data
    if type(a) is not np.ndarray:
        a = a.get()  # device array → host
    dt = t.dtype
    if dt.name == "bfloat16" or dt.name == "float16":
        vals = a.astype(np.float32)
    else:
        vals = a
    kind = "b" if dt is _dtype.bool_ else ("f" if dt.is_floating_point else "i")
    prefix = "tensor("
    suffixes = []
    summarize = a.size > THRESHOLD
    if a.size == 0:
        body = "[]"
        if a.shape != (0,):
            suffixes.append(f"size={tuple(a.shape)}")
    else:
        fmt = _Formatter(_summ_values(vals, summarize).astype(
            np.float64 if kind == "f" else vals.dtype), kind)
        body = _body(vals, fmt, len(prefix), summarize)
    if t.device.type != "cpu":
        suffixes.append(f"device='{t.device}'")
    default = {_dtype.get_default_dtype(), _dtype.int64, _dtype.bool_}
    if dt not in default:
        suffixes.append(f"dtype={dt!r}")
    if t._grad_fn is not None:
        suffixes.append(f"grad_fn=<{t._grad_fn.name()}>")
    elif t._requires_grad:
        suffixes.append("requires_grad=True")
    return prefix + body + "".join(", " + s for s in suffixes) + ")"
