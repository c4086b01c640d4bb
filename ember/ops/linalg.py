"""Linear algebra: matmul in all of PyTorch's rank cases, on the backend's BLAS."""
from __future__ import annotations

from ..autograd.function import Function
from .._tensor import Tensor
from ._util import reduce_grad, result_dtype

__all__ = ["matmul"]


def _matmul_shape_error(sa, sb):
    if len(sa) == 1 and len(sb) == 1:
        return RuntimeError(f"inconsistent tensor size, expected tensor [{sa[0]}] and src "
                            f"[{sb[0]}] to have the same number of elements, but got {sa[0]} "
                            f"and {sb[0]} elements respectively")
    if len(sa) == 2 and len(sb) == 2 or len(sb) == 2 and len(sa) == 1:
        a2 = sa if len(sa) == 2 else (1, sa[0])
        return RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({a2[0]}x{a2[1]} and "
                            f"{sb[0]}x{sb[1]})")
    return RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                        f"[{sb[0] if len(sb) > 2 else 1}, {sa[-1]}] but got: "
                        f"[{sb[0] if len(sb) > 2 else 1}, {sb[-2] if len(sb) > 1 else sb[0]}].")


class MatMul(Function):
    raw = True
    backward_name = "MmBackward0"

    @staticmethod
    def forward(ctx, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are "
                               f"{a.ndim}D and {b.ndim}D")
        ka = a.shape[-1]
        kb = b.shape[-2] if b.ndim > 1 else b.shape[0]
        if ka != kb:
            raise _matmul_shape_error(a.shape, b.shape)
        if a.dtype != b.dtype:
            raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: "
                               f"{_tname(a.dtype)} != {_tname(b.dtype)}")
        ctx.save_for_backward(a, b)
        return ctx.xp.matmul(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        ga = gb = None
        a1, b1 = a.ndim == 1, b.ndim == 1
        # Lift vectors to matrices so one rule covers every rank case.
        if a1:
            a = a.unsqueeze(0)
            g = g.unsqueeze(-2)
        if b1:
            b = b.unsqueeze(-1)
            g = g.unsqueeze(-1)
        if na:
            ga = g @ b.mT
            if a1:
                ga = ga.squeeze(-2)
            ga = reduce_grad(ga, ctx.saved_tensors[0].shape, a.dtype.np)
        if nb:
            gb = a.mT @ g
            if b1:
                gb = gb.squeeze(-1)
            gb = reduce_grad(gb, ctx.saved_tensors[1].shape, b.dtype.np)
        return ga, gb


def _tname(npd):
    from .._dtype import from_np
    return {"float32": "float", "float64": "double", "float16": "c10::Half",
            "bfloat16": "c10::BFloat16", "int64": "long int", "int32": "int"}.get(
        from_np(npd).name, from_np(npd).name)


def matmul(input: Tensor, other: Tensor, *, out=None) -> Tensor:
    """Matrix product with PyTorch's rank rules (vector, matrix, batched broadcasting)."""
    if not isinstance(other, Tensor) or not isinstance(input, Tensor):
        raise TypeError(f"matmul(): argument 'other' (position 2) must be Tensor, not "
                        f"{type(other).__name__}")
    return MatMul.apply(input, other)


METHODS = {"matmul": matmul, "__matmul__": matmul,
           "__rmatmul__": lambda self, other: matmul(other, self)}
