"""``repr(tensor)`` laid out as PyTorch prints it (torch/_tensor_str.py's rules).

One formatter is built from the values that will be shown (the edge items of a
summarised tensor): it picks integer-valued, fixed or scientific notation and a
common width from the non-zero finite values, then every element is
right-aligned to that width.
"""
from __future__ import annotations

import math

import numpy as np  # printing is host-side: device arrays are copied to NumPy first

from . import _dtype

PRECISION = 4
THRESHOLD = 1000
EDGEITEMS = 3
LINEWIDTH = 80
SCI_MODE = None  # None: chosen per tensor; True/False: forced


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None,
                     profile=None, sci_mode=None):
    """Change how tensors print (``torch.set_printoptions``)."""
    global PRECISION, THRESHOLD, EDGEITEMS, LINEWIDTH, SCI_MODE
    if profile == "default":
        PRECISION, THRESHOLD, EDGEITEMS, LINEWIDTH = 4, 1000, 3, 80
    elif profile == "full":
        PRECISION, THRESHOLD, EDGEITEMS, LINEWIDTH = 4, math.inf, 3, 80
    elif profile == "short":
        PRECISION, THRESHOLD, EDGEITEMS, LINEWIDTH = 2, 1000, 2, 80
    PRECISION = PRECISION if precision is None else precision
    THRESHOLD = THRESHOLD if threshold is None else threshold
    EDGEITEMS = EDGEITEMS if edgeitems is None else edgeitems
    LINEWIDTH = LINEWIDTH if linewidth is None else linewidth
    SCI_MODE = sci_mode  # as in PyTorch, every call resets it (None: automatic)


class _Formatter:
    def __init__(self, values, floating: bool):
        """``values``: the flat shown values (float64 for floating tensors)."""
        self.floating = floating
        self.int_mode = True
        self.sci_mode = False
        self.width = 1
        if not floating:
            self.width = max((len(str(v)) for v in values.tolist()), default=1)
            return
        # PyTorch sizes the columns from the non-zero finite values only
        shown = values[np.isfinite(values) & (values != 0)]
        if shown.size == 0:
            return
        mag = np.abs(shown)
        mx, mn = float(mag.max()), float(mag.min())
        self.int_mode = bool(np.all(shown == np.ceil(shown)))
        if SCI_MODE is None:
            self.sci_mode = mx / mn > 1000.0 or mx > 1.0e8 or mn < 1.0e-4
        else:
            self.sci_mode = SCI_MODE
        vals = shown.tolist()
        if self.sci_mode:
            self.width = max(len(f"{v:.{PRECISION}e}") for v in vals)
        elif self.int_mode:
            self.width = max(len(f"{v:.0f}") + 1 for v in vals)
        else:
            self.width = max(len(f"{v:.{PRECISION}f}") for v in vals)

    def format(self, v) -> str:
        if not self.floating:
            s = f"{v}"
        elif self.sci_mode:
            s = f"{v:.{PRECISION}e}"
        elif self.int_mode:
            s = f"{v:.0f}"
            if not (math.isinf(v) or math.isnan(v)):
                s += "."
        else:
            s = f"{v:.{PRECISION}f}"
        return s.rjust(self.width)


class _ComplexFormatter:
    """PyTorch's complex layout: the real part right-aligned to its own width, then the
    imaginary part with its sign and a ``j`` (each part sized by its own ``_Formatter``)."""

    def __init__(self, values):
        self.real = _Formatter(values.real.astype(np.float64), True)
        self.imag = _Formatter(values.imag.astype(np.float64), True)
        # the line-filling arithmetic counts both widths and the "j"
        self.width = self.real.width + self.imag.width + 1

    def format(self, v) -> str:
        re = self.real.format(v.real)
        im = (self.imag.format(v.imag) + "j").lstrip()
        return re + im if im[0] in "+-" else re + "+" + im


def _summarized(a, summarize: bool):
    """The flat values that will be shown (edge items only when summarising)."""
    if not summarize or a.ndim == 0:
        return a.reshape(-1)
    if a.shape[0] > 2 * EDGEITEMS:
        rows = list(a[:EDGEITEMS]) + list(a[a.shape[0] - EDGEITEMS:])
    else:
        rows = list(a)
    if a.ndim == 1:
        return np.asarray(rows, dtype=a.dtype)
    parts = [_summarized(r, summarize) for r in rows]
    return np.concatenate(parts) if parts else a.reshape(-1)[:0]


