"""Anomaly detection: a NaN made in backward names the forward op that caused it."""
from __future__ import annotations

import warnings

from .grad_mode import state
from .._contextlib import _DecoratorContextManager


def is_anomaly_enabled() -> bool:
    return state.anomaly


class detect_anomaly(_DecoratorContextManager):
    """Record each op's forward traceback and check every backward output for NaN."""

    def __init__(self, check_nan: bool = True):
        self.check_nan = check_nan

    def __enter__(self):
        self.prev = state.anomaly
        state.anomaly = self.check_nan

    def __exit__(self, *exc):
        state.anomaly = self.prev

    def clone(self):
        return self.__class__(self.check_nan)


class set_detect_anomaly(_DecoratorContextManager):
    """Turn anomaly detection on or off (at once, and back on exit)."""

    def __init__(self, mode: bool, check_nan: bool = True):
        self.prev = state.anomaly
        self.mode = bool(mode)
        state.anomaly = self.mode

    def __enter__(self):
        pass

    def __exit__(self, *exc):
        state.anomaly = self.prev

    def clone(self):
        return self.__class__(self.mode)


def check_nan(node, grads) -> None:
    """The engine's check of a node's gradients under anomaly mode: NaN names the forward."""
    for i, g in enumerate(grads):
        if g is not None and bool((g._data != g._data).any()):
            if node._trace:
                warnings.warn(f"Error detected in {node.name()}. Traceback of forward call "
                              f"that caused the error:\n{node._trace}")
            raise RuntimeError(f"Function '{node.name()}' returned nan values in its "
                               f"{i}th output.")
