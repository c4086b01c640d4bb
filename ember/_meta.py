"""PyTorch's ``meta`` device: tensors with a shape, a dtype and autograd metadata but no data.

NOTE [ Meta device ]
A meta tensor's array is a ``MetaArray``: a NumPy array of the tensor's shape and dtype whose
strides are all zero over one element of its own (``_meta_of``), so a (2**15, 2**15) float32
meta tensor holds 4 bytes, not 4 GiB.  It is one more row of the backend table (NOTE [ Device
backends ]), registered the first time a ``meta`` device is asked for; ops stay untouched:
their forwards run on ``ctx.xp`` (``meta_xp``, NumPy's namespace) and NumPy itself computes
the result's shape and dtype, raising NumPy's errors where shapes do not fit.  The one place
an output is turned back into a zero-stride array is ``_to_meta``, reached from the array
protocols below (``__array_ufunc__``, ``__array_function__``, the allocating methods) and from
``meta_xp``'s functions; no op body knows about meta.

What an op on meta tensors costs:
- factories (``empty``, ``zeros``, ``full``, ``*_like``, ``asarray`` of host data, ``astype``,
  ``copy``, ``ascontiguousarray``) and views (reshape, transpose, basic indexing, expand): no
  memory and no work in proportion to the size;
- elementwise ufuncs (any number of inputs, broadcasting, ``out=``): computed on one element
  per input, the result broadcast to the output's shape: no memory in proportion to the size;
- reductions (``sum``, ``max``, ``mean`` ... along any axes) and ``matmul``: the dtype, the
  output shape and NumPy's shape errors come from the same call on a zero-size or one-element
  stand-in: no memory, no work in proportion to the size;
- writes (``a[k] = v``, ``copyto``, ``fill``, ``ufunc(..., out=a)``): nothing is written;
- ``take`` (embedding): its output's shape, nothing read;
- every other NumPy function (``concatenate``, ``einsum``, advanced indexing,
  ``linalg`` ...) runs on the zero-stride arrays as they are, then its result is made a
  zero-stride array: such an op transiently allocates its output once (the output's bytes;
  measured in tests/test_meta_device.py: ``cat`` of two (1024, 1024) float32 meta tensors
  peaks at 8 MiB, its output's size) and does the op's work on zeros.
Data reads raise PyTorch's errors (``item``, ``bool``, ``float``: "Tensor.item() cannot be
called on meta tensors"; ``tolist`` and copies to another device: "Cannot copy out of meta
tensor; no data!"); an op's own checks of its arrays' values (index bounds, "any NaN?") read
the zero element and pass, as PyTorch's meta kernels make no data checks.  NumPy's
floating-point warnings are silenced on meta data (the element is 0: 1/0 and log(0) mean
nothing here).  Strides: a meta tensor reports the contiguous strides
of its shape (PyTorch's for a freshly made tensor; a transposed meta view reports them too,
where PyTorch reports the transposed ones).
"""
from __future__ import annotations

import types

import numpy as np

from . import _backend

_NO_ITEM = "Tensor.item() cannot be called on meta tensors"
_NO_DATA = "Cannot copy out of meta tensor; no data!"


def _meta_of(shape, dtype) -> "MetaArray":
    """A meta array: ``shape`` over one zero element of ``dtype`` (all strides zero)."""
    shape = tuple(shape)
    return np.ndarray.__new__(MetaArray, shape, dtype, buffer=np.zeros(1, dtype),
                              strides=(0,) * len(shape))


def _to_meta(x):
    """NumPy results as meta arrays (the one place an output becomes zero-stride): arrays,
    NumPy scalars and tuples/lists of them; anything else as it is."""
    if isinstance(x, np.ndarray):
        if type(x) is MetaArray and (x.size <= 1 or not any(x.strides)):
            return x
        return _meta_of(x.shape, x.dtype)
    if isinstance(x, np.generic):
        return _meta_of((), x.dtype)
    if isinstance(x, (tuple, list)):
        return type(x)(_to_meta(y) for y in x)
    return x


def _plain(x):
    """MetaArray arguments as plain zero-stride ndarrays (NumPy's own code runs on them)."""
    if type(x) is MetaArray:
        return x.view(np.ndarray)
    if isinstance(x, (tuple, list)):
        return type(x)(_plain(y) for y in x)
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    return x


