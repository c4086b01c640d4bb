"""Indexing: ``t[...]`` reads and writes, gather/scatter and friends.

NOTE [ Index keys ]
A key is parsed once (``parse_key``) into PyTorch's two stages: first the basic
part (ints, slices, None, Ellipsis) as one NumPy basic-index tuple, which is a
view; then, when the key holds index tensors, lists or masks, an advanced key
applied to that view.  Ints are applied in the first stage, as PyTorch's
``select`` does, so ``x[0, :, [1, 2]]`` has shape ``(4, 2)`` for ``x`` of shape
``(3, 4, 5)`` where NumPy would give ``(2, 4)``; the remaining index arrays
follow NumPy's placement rule (adjacent: in place, else first), as PyTorch's do.
``x[key] = v`` is an out-of-place index-put run through ``inplace`` (NOTE
[ In-place ops ]), so version counters, leaf checks and view rebasing apply.
Keys of Python ints, slices, None and Ellipsis (nearly every key) skip the
general parser: ``_basic_key`` gives the same NumPy key and view class, and
``_view`` builds the view without ``Function.apply``; anything else, and every
error, goes through ``parse_key``.
"""
from __future__ import annotations

import builtins
import math
import warnings

from ..autograd.function import Function, set_edges, _CPU_ARRAY
from ..autograd.views import check_view_mode, link_view
from .._state import state
from .._tensor import Tensor, _make, _wrap_dim, _type_name, _version_counter
from .._backend import _BY_ARRAY_TYPE, xp_of
from ._util import reduce_grad, check_broadcast, shape_of, is_float, scalar_name, c_name
from ..autograd.inplace import _check_inplace, copy_into_out, inplace, make_inplace
from .._backend import has_internal_overlap, writable_alias
from .movement import (BasicIndexGrad, Select, Slice, UnsqueezeIndex, Alias,
                       _reshape, _broadcast_shape, expand)

__all__ = ["gather", "scatter", "scatter_add", "scatter_reduce", "index_select", "index_add",
           "index_copy", "index_fill", "index_put", "masked_fill", "masked_select",
           "masked_scatter", "take", "take_along_dim", "nonzero", "argwhere"]

_int = builtins.int
_new = object.__new__
_NO_KW: dict = {}  # the kwargs of a view step; replay_view only unpacks it
_NONE_KEY = (None, Ellipsis)
_ELLIPSIS_KEY = (Ellipsis,)


# ---- key parsing -----------------------------------------------------------------------------
class Key:
    """A parsed index (NOTE [ Index keys ]): ``basic`` tuple, then ``adv`` tuple or None."""

    __slots__ = ("basic", "adv", "unique", "view_cls")

    def __init__(self, basic, adv=None, unique=False, view_cls=Alias):
        self.basic = basic
        self.adv = adv
        self.unique = unique    # no element is addressed twice: plain assignment is enough
        self.view_cls = view_cls


class _Adv:
    __slots__ = ("arr", "mask")

    def __init__(self, arr, mask):
        self.arr = arr
        self.mask = mask


def _is_long(dt) -> bool:
    return dt.kind == "i" and dt.itemsize == 8


def _is_index_int(dt) -> bool:
    """int64 or int32 (``dtype.name`` is slow in NumPy, so compare kind and size)."""
    return dt.kind == "i" and (dt.itemsize == 8 or dt.itemsize == 4)


def _bad_index(k):
    msg = ("only integers, slices (`:`), ellipsis (`...`), None and long or byte Variables are "
           f"valid indices (got {type(k).__name__})")
    return IndexError(msg) if isinstance(k, builtins.float) else TypeError(msg)


def _oob(i: int, d: int, n: int) -> str:
    return f"index {i} is out of bounds for dimension {d} with size {n}"


def _seq_as_tuple(seq) -> bool:
    """PyTorch's (and old NumPy's) rule: a short list holding slices/None/... is a tuple key."""
    if len(seq) >= 32:
        return False
    for k in seq:
        if k is None or k is Ellipsis or isinstance(k, (slice, Tensor, list, tuple)):
            return True
    return False


def _entry(k, xp):
    """One key element as an int, slice, None, Ellipsis, bool or ``_Adv``."""
    tk = type(k)
    if tk is builtins.int or tk is slice or k is None or k is Ellipsis:
        return k
    if isinstance(k, Tensor):
        arr = k._data
        if _BY_ARRAY_TYPE[type(arr)][0] is not xp:
            arr = _index_on(arr, xp)
        return _array_entry(arr)
    if tk in _BY_ARRAY_TYPE:
        return _array_entry(k)
    if isinstance(k, builtins.bool) or getattr(k, "dtype", None) is not None and \
            k.dtype.kind == "b":
        return builtins.bool(k)
    if hasattr(k, "__index__"):
        return k.__index__()
    if isinstance(k, (list, tuple, range)):  # a range indexes as its list, as in PyTorch
        arr = xp.asarray(_plain(k))
        if arr.dtype.kind == "f" or arr.size == 0:
            arr = arr.astype("int64")
        return _array_entry(arr)
    raise _bad_index(k)


def _index_on(arr, xp):
    """Index array ``arr`` moved onto the indexed tensor's device (array module ``xp``):
    PyTorch takes cpu indices for a tensor on any device, and no others."""
    if _BY_ARRAY_TYPE[type(arr)][1].type != "cpu":
        dev = next(d for m, d in _BY_ARRAY_TYPE.values() if m is xp)
        raise RuntimeError("indices should be either on cpu or on the same device as the "
                           f"indexed tensor ({dev})")
    return xp.asarray(arr)


def _plain(seq):
    return [_plain(s) if isinstance(s, (list, tuple)) else
            (s.item() if isinstance(s, Tensor) else s) for s in seq]


def _array_entry(arr):
    dt = arr.dtype
    if dt.kind == "b" or dt.kind == "u" and dt.itemsize == 1:
        if dt.kind != "b":
            warnings.warn("indexing with dtype torch.uint8 is now deprecated, please use a dtype "
                          "torch.bool instead.", UserWarning, stacklevel=4)
            arr = arr.astype("bool")
        if arr.ndim == 0:
            return builtins.bool(arr)
        return _Adv(arr, True)
    if not _is_index_int(dt):
        raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
    if arr.ndim == 0:  # a 0-d integer tensor indexes like an int (a select, as in PyTorch)
        return builtins.int(arr)
    return _Adv(arr, False)


