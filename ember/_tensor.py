"""``Tensor``: a backend array plus the autograd metadata PyTorch keeps beside it.

This file holds what is a tensor's own: metadata, conversion, the version counter,
hooks, autograd entry points and printing.  Ops live in ``ember/ops`` (one file per
family); ``ember/__init__.py`` binds each family's ``METHODS`` table onto ``Tensor``
in one loop at its end (``_METHOD_FAMILIES``), so ``Tensor.sum`` is ``ops/reduce.py``'s
``sum`` and ``Tensor.__add__`` is ``ops/elementwise.py``'s.

Every tensor is made by ``_make`` (below the class): op results, ``Tensor(...)``,
``Parameter``/``Buffer``, deserialised tensors and the fast view path all call it.
"""
from __future__ import annotations

import builtins
import weakref

from . import _backend, _dtype
from ._dtype import from_np
from ._size import Size, shape_of_array
from ._hooks import add_hook
from ._state import state, _State

_new = object.__new__


def _type_name(t) -> str:
    return "torch." + t.dtype.legacy_name


class Tensor:
    """An n-dimensional array that can record the ops applied to it."""

    # The version counter is a slot: saving a tensor for backward creates it, and a slot costs
    # no instance dict.  Rarely-set state lives in that (lazy) dict; these are its defaults.
    __slots__ = ("_data", "_requires_grad", "_grad_fn", "_output_nr", "_version_ctr", "__dict__",
                 "__weakref__")
    _grad = None
    _views = None          # weakrefs to differentiable views of this base (see autograd/inplace.py)
    _base = None
    _view_chain = None
    _accum = None
    _hooks = None
    _post_acc_hooks = None
    _retains_grad = False
    _retain_hook = None
    _inference = False
    _view_mode = None     # how a view was made with grad off (NOTE [ Views ])

    def __new__(cls, *args, dtype=None, device=None):
        # Legacy constructor: Tensor(2, 3) is uninitialised float, Tensor([1, 2]) copies data.
        from ._creation import empty, tensor
        if len(args) == 1 and not isinstance(args[0], builtins.int):
            t = tensor(args[0], dtype=dtype or _dtype.get_default_dtype())
        else:
            t = empty(*args, dtype=dtype)
        return t if cls is Tensor else _make(t._data, cls=cls)

    def __init__(self, *args, **kwargs):
        pass

    # ---- metadata -------------------------------------------------------------------------
    @property
    def shape(self) -> Size:
        return shape_of_array(self._data)

    def size(self, dim=None):
        """The shape, or one dimension of it."""
        if dim is None:
            return shape_of_array(self._data)
        return self._data.shape[_wrap_dim(dim, self._data.ndim)]

    @property
    def dtype(self) -> _dtype.dtype:
        return from_np(self._data.dtype)

    @property
    def device(self) -> _backend.device:
        return _backend.device_of(self._data)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def is_cpu(self) -> bool:
        return self.device.type == "cpu"

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def dim(self) -> int:
        return self._data.ndim

    ndimension = dim

    def numel(self) -> int:
        return builtins.int(self._data.size)

    nelement = numel

    def element_size(self) -> int:
        return self._data.itemsize

    @property
    def itemsize(self) -> int:
        return self._data.itemsize

    @property
    def nbytes(self) -> int:
        return self._data.nbytes

    def stride(self, dim=None):
        """Strides in elements, as PyTorch reports them."""
        d = self._data
        if d.size == 0 or d.__class__ is not _backend.np.ndarray and _backend.is_meta(d):
            # PyTorch reports contiguous strides (NumPy reports zeros; meta's are all zero)
            st = []
            n = 1
            for s in reversed(self._data.shape):
                st.append(n)
                n *= max(s, 1)
            st = tuple(reversed(st))
        else:
            st = tuple(s // self._data.itemsize for s in self._data.strides)
        return st if dim is None else st[_wrap_dim(dim, self._data.ndim)]

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    def is_complex(self) -> bool:
        return self.dtype.is_complex

    def is_signed(self) -> bool:
        return self.dtype.is_signed

    @property
    def is_leaf(self) -> bool:
        if self._view_mode is not None:  # a view made with grad off goes stale (NOTE [ Views ])
            autograd.views.check_view_fresh(self)
        return self._grad_fn is None

    @property
    def grad_fn(self):
        if self._view_mode is not None:
            autograd.views.check_view_fresh(self)
        return self._grad_fn

    @property
    def grad(self):
        """The accumulated gradient (None until a backward reaches this leaf)."""
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError("assigned grad expected to be a Tensor or None but got grad of "
                                f"type {type(value).__name__}")
            if value._data.shape != self._data.shape:
                raise RuntimeError(
                    f"attempting to assign a gradient of size '{list(value._data.shape)}' to a "
                    f"tensor of size '{list(self._data.shape)}'. Please ensure that the "
                    "gradient and the tensor are the same size")
            if value._data.dtype != self._data.dtype:
                raise RuntimeError(
                    f"attempting to assign a gradient with dtype '{value.dtype.name}' to a "
                    f"tensor with grad_dtype '{self.dtype.name}'. The gradient must match the "
                    "tensor's grad_dtype (defaults to the tensor's dtype).")
        self._grad = value

    @grad.deleter
    def grad(self):
        self._grad = None

    @property
    def output_nr(self) -> int:
        return self._output_nr

    @property
    def _version(self) -> int:
        return _version_counter(self)[0]

    @property
    def is_inference(self):
        return lambda: self._inference

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool):
        self.requires_grad_(value)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        """Set ``requires_grad`` on a leaf (floating dtypes only)."""
        requires_grad = bool(requires_grad)
        if self._grad_fn is not None:
            if requires_grad:
                return self
            raise RuntimeError(
                "you can only change requires_grad flags of leaf variables. If you want to use "
                "a computed variable in a subgraph that doesn't require differentiation use "
                "var_no_grad = var.detach().")
        if not requires_grad and self._base is not None and self._base._requires_grad:
            return self  # a view's flag is its base's as long as that requires grad (PyTorch)
        if requires_grad and not (self.dtype.is_floating_point or self.dtype.is_complex):
            raise RuntimeError("Only Tensors of floating point and complex dtype can require "
                               "gradients")
        if requires_grad and self._inference and not state.inference:
            raise RuntimeError("Setting requires_grad=True on inference tensor outside "
                               "InferenceMode is not allowed.")
        self._requires_grad = requires_grad
        return self

    @property
    def data(self) -> "Tensor":
        """The same storage without autograd history (prefer ``detach()``).

        Unlike ``detach()`` it has its own version counter, as in PyTorch: in-place
        changes through ``.data`` are invisible to autograd's saved-tensor checks.
        """
        return _make(self._data)

    @data.setter
    def data(self, value: "Tensor"):
        if not isinstance(value, Tensor):
            raise TypeError(f"data must be a Tensor, got {type(value).__name__}")
        self._data = value._data

    # Conversion to Python values and NumPy (item, tolist, numpy, __float__, __len__ ...), the
    # copy and pickle protocols, and the device queries beyond ``device`` (``get_device``,
    # ``is_xpu`` ...) are ops/convert.py's, bound with the op families.
    __hash__ = object.__hash__

    def detach(self) -> "Tensor":
        """A new tensor on the same storage, cut from the graph.

        It shares the version counter (so in-place changes through it are caught by
        backward) but is not a view: its own in-place ops never rebase ``self``'s history.
        """
        t = _make(self._data)
        t._version_ctr = _version_counter(self)
        return t

    def detach_(self) -> "Tensor":
        if self._base is not None:
            raise RuntimeError(
                "Can't detach views in-place. Use detach() instead. If you are using "
                "DistributedDataParallel (DDP) for training, and gradient_as_bucket_view is set "
                "as True, gradients are views of DDP buckets, and hence detach_() cannot be "
                "called on these gradients. To fix this error, please refer to the "
                "Optimizer.zero_grad() function in torch/optim/optimizer.py as the solution.")
        self._grad_fn = None
        self._requires_grad = False
        self._output_nr = 0
        return self

    # to/cpu/cuda/pin_memory/is_pinned/is_contiguous (devices, dtypes, memory formats) are
    # ops/convert.py's, bound with its METHODS table

    # ---- autograd -------------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` (PyTorch's Tensor.backward)."""
        backward, modes = autograd.backward, autograd.modes
        if state.intercept:  # function modes see ``backward`` itself, as in PyTorch
            return modes.dispatch(modes.Op(backward, "backward"),
                                  (self, gradient, retain_graph, create_graph),
                                  {"inputs": inputs}, backward, composite=True)
        backward(self, gradient, retain_graph, create_graph, inputs=inputs)

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf after backward."""
        if not self._requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self._grad_fn is None or self._retains_grad:
            return
        ref = weakref.ref(self)

        def _retain(g):
            t = ref()
            if t is not None:  # ``t.grad += g`` as ``backward(inputs=[t])`` stores it
                autograd.engine._store_nonleaf_grad(t, g)
        self._retains_grad = True
        self._retain_hook = _retain
        self._add_node_hook(_retain, last=True)

    def _move_retain_hook(self, old_fn, old_nr) -> None:
        """After an in-place op rebased this tensor, retain the grad of its new history."""
        hooks = old_fn._pre_hooks.get(old_nr) if old_fn._pre_hooks else None
        for k in [k for k, h in (hooks or {}).items() if h is self._retain_hook]:
            del hooks[k]
        self._add_node_hook(self._retain_hook, last=True)

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    def register_hook(self, hook):
        """``hook(grad)`` runs when this tensor's gradient is computed; may return a new one."""
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._grad_fn is None:
            if self._hooks is None:
                self._hooks = {}
            return add_hook(self._hooks, hook)
        return self._add_node_hook(hook)

    def register_post_accumulate_grad_hook(self, hook):
        """``hook(tensor)`` runs after a leaf's ``.grad`` has been accumulated."""
        if self._grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf "
                               "tensors")
        if self._post_acc_hooks is None:
            self._post_acc_hooks = {}
        return add_hook(self._post_acc_hooks, hook)

    def _add_node_hook(self, hook, last=False):
        hooks = self._grad_fn._hook_dict("_pre_hooks").setdefault(self._output_nr, {})
        handle = add_hook(hooks, hook)
        if last:
            hook._retain = True
        else:  # retain_grad's hook stays last, as in PyTorch
            for k in [k for k, h in hooks.items() if getattr(h, "_retain", False)]:
                hooks[k] = hooks.pop(k)
        return handle

    # ---- __torch_function__ protocol (NOTE [ Modes ] in autograd/modes.py) ----------------
    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        tf = cls.__torch_function__
        if getattr(tf, "__func__", tf) is not _disabled_torch_function_impl:
            _State.intercept = True  # from now on every op checks for subclass arguments

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        """Run ``func`` with subclass dispatch off and return tensors as ``cls`` (PyTorch's)."""
        if not all(issubclass(cls, t) for t in types):
            return NotImplemented
        prev = state.subclass_off
        state.subclass_off = True
        try:
            ret = func(*args, **(kwargs or {}))
        finally:
            state.subclass_off = prev
        def as_cls(r):
            return r.as_subclass(cls) if isinstance(r, Tensor) and not isinstance(r, cls) else r
        return type(ret)(map(as_cls, ret)) if isinstance(ret, (tuple, list)) else as_cls(ret)

    def as_subclass(self, cls) -> "Tensor":
        """The same data and autograd history, as an instance of subclass ``cls``."""
        t = self[...]  # an alias view (AliasBackward0 when it requires grad), as PyTorch's
        t.__class__ = cls
        return t

    # ---- printing -------------------------------------------------------------------------
    def __repr__(self):
        from ._printing import tensor_repr
        return tensor_repr(self)

    def __str__(self):
        return self.__repr__()  # so subclasses (Parameter) print their own repr