def _element(x):
    """A 0-d stand-in of an array operand with its dtype (Python scalars stay as they are:
    NumPy promotes them as weak scalars, the same as with the full operands)."""
    if isinstance(x, np.ndarray):
        return np.zeros((), x.dtype)
    return x


def _zero_size(x, keep):
    """A zero-size stand-in of ``x`` (dims in ``keep`` kept, the others of length 0)."""
    shape = tuple(n if i in keep else 0 for i, n in enumerate(x.shape))
    return np.zeros(shape, x.dtype)


def _elementwise(ufunc, inputs, kwargs):
    """An elementwise ufunc: its dtype from one element per input, its shape broadcast."""
    shapes = [np.shape(x) for x in inputs if isinstance(x, np.ndarray)]
    try:
        shape = np.broadcast_shapes(*shapes)
    except ValueError:  # NumPy's own message: the call fails before it computes anything
        return ufunc(*_plain(inputs), **_plain(kwargs))
    out = kwargs.pop("out", None)
    where = kwargs.pop("where", True)
    if out is not None:  # checks the casting into ``out`` and its shape, writes nothing
        outs = out if isinstance(out, tuple) else (out,)
        for o in outs:
            if o is not None and np.broadcast_shapes(o.shape, shape) != o.shape:
                return ufunc(*_plain(inputs), out=_plain(out), **_plain(kwargs))
        small = tuple(None if o is None else np.zeros((), o.dtype) for o in outs)
        ufunc(*[_element(x) for x in inputs], out=small, where=_element(where), **kwargs)
        return outs[0] if ufunc.nout == 1 else outs
    res = ufunc(*[_element(x) for x in inputs], where=_element(where), **kwargs)
    if isinstance(res, tuple):
        return tuple(_meta_of(shape, r.dtype) for r in res)
    return _meta_of(shape, np.asarray(res).dtype)


def _reduce(ufunc, x, kwargs):
    """``ufunc.reduce`` (sum, max, any ...): NumPy reduces a stand-in whose kept dims have
    length 1 and reduced dims their own length clipped to 1 (so empty reductions raise as
    NumPy's); the output's shape is then computed from ``x``'s."""
    out = kwargs.pop("out", None)
    out = out[0] if isinstance(out, tuple) else out
    if kwargs.get("where", True) is not True or "initial" in kwargs and x.ndim == 0:
        return _generic(ufunc.reduce, (x,), dict(kwargs, out=out))
    axis = kwargs.get("axis", 0)
    keepdims = kwargs.get("keepdims", False)
    axes = tuple(range(x.ndim)) if axis is None else \
        np.lib.array_utils.normalize_axis_tuple(axis, x.ndim)
    small = np.zeros(tuple(min(n, 1) for n in x.shape), x.dtype)
    res = np.asarray(ufunc.reduce(small, **kwargs))  # dtype, and the empty-reduction errors
    shape = tuple((1 if keepdims else None) if i in axes else n for i, n in enumerate(x.shape))
    shape = tuple(n for n in shape if n is not None)
    if out is None:
        return _meta_of(shape, res.dtype)
    if out.shape != shape:  # NumPy's error for a wrong ``out``
        return _generic(ufunc.reduce, (x,), dict(kwargs, out=out))
    return out


def _matmul(inputs, kwargs):
    """``matmul``: NumPy multiplies zero-size stand-ins (the shape checks and dtype are its
    own, no work), and the output gets the rows and columns back."""
    out = kwargs.pop("out", None)
    out = out[0] if isinstance(out, tuple) else out
    if len(inputs) != 2:
        return _generic(np.matmul, inputs, dict(kwargs, out=out))
    a, b = inputs
    if not isinstance(a, np.ndarray) or not isinstance(b, np.ndarray) or a.ndim == 0 or \
            b.ndim == 0:
        return _generic(np.matmul, inputs, kwargs)
    sa = _zero_size(a, set(range(a.ndim)) - {a.ndim - 2} if a.ndim > 1 else {0})
    sb = _zero_size(b, set(range(b.ndim)) - {b.ndim - 1} if b.ndim > 1 else {0})
    res = np.matmul(sa, sb, **kwargs)  # (batch..., [0 rows], [0 columns])
    shape = list(res.shape)
    if a.ndim > 1:
        shape[-2 if b.ndim > 1 else -1] = a.shape[-2]
    if b.ndim > 1:
        shape[-1] = b.shape[-1]
    if out is None:
        return _meta_of(shape, res.dtype)
    if out.shape != tuple(shape):
        raise ValueError(f"matmul: output array has shape {out.shape}, the product "
                         f"{tuple(shape)}")
    return out


