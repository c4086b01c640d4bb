"""``ember.utils.checkpoint``: activation checkpointing (``torch.utils.checkpoint``).

A checkpointed segment keeps only its inputs; the activations its ops would save for backward
are dropped and recomputed when backward first needs one.

- ``use_reentrant=False`` (PyTorch's recommended variant): the forward runs under a
  ``saved_tensors_hooks`` pair whose pack hook keeps a ``_Holder`` (an index) instead of the
  tensor.  The first unpack re-runs the function under ``enable_grad`` with a second pack hook
  that files each re-saved tensor (detached) under the same index, in the same order as the
  original forward saved them, then checks that the count and each tensor's metadata agree
  (``determinism_check``).  Gradients flow through the original graph, so ``autograd.grad``
  and keyword arguments work.
- ``use_reentrant=True``: one ``autograd.Function`` whose forward runs the function under
  ``no_grad`` and whose backward re-runs it with grad and calls ``autograd.backward`` on
  the recomputed outputs (a backward inside a backward), as PyTorch's ``CheckpointFunction``.

Both replay the RNG state of the forward (``preserve_rng_state``), so dropout draws the same
mask twice, and the autocast state, so the recomputation runs in the same dtypes.
"""
from __future__ import annotations

import contextlib
import warnings

from .. import random as _random
from .._tensor import Tensor
from ..amp import autocast_mode as _amp
from ..autograd import backward as _autograd_backward
from ..autograd.function import Function
from ..autograd.grad_mode import enable_grad, no_grad
from ..autograd.graph import saved_tensors_hooks

__all__ = ["checkpoint", "checkpoint_sequential", "CheckpointError", "noop_context_fn",
           "detach_variable", "set_checkpoint_early_stop"]

_early_stop_override = None  # set by set_checkpoint_early_stop, wins over early_stop=


class CheckpointError(RuntimeError):
    """A recomputation saved different tensors than the original forward (PyTorch's)."""


def noop_context_fn():
    """The default ``context_fn``: no context around the forward or the recomputation."""
    return contextlib.nullcontext(), contextlib.nullcontext()


def detach_variable(inputs):
    """Detached copies of the tensors in ``inputs`` keeping their ``requires_grad``."""
    if not isinstance(inputs, tuple):
        raise RuntimeError("Only tuple of tensors is supported. Got Unsupported input type: "
                           + type(inputs).__name__)
    out = []
    for inp in inputs:
        if not isinstance(inp, Tensor):
            out.append(inp)
            continue
        x = inp.detach()
        x.requires_grad = inp.requires_grad
        out.append(x)
    return tuple(out)


_DEBUG_TIP = ("\nTip: To see a more detailed error message, either pass `debug=True` to "
              "`torch.utils.checkpoint.checkpoint(...)` or wrap the code block\nwith `with "
              "torch.utils.checkpoint.set_checkpoint_debug_enabled(True):` to\nenable "
              "checkpoint-debug mode globally.\n")


def _default_meta(x):
    return {"shape": x.shape, "dtype": x.dtype, "device": x.device}


_DETERMINISM_CHECKS = {"default": _default_meta, "none": lambda x: None}


@contextlib.contextmanager
def set_checkpoint_early_stop(enable: bool):
    """Whether checkpoints whose forward runs inside stop recomputing once they have every
    saved tensor (overrides ``early_stop=``; torch's)."""
    global _early_stop_override
    prev = _early_stop_override
    _early_stop_override = enable
    try:
        yield
    finally:
        _early_stop_override = prev


class _ReplayState:
    """The RNG and autocast state of the forward, replayed around a recomputation."""

    def __init__(self, preserve_rng_state: bool):
        self.rng = _random.get_rng_state() if preserve_rng_state else None
        self.autocast = (_amp.is_autocast_enabled("cpu"), _amp.get_autocast_dtype("cpu"))

    @contextlib.contextmanager
    def replay(self):
        enabled, dtype = self.autocast
        outer = _random.get_rng_state() if self.rng is not None else None
        try:
            if self.rng is not None:
                _random.set_rng_state(self.rng)
            with enable_grad(), _amp.autocast("cpu", dtype=dtype, enabled=enabled):
                yield
        finally:
            # the recomputation must not advance the generator the training loop sees
            if outer is not None:
                _random.set_rng_state(outer)


