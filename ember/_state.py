"""Per-thread state that every op reads: grad mode, inference mode, anomaly mode, active modes.

A leaf module (it imports nothing from ember), so ``_tensor.py`` and the autograd core can
both read it at module level without an import cycle.  The public switches live in
``autograd/grad_mode.py`` (``no_grad`` ...), ``autograd/anomaly_mode.py`` and
``autograd/modes.py`` (the mode stack); this file only holds what they set.
"""
from __future__ import annotations

import threading


class _State(threading.local):
    grad = True          # ops record the graph (``is_grad_enabled()``)
    inference = False    # new tensors are inference tensors (``inference_mode``)
    anomaly = False      # nodes keep their forward traceback (``detect_anomaly``)
    # Truthy when ``Function.apply`` must look past its fast path: a mode is on this thread's
    # stack, or some Tensor subclass overrides ``__torch_function__`` (set on the class, so
    # every thread sees it).  See NOTE [ Modes ] in autograd/modes.py.
    intercept = False
    modes = ()           # this thread's mode stack, innermost last
    in_backward = False  # the engine is running backward formulas (function modes skip them)
    subclass_off = False  # inside Tensor.__torch_function__: subclasses are not dispatched again
    saved_hooks = ()     # (pack, unpack) pairs of autograd.graph.saved_tensors_hooks
    saved_hooks_disabled = None  # the error message of disable_saved_tensors_hooks


state = _State()