def _vector(a, fmt, indent: int, summarize: bool) -> str:
    per_line = max(1, (LINEWIDTH - indent) // (fmt.width + 2))
    if summarize and a.shape[0] > 2 * EDGEITEMS:
        items = ([fmt.format(v) for v in a[:EDGEITEMS].tolist()] + [" ..."]
                 + [fmt.format(v) for v in a[a.shape[0] - EDGEITEMS:].tolist()])
    else:
        items = [fmt.format(v) for v in a.tolist()]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _body(a, fmt, indent: int, summarize: bool) -> str:
    if a.ndim == 0:
        return fmt.format(a.item())
    if a.ndim == 1:
        return _vector(a, fmt, indent, summarize)
    n = a.shape[0]
    if summarize and n > 2 * EDGEITEMS:
        parts = ([_body(a[i], fmt, indent + 1, summarize) for i in range(EDGEITEMS)] + ["..."]
                 + [_body(a[i], fmt, indent + 1, summarize) for i in range(n - EDGEITEMS, n)])
    else:
        parts = [_body(a[i], fmt, indent + 1, summarize) for i in range(n)]
    return "[" + ("," + "\n" * (a.ndim - 1) + " " * (indent + 1)).join(parts) + "]"


def _add_suffixes(text: str, suffixes, indent: int) -> str:
    """Append ``, key=value`` parts, wrapping onto a new line past the line width."""
    out = [text]
    last = len(text) - text.rfind("\n") + 1
    for s in suffixes:
        if last + len(s) + 2 > LINEWIDTH:
            out.append(",\n" + " " * indent + s)
            last = indent + len(s)
        else:
            out.append(", " + s)
            last += len(s) + 2
    out.append(")")
    return "".join(out)


def _grad_suffix(t) -> list:
    if t._grad_fn is not None:
        # "torch::autograd::CopySlices" prints as <CopySlices>, as in PyTorch
        return [f"grad_fn=<{t._grad_fn.name().rsplit('::', 1)[-1]}>"]
    return ["requires_grad=True"] if t._requires_grad else []


def _meta_repr(t) -> str:
    """``tensor(..., device='meta', size=(2, 3))``, with the dtype unless it is the default."""
    suffixes = ["device='meta'", f"size={tuple(t._data.shape)}"]
    if t.dtype is not _dtype.get_default_dtype():
        suffixes.append(f"dtype={t.dtype!r}")
    return _add_suffixes("tensor(...", suffixes + _grad_suffix(t), len("tensor("))


def tensor_repr(t) -> str:
    a = t._data
    if hasattr(a, "layout"):  # a sparse tensor's storage (ember/sparse) prints its parts
        from .sparse._repr import sparse_repr
        return sparse_repr(t)
    if type(a) is not np.ndarray:
        if t.device.type == "meta":  # no data to show (PyTorch's _tensor_str for meta)
            return _meta_repr(t)
        a = a.get()  # device array → host
    dt = t.dtype
    floating = dt.is_floating_point
    prefix = "tensor("
    indent = len(prefix)
    suffixes = []
    if t.device.type != "cpu":
        suffixes.append(f"device='{t.device}'")
    if a.size == 0:
        if a.ndim != 1:
            suffixes.append(f"size={tuple(a.shape)}")
        if dt is not _dtype.get_default_dtype():  # PyTorch's rule for empty tensors
            suffixes.append(f"dtype={dt!r}")
        body = "[]"
    else:
        summarize = a.size > THRESHOLD
        if not EDGEITEMS:
            suffixes.append(f"size={tuple(a.shape)}")
        if dt is not _dtype.get_default_dtype() and dt is not _dtype.int64 and \
                dt is not _dtype.bool_ and dt is not _dtype.get_default_complex_dtype():
            suffixes.append(f"dtype={dt!r}")
        vals = a.astype(np.float32) if dt is _dtype.bfloat16 else a
        shown = _summarized(vals, summarize)
        if dt.is_complex:
            fmt = _ComplexFormatter(shown)
        else:
            fmt = _Formatter(shown.astype(np.float64) if floating else shown, floating)
        body = _body(vals, fmt, indent, summarize)
    return _add_suffixes(prefix + body, suffixes + _grad_suffix(t), indent)
