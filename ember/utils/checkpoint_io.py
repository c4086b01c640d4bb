"""Training checkpoints: model, optimizer, scheduler, counters and every RNG state in one file.

``save_checkpoint`` writes one dict with ``ember.save`` (atomically, in PyTorch's format, and
with only what ``weights_only=True`` loading accepts: tensors, containers, numbers, strings);
``load_checkpoint`` restores all of it, so training resumed from a checkpoint continues bit for
bit as if it had never stopped.
"""
from __future__ import annotations

import random as _pyrandom

import numpy as np

from .. import random as _random
from .._creation import from_numpy
from .._tensor import Tensor
from ..serialization import load, save

__all__ = ["save_checkpoint", "load_checkpoint", "get_rng_states", "set_rng_states"]

_RESERVED = ("model", "optimizer", "scheduler", "epoch", "step", "best_metric", "rng_state")


def get_rng_states() -> dict:
    """ember's, NumPy's global and Python's RNG states, in weights-only-loadable form."""
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, internal, gauss_next = _pyrandom.getstate()
    return {
        "ember": _random.get_rng_state(),
        "numpy": {"bit_generator": str(name), "keys": from_numpy(keys.astype(np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": list(internal),
                   "gauss_next": gauss_next},
    }


def set_rng_states(states: dict) -> None:
    """Restore what ``get_rng_states`` returned."""
    _random.set_rng_state(states["ember"])
    n = states["numpy"]
    keys = n["keys"]
    keys = keys.numpy() if isinstance(keys, Tensor) else np.asarray(keys)
    np.random.set_state((n["bit_generator"], keys.astype(np.uint32), int(n["pos"]),
                         int(n["has_gauss"]), float(n["cached_gaussian"])))
    p = states["python"]
    _pyrandom.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


def save_checkpoint(path, *, model, optimizer=None, scheduler=None, epoch=0, step=0,
                    best_metric=None, **extra) -> None:
    """Write ``model``/``optimizer``/``scheduler`` state dicts, counters, RNG states and
    ``extra`` entries to ``path`` atomically (see ``ember.save``)."""
    clash = [k for k in extra if k in _RESERVED]
    if clash:
        raise TypeError(f"save_checkpoint() extra entries {clash} clash with its own keys "
                        f"{list(_RESERVED)}")
    ckpt = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "epoch": epoch,
        "step": step,
        "best_metric": best_metric,
        "rng_state": get_rng_states(),
    }
    ckpt.update(extra)
    save(ckpt, path)


def load_checkpoint(path, *, model, optimizer=None, scheduler=None, strict: bool = True) -> dict:
    """Restore a ``save_checkpoint`` file into ``model``/``optimizer``/``scheduler`` and the
    RNGs; return the whole checkpoint dict (epoch, step, best_metric, extras...)."""
    ckpt = load(path, weights_only=True)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "rng_state" not in ckpt:
        raise RuntimeError(f"{path!s} is not a checkpoint written by save_checkpoint (expected "
                           "a dict with 'model' and 'rng_state' entries)")
    model.load_state_dict(ckpt["model"], strict=strict)
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is not None:
            if ckpt.get(name) is None:
                raise RuntimeError(f"checkpoint {path!s} holds no {name} state to restore")
            obj.load_state_dict(ckpt[name])
    set_rng_states(ckpt["rng_state"])
    return ckpt