def parse_key(shape, key, xp) -> Key:
    """Parse ``key`` for a tensor of ``shape`` (NOTE [ Index keys ])."""
    orig = key
    if type(key) is not tuple:
        if isinstance(key, list) and _seq_as_tuple(key):
            warnings.warn("Using a non-tuple sequence for multidimensional indexing is "
                          "deprecated and will be changed in pytorch 2.9; use x[tuple(seq)] "
                          "instead of x[seq].", UserWarning, stacklevel=3)
            key = tuple(key)
        else:
            key = (key,)
    entries = [_entry(k, xp) for k in key]
    nd = len(shape)
    consumed = 0
    for e in entries:
        te = type(e)
        if te is builtins.int or te is slice:
            consumed += 1
        elif te is _Adv:
            consumed += e.arr.ndim if e.mask else 1
    if consumed > nd:
        # PyTorch's wording for a 0-d tensor depends on the key: a lone Python/NumPy integer
        # (its select fast path), a lone slice, or anything else (tensors, tuples, lists).
        if nd == 0 and len(entries) == 1 and orig is key[0]:
            if type(orig) is slice:
                raise IndexError("slice() cannot be applied to a 0-dim tensor.")
            if not isinstance(orig, (Tensor, list)) and type(orig) not in _BY_ARRAY_TYPE:
                raise IndexError("invalid index of a 0-dim tensor. Use `tensor.item()` in "
                                 "Python or `tensor.item<T>()` in C++ to convert a 0-dim "
                                 "tensor to a number")
        raise IndexError(f"too many indices for tensor of dimension {nd}")
    single_slice = len(key) == 1
    basic = []
    adv = []
    pos = out = 0   # dim of the input / of the basic stage's output
    ellipsis = False
    view_cls = Alias
    for e in entries:
        te = type(e)
        if te is builtins.int:
            n = shape[pos]
            if e < -n or e >= n:
                raise IndexError(_oob(e, pos, n))
            basic.append(e)
            pos += 1
            view_cls = Select
        elif te is slice:
            n = shape[pos]
            start, stop, step = e.indices(n)
            if step < 0:
                raise ValueError("step must be greater than zero")
            basic.append(slice(start, stop, step))
            if single_slice or start != 0 or stop < n or step != 1:
                view_cls = Slice  # PyTorch skips full slices inside a tuple key
            pos += 1
            out += 1
        elif e is None:
            basic.append(None)
            out += 1
            view_cls = UnsqueezeIndex
        elif e is Ellipsis:
            if not ellipsis:  # a second Ellipsis expands to no dims (PyTorch)
                ellipsis = True
                basic.append(Ellipsis)
                pos += nd - consumed
                out += nd - consumed
        elif te is builtins.bool:  # unsqueeze, then index the new dim with [0] or []
            basic.append(None)
            adv.append((out, xp.zeros(1 if e else 0, "int64")))
            out += 1
        else:
            arr = e.arr
            if e.mask:
                for j in range(arr.ndim):
                    if arr.shape[j] != shape[pos + j]:
                        raise IndexError(f"The shape of the mask {list(arr.shape)} at index {j} "
                                         f"does not match the shape of the indexed tensor "
                                         f"{list(shape)} at index {pos + j}")
                basic.extend([slice(None)] * arr.ndim)
                adv.append((out, arr))
                pos += arr.ndim
                out += arr.ndim
            else:
                basic.append(slice(None))
                adv.append((out, arr))
                pos += 1
                out += 1
    if not ellipsis:
        basic.append(Ellipsis)  # keeps a 0-d result a view instead of a NumPy scalar
    if not adv:
        return Key(tuple(basic), None, True, view_cls)
    ak = []
    cur = 0
    for p, arr in adv:
        ak.extend([slice(None)] * (p - cur))
        ak.append(arr)
        cur = p + (arr.ndim if arr.dtype.kind == "b" else 1)
    unique = len(adv) == 1 and adv[0][1].dtype.kind == "b"
    return Key(tuple(basic), tuple(ak), unique, view_cls)


def _index_error(e: IndexError, key: Key) -> IndexError:
    msg = str(e)
    if "out of bounds" in msg:
        return IndexError(msg.replace("axis", "dimension"))
    if "shape mismatch" in msg:
        shapes = [list(a.shape) if a.dtype.kind != "b" else [builtins.int(a.sum())]
                  for a in key.adv if type(a) is not slice]
        return IndexError("shape mismatch: indexing tensors could not be broadcast together "
                          f"with shapes {', '.join(str(s) for s in shapes)}")
    return IndexError(msg)


def _take_key(a, key: Key):
    b = a[key.basic]
    if key.adv is None:
        return b
    try:
        return b[key.adv]
    except IndexError as e:
        raise _index_error(e, key) from None


def _put(xp, out, key: Key, v, accumulate: bool) -> None:
    """Write (or add) ``v`` into ``out`` at ``key``, in place."""
    if not out.flags.writeable:
        # writing into an expanded view is allowed where the written elements are distinct
        if key.adv is None and not has_internal_overlap(out[key.basic]):
            out = writable_alias(out)
        elif key.adv is not None and has_internal_overlap(out):
            warnings.warn("Use of index_put_ on expanded tensors is deprecated. Please clone() "
                          "the tensor before performing this operation. This also applies to "
                          "advanced indexing e.g. tensor[indices] = tensor", UserWarning,
                          stacklevel=4)
            out = writable_alias(out)
    t = out[key.basic]
    if hasattr(v, "dtype") and v.dtype != out.dtype:
        v = v.astype(out.dtype)
    try:
        if key.adv is None:
            if accumulate:
                t += v
            else:
                t[...] = v
        elif accumulate and not key.unique:
            xp.add.at(t, key.adv, v)
        elif accumulate:
            t[key.adv] += v
        else:
            t[key.adv] = v
    except IndexError as e:
        raise _index_error(e, key) from None
    except ValueError:
        if not out.flags.writeable:
            raise RuntimeError("unsupported operation: more than one element of the written-to "
                               "tensor refers to a single memory location. Please clone() the "
                               "tensor before performing the operation.") from None
        raise _value_shape_error(t, key, shape_of(v)) from None


def _value_shape_error(t, key: Key, vshape) -> RuntimeError:
    if key.adv is not None:
        target = list(_take_key(t, Key((Ellipsis,), key.adv)).shape)
        return RuntimeError(f"shape mismatch: value tensor of shape {list(vshape)} cannot be "
                            f"broadcast to indexing result of shape {target}")
    ts = t.shape
    for i in range(1, max(len(ts), len(vshape)) + 1):
        a = ts[-i] if i <= len(ts) else 1
        b = vshape[-i] if i <= len(vshape) else 1
        if a != b and b != 1:
            return RuntimeError(f"The expanded size of the tensor ({a}) must match the existing "
                                f"size ({b}) at non-singleton dimension {len(ts) - i}.  Target "
                                f"sizes: {list(ts)}.  Tensor sizes: {list(vshape)}")
    return RuntimeError(f"value of shape {list(vshape)} cannot be broadcast to {list(ts)}")


# ---- t[key] ----------------------------------------------------------------------------------
class Index(Function):
    """``a[key]`` with index tensors or masks (a copy)."""

    raw = True
    backward_name = "IndexBackward0"

    @staticmethod
    def forward(ctx, a, key):
        ctx.meta = (a.shape, key)
        return _take_key(a, key)

    @staticmethod
    def backward(ctx, g):
        shape, key = ctx.meta
        return IndexGrad.apply(g, shape, key), None


class IndexGrad(Function):
    """Zeros of ``shape`` with ``g`` added at ``key`` (repeated indices accumulate)."""

    raw = True
    backward_name = "IndexPutBackward0"

    @staticmethod
    def forward(ctx, g, shape, key):
        ctx.key = key
        z = ctx.xp.zeros(shape, g.dtype)
        _put(ctx.xp, z, key, g, True)
        return z

    @staticmethod
    def backward(ctx, gg):
        return _index(gg, ctx.key), None, None


def _index(t: Tensor, key: Key) -> Tensor:
    if key.adv is None:
        return _view(t, key.basic, key.view_cls)
    return Index.apply(t, key)


