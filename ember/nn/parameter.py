"""``Parameter``: a leaf tensor that a ``Module`` registers as learnable; ``Buffer``."""
from __future__ import annotations

from .._tensor import Tensor, _make, _disabled_torch_function_impl


class Parameter(Tensor):
    """A tensor that is a module parameter (``requires_grad=True`` by default)."""

    def __new__(cls, data=None, requires_grad: bool = True):
        if data is None:
            from .._creation import empty
            data = empty(0)
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter data must be a Tensor, got {type(data).__name__}")
        p = _make(data._data, cls=cls)
        if requires_grad:
            p.requires_grad_(True)
        return p

    __torch_function__ = _disabled_torch_function_impl  # ops return plain tensors, as PyTorch

    def __init__(self, data=None, requires_grad: bool = True):
        pass

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo):
        # PyTorch copies the data and requires_grad only: ``.grad`` is not carried over
        if id(self) in memo:
            return memo[id(self)]
        p = type(self)(_make(self._data.copy()), self._requires_grad)
        memo[id(self)] = p
        return p

    def __reduce_ex__(self, protocol):
        return (_rebuild_parameter, (self._data, self._requires_grad))


def _rebuild_parameter(arr, requires_grad):
    return Parameter(_make(arr), requires_grad)


class Buffer(Tensor):
    """Marks a tensor to be registered as a buffer when assigned to a Module attribute."""

    def __new__(cls, data=None, *, persistent: bool = True):
        if data is None:
            from .._creation import empty
            data = empty(0)
        b = _make(data._data, data._requires_grad, cls=cls)
        b.persistent = persistent
        return b

    __torch_function__ = _disabled_torch_function_impl

    def __init__(self, data=None, *, persistent: bool = True):
        pass


class UninitializedParameter(Parameter):
    """A parameter whose shape is set on first use (for ``LazyLinear``)."""

    def materialize(self, shape, device=None, dtype=None):
        from .._creation import empty
        self._data = empty(*shape, dtype=dtype)._data
        self.__class__ = Parameter


class UninitializedBuffer(Tensor):
    """A buffer whose shape is set on first use (for ``LazyBatchNorm*``)."""

    __torch_function__ = _disabled_torch_function_impl  # keeps ops on their fast path

    def __new__(cls, requires_grad: bool = False, device=None, dtype=None,
                persistent: bool = True):
        from .._creation import empty
        return Buffer.__new__(cls, empty(0), persistent=persistent)

    def __init__(self, requires_grad: bool = False, device=None, dtype=None,
                 persistent: bool = True):
        pass

    def materialize(self, shape, device=None, dtype=None):
        from .._creation import empty
        self._data = empty(*shape, dtype=dtype)._data
        self.__class__ = Tensor


def is_lazy(param) -> bool:
    return isinstance(param, (UninitializedParameter, UninitializedBuffer))
