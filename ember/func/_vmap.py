"""``vmap`` as a loop: call ``func`` once per batch index and stack the results."""
from __future__ import annotations

import functools

from ..utils._pytree import tree_flatten, tree_unflatten, broadcast_prefix

__all__ = ["vmap"]

_RANDOMNESS = ("error", "different", "same")


def _name(func) -> str:
    if isinstance(func, functools.partial):
        return f"functools.partial({_name(func.func)}, ...)"
    return getattr(func, "__name__", repr(func))


class _RandomRefused:
    """Stands in for the default generator's stream under ``randomness='error'``."""

    def __getattr__(self, name):
        raise RuntimeError("vmap: called random operation while in randomness error mode. "
                           "Please either use the 'same' or 'different' randomness flags on "
                           "vmap or perform the randomness operation out of vmap")


class _Randomness:
    """Applies ``randomness`` to the default generator around each slice's call.

    'error' refuses random ops, 'same' replays one stream for every slice, 'different'
    lets the stream run on (each slice draws fresh numbers).
    """

    def __init__(self, mode: str):
        from ..random import default_generator
        self.gen, self.mode = default_generator, mode
        self.start = self.gen._np.bit_generator.state if mode == "same" else None

    def __enter__(self):
        self.saved = self.gen._np
        if self.mode == "error":
            self.gen._np = _RandomRefused()
        elif self.mode == "same":
            self.gen._np.bit_generator.state = self.start
        return self

    def __exit__(self, *exc):
        self.gen._np = self.saved
        return False


def _check_in_dims(func, in_dims, args):
    """Flat in_dims, one per flat argument, validated as PyTorch validates them."""
    from .._tensor import Tensor
    if not isinstance(in_dims, (int, tuple)):
        raise ValueError(f"vmap({_name(func)}, in_dims={in_dims}, ...)(<inputs>): expected "
                         "`in_dims` to be int or a (potentially nested) tuple matching the "
                         f"structure of inputs, got: {type(in_dims)}.")
    if len(args) == 0:
        raise ValueError(f"vmap({_name(func)})(<inputs>): got no inputs. Maybe you forgot to add "
                         "inputs, or you are trying to vmap over a function with no inputs. The "
                         "latter is unsupported.")
    flat_args, spec = tree_flatten(args)
    flat_dims = broadcast_prefix(in_dims, spec)
    if flat_dims is None:
        raise ValueError(f"vmap({_name(func)}, in_dims={in_dims}, ...)(<inputs>): in_dims is not "
                         "compatible with the structure of `inputs`. in_dims has structure "
                         f"{tree_flatten(in_dims)[1]} but inputs has structure {spec}.")
    for d, a in zip(flat_dims, flat_args):
        if d is None:
            continue
        if not isinstance(d, int):
            raise ValueError(f"vmap({_name(func)}, in_dims={in_dims}, ...)(<inputs>): Got "
                             f"in_dim={d} for an input but in_dim must be either an integer "
                             "dimension or None.")
        if not isinstance(a, Tensor):
            raise ValueError(f"vmap({_name(func)}, in_dims={in_dims}, ...)(<inputs>): Got "
                             f"in_dim={d} for an input but the input is of type {type(a)}. We "
                             "cannot vmap over non-Tensor arguments, please use None as the "
                             "respective in_dim")
        if not -a.dim() <= d < a.dim():
            raise ValueError(f"vmap({_name(func)}, in_dims={in_dims}, ...)(<inputs>): Got "
                             f"in_dim={d} for some input, but that input is a Tensor of "
                             f"dimensionality {a.dim()} so expected in_dim to satisfy "
                             f"-{a.dim()} <= in_dim < {a.dim()}.")
    sizes = [a.shape[d] for d, a in zip(flat_dims, flat_args) if d is not None]
    if not sizes:
        raise ValueError("vmap: Expected at least one Tensor to vmap over")
    if any(s != sizes[0] for s in sizes):
        raise ValueError("vmap: Expected all tensors to have the same size in the mapped "
                         f"dimension, got sizes {sizes} for the mapped dimension")
    return flat_args, spec, flat_dims, sizes[0]


def _stack_outputs(func, outs, out_dims):
    """Stack the per-slice outputs along each output's ``out_dim``."""
    from .._tensor import Tensor
    from .. import stack
    flat0, spec = tree_flatten(outs[0])
    if isinstance(outs[0], Tensor):
        if isinstance(out_dims, tuple) and len(out_dims) == 1:
            flat_dims = list(out_dims)
        elif isinstance(out_dims, int) or out_dims is None:
            flat_dims = [out_dims]
        else:
            flat_dims = None
    else:
        flat_dims = broadcast_prefix(out_dims, spec)
    if flat_dims is None:
        raise ValueError(f"vmap({_name(func)}, ..., out_dims={out_dims})(<inputs>): out_dims is "
                         "not compatible with the structure of `outputs`. out_dims has "
                         f"structure {tree_flatten(out_dims)[1]} but outputs has structure "
                         f"{spec}.")
    columns = [tree_flatten(o)[0] for o in outs]
    result = []
    for k, d in enumerate(flat_dims):
        if d is None:
            result.append(flat0[k])  # an unbatched output: every slice gave the same value
            continue
        if not isinstance(d, int):
            raise ValueError(f"vmap({_name(func)}, ..., out_dims={out_dims}): `out_dims` must "
                             "be an int, None or a python collection of ints representing "
                             "where in the outputs the vmapped dimension should appear.")
        if not isinstance(flat0[k], Tensor):
            raise ValueError(f"vmap({_name(func)}, ...): `{_name(func)}` must only return "
                             f"Tensors, got type {type(flat0[k])}. Did you mean to set "
                             "out_dims= to None for output?")
        result.append(stack([c[k] for c in columns], dim=d))
    return tree_unflatten(result, spec)


def vmap(func, in_dims=0, out_dims=0, randomness="error", *, chunk_size=None):
    """``func`` mapped over a batch dimension of its inputs (``torch.vmap``).

    Runs ``func`` once per batch index on ``select(in_dim, i)`` of each mapped input and
    stacks each output along its ``out_dim``; differentiable through ember's autograd, and
    nests with itself and with ``grad``/``jacrev``. ``chunk_size`` is checked and accepted
    (every slice runs on its own anyway). An output with ``out_dims=None`` is taken from the
    first slice, so it must not depend on the mapped inputs.
    """
    if randomness not in _RANDOMNESS:
        raise RuntimeError("Only allowed values for randomness are 'error', 'different', or "
                           f"'same'. Got {randomness}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"vmap: chunk_size should be None or greater than 0. (got {chunk_size})")

    @functools.wraps(func)
    def wrapped(*args, **kwargs):
        flat_args, spec, flat_dims, n = _check_in_dims(func, in_dims, args)
        rand = _Randomness(randomness)
        outs = []
        for i in range(n):
            sliced = [a if d is None else a.select(d, i) for a, d in zip(flat_args, flat_dims)]
            with rand:
                outs.append(func(*tree_unflatten(sliced, spec), **kwargs))
        return _stack_outputs(func, outs, out_dims)
    return wrapped