def _view(self: Tensor, key: tuple, cls) -> Tensor:
    """``cls.apply(self, key)`` for a parsed basic key, built without ``Function.apply``.

    Indexing is the hottest op in data pipelines and training loops, so this skips
    ``apply``'s generic argument handling but uses its pieces: ``_make``, ``set_edges`` and
    ``link_view``.  The result must stay identical to ``cls.apply(self, key)``
    (``test_index.py::test_fast_view_matches_apply`` compares them).
    """
    if state.intercept or state.anomaly:  # a mode must see the op; anomaly records a trace
        return cls.apply(self, key)
    grad = state.grad
    if grad and self._requires_grad and not state.inference:
        a = self._data
        ctx = _new(cls)
        if type(a) is not _CPU_ARRAY:  # (the cpu's module is the class default, as in apply)
            ctx.xp = _BY_ARRAY_TYPE[type(a)][0]
        ctx._record = True
        ctx.meta = (a.shape, key)
        set_edges(ctx, (self, key))
        t = _make(a[key], True, ctx)
    else:
        t = _make(self._data[key])
    if state.inference:
        t._inference = True
    link_view(t, self, cls, (key,), _NO_KW, grad)
    return t


def _basic_key(shape, key):
    """``(numpy_key, view_cls)`` as ``parse_key`` gives for a valid key of ints, slices, None
    and Ellipsis only; None for any other key, or one that is out of range (``parse_key``
    then raises the error)."""
    tk = type(key)
    if tk is not tuple:
        if tk is _int:
            if shape:
                n = shape[0]
                if -n <= key < n:
                    return (key, Ellipsis), Select
            return None
        if tk is slice:
            if not shape:
                return None
            start, stop, step = key.indices(shape[0])
            if step < 0:
                return None
            return (slice(start, stop, step), Ellipsis), Slice
        if key is None:
            return _NONE_KEY, UnsqueezeIndex
        if key is Ellipsis:
            return _ELLIPSIS_KEY, Alias
        return None
    # One pass for the usual tuple of ints, slices and None; Ellipsis needs the count of
    # dims the whole key consumes first (_basic_key_ellipsis).
    nd = len(shape)
    single = len(key) == 1
    basic = []
    pos = 0
    cls = Alias
    for k in key:
        tk = type(k)
        if tk is _int:
            if pos == nd:
                return None
            n = shape[pos]
            if k < -n or k >= n:
                return None
            basic.append(k)
            pos += 1
            cls = Select
        elif tk is slice:
            if pos == nd:
                return None
            if k.start is None and k.stop is None and k.step is None:  # ``:``
                basic.append(k)
                if single:
                    cls = Slice
            else:
                n = shape[pos]
                start, stop, step = k.indices(n)
                if step < 0:
                    return None
                basic.append(slice(start, stop, step))
                if single or start != 0 or stop < n or step != 1:
                    cls = Slice  # PyTorch skips full slices inside a tuple key
            pos += 1
        elif k is None:
            basic.append(None)
            cls = UnsqueezeIndex
        elif k is Ellipsis:
            return _basic_key_ellipsis(shape, key)
        else:
            return None
    basic.append(Ellipsis)  # keeps a 0-d result a view instead of a NumPy scalar
    return tuple(basic), cls


def _basic_key_ellipsis(shape, key):
    """``_basic_key`` for a tuple key holding Ellipsis."""
    nd = len(shape)
    consumed = 0
    for k in key:
        tk = type(k)
        if tk is _int or tk is slice:
            consumed += 1
        elif k is not None and k is not Ellipsis:
            return None
    if consumed > nd:
        return None
    single = len(key) == 1
    basic = []
    pos = 0
    ellipsis = False
    cls = Alias
    for k in key:
        tk = type(k)
        if tk is _int:
            n = shape[pos]
            if k < -n or k >= n:
                return None
            basic.append(k)
            pos += 1
            cls = Select
        elif tk is slice:
            n = shape[pos]
            start, stop, step = k.indices(n)
            if step < 0:
                return None
            basic.append(slice(start, stop, step))
            if single or start != 0 or stop < n or step != 1:
                cls = Slice
            pos += 1
        elif k is None:
            basic.append(None)
            cls = UnsqueezeIndex
        elif not ellipsis:  # a second Ellipsis expands to no dims (PyTorch)
            ellipsis = True
            basic.append(Ellipsis)
            pos += nd - consumed
    return tuple(basic), cls


def _scalar_key(key):
    """``key`` as an int when it is a 0-d integer tensor or a NumPy integer (it selects, as
    ``_entry`` parses it), else ``key`` unchanged."""
    if isinstance(key, Tensor):
        a = key._data
        if a.ndim == 0 and _is_index_int(a.dtype):
            return _int(a)
        return key
    dt = getattr(key, "dtype", None)
    if dt is not None and (dt.kind == "i" or dt.kind == "u") and \
            type(key) not in _BY_ARRAY_TYPE and hasattr(key, "__index__"):
        return key.__index__()
    return key


def __getitem__(self: Tensor, key) -> Tensor:
    """``self[key]``: basic keys give views, index tensors and masks give copies."""
    if type(key) is not _int:
        fast = _basic_key(self._data.shape, key)
        if fast is not None:
            return _view(self, fast[0], fast[1])
        if self._data.ndim:  # a 0-d tensor: parse_key raises PyTorch's error for the key
            key = _scalar_key(key)
        if type(key) is not _int:
            return _index(self, parse_key(self._data.shape, key, xp_of(self._data)))
    # the hot path: x[i]
    shape = self._data.shape
    if shape:
        n = shape[0]
        if -n <= key < n:
            return _view(self, (key, Ellipsis), Select)
        raise IndexError(_oob(key, 0, n))
    raise IndexError("invalid index of a 0-dim tensor. Use `tensor.item()` in Python or "
                     "`tensor.item<T>()` in C++ to convert a 0-dim tensor to a number")


# ---- t[key] = v ------------------------------------------------------------------------------
class IndexPut(Function):
    """``a`` with ``v`` written (or added) at ``key``; out of place."""

    raw = True
    backward_name = "IndexPutBackward0"

    @staticmethod
    def forward(ctx, a, v, key, accumulate):
        ctx.meta = (key, accumulate, shape_of(v), getattr(v, "dtype", None))
        out = a.copy()
        _put(ctx.xp, out, key, v, accumulate)
        return out

    @staticmethod
    def backward(ctx, g):
        key, accumulate, vshape, vdt = ctx.meta
        ga = gv = None
        if ctx.needs_input_grad[0]:
            ga = g if accumulate else IndexPut.apply(g, 0, key, False)
        if ctx.needs_input_grad[1]:
            gv = _value_grad(_index(g, key), vshape, vdt)
        return ga, gv, None, None


class SetItemBasic(IndexPut):
    backward_name = "torch::autograd::CopySlices"


def _value_grad(region: Tensor, vshape, vdt) -> Tensor:
    """The gradient of a value that was broadcast into ``region``."""
    extra = len(vshape) - region._data.ndim
    if extra > 0:  # PyTorch drops leading size-1 dims of the value
        region = _reshape(region, (1,) * extra + region._data.shape)
    return reduce_grad(region, vshape, vdt)


def _setitem(src: Tensor, key: Key, value) -> Tensor:
    cls = SetItemBasic if key.adv is None else IndexPut
    return cls.apply(src, value, key, False)