def _make(data, requires_grad=False, grad_fn=None, output_nr=0, cls=Tensor):
    """The one tensor constructor: wrap a backend array without copying.

    Every tensor is made here (op results, ``Tensor(...)``, parameters, loaded files,
    views), so a new slot needs one line in one place.
    """
    t = _new(cls)
    t._data = data
    t._requires_grad = requires_grad
    t._grad_fn = grad_fn
    t._output_nr = output_nr
    t._version_ctr = None
    return t


def _version_counter(t) -> list:
    """The version counter (a one-item list) shared by ``t`` and every view of its storage.

    In-place writes bump it; a graph node that saved ``t`` compares it before using the value
    (NOTE [ Saved tensors ] in autograd/function.py).
    """
    b = t._base if t._base is not None else t
    vc = b._version_ctr
    if vc is None:
        vc = b._version_ctr = [0]
    return vc


def _disabled_torch_function_impl(cls, func, types, args=(), kwargs=None):
    """``__torch_function__ = _disabled_torch_function_impl`` opts a subclass out (Parameter)."""
    prev = state.subclass_off
    state.subclass_off = True
    try:
        return func(*args, **(kwargs or {}))
    finally:
        state.subclass_off = prev


def _wrap_dim(dim, ndim: int) -> int:
    """Normalise a possibly negative dim, raising PyTorch's IndexError when out of range."""
    if not isinstance(dim, builtins.int) or isinstance(dim, builtins.bool):
        dim = builtins.int(dim) if hasattr(dim, "__index__") else dim
        if not isinstance(dim, builtins.int):
            raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    n = ndim if ndim > 0 else 1
    if dim < -n or dim >= n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {dim})")
    return dim + n if dim < 0 else dim


# last, as autograd imports this module; Tensor.backward reads it without an import's ~0.6 us
from . import autograd  # noqa: E402
