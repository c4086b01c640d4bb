"""Input checks and conversions shared by the functional metrics (NumPy on the host)."""
from __future__ import annotations

import numpy as np

from ..._tensor import Tensor


def to_np(x, name: str = "input") -> np.ndarray:
    """A NumPy copy of an ember tensor (or array-like) for host-side counting."""
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as err:  # pragma: no cover - odd user objects
        raise TypeError(f"{name} must be a Tensor, got {type(x).__name__}") from err


def result(value, dtype=np.float32) -> Tensor:
    """A metric value as an ember tensor (float32 unless the inputs were float64)."""
    from ..._creation import tensor
    return tensor(np.asarray(value, dtype=dtype))


def out_dtype(*arrays) -> type:
    """float64 when any float input is float64, else float32 (torchmetrics' results)."""
    return np.float64 if any(a.dtype == np.float64 for a in arrays) else np.float32


def safe_divide(num, denom, zero_division: float = 0.0) -> np.ndarray:
    """``num / denom`` with ``zero_division`` where ``denom == 0`` (torchmetrics' rule)."""
    num = np.asarray(num, np.float64)
    denom = np.asarray(denom, np.float64)
    out = np.full(np.broadcast(num, denom).shape, float(zero_division))
    np.divide(num, denom, out=out, where=denom != 0)
    return out


def check_same_shape(preds: np.ndarray, target: np.ndarray) -> None:
    if preds.shape != target.shape:
        raise RuntimeError(f"Predictions and targets are expected to have the same shape, but "
                           f"got preds {list(preds.shape)} and target {list(target.shape)}.")


def check_probabilities(p: np.ndarray, what: str = "preds") -> None:
    """Refuse float predictions outside ``[0, 1]`` (apply sigmoid/softmax first)."""
    if p.size and (np.nanmin(p) < 0 or np.nanmax(p) > 1):
        raise ValueError(f"Expected {what} to be probabilities in [0, 1], but got values in "
                         f"[{np.nanmin(p):g}, {np.nanmax(p):g}] (shape {list(p.shape)}); apply "
                         "sigmoid or softmax to logits first.")


def check_task(task, allowed=("binary", "multiclass", "multilabel")) -> str:
    if task not in allowed:
        raise ValueError(f"Expected argument `task` to be one of {list(allowed)}, but got "
                         f"{task!r}.")
    return task


def check_average(average, allowed=("micro", "macro", "weighted", "none", None)):
    if average not in allowed:
        raise ValueError(f"Expected argument `average` to be one of {list(allowed)}, but got "
                         f"{average!r}.")
    return average