def _scalar_value(self: Tensor, value):
    if isinstance(value, Tensor) or isinstance(value, (builtins.int, builtins.float)):
        return value
    if isinstance(value, builtins.complex) and self._data.dtype.kind == "c":
        return value
    if hasattr(value, "__float__") and not hasattr(value, "__len__"):
        return value.item() if hasattr(value, "item") else builtins.float(value)
    raise TypeError(f"can't assign a {type(value).__name__} to a {_type_name(self)}")


def __setitem__(self: Tensor, key, value) -> None:
    """``self[key] = value`` (value: a number or a tensor broadcast to the indexed shape)."""
    value = _scalar_value(self, value)
    if key is False:  # PyTorch writes nothing and leaves the version alone
        return
    fast = _basic_key(self._data.shape, key)
    if fast is not None:
        k = Key(fast[0], None, True, fast[1])
    else:
        k = parse_key(self._data.shape, key, xp_of(self._data))
    vt = isinstance(value, Tensor)
    if vt and k.adv is not None and not k.unique and value._data.dtype != self._data.dtype:
        # PyTorch casts values for basic keys and masks, but not for integer index tensors
        raise RuntimeError(f"Index put requires the source and destination dtypes match, got "
                           f"{scalar_name(self._data.dtype)} for the destination and "
                           f"{scalar_name(value._data.dtype)} for the source.")
    if state.grad and (self._requires_grad or vt and value._requires_grad):
        if self._view_mode is not None and not state.inference:  # PyTorch writes through the
            view = k.adv is None and k.view_cls is not Alias  # key's view op, which its error names
            check_view_mode(self, k.view_cls.backward_name[:-9] if view else None)
        if k.adv is None and self._grad_fn is None and self._requires_grad:
            raise RuntimeError("a view of a leaf Variable that requires grad is being used in an "
                               "in-place operation.")
        inplace(self, _setitem, k, value)
        return
    if state.modes:  # a mode (ember.compile's capture, make_fx) sees the write as an op
        inplace(self, _setitem, k, value)
        return
    _check_inplace(self)
    _put(xp_of(self._data), self._data, k, value._data if vt else value, False)
    _version_counter(self)[0] += 1


# ---- shared checks ---------------------------------------------------------------------------
def _check_index_dtype(index: Tensor, msg: str, exc=RuntimeError, allow32=True):
    dt = index._data.dtype
    if not (_is_index_int(dt) if allow32 else _is_long(dt)):
        raise exc(msg)


def _bounds(idx, n: int, negative_ok: bool):
    """``(bad_value,)`` for the first index outside ``[0, n)`` (or ``[-n, n)``), else ``()``."""
    if idx.size == 0:
        return ()
    lo, hi = builtins.int(idx.min()), builtins.int(idx.max())
    if lo < (-n if negative_ok else 0):
        return (lo,)
    if hi >= n:
        return (hi,)
    return ()


def _dim_bounds(a, d: int, idx, negative_ok: bool = False) -> tuple:
    """``(n, bad)``: the size ``n`` of dim ``d`` of ``a`` (1 if 0-d), ``_bounds`` of ``idx``."""
    n = a.shape[d] if a.ndim else 1
    return n, _bounds(idx, n, negative_ok)


def _grid_key(xp, idx, dim: int) -> tuple:
    """Coordinates addressing slot ``idx[i, j, ...]`` along ``dim`` for every index element."""
    nd = idx.ndim
    key = []
    for d in range(nd):
        if d == dim:
            key.append(idx)
        else:
            s = [1] * nd
            s[d] = idx.shape[d]
            key.append(xp.arange(idx.shape[d]).reshape(s))
    return tuple(key)


def _as1d(a):
    return a.reshape(1) if a.ndim == 0 else a


def _zeros(like: Tensor, shape) -> Tensor:
    return _make(xp_of(like._data).zeros(shape, like._data.dtype))


def _pad_to(t: Tensor, shape) -> Tensor:
    """``t`` in the top-left corner of zeros of ``shape`` (``t`` fits inside it)."""
    if tuple(t._data.shape) == tuple(shape):
        return t
    return BasicIndexGrad.apply(t, tuple(shape),
                                tuple(slice(0, n) for n in t._data.shape) + (Ellipsis,))


# ---- gather / scatter ------------------------------------------------------------------------
class Gather(Function):
    raw = True
    backward_name = "GatherBackward0"

    @staticmethod
    def forward(ctx, a, dim, idx):
        ctx.meta = (a.shape, dim)
        ctx.save_for_backward(idx)
        out = _as1d(a)[_grid_key(ctx.xp, _as1d(idx), dim)]
        return out.reshape(idx.shape)

    @staticmethod
    def backward(ctx, g):
        shape, dim = ctx.meta
        idx, = ctx.saved_tensors
        return ScatterAdd.apply(_zeros(g, shape), dim, idx, g), None, None


def _gather_checks(input: Tensor, dim, index: Tensor, fn: str):
    if not isinstance(index, Tensor):
        raise TypeError(f"{fn}(): argument 'index' (position 3) must be Tensor, not "
                        f"{type(index).__name__}")
    a, i = input._data, index._data
    d = _wrap_dim(dim, a.ndim)
    if max(a.ndim, 1) != max(i.ndim, 1):
        raise RuntimeError("Index tensor must have the same number of dimensions as input tensor")
    for j in range(i.ndim):
        if j != d and a.ndim and i.shape[j] > a.shape[j]:
            raise RuntimeError(f"Size does not match at dimension {j} expected index "
                               f"{list(i.shape)} to be no larger than self {list(a.shape)} "
                               f"apart from dimension {d}")
    n, bad = _dim_bounds(a, d, i)
    if bad:
        raise RuntimeError(_oob(bad[0], d, n))
    return d


def gather(input: Tensor, dim: int, index: Tensor, *, sparse_grad: bool = False,
           out=None) -> Tensor:
    """``out[i][j] = input[index[i][j]][j]`` for dim 0 (and likewise for other dims)."""
    _check_index_dtype(index, "gather(): Expected dtype int32/int64 for index")
    d = _gather_checks(input, dim, index, "gather")
    return _finish(Gather.apply(input, d, index), out)


def _src_block(xp, src, idx):
    """The part of ``src`` that ``idx`` scatters: ``src[:idx.shape[0], :idx.shape[1], ...]``."""
    if not hasattr(src, "shape") or src.ndim == 0:
        return src
    return _as1d(src)[tuple(slice(0, n) for n in _as1d(idx).shape)]


class Scatter(Function):
    raw = True
    backward_name = "ScatterBackward0"

    @staticmethod
    def forward(ctx, a, dim, idx, src, reduce):
        ctx.meta = (dim, shape_of(src), reduce)
        ctx.save_for_backward(idx)
        xp = ctx.xp
        out = _as1d(a).copy()
        key = _grid_key(xp, _as1d(idx), dim)
        vals = _src_block(xp, src, idx)
        if reduce is None:
            out[key] = vals
        elif reduce == "add":
            xp.add.at(out, key, vals)
        else:
            xp.multiply.at(out, key, vals)
        return out.reshape(a.shape)

    @staticmethod
    def backward(ctx, g):
        dim, sshape, reduce = ctx.meta
        if reduce is not None:
            raise RuntimeError("derivative for aten::scatter is not implemented")
        idx, = ctx.saved_tensors
        ga = gs = None
        if ctx.needs_input_grad[0]:
            ga = ScatterValue.apply(g, dim, idx, 0, None)
        if ctx.needs_input_grad[3]:
            gs = _pad_to(Gather.apply(g, dim, idx), sshape)
        return ga, None, None, gs, None


