"""``Optimizer``: the base class every optimizer extends (shaped like ``torch.optim.Optimizer``).

A subclass lists its hyper-parameters in ``defaults`` and implements
``_update(p, grad, state, group)``, a pure array-level update of one parameter
written with ``xp`` in place (MLX's ``apply_single``); ``step`` handles closures,
hooks, no-grad and skipping parameters without gradients.  ``state_dict`` uses
PyTorch's layout (integer parameter ids), so state dicts interchange.
"""
from __future__ import annotations

import functools
import warnings
from collections import OrderedDict, defaultdict
from copy import deepcopy
from itertools import chain
from typing import Any, Dict, Iterable, Tuple, Union

from .._hooks import RemovableHandle
from .._tensor import Tensor, _make
from .. import _backend
from .._backend import xp_of
from ..autograd.grad_mode import no_grad, enable_grad
from ..autograd.function import _version_counter


class _RequiredParameter:
    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()


_global_pre_hooks: "OrderedDict" = OrderedDict()
_global_post_hooks: "OrderedDict" = OrderedDict()


def register_optimizer_step_pre_hook(hook):
    h = RemovableHandle(_global_pre_hooks)
    _global_pre_hooks[h.id] = hook
    return h


def register_optimizer_step_post_hook(hook):
    h = RemovableHandle(_global_post_hooks)
    _global_post_hooks[h.id] = hook
    return h


def _real_view(a, xp, back: list):
    """Complex array ``a`` as float pairs (``view_as_real``): a view of its memory, or of a
    contiguous copy listed in ``back`` (``(a, copy)``) to be written back after the update."""
    if a.ndim == 0:  # NumPy changes no 0-d array's itemsize; its 1-element view can
        a = a.reshape(1)
    try:
        return a.view(a.real.dtype)
    except ValueError:  # a last axis that is not contiguous cannot be reinterpreted
        c = xp.ascontiguousarray(a)
        back.append((a, c))
        return c.view(c.real.dtype)


def _update_as_real(opt, p, g, state, group, xp) -> None:
    """``opt._update`` on a complex parameter as PyTorch's optimizers run it: on
    ``view_as_real`` of the parameter, its gradient and its complex state, so element-wise
    rules (Adam's squared gradient, sign-based steps) act on real and imaginary parts (a 0-d
    or non-contiguous parameter too: the complex rule gives other numbers)."""
    back = []
    pr, gr = _real_view(p, xp, back), _real_view(g, xp, [])  # g is only read
    views = {}
    for k, v in state.items():
        if isinstance(v, Tensor) and v._data.dtype.kind == "c":
            views[k] = _make(_real_view(v._data, xp, back))
    real_state = dict(state, **views)
    opt._update(pr, gr, real_state, group, xp)
    for a, c in back:
        a[...] = c
    for k, v in real_state.items():  # entries the update replaced (step counters) go back
        if views.get(k) is not v:
            if isinstance(v, Tensor) and v._data.shape == pr.shape and \
                    v._data.dtype == pr.dtype:  # state made on the pairs (SGD's momentum
                # buffer) is complex, as PyTorch's
                v = _make(xp.ascontiguousarray(v._data).view(p.dtype).reshape(p.shape))
            state[k] = v


# ---- helpers PyTorch's optimizer module exposes; third-party optimizers (timm's) import them
ParamsT = Union[Iterable[Tensor], Iterable[Dict[str, Any]], Iterable[Tuple[str, Tensor]]]


def _get_capturable_supported_devices(supports_xla: bool = True) -> list:
    """Device types whose optimizers may run ``capturable`` (CUDA-graph safe) updates."""
    return ["cuda", "xpu", "hpu", "privateuseone"] + (["xla"] if supports_xla else [])


def _default_to_fused_or_foreach(params, differentiable: bool, use_fused: bool = False):
    """``(fused, foreach)`` as PyTorch picks them: fused only when asked and every parameter
    is a floating tensor; foreach kernels are for accelerators, never the cpu."""
    if differentiable:
        return False, False
    fused = use_fused and all(p is None or isinstance(p, Tensor) and p.is_floating_point()
                              for p in params)
    foreach = not fused and all(p is None or isinstance(p, Tensor) and p.device.type in
                                ("cuda", "xpu", "privateuseone") for p in params)
    return fused, foreach


