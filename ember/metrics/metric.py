"""``Metric``: a Module that accumulates state over batches (torchmetrics' base class), and
``MetricCollection``, several metrics updated and computed together."""
from __future__ import annotations

import functools
import warnings

from .._tensor import Tensor
from ..nn.modules.module import Module
from ..nn.modules.container import ModuleDict

__all__ = ["Metric", "MetricCollection"]

_REDUCTIONS = ("sum", "cat", "min", "max", None)
_SYNC_OPTIONS = frozenset({"compute_on_cpu", "dist_sync_on_step", "process_group",
                           "dist_sync_fn", "distributed_available_fn", "sync_on_compute"})


class Metric(Module):
    """Accumulates state with ``update(preds, target)`` and turns it into a value with
    ``compute()``; ``forward`` also returns the metric of the batch alone.

    State is declared with ``add_state``: a tensor (a buffer, so it is in ``state_dict`` and
    moves with ``.to``) or an empty list that ``update`` appends to (in ``state_dict`` through
    ``get_extra_state``).
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__()
        # torchmetrics' synchronisation options: accepted, and moot in one process until
        # ember.distributed exists
        unknown = sorted(set(kwargs) - _SYNC_OPTIONS - {"compute_with_cache"})
        if unknown:
            raise ValueError(f"Unexpected keyword arguments: {unknown}")
        self.compute_with_cache = kwargs.get("compute_with_cache", True)
        self._defaults = {}
        self._reductions = {}
        self._list_states = []
        self._computed = None
        self._update_count = 0
        # the subclass's update/compute, wrapped once per instance as torchmetrics does
        self._update_fn = self.update
        self._compute_fn = self.compute
        self.update = self._wrapped_update
        self.compute = self._wrapped_compute

    def add_state(self, name: str, default, dist_reduce_fx="sum", persistent: bool = True):
        """Declare a state: a tensor merged by ``dist_reduce_fx`` ('sum', 'min', 'max') or an
        empty list merged by concatenation ('cat')."""
        if dist_reduce_fx not in _REDUCTIONS:
            raise ValueError(f"`dist_reduce_fx` must be one of {list(_REDUCTIONS)}, got "
                             f"{dist_reduce_fx!r}")
        if isinstance(default, list):
            if default:
                raise ValueError("state variable must be a tensor or any empty list (where you "
                                 "can append tensors)")
            self._list_states.append(name)
            object.__setattr__(self, name, [])
        elif isinstance(default, Tensor):
            self.register_buffer(name, default.detach().clone(), persistent)
        else:
            raise ValueError("state variable must be a tensor or any empty list (where you can "
                             "append tensors)")
        self._defaults[name] = default
        self._reductions[name] = dist_reduce_fx

    @property
    def update_count(self) -> int:
        return self._update_count

    def _wrapped_update(self, *args, **kwargs):
        from ..autograd.grad_mode import set_grad_enabled
        with set_grad_enabled(self.is_differentiable):
            out = self._update_fn(*args, **kwargs)
        self._computed = None
        self._update_count += 1
        return out

    def _wrapped_compute(self):
        if self._update_count == 0:
            warnings.warn(f"The ``compute`` method of metric {type(self).__name__} was called "
                          "before the ``update`` method which may lead to errors, as metric "
                          "states have not yet been updated.", UserWarning, stacklevel=2)
        if self._computed is None or not self.compute_with_cache:
            self._computed = self._compute_fn()
        return self._computed

    def _state(self) -> dict:
        return {n: (list(getattr(self, n)) if n in self._list_states else getattr(self, n))
                for n in self._defaults}

    def _set_state(self, state: dict) -> None:
        for n, v in state.items():
            if n in self._list_states:
                object.__setattr__(self, n, list(v))
            else:
                self._buffers[n] = v

    def forward(self, *args, **kwargs):
        """Update the global state with this batch and return the metric of the batch alone."""
        saved, count = self._state(), self._update_count
        self.reset()
        try:
            self.update(*args, **kwargs)
            batch_value = self._compute_fn()
        except BaseException:
            # a bad batch must not cost the state accumulated so far
            self._set_state(saved)
            self._update_count = count
            raise
        if self.full_state_update or any(r is None for r in self._reductions.values()):
            self._set_state(saved)
            self._update_count = count
            self.update(*args, **kwargs)
        else:
            self._set_state(self._merge(saved, self._state()))
            self._update_count = count + 1
        self._computed = None
        return batch_value

    def _merge(self, old: dict, new: dict) -> dict:
        from ..ops.elementwise import maximum, minimum
        out = {}
        for n, fx in self._reductions.items():
            if fx == "cat":
                out[n] = old[n] + new[n]
            elif fx == "max":
                out[n] = maximum(old[n], new[n])
            elif fx == "min":
                out[n] = minimum(old[n], new[n])
            else:
                out[n] = old[n] + new[n]
        return out

    def reset(self) -> None:
        """Back to the declared defaults."""
        for n, d in self._defaults.items():
            if n in self._list_states:
                object.__setattr__(self, n, [])
            else:
                self._buffers[n] = d.detach().clone()
        self._computed = None
        self._update_count = 0

    def get_extra_state(self):
        return {n: list(getattr(self, n)) for n in self._list_states}

    def set_extra_state(self, state) -> None:
        for n, v in state.items():
            object.__setattr__(self, n, list(v))
        self._computed = None

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._computed = None
        # loaded state counts as updated: compute() on it is meaningful, no warning
        self._update_count = max(self._update_count, 1)

    def clone(self) -> "Metric":
        import copy
        return copy.deepcopy(self)

    def __deepcopy__(self, memo):
        import copy
        cls = type(self)
        new = cls.__new__(cls)
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            if k in ("update", "compute", "_update_fn", "_compute_fn"):
                continue
            object.__setattr__(new, k, copy.deepcopy(v, memo))
        object.__setattr__(new, "_update_fn", functools.partial(cls.update, new))
        object.__setattr__(new, "_compute_fn", functools.partial(cls.compute, new))
        object.__setattr__(new, "update", new._wrapped_update)
        object.__setattr__(new, "compute", new._wrapped_compute)
        return new

    def __hash__(self):
        return id(self)


class MetricCollection(ModuleDict):
    """Several metrics under names (their class names for a list), updated, computed and reset
    together; ``prefix``/``postfix`` decorate the keys of the results."""

    def __init__(self, metrics, *additional_metrics, prefix=None, postfix=None):
        super().__init__()
        self.prefix = prefix
        self.postfix = postfix
        self.add_metrics(metrics, *additional_metrics)

    def add_metrics(self, metrics, *additional_metrics) -> None:
        if isinstance(metrics, Metric):
            metrics = [metrics]
        if isinstance(metrics, (list, tuple)):
            metrics = list(metrics) + list(additional_metrics)
            named = {}
            for m in metrics:
                if not isinstance(m, Metric):
                    raise ValueError(f"Input {m!r} to `MetricCollection` is not a instance of "
                                     "`ember.metrics.Metric`")
                name = type(m).__name__
                if name in named:
                    raise ValueError(f"Encountered two metrics both named {name}")
                named[name] = m
            metrics = named
        elif additional_metrics:
            raise ValueError("You have passes extra arguments to MetricCollection which are not "
                             "compatible with a dict of metrics")
        for name, m in dict(metrics).items():
            if not isinstance(m, (Metric, MetricCollection)):
                raise ValueError(f"Value {m!r} belonging to key {name} is not an instance of "
                                 "`ember.metrics.Metric` or `MetricCollection`")
            self[name] = m

    def _key(self, name: str) -> str:
        return f"{self.prefix or ''}{name}{self.postfix or ''}"

    def update(self, *args, **kwargs) -> None:
        for m in self.values():
            m.update(*args, **kwargs)

    def forward(self, *args, **kwargs) -> dict:
        return {self._key(k): m(*args, **kwargs) for k, m in self.items()}

    def compute(self) -> dict:
        return {self._key(k): m.compute() for k, m in self.items()}

    def reset(self) -> None:
        for m in self.values():
            m.reset()

    def clone(self, prefix=None, postfix=None) -> "MetricCollection":
        import copy
        new = copy.deepcopy(self)
        if prefix is not None:
            new.prefix = prefix
        if postfix is not None:
            new.postfix = postfix
        return new