class ScatterValue(Scatter):
    backward_name = "ScatterBackward1"


def _scatter_checks(input: Tensor, dim, index: Tensor, src, fn: str):
    _check_index_dtype(index, f"{fn}(): Expected dtype int64 for index")
    a, i = input._data, index._data
    d = _wrap_dim(dim, a.ndim)
    if max(a.ndim, 1) != max(i.ndim, 1):
        raise RuntimeError("Index tensor must have the same number of dimensions as self tensor")
    if isinstance(src, Tensor):
        s = src._data
        if i.ndim > s.ndim > 0:  # PyTorch reads src.size(d) for every index dim first
            raise IndexError(f"Dimension out of range (expected to be in range of "
                             f"[{-s.ndim}, {s.ndim - 1}], but got {s.ndim})")
        if max(s.ndim, 1) != max(i.ndim, 1):
            raise RuntimeError("Index tensor must have the same number of dimensions as src "
                               "tensor")
        if s.dtype != a.dtype:
            raise RuntimeError(f"{fn}(): Expected self.dtype to be equal to src.dtype")
        if any(i.shape[j] > s.shape[j] or (j != d and i.shape[j] > a.shape[j])
               for j in range(i.ndim)):
            raise RuntimeError(f"Expected index {list(i.shape)} to be no larger than self "
                               f"{list(a.shape)} apart from dimension {d} and to be no larger "
                               f"size than src {list(s.shape)}")
    elif any(j != d and i.shape[j] > a.shape[j] for j in range(i.ndim)):
        raise RuntimeError(f"Expected index {list(i.shape)} to be no larger than self "
                           f"{list(a.shape)} apart from dimension {d}")
    n, bad = _dim_bounds(a, d, i)
    if bad:
        raise RuntimeError(_oob(bad[0], d, n))
    return d


def scatter(input: Tensor, dim: int, index: Tensor, src=None, value=None, *,
            reduce=None, out=None) -> Tensor:
    """``input`` with ``src`` (or ``value``) written at ``index`` along ``dim``."""
    if src is None:
        src = value
    if src is None:
        raise TypeError("scatter() missing required argument 'src' or 'value'")
    if reduce is not None and reduce not in ("add", "multiply"):
        raise RuntimeError("reduce argument must be either add or multiply.")
    d = _scatter_checks(input, dim, index, src, "scatter")
    if isinstance(src, Tensor):
        if reduce is not None:
            warnings.warn("The reduce argument of torch.scatter with Tensor src is deprecated and "
                          "will be removed in a future PyTorch release. Use torch.scatter_reduce "
                          "instead for more reduction options.", UserWarning, stacklevel=2)
        return _finish(Scatter.apply(input, d, index, src, reduce), out)
    return _finish(ScatterValue.apply(input, d, index, _number(src), reduce), out)


def _number(v):
    if isinstance(v, (builtins.int, builtins.float, builtins.bool, builtins.complex)):
        return v
    return v.item() if hasattr(v, "item") else builtins.float(v)


class ScatterAdd(Function):
    raw = True
    backward_name = "ScatterAddBackward0"

    @staticmethod
    def forward(ctx, a, dim, idx, src):
        ctx.meta = (dim, src.shape)
        ctx.save_for_backward(idx)
        xp = ctx.xp
        out = _as1d(a).copy()
        xp.add.at(out, _grid_key(xp, _as1d(idx), dim), _src_block(xp, src, idx))
        return out.reshape(a.shape)

    @staticmethod
    def backward(ctx, g):
        dim, sshape = ctx.meta
        idx, = ctx.saved_tensors
        gs = _pad_to(Gather.apply(g, dim, idx), sshape) if ctx.needs_input_grad[3] else None
        return g, None, None, gs


def scatter_add(input: Tensor, dim: int, index: Tensor, src: Tensor, *, out=None) -> Tensor:
    """``input`` with ``src`` added at ``index`` along ``dim`` (repeats accumulate)."""
    if not isinstance(src, Tensor):
        raise TypeError(f"scatter_add(): argument 'src' (position 3) must be Tensor, not "
                        f"{type(src).__name__}")
    d = _scatter_checks(input, dim, index, src, "scatter_add")
    return _finish(ScatterAdd.apply(input, d, index, src), out)


_REDUCE_INIT = {"sum": 0, "mean": 0, "prod": 1}


class ScatterReduce(Function):
    """``scatter_reduce``; the gradient factors are computed in forward (constants)."""

    raw = True
    backward_name = "ScatterReduceBackward0"

    @staticmethod
    def forward(ctx, a, dim, idx, src, reduce, include_self):
        xp = ctx.xp
        a1 = _as1d(a)
        key = _grid_key(xp, _as1d(idx), dim)
        vals = _src_block(xp, src, idx)
        out = a1.copy()
        hit = xp.zeros(a1.shape, "int64")
        xp.add.at(hit, key, 1)          # how many src elements land on each slot
        if not include_self:
            out[hit > 0] = _reduce_identity(xp, reduce, a.dtype)
        ufunc = {"sum": xp.add, "mean": xp.add, "prod": xp.multiply, "amax": xp.maximum,
                 "amin": xp.minimum}[reduce]
        ufunc.at(out, key, vals)
        self_in = (hit == 0) | include_self   # slots whose result includes self
        fself = fsrc = None
        if reduce == "mean":
            n = hit + self_in
            div = xp.maximum(n, 1)
            mean = out // div if a.dtype.kind in "iub" else (out / div).astype(a.dtype)
            out = xp.where(n > 0, mean, out)
            fself = self_in / div
            fsrc = (1 / div)[key]
        elif reduce in ("amax", "amin"):
            is_self = (a1 == out) & self_in
            is_src = vals == out[key]
            cnt = is_self.astype("int64")
            xp.add.at(cnt, key, is_src)
            cnt = xp.maximum(cnt, 1)
            fself = is_self / cnt
            fsrc = is_src / cnt[key]
        elif reduce == "prod":
            fself, fsrc = _prod_factors(xp, a1, vals, key, self_in)
        else:
            fself = self_in
        if is_float(a.dtype):  # only float results carry gradients
            dt = a.dtype
            ctx.factors = (_as_dtype(fself, dt), None if fsrc is None else _as_dtype(fsrc, dt))
        ctx.meta = (a.shape, dim, shape_of(src))
        ctx.save_for_backward(idx)
        return out.reshape(a.shape)

    @staticmethod
    def backward(ctx, g):
        shape, dim, sshape = ctx.meta
        idx, = ctx.saved_tensors
        fself, fsrc = ctx.factors
        ga = gs = None
        if ctx.needs_input_grad[0]:
            ga = g * _make(fself.reshape(shape))
        if ctx.needs_input_grad[3]:
            gs = Gather.apply(g, dim, idx)
            if fsrc is not None:
                gs = gs * _make(fsrc.reshape(gs._data.shape))
            gs = _pad_to(gs, sshape)
        return ga, None, None, gs, None, None


def _as_dtype(x, dt):
    return x.astype(dt) if hasattr(x, "astype") else x