def _generic(fn, args, kwargs):
    """Any other function: run on the zero-stride arrays, the result made meta (costs the
    output's memory, transiently: NOTE [ Meta device ])."""
    return _to_meta(fn(*_plain(args), **_plain(kwargs)))


# functions that only read a shape or write: nothing to compute
def _copyto(dst, src, casting="same_kind", where=True):
    np.copyto(np.zeros((), dst.dtype), _element(src), casting=casting)
    if np.broadcast_shapes(np.shape(src), dst.shape) != dst.shape:
        np.copyto(_plain(dst), _plain(src))  # NumPy's broadcast error


def _same_shape(a, *args, dtype=None, **kwargs):
    return _meta_of(np.shape(a), dtype if dtype is not None else a.dtype)


def _like(a, dtype=None, order="K", subok=True, shape=None, **kwargs):
    if shape is None:
        shape = np.shape(a)
    return _meta_of((shape,) if isinstance(shape, (int, np.integer)) else shape,
                    dtype if dtype is not None else a.dtype)


def _full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, **kwargs):
    dt = np.full((), fill_value, dtype if dtype is not None else a.dtype).dtype
    return _like(a, dt, shape=shape)


def _take(a, indices, axis=None, out=None, mode="raise"):
    """``take`` (embedding's lookup): NumPy's would copy a zero-stride ``a`` to contiguous
    memory first (a 32000 x 4096 table: 500 MiB), so the shape is computed here."""
    idx = np.shape(indices)
    if axis is None:
        shape = idx
        n = a.size
    else:
        axis = np.lib.array_utils.normalize_axis_index(axis, a.ndim)
        shape = a.shape[:axis] + idx + a.shape[axis + 1:]
        n = a.shape[axis]
    if n == 0 and np.size(indices):
        raise IndexError("cannot do a non-empty take from an empty axes.")
    if out is not None:
        return out
    return _meta_of(shape, a.dtype)


_FUNCTIONS = {
    np.take: _take,
    np.copyto: lambda dst, src, **kw: _copyto(dst, src, **kw),
    np.ascontiguousarray: _same_shape, np.asfortranarray: _same_shape,
    np.copy: lambda a, order="K", subok=False: _meta_of(a.shape, a.dtype),
    np.empty_like: _like, np.zeros_like: _like, np.ones_like: _like, np.full_like: _full_like,
}