def _use_grad_for_differentiable(func):
    """Run an optimizer method with grad mode on only when its ``differentiable`` default is."""
    @functools.wraps(func)
    def _use_grad(self, *args, **kwargs):
        with enable_grad() if self.defaults.get("differentiable", False) else no_grad():
            return func(self, *args, **kwargs)
    return _use_grad


@no_grad()
def _group_tensors_by_device_and_dtype(tensorlistlist, with_indices: bool = False) -> dict:
    """``{(device, dtype): (lists, indices)}``: the parallel lists split by the device and
    dtype of the first list's tensors (``indices`` are their positions, with ``with_indices``)."""
    groups = {}
    for i, t in enumerate(tensorlistlist[0]):
        key = (t.device, t.dtype)
        if key not in groups:
            groups[key] = ([[] for _ in tensorlistlist], [])
        lists, indices = groups[key]
        for dst, src in zip(lists, tensorlistlist):
            dst.append(src[i])
        if with_indices:
            indices.append(i)
    return groups


class Optimizer:
    """Base class: ``param_groups``, ``state``, ``step``, ``zero_grad``, state dicts, hooks."""

    _group_tensors_by_device_and_dtype = staticmethod(_group_tensors_by_device_and_dtype)

    def __init__(self, params, defaults: dict):
        self.defaults = defaults
        self.state = defaultdict(dict)
        self.param_groups = []
        self._optimizer_step_pre_hooks = OrderedDict()
        self._optimizer_step_post_hooks = OrderedDict()
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            f"Tensors or dicts, but got {_tname(params)}")
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    def __getstate__(self):
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__dict__.setdefault("_optimizer_step_pre_hooks", OrderedDict())
        self.__dict__.setdefault("_optimizer_step_post_hooks", OrderedDict())

    def _group_setdefaults(self, **defaults) -> None:
        """Fill options missing from old pickled param groups (used by subclasses' __setstate__)."""
        for group in self.param_groups:
            for key, value in defaults.items():
                group.setdefault(key, value)

    def __repr__(self):
        s = self.__class__.__name__ + " ("
        for i, group in enumerate(self.param_groups):
            s += f"\nParameter Group {i}\n"
            for key in sorted(group.keys()):
                if key != "params":
                    s += f"    {key}: {group[key]}\n"
        return s + ")"

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own options (e.g. a new head's learning rate)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            param_group["params"] = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, "
                            "but the ordering of tensors in sets will change between runs. "
                            "Please use a list instead.")
        else:
            param_group["params"] = list(params)
        for p in param_group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is "
                                + _tname(p))
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(f"parameter group didn't specify a value of required "
                                 f"optimization parameter {name}")
            param_group.setdefault(name, default)
        params = param_group["params"]
        if len(params) != len(set(map(id, params))):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in "
                          "future, this will cause an error; see "
                          "github.com/pytorch/pytorch/issues/40967 for more information",
                          stacklevel=3)
        seen = set()
        for group in self.param_groups:
            seen.update(map(id, group["params"]))
        if not seen.isdisjoint(map(id, params)):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all optimized parameters (to None by default)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        p.grad._data[...] = 0

    def register_step_pre_hook(self, hook):
        """``hook(optimizer, args, kwargs)`` before each ``step``; may return new (args, kwargs)."""
        h = RemovableHandle(self._optimizer_step_pre_hooks)
        self._optimizer_step_pre_hooks[h.id] = hook
        return h

    def register_step_post_hook(self, hook):
        """``hook(optimizer, args, kwargs)`` after each ``step``."""
        h = RemovableHandle(self._optimizer_step_post_hooks)
        self._optimizer_step_post_hooks[h.id] = hook
        return h

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns ``closure()``'s loss."""
        # hooks see PyTorch's (args, kwargs) of the step call, ``self`` first
        args, kwargs = ((self,), {}) if closure is None else ((self, closure), {})
        for hook in chain(_global_pre_hooks.values(), self._optimizer_step_pre_hooks.values()):
            res = hook(self, args, kwargs)
            if res is not None:
                if not (isinstance(res, tuple) and len(res) == 2):
                    raise RuntimeError(f"{hook} must return None or a tuple of (new_args, "
                                       f"new_kwargs), but got {res}.")
                args, kwargs = res
                closure = args[1] if len(args) > 1 else kwargs.get("closure")
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                self._step_group(group)
        for hook in chain(self._optimizer_step_post_hooks.values(), _global_post_hooks.values()):
            hook(self, args, kwargs)
        return loss

    def _step_group(self, group: dict) -> None:
        """Apply ``_update`` to each parameter of ``group`` that has a gradient."""
        maximize = group.get("maximize", False)
        for p in group["params"]:
            g = p.grad
            if g is None:
                continue
            garr = g._data
            xp = xp_of(garr)
            if maximize:
                # out= keeps a 0-d gradient an array (a bare ufunc returns a NumPy scalar)
                garr = xp.negative(garr, out=xp.empty_like(garr))
            state = self.state.get(p)
            fresh = not state
            if fresh:
                # stored only once non-empty: PyTorch keeps no entry for stateless updates
                state = {}
                self._init_state(p, state, group)
            if garr.dtype.kind == "c":
                _update_as_real(self, p._data, garr, state, group, xp)
            else:
                self._update(p._data, garr, state, group, xp)
            if fresh and state:
                self.state[p] = state
            _version_counter(p)[0] += 1

    def _init_state(self, p: Tensor, state: dict, group: dict) -> None:
        """Create a parameter's state on its first step (override).

        A complex parameter's state is complex too; the update sees it as real pairs."""

    def _update(self, p, g, state: dict, group: dict, xp) -> None:
        """Update array ``p`` in place from gradient array ``g`` (override)."""
        raise NotImplementedError

    # ---- state dicts (PyTorch's layout) -------------------------------------------------------
    def state_dict(self) -> dict:
        """``{"state": {index: {...}}, "param_groups": [{..., "params": [index, ...]}]}``."""
        mapping = {}
        index = 0
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            ids = []
            for p in group["params"]:
                if id(p) not in mapping:
                    mapping[id(p)] = index
                    index += 1
                ids.append(mapping[id(p)])
            packed["params"] = ids
            groups.append(packed)
        state = {mapping[id(p)]: v for p, v in self.state.items() if id(p) in mapping}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a state dict made by ``state_dict`` (ember's or PyTorch's)."""
        state_dict = state_dict.copy()
        groups = self.param_groups
        saved_groups = deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        param_lens = (len(g["params"]) for g in groups)
        saved_lens = (len(g["params"]) for g in saved_groups)
        if any(p_len != s_len for p_len, s_len in zip(param_lens, saved_lens)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match "
                             "the size of optimizer's group")
        id_map = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                          chain.from_iterable(g["params"] for g in groups)))
        state = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                param = id_map[k]
                state[param] = {key: _cast_state(param, key, val) for key, val in v.items()}
        new_groups = []
        for group, saved in zip(groups, saved_groups):
            saved["params"] = group["params"]
            new_groups.append(saved)
        # through __setstate__ as PyTorch, so subclasses fill keys missing from old state dicts
        self.__setstate__({"state": state, "param_groups": new_groups})


def _cast_state(param: Tensor, key, value):
    """State tensors take the parameter's device and (floating parameters) dtype, except the
    step count, which stays where it was saved (as PyTorch without capturable/fused)."""
    if isinstance(value, Tensor):
        arr = value._data
        if key != "step":
            if param.is_floating_point() and value.dtype != param.dtype:
                arr = arr.astype(param._data.dtype)
            arr = _backend.to_device(arr, param.device)
        return _make(arr.copy() if arr is value._data else arr)
    if hasattr(value, "dtype") and hasattr(value, "shape"):  # a bare array
        return _make(value.copy())
    return value


def _tname(x) -> str:
    if isinstance(x, Tensor):
        from .._tensor import _type_name
        return _type_name(x)
    return type(x).__name__