def _reduce_identity(xp, reduce, dt):
    """The value a slot starts from when ``include_self=False``."""
    if reduce in _REDUCE_INIT:
        return _REDUCE_INIT[reduce]
    lowest = reduce == "amax"
    if dt.kind in "iu":
        return xp.iinfo(dt).min if lowest else xp.iinfo(dt).max
    if dt.kind == "b":
        return not lowest
    return -xp.inf if lowest else xp.inf


def _prod_factors(xp, a1, vals, key, self_in):
    """d(prod)/d(each factor): the product of the other factors, exact when some are zero."""
    zeros = xp.where(self_in & (a1 == 0), 1, 0)
    xp.add.at(zeros, key, (vals == 0).astype(zeros.dtype))
    nz = xp.where(self_in & (a1 != 0), a1, xp.ones_like(a1))
    xp.multiply.at(nz, key, xp.where(vals == 0, xp.ones_like(vals), vals))

    def others(v, z, p):
        safe = xp.where(v == 0, xp.ones_like(v), v)
        return xp.where(v == 0, xp.where(z == 1, p, 0), xp.where(z == 0, p / safe, 0))
    fself = xp.where(self_in, others(a1, zeros, nz), 0)
    return fself, others(vals, zeros[key], nz[key])


def scatter_reduce(input: Tensor, dim: int, index: Tensor, src: Tensor, reduce: str, *,
                   include_self: bool = True, out=None) -> Tensor:
    """Reduce ``src`` into ``input`` at ``index`` with sum/prod/mean/amax/amin."""
    reduce = {"max": "amax", "min": "amin"}.get(reduce, reduce)
    if reduce not in ("sum", "prod", "mean", "amax", "amin"):
        raise RuntimeError(f"reduce argument must be either sum, prod, mean, amax or amin, got "
                           f"{reduce}")
    d = _scatter_checks(input, dim, index, src, "scatter_reduce")
    return _finish(ScatterReduce.apply(input, d, index, src, reduce, builtins.bool(include_self)),
                   out)


# ---- index_select / index_add / index_copy / index_fill --------------------------------------
def _dim_key(dim: int, idx) -> tuple:
    return (slice(None),) * dim + (idx,)


class IndexSelect(Function):
    raw = True
    backward_name = "IndexSelectBackward0"

    @staticmethod
    def forward(ctx, a, dim, idx):
        ctx.meta = (a.shape, dim)
        ctx.save_for_backward(idx)
        if a.ndim == 0:
            return a.copy()
        return ctx.xp.take(a, _as1d(idx), axis=dim)

    @staticmethod
    def backward(ctx, g):
        shape, dim = ctx.meta
        idx, = ctx.saved_tensors
        return IndexAdd.apply(_zeros(g, shape), dim, idx, g, 1), None, None


def _vector_index(index: Tensor, fn: str):
    if not isinstance(index, Tensor):
        raise TypeError(f"{fn}(): argument 'index' must be Tensor, not {type(index).__name__}")
    if index._data.ndim > 1:
        raise IndexError(f"{fn}(): Index is supposed to be a vector")


def index_select(input: Tensor, dim: int, index: Tensor, *, out=None) -> Tensor:
    """The slices ``index`` along ``dim``."""
    _vector_index(index, "index_select")
    _check_index_dtype(index, "index_select(): Expected dtype int32 or int64 for index")
    d = _wrap_dim(dim, input._data.ndim)
    if _dim_bounds(input._data, d, index._data)[1]:
        raise IndexError("index out of range in self")
    return _finish(IndexSelect.apply(input, d, index), out)


class IndexAdd(Function):
    raw = True
    backward_name = "IndexAddBackward0"

    @staticmethod
    def forward(ctx, a, dim, idx, src, alpha):
        ctx.meta = (dim, src.shape, alpha)
        ctx.save_for_backward(idx)
        out = a.copy()
        v = src if alpha == 1 else src * alpha
        if a.ndim == 0:
            out += v.reshape(())
            return out
        ctx.xp.add.at(out, _dim_key(dim, _as1d(idx)), v.reshape(_src_shape(a, dim, idx)))
        return out

    @staticmethod
    def backward(ctx, g):
        dim, sshape, alpha = ctx.meta
        idx, = ctx.saved_tensors
        gs = None
        if ctx.needs_input_grad[3]:
            gs = IndexSelect.apply(g, dim, idx).reshape(sshape)
            if alpha != 1:
                gs = gs * alpha
        return g, None, None, gs, None


def _src_shape(a, dim, idx):
    s = list(a.shape)
    s[dim] = idx.size
    return tuple(s)


def _index_src_checks(input: Tensor, d: int, index: Tensor, source: Tensor, fn: str):
    a, s, i = input._data, source._data, index._data
    if s.ndim and a.ndim:
        if s.ndim != a.ndim or any(s.shape[j] != a.shape[j] for j in range(a.ndim) if j != d):
            raise RuntimeError(f"source tensor shape must match self tensor shape, excluding the "
                               f"specified dimension. Got self.shape = {list(a.shape)} "
                               f"source.shape = {list(s.shape)}")
    ns = s.shape[d] if s.ndim else 1
    if i.size != ns:
        raise RuntimeError(f"{fn}(): Number of indices ({i.size}) should be equal to "
                           f"source.size(dim): ({ns}), for dim: {d}")


def index_add(input: Tensor, dim: int, index: Tensor, source: Tensor, *, alpha=1,
              out=None) -> Tensor:
    """``input`` with ``alpha * source`` slices added at ``index`` along ``dim``."""
    if index._data.ndim > 1:
        raise IndexError(f"index_add_(): Index is supposed to be a vector, but got dim: "
                         f"{index._data.ndim} with type: {scalar_name(index._data.dtype)} and "
                         f"size: {list(index._data.shape)}")
    _check_index_dtype(index, "index_add_(): Expected dtype int32/int64 for index")
    d = _wrap_dim(dim, input._data.ndim)
    if source._data.dtype != input._data.dtype:
        raise RuntimeError(f"index_add_(): self ({scalar_name(input._data.dtype)}) and source "
                           f"({scalar_name(source._data.dtype)}) must have the same scalar type")
    _index_src_checks(input, d, index, source, "index_add_")
    n, bad = _dim_bounds(input._data, d, index._data)
    if bad:
        if input._data.ndim <= 1:  # PyTorch's 1-D kernel reports it differently
            raise IndexError("index out of range in self")
        raise RuntimeError(_oob(bad[0], d, n))
    return _finish(IndexAdd.apply(input, d, index, source, alpha), out)


class IndexCopy(Function):
    raw = True
    backward_name = "IndexCopyBackward0"

    @staticmethod
    def forward(ctx, a, dim, idx, src):
        if src.dtype != a.dtype:  # here, after the modes: autocast promotes mixed inputs first
            raise RuntimeError(f"index_copy_(): self and source expected to have the same "
                               f"dtype, but got (self) {scalar_name(a.dtype)} and (source) "
                               f"{scalar_name(src.dtype)}")
        ctx.meta = (dim, src.shape)
        ctx.save_for_backward(idx)
        out = a.copy()
        if a.ndim == 0:
            out[...] = src.reshape(())
            return out
        out[_dim_key(dim, _as1d(idx))] = src.reshape(_src_shape(a, dim, idx))
        return out

    @staticmethod
    def backward(ctx, g):
        dim, sshape = ctx.meta
        idx, = ctx.saved_tensors
        ga = IndexFill.apply(g, dim, idx, 0) if ctx.needs_input_grad[0] else None
        gs = IndexSelect.apply(g, dim, idx).reshape(sshape) if ctx.needs_input_grad[3] else None
        return ga, None, None, gs