class _Holder:
    """What the forward's pack hook keeps in place of a saved tensor: its position."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index


class _StopRecomputation(Exception):
    """Raised by the recomputation's pack hook once it has every tensor it needs."""


class _Frame:
    """One non-reentrant checkpoint call: the forward's saved-tensor metadata, the recompute."""

    def __init__(self, recompute, metadata_fn, early_stop: bool):
        self.recompute = recompute
        self.metadata_fn = metadata_fn
        self.early_stop = early_stop
        self.metas = []        # metadata of each tensor the forward saved, in order
        self.recomputed = {}   # index -> detached recomputed tensor, until unpacked

    def pack(self, t):
        self.metas.append(self.metadata_fn(t))
        return _Holder(len(self.metas) - 1)

    def unpack(self, holder):
        if holder.index not in self.recomputed:
            # first unpack of this backward (or a second backward after retain_graph)
            self._recompute()
        return self.recomputed.pop(holder.index)

    def _recompute(self):
        found = []

        def pack(t):
            if len(found) == len(self.metas):
                raise CheckpointError(
                    "torch.utils.checkpoint: trying to save more tensors during recomputation "
                    f"than during the original forward pass.\n{_DEBUG_TIP}")
            found.append(t.detach() if t.requires_grad else t)
            if self.early_stop and len(found) == len(self.metas):
                # the rest of the function saves nothing backward needs: skip it
                raise _StopRecomputation
            return None

        try:
            with saved_tensors_hooks(pack, lambda _: None):
                self.recompute()
        except _StopRecomputation:
            pass
        if len(found) != len(self.metas):
            raise CheckpointError(
                "torch.utils.checkpoint: A different number of tensors was saved during the "
                f"original forward and recomputation.\nNumber of tensors saved during forward: "
                f"{len(self.metas)}\nNumber of tensors saved during recomputation: "
                f"{len(found)}.\n{_DEBUG_TIP}")
        bad = ""
        for i, (meta, t) in enumerate(zip(self.metas, found)):
            now = self.metadata_fn(t)
            if meta != now:
                bad += (f"tensor at position {i}:\nsaved metadata: {meta}\n"
                        f"recomputed metadata: {now}\n")
        if bad:
            raise CheckpointError(
                "torch.utils.checkpoint: Recomputed values for the following tensors have "
                f"different metadata than during the forward pass.\n{bad}.\n{_DEBUG_TIP}")
        self.recomputed = dict(enumerate(found))


def _checkpoint_without_reentrant(function, preserve, context_fn, determinism_check, debug,
                                  early_stop, args, kwargs):
    if debug and context_fn is not noop_context_fn:
        raise ValueError("debug=True is incompatible with non-default context_fn")
    if determinism_check not in _DETERMINISM_CHECKS:
        raise ValueError(f"determinism_check should be one of {list(_DETERMINISM_CHECKS)}, "
                         f"but got {determinism_check}")
    forward_context, recompute_context = context_fn()
    replay = _ReplayState(preserve)

    def recompute():
        with replay.replay(), recompute_context:
            function(*args, **kwargs)

    if _early_stop_override is not None:
        early_stop = _early_stop_override
    frame = _Frame(recompute, _DETERMINISM_CHECKS[determinism_check], early_stop)
    with saved_tensors_hooks(frame.pack, frame.unpack), forward_context:
        return function(*args, **kwargs)