class MetaArray(np.ndarray):
    """The array of a meta tensor: a shape and a dtype, all strides zero (NOTE [ Meta device ])."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        with np.errstate(all="ignore"):
            if method == "__call__":
                if ufunc.signature is None:
                    return _elementwise(ufunc, inputs, kwargs)
                if ufunc is np.matmul:
                    return _matmul(inputs, kwargs)
            elif method == "reduce" and len(inputs) == 1:
                return _reduce(ufunc, inputs[0], kwargs)
            elif method == "accumulate" and kwargs.get("out") is None:
                return _meta_of(inputs[0].shape,
                                ufunc.accumulate(np.zeros(1, inputs[0].dtype), **{
                                    k: v for k, v in kwargs.items() if k != "axis"}).dtype)
            elif method == "at":
                return None
            return _generic(getattr(ufunc, method), inputs, kwargs)

    def __array_function__(self, func, types_, args, kwargs):
        fast = _FUNCTIONS.get(func)
        with np.errstate(all="ignore"):
            if fast is not None:
                return fast(*args, **kwargs)
            return _generic(func, args, kwargs)

    def __getitem__(self, key):
        res = super().__getitem__(_plain(key))  # basic indexing: a view, zero-stride already
        return _to_meta(res)

    def __setitem__(self, key, value):
        # nothing is written; the target's shape is checked as NumPy would (basic keys)
        shape = np.shape(super().__getitem__(_plain(key)))
        vshape = np.shape(value)
        try:
            ok = np.broadcast_shapes(vshape, shape) == shape
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"could not broadcast input array from shape {vshape} into shape "
                             f"{shape}")

    def astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
        dt = np.zeros((), self.dtype).astype(dtype, casting=casting).dtype
        if not copy and dt == self.dtype:
            return self
        return _meta_of(self.shape, dt)

    def copy(self, order="C"):
        return _meta_of(self.shape, self.dtype)

    def fill(self, value):
        return None

    # data reads: PyTorch's errors for ``item``/``tolist``/copies out (the Tensor-level
    # ``bool``/``int``/``float`` go through ``item``).  An op's own data checks on its arrays
    # (``if idx.max() >= n``, ``int(idx.min())``) read the zero element, so they pass as
    # PyTorch's meta kernels, which make no data checks.
    def item(self, *args):
        raise RuntimeError(_NO_ITEM)

    def tolist(self):
        raise NotImplementedError(_NO_DATA)

    def tobytes(self, order="C"):
        raise NotImplementedError(_NO_DATA)

    def get(self):
        """A host copy (the backend seam's move off the device): meta has no data."""
        raise NotImplementedError(_NO_DATA)

    def __reduce__(self):
        return (_meta_of, (self.shape, self.dtype))

    def __repr__(self):
        return f"MetaArray(shape={self.shape}, dtype={self.dtype})"


def _from_host(a, dtype=None, copy=None, order=None, **kwargs):
    """Host data onto the meta device: its shape and dtype, nothing copied."""
    if isinstance(a, np.ndarray) or isinstance(a, np.generic):
        dt = np.dtype(dtype) if dtype is not None else a.dtype
        return _meta_of(np.shape(a), dt)
    return _to_meta(np.asarray(a, dtype=dtype))


def _empty(shape, dtype=float, order="C", **kwargs):
    """``empty``/``zeros``/``ones``: the shape and dtype asked for, nothing allocated."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    return _meta_of(shape, np.dtype(dtype))


def _full(shape, fill_value, dtype=None, order="C", **kwargs):
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    return _meta_of(shape, np.full((), fill_value, dtype).dtype)


def _as_strided(x, shape=None, strides=None, subok=False, writeable=True):
    # the strides asked for would read past the one element: the view keeps zero strides
    return _meta_of(x.shape if shape is None else shape, x.dtype)


def _sliding_window_view(x, window_shape, axis=None, **kwargs):
    return _to_meta(np.lib.stride_tricks.sliding_window_view(_plain(x), window_shape, axis))


_XP_FUNCTIONS = {
    "empty": _empty, "zeros": _empty, "ones": _empty, "full": _full,
    "asarray": _from_host, "array": _from_host, "asanyarray": _from_host,
    "ascontiguousarray": _from_host,
}
_LIB = types.SimpleNamespace(stride_tricks=types.SimpleNamespace(
    as_strided=_as_strided, sliding_window_view=_sliding_window_view),
    array_utils=np.lib.array_utils)


class _MetaXP(types.ModuleType):
    """NumPy's namespace whose results are meta arrays (the meta backend's array module)."""

    def __getattr__(self, name):
        if name == "ndarray":  # isinstance(a, xp.ndarray) tells device arrays from host ones
            return MetaArray
        if name == "lib":
            return _LIB
        fn = _XP_FUNCTIONS.get(name)
        if fn is None:
            attr = getattr(np, name)
            if not callable(attr) or isinstance(attr, (type, np.ufunc)):  # (ufuncs dispatch
                # to MetaArray.__array_ufunc__ themselves)
                return attr

            def fn(*args, **kwargs):
                with np.errstate(all="ignore"):
                    return _to_meta(attr(*args, **kwargs))
            fn.__name__ = name
        setattr(self, name, fn)  # resolved once
        return fn


meta_xp = _MetaXP("meta_xp")

META = _backend.register_backend("meta", MetaArray, meta_xp, index=None)