def index_copy(input: Tensor, dim: int, index: Tensor, source: Tensor, *, out=None) -> Tensor:
    """``input`` with the slices at ``index`` along ``dim`` replaced by ``source``'s."""
    if index._data.ndim > 1:
        raise IndexError("index_copy_(): Index should have dimension 1 or 0 (got "
                         f"{index._data.ndim})")
    _check_index_dtype(index, "index_copy_(): Expected a long tensor for index, but got "
                       f"{scalar_name(index._data.dtype)}", IndexError, allow32=False)
    d = _wrap_dim(dim, input._data.ndim)
    ns = source._data.shape[d] if source._data.ndim else 1
    if index._data.size != ns:
        raise IndexError(f"index_copy_(): Number of indices ({index._data.size}) should be "
                         f"equal to source.size(dim) ({ns})")
    _index_src_checks(input, d, index, source, "index_copy_")
    n, bad = _dim_bounds(input._data, d, index._data)
    if bad:
        raise IndexError(f"index_copy_(): {_oob(bad[0], d, n)}")
    return _finish(IndexCopy.apply(input, d, index, source), out)


class IndexFill(Function):
    raw = True
    backward_name = "IndexFillBackward0"

    @staticmethod
    def forward(ctx, a, dim, idx, value):
        ctx.meta = (dim, getattr(value, "dtype", None))
        ctx.save_for_backward(idx)
        out = a.copy()
        if a.ndim == 0:
            out[...] = value
        else:
            out[_dim_key(dim, _as1d(idx))] = value
        return out

    @staticmethod
    def backward(ctx, g):
        dim, vdt = ctx.meta
        idx, = ctx.saved_tensors
        ga = IndexFill.apply(g, dim, idx, 0) if ctx.needs_input_grad[0] else None
        gv = None
        if ctx.needs_input_grad[3]:
            gv = reduce_grad(IndexSelect.apply(g, dim, idx).sum(), (), vdt)
        return ga, None, None, gv


class IndexFillTensor(IndexFill):
    backward_name = "IndexFillBackward1"


def index_fill(input: Tensor, dim: int, index: Tensor, value) -> Tensor:
    """``input`` with the slices at ``index`` along ``dim`` set to ``value``."""
    _check_index_dtype(index, "index_fill_(): Expected dtype int64 for index.", IndexError,
                       allow32=False)
    if index._data.ndim > 1:
        raise IndexError("index_fill_(): Index is supposed to be a vector")
    d = _wrap_dim(dim, input._data.ndim)
    n, bad = _dim_bounds(input._data, d, index._data, negative_ok=True)
    if bad:
        raise IndexError(_oob(bad[0], d, n))
    if isinstance(value, Tensor):
        if value._data.ndim:
            raise RuntimeError(f"index_fill_ only supports a 0-dimensional value tensor, but got "
                               f"tensor with {value._data.ndim} dimension(s).")
        return IndexFillTensor.apply(input, d, index, value)
    return IndexFill.apply(input, d, index, _number(value))


def index_put(input: Tensor, indices, values: Tensor, accumulate: bool = False) -> Tensor:
    """``input`` with ``values`` put (or added) at the positions ``indices`` select."""
    if not isinstance(values, Tensor):
        raise TypeError(f"index_put(): argument 'values' (position 2) must be Tensor, not "
                        f"{type(values).__name__}")
    indices = tuple(indices)
    for i, t in enumerate(indices):
        if not isinstance(t, Tensor):
            raise TypeError(f"expected Tensor as element {i} in argument 0, but got "
                            f"{type(t).__name__}")
    if values._data.dtype != input._data.dtype:
        raise RuntimeError(f"Index put requires the source and destination dtypes match, got "
                           f"{scalar_name(input._data.dtype)} for the destination and "
                           f"{scalar_name(values._data.dtype)} for the source.")
    nd = input._data.ndim
    n_idx = builtins.sum(t._data.ndim if t._data.dtype.kind == "b" else 1 for t in indices)
    if n_idx > nd:
        raise IndexError(f"too many indices for tensor of dimension {nd} (got {n_idx})")
    key = parse_key(input._data.shape, indices, xp_of(input._data))
    return IndexPut.apply(input, values, key, builtins.bool(accumulate))


# ---- masks -----------------------------------------------------------------------------------
def _c_name(t) -> str:
    return c_name(t._data.dtype) if isinstance(t, Tensor) else type(t).__name__


def _check_mask(mask: Tensor, msg: str):
    if not isinstance(mask, Tensor):
        raise TypeError(f"argument 'mask' must be Tensor, not {type(mask).__name__}")
    if mask._data.dtype.kind != "b":
        raise RuntimeError(msg)


class MaskedFill(Function):
    raw = True
    backward_name = "MaskedFillBackward0"
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)

    @staticmethod
    def forward(ctx, a, mask, value):
        ctx.meta = (a.shape, a.dtype, getattr(value, "dtype", None))
        ctx.save_for_backward(mask)
        xp = ctx.xp
        return xp.where(mask, xp.asarray(value).astype(a.dtype), a)

    @staticmethod
    def backward(ctx, g):
        shape, dt, vdt = ctx.meta
        mask, = ctx.saved_tensors
        ga = gv = None
        if ctx.needs_input_grad[0]:
            ga = reduce_grad(MaskedFill.apply(g, mask, 0), shape, dt)
        if ctx.needs_input_grad[2]:
            keep = _make(xp_of(mask._data).logical_not(mask._data))
            gv = reduce_grad(MaskedFill.apply(g, keep, 0).sum(), (), vdt)
        return ga, None, gv


class MaskedFillTensor(MaskedFill):
    backward_name = "MaskedFillBackward1"
    # (PyTorch's edges are self and value, not the mask between them: no one slice)
    edges = None


def masked_fill(input: Tensor, mask: Tensor, value) -> Tensor:
    """``input`` with ``value`` where ``mask`` is True (mask broadcasts)."""
    _check_mask(mask, f"masked_fill_ only supports boolean masks, but got mask with dtype "
                      f"{_c_name(mask)}")
    if mask._data.shape != input._data.shape:
        check_broadcast(mask._data.shape, input._data.shape)
    if isinstance(value, Tensor):
        if value._data.ndim:
            raise RuntimeError(f"masked_fill_ only supports a 0-dimensional value tensor, but "
                               f"got tensor with {value._data.ndim} dimension(s).")
        return MaskedFillTensor.apply(input, mask, value)
    return MaskedFill.apply(input, mask, _number(value))


class MaskedSelect(Function):
    raw = True
    backward_name = "MaskedSelectBackward0"

    @staticmethod
    def forward(ctx, a, mask):
        ab, mb = ctx.xp.broadcast_arrays(a, mask)
        ctx.meta = (a.shape, a.dtype, ab.shape)
        ctx.save_for_backward(mask)
        return ab[mb]

    @staticmethod
    def backward(ctx, g):
        shape, dt, bshape = ctx.meta
        mask, = ctx.saved_tensors
        full = MaskedScatter.apply(_zeros(g, bshape), expand(mask, bshape), g)
        return reduce_grad(full, shape, dt), None


