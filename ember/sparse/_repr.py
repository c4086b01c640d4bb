"""``repr`` of a sparse tensor, laid out as PyTorch's ``_str_intern`` prints one."""
from __future__ import annotations

import re

from .. import _dtype
from .._printing import tensor_repr, _add_suffixes
from .._tensor import _make
from .._sparse import COO

_OPEN = "tensor("


def _body(arr, indent: int) -> str:
    """The bracketed numbers of a dense array, continuation lines indented to ``indent``."""
    r = tensor_repr(_make(arr))[len(_OPEN):-1]
    r = re.split(r",\s*(?:dtype|size)=", r)[0]  # the sparse tensor prints its own suffixes
    return r.replace("\n", "\n" + " " * (indent - len(_OPEN)))


def sparse_repr(t) -> str:
    d = t._data
    indent = len(_OPEN)
    parts = [("indices", d.indices)] if type(d) is COO else \
        [("crow_indices", d.crow), ("col_indices", d.col)]
    parts.append(("values", d.values))
    strs = []
    for name, arr in parts:
        prefix = f"{name}=tensor("
        strs.append(prefix + _body(arr, indent + len(prefix)) + ")")
    body = (",\n" + " " * indent).join(strs)
    suffixes = [f"size={tuple(d.shape)}", f"nnz={d.nnz}"]
    if t.dtype is not _dtype.get_default_dtype():
        suffixes.append(f"dtype={t.dtype!r}")
    suffixes.append(f"layout={d.layout!r}")
    if t._grad_fn is not None:
        suffixes.append(f"grad_fn=<{t._grad_fn.name().rsplit('::', 1)[-1]}>")
    elif t._requires_grad:
        suffixes.append("requires_grad=True")
    text = _OPEN + body
    if type(d) is COO:  # PyTorch starts a COO tensor's suffixes on a line of their own
        text += ",\n" + " " * indent + suffixes.pop(0)
    return _add_suffixes(text, suffixes, indent)