class CheckpointFunction(Function):
    """The reentrant variant: forward without a graph, backward recomputes and back-props."""

    @staticmethod
    def forward(ctx, run_function, preserve_rng_state, *args):
        ctx.run_function = run_function
        ctx.replay = _ReplayState(preserve_rng_state)
        ctx.inputs = [None if isinstance(a, Tensor) else a for a in args]
        ctx.tensor_indices = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        ctx.save_for_backward(*[a for a in args if isinstance(a, Tensor)])
        with no_grad():
            return run_function(*args)

    @staticmethod
    def backward(ctx, *grads):
        inputs = list(ctx.inputs)
        for i, t in zip(ctx.tensor_indices, ctx.saved_tensors):
            inputs[i] = t
        with ctx.replay.replay():
            detached = detach_variable(tuple(inputs))
            outputs = ctx.run_function(*detached)
        if isinstance(outputs, Tensor):
            outputs = (outputs,)
        pairs = [(o, g) for o, g in zip(outputs, grads)
                 if isinstance(o, Tensor) and o.requires_grad]
        if not pairs:
            raise RuntimeError("none of output has requires_grad=True, this checkpoint() is "
                               "not necessary")
        _autograd_backward([o for o, _ in pairs], [g for _, g in pairs])
        return (None, None) + tuple(d.grad if isinstance(d, Tensor) else None
                                    for d in detached)


def checkpoint(function, *args, use_reentrant: bool | None = None,
               context_fn=noop_context_fn, determinism_check: str = "default",
               debug: bool = False, **kwargs):
    """``function(*args, **kwargs)`` without keeping its activations: they are recomputed in
    backward (``torch.utils.checkpoint.checkpoint``)."""
    if use_reentrant is None:
        warnings.warn(
            "torch.utils.checkpoint: the use_reentrant parameter should be passed explicitly. "
            "Starting in PyTorch 2.9, calling checkpoint without use_reentrant will raise an "
            "exception. use_reentrant=False is recommended, but if you need to preserve the "
            "current default behavior, you can pass use_reentrant=True. Refer to docs for "
            "more details on the differences between the two variants.", stacklevel=2)
        use_reentrant = True
    preserve = kwargs.pop("preserve_rng_state", True)
    early_stop = kwargs.pop("early_stop", True)
    if kwargs and use_reentrant:
        raise ValueError("Unexpected keyword arguments: " + ",".join(kwargs))
    if use_reentrant:
        if context_fn is not noop_context_fn or debug is not False:
            raise ValueError("Passing `context_fn` or `debug` is only supported when "
                             "use_reentrant=False.")
        if not any(isinstance(a, Tensor) and a.requires_grad for a in args):
            warnings.warn("None of the inputs have requires_grad=True. Gradients will be None")
        return CheckpointFunction.apply(function, preserve, *args)
    return _checkpoint_without_reentrant(function, preserve, context_fn, determinism_check,
                                         debug, early_stop, args, kwargs)


def checkpoint_sequential(functions, segments, input, use_reentrant: bool | None = None,
                          **kwargs):
    """Run ``functions`` in order, checkpointing all but the last of ``segments`` chunks
    (``torch.utils.checkpoint.checkpoint_sequential``)."""
    from ..nn import Sequential
    if use_reentrant is None:
        warnings.warn(
            "torch.utils.checkpoint.checkpoint_sequential: the use_reentrant parameter should "
            "be passed explicitly. In version 2.9 we will raise an exception if use_reentrant "
            "is not passed. use_reentrant=False is recommended, but if you need to preserve "
            "the current default behavior, you can pass use_reentrant=True. Refer to docs for "
            "more details on the differences between the two variants.", stacklevel=2)
        use_reentrant = True
    preserve = kwargs.pop("preserve_rng_state", True)
    if kwargs:
        raise ValueError("Unexpected keyword arguments: " + ",".join(kwargs))

    def run_function(start, end):
        def forward(x):
            for j in range(start, end + 1):
                x = functions[j](x)
            return x
        return forward

    if isinstance(functions, Sequential):
        functions = list(functions.children())
    segment_size = len(functions) // segments
    end = -1
    # every chunk but the last is checkpointed: the last one's activations are needed at once
    for start in range(0, segment_size * (segments - 1), segment_size):
        end = start + segment_size - 1
        input = checkpoint(run_function(start, end), input, use_reentrant=use_reentrant,
                           preserve_rng_state=preserve)
    return run_function(end + 1, len(functions) - 1)(input)