def masked_select(input: Tensor, mask: Tensor, *, out=None) -> Tensor:
    """The elements of ``input`` where ``mask`` is True, as a 1-D tensor."""
    _check_mask(mask, "masked_select: expected BoolTensor for mask")
    if mask._data.shape != input._data.shape:
        check_broadcast(input._data.shape, mask._data.shape)
    return _finish(MaskedSelect.apply(input, mask), out)


class MaskedScatter(Function):
    raw = True
    backward_name = "MaskedScatterBackward0"

    @staticmethod
    def forward(ctx, a, mask, src):
        xp = ctx.xp
        ab, mb = xp.broadcast_arrays(a, mask)
        n = builtins.int(mb.sum())
        if n > src.size:
            raise RuntimeError("Number of elements of source < number of ones in mask")
        ctx.meta = (a.shape, a.dtype, src.shape, n)
        ctx.save_for_backward(mask)
        out = ab.copy()
        out[mb] = src.reshape(-1)[:n]
        return out

    @staticmethod
    def backward(ctx, g):
        shape, dt, sshape, n = ctx.meta
        mask, = ctx.saved_tensors
        ga = gs = None
        if ctx.needs_input_grad[0]:
            ga = reduce_grad(MaskedFill.apply(g, mask, 0), shape, dt)
        if ctx.needs_input_grad[2]:
            picked = MaskedSelect.apply(g, mask)
            gs = _reshape(_pad_to(picked, (math.prod(sshape),)), sshape)
        return ga, None, gs


def masked_scatter(input: Tensor, mask: Tensor, source: Tensor) -> Tensor:
    """``input`` with consecutive ``source`` elements written where ``mask`` is True."""
    _check_mask(mask, f"masked_scatter_ only supports boolean masks, but got mask with dtype "
                      f"{_c_name(mask)}")
    if source._data.dtype != input._data.dtype:
        raise RuntimeError(f"masked_scatter: expected self and source to have same dtypes but "
                           f"got{scalar_name(input._data.dtype)} and "
                           f"{scalar_name(source._data.dtype)}")
    if mask._data.shape != input._data.shape:
        check_broadcast(input._data.shape, mask._data.shape)
    return MaskedScatter.apply(input, mask, source)


# ---- take, take_along_dim, nonzero -----------------------------------------------------------
class Take(Function):
    raw = True
    backward_name = "TakeBackward0"

    @staticmethod
    def forward(ctx, a, idx):
        ctx.meta = (a.shape, idx)
        return ctx.xp.take(a.reshape(-1), idx)

    @staticmethod
    def backward(ctx, g):
        shape, idx = ctx.meta
        flat = IndexGrad.apply(g, (math.prod(shape),), Key((Ellipsis,), (idx,)))
        return _reshape(flat, shape), None


def take(input: Tensor, index: Tensor) -> Tensor:
    """Elements of the flattened ``input`` at ``index`` (negative indices count from the end)."""
    if not _is_long(index._data.dtype):
        raise RuntimeError(f"take(): Expected a long tensor for index, but got "
                           f"{scalar_name(index._data.dtype)}")
    n = input._data.size
    bad = _bounds(index._data, n, True)
    if bad:
        raise IndexError(f"out of range: tried to access index {bad[0]} on a tensor of {n} "
                         "elements.")
    return Take.apply(input, index)


def take_along_dim(input: Tensor, indices: Tensor, dim=None, *, out=None) -> Tensor:
    """``gather`` after broadcasting ``input`` and ``indices`` (flattened when ``dim`` is None)."""
    if not _is_long(indices._data.dtype):
        raise RuntimeError(f"torch.take_along_dim(): dtype of indices should be Long but got "
                           f"{scalar_name(indices._data.dtype)}")
    if dim is None:
        return _finish(gather(_reshape(input, (input._data.size,)), 0,
                              _reshape(indices, (indices._data.size,))), out)
    a, i = input._data, indices._data
    if a.ndim != i.ndim:
        raise RuntimeError(f"torch.take_along_dim(): input and indices should have the same "
                           f"number of dimensions, but got {a.ndim} dimensions for input, and "
                           f"{i.ndim} dimensions for indices")
    d = _wrap_dim(dim, a.ndim)
    sa, si = list(a.shape), list(i.shape)
    sa[d] = si[d] = 1
    b = list(_broadcast_shape((_make(xp_of(a).empty(sa, "bool")),
                               _make(xp_of(a).empty(si, "bool")))))
    if a.shape[:d] + a.shape[d + 1:] != tuple(b[:d] + b[d + 1:]):
        input = expand(input, b[:d] + [a.shape[d]] + b[d + 1:])
    if i.shape[:d] + i.shape[d + 1:] != tuple(b[:d] + b[d + 1:]):
        indices = expand(indices, b[:d] + [i.shape[d]] + b[d + 1:])
    return _finish(gather(input, d, indices), out)


def nonzero(input: Tensor, *, out=None, as_tuple: bool = False):
    """Indices of the non-zero elements: an (n, ndim) int64 tensor, or one 1-D tensor per dim."""
    a = input._data
    xp = xp_of(a)
    nz = xp.nonzero(a.reshape(1) if a.ndim == 0 else a)
    nz = [x.astype("int64", copy=False) for x in nz]
    if as_tuple:
        return tuple(_make(x) for x in nz)
    if a.ndim == 0:
        res = _make(xp.zeros((nz[0].shape[0], 0), "int64"))
    else:
        res = _make(xp.stack(nz, axis=1))
    return _finish(res, out)


def argwhere(input: Tensor) -> Tensor:
    """``nonzero(input)``: one row of indices per non-zero element."""
    return nonzero(input)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 tensor with a trailing dim of ``num_classes``: 1 at each value's class, else 0."""
    a = tensor._data
    if not _is_long(a.dtype):
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    xp = xp_of(a)
    if num_classes == -1:
        if a.size == 0:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        num_classes = builtins.int(a.max()) + 1
    if a.size:
        if builtins.int(a.min()) < 0:
            raise RuntimeError("Class values must be non-negative.")
        if builtins.int(a.max()) >= num_classes:
            raise RuntimeError("Class values must be smaller than num_classes.")
    elif num_classes < 0:
        raise RuntimeError("Class values must be smaller than num_classes.")
    return _make((a[..., None] == xp.arange(num_classes)).astype("int64"))


def _finish(result: Tensor, out) -> Tensor:
    if out is None:
        return result
    return copy_into_out(out, result)


METHODS = {
    "__getitem__": __getitem__, "__setitem__": __setitem__,
    "gather": gather, "scatter": scatter, "scatter_add": scatter_add,
    "scatter_reduce": scatter_reduce, "index_select": index_select, "index_add": index_add,
    "index_copy": index_copy, "index_fill": index_fill, "index_put": index_put,
    "masked_fill": masked_fill, "masked_select": masked_select, "masked_scatter": masked_scatter,
    "take": take, "take_along_dim": take_along_dim, "nonzero": nonzero, "argwhere": argwhere,
    "masked_fill_": make_inplace(masked_fill), "index_add_": make_inplace(index_add),
    "scatter_": make_inplace(scatter), "scatter_add_": make_inplace(scatter_add),
    "scatter_reduce_": make_inplace(scatter_reduce), "index_put_": make_inplace(index_put),
    "index_copy_": make_inplace(index_copy), "index_fill_": make_inplace(index_fill),
    "masked_scatter_": make_inplace(masked_scatter),
}
