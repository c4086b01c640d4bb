"""Linear algebra: matrix products, einsum, tensordot and the decompositions behind ember.linalg.

Every product makes one backend BLAS call (``xp.matmul``/``xp.einsum``) in its
forward; backward passes are written with these same ops (two products for a
matmul), so ``create_graph=True`` gives exact higher derivatives.
"""
from __future__ import annotations

import builtins
import functools
from collections import namedtuple

from ..autograd.function import Function
from ..autograd.inplace import copy_into_out, make_inplace
from ..autograd.grad_mode import state
from .._tensor import Tensor, _make, _wrap_dim
from .._backend import xp_of
from ._util import (reduce_grad, check_broadcast, need_tensor, scalar_name, c_name, is_float,
                    holomorphic)
from .reduce import vector_norm
from . import _workspace as ws
from ._blas import matmul_into as _gemm  # NOTE [ BLAS kernels ] in ops/_openblas.py

__all__ = ["matmul", "mm", "bmm", "mv", "dot", "vdot", "outer", "ger", "inner", "einsum",
           "tensordot", "addmm", "addmv", "baddbmm", "addbmm", "addr", "kron", "trace", "cross",
           "chain_matmul", "det", "logdet", "slogdet", "inverse", "cholesky", "qr", "svd",
           "cdist"]


class LinAlgError(RuntimeError):
    """A matrix was singular or not positive-definite (``torch.linalg.LinAlgError``)."""


def _need_tensors(fn: str, **operands) -> None:
    """``need_tensor`` for each keyword operand, numbered by position from 1."""
    for pos, (name, x) in enumerate(operands.items(), 1):
        need_tensor(x, fn, name, pos)


def _finish(result: Tensor, out) -> Tensor:
    if out is None:
        return result
    return copy_into_out(out, result)


def _eye(n: int, like: Tensor) -> Tensor:
    """A constant identity matrix in ``like``'s dtype and backend."""
    d = like._data
    return _make(xp_of(d).eye(n, dtype=d.dtype))


def _unsq(t: Tensor, dim: int) -> Tensor:
    """``t`` with a size-1 dim inserted at ``dim`` (a reshape, so it needs no other op family)."""
    shape = list(t.shape)
    dim = dim if dim >= 0 else len(shape) + dim + 1
    shape.insert(dim, 1)
    return t.reshape(tuple(shape))


# ----------------------------------------------------------------------------------------------
# matmul and its fixed-rank forms


def half_to_float(xp, a):
    """A float16/bfloat16 array in float32: exact; bfloat16 is float32's upper 16 bits, so
    a shift of the bits (1.6x faster than ml_dtypes' conversion loop)."""
    if a.dtype.kind == "V":
        return (a.view(xp.uint16).astype(xp.uint32) << 16).view(xp.float32)
    return a.astype(xp.float32)


# NOTE [ GEMM layouts ]
# ``x @ w.T`` with ``w`` C-contiguous (linear's product; ``x @ w.t()`` in user code) is
# OpenBLAS's NT form.  For float32 with few rows M it is much slower than the same product
# computed transposed, ``t = w @ x.T`` (an (N, M) array), once OpenBLAS leaves its fast path
# for small products (seen while M * N <= 1152, left from M * N >= 1280 on every (K, N)
# tried): at (M, K, N) = (16, 784, 512) 353 us against ~195 with the transposed write below,
# (32, 128, 384) 59 against 48, (64, 400, 120) 90 against 80 (one thread, thread CPU).  ``t.T``
# is F-ordered and PyTorch's result is C-contiguous (strides, views and ``is_contiguous`` must
# match), so ``t.T`` is written into a C-ordered result, with the bias added in that pass
# (the bias pass both forms make; a plain copy then ``+= b`` costs the same or more).  That
# pass reads ``t`` across its rows, ~2x the cost of a contiguous pass once ``t`` leaves the
# cache: by M = 96-128 it eats the GEMM's gain ((128, 512, 256): 1.0-1.1x) and at M = 1024
# the transposed GEMM itself is slower (2.1x with the pass on (1024, 128, 384)).  The rule
# (``_by_transpose``), from the ratios over M in 1..256 and a dozen (K, N) of the bench's MLP,
# LeNet and GPT and larger ones:
#   float32, M * N > 1152, N >= 64, and M <= 32, or M <= 64 with K >= 256
# wins 0.33-0.9x of the NT form at one thread and 0.4-0.96x at two (wall clock, best single
# call: the pass is single-threaded but the GEMM's gain is larger there); excluded: M = 64
# with K = 128 (0.97-1.1x), N = 10 (1.05-1.7x) and small N near the threshold (N = 65 at
# M = 48: 1.0x).  float64's DGEMM has no such gap (0.75-1.2x, mostly above 1) and keeps the
# NT form, as do M = 1 (a GEMV either way, equal times) and everything else.
# Inner size 1 (a batch-1 weight gradient ``g.T @ x``, an outer product): NumPy's matmul
# does not call BLAS there and runs a plain loop (451 us on (512, 1) @ (1, 784) against
# PyTorch's 41); ``dot`` calls BLAS (65-70 us; 2-d) and a broadcast ``multiply`` (batched) is
# 4x the loop's speed.  Each computes the single product per element, so the numbers equal
# the loop's bit for bit.  The compiled code (``_functorch/codegen.py``) calls ``mm_into``
# too, so compiled and eager products are the same bits.


def _by_transpose(m: int, k: int, n: int) -> bool:
    """Whether ``a @ w.T`` (float32) is faster as ``(w @ a.T).T`` (NOTE [ GEMM layouts ])."""
    return m * n > 1152 and n >= 64 and (m <= 32 or m <= 64 and k >= 256)


def mm_into(xp, a, b, add=None, out=None, fresh=False):
    """``a @ b (+ add)`` of two 2-d float arrays of one dtype into ``out`` (a C-contiguous
    array; a new one, from the workspace when large, if ``None``; never from it if ``fresh``:
    a product that becomes a leaf's ``.grad`` would be copied out of a block by the engine),
    in the layout measured fastest for the shape (NOTE [ GEMM layouts ])."""
    m, k = a.shape
    n = b.shape[1]
    dt = a.dtype
    if 1 < m <= 64 and dt.char == "f" and _by_transpose(m, k, n) and \
            b.strides[0] == 4 and b.strides[1] >= 4 * k and a.flags.c_contiguous:
        t = _gemm(xp, b.T, a.T, ws.empty(xp, (n, m), dt))
        if out is None:
            out = xp.empty((m, n), dt) if fresh else ws.empty(xp, (m, n), dt)
        if add is None:
            xp.copyto(out, t.T)
        else:
            xp.add(t.T, add, out=out)
        return out
    if k > 1:
        if out is not None:
            _gemm(xp, a, b, out)
        elif fresh or m * n * dt.itemsize < ws.MIN_BYTES:
            out = _gemm(xp, a, b, None)
        else:
            # a fresh multi-MB product faults on every page; a reused block does not
            # (NOTE [ Workspace ]: the block is reused only once no tensor or view refers to it)
            out = _gemm(xp, a, b, ws.empty(xp, (m, n), dt))
    else:
        if out is None:
            out = xp.empty((m, n), dt) if fresh else ws.empty(xp, (m, n), dt)
        if k == 0:  # the empty sum; ``matmul(out=)`` is not relied on to write it
            out.fill(0)
        elif out.flags.c_contiguous:
            xp.dot(a, b, out=out)
        else:
            xp.multiply(a, b, out=out)
    if add is not None:
        xp.add(out, add, out=out)
    return out


# NOTE [ Transposed activations ]
# Inside a compiled training region ``linear``'s float32 product is faster written in column-
# major (F) order: ``y = x @ w.T`` computed as the C-contiguous ``w @ x.T`` (an (N, M) array)
# and used through its transpose, with no copy back to C order.  OpenBLAS (SkylakeX kernels,
# one thread, thread CPU) at (M, K, N) = (128, 784, 512): 1,100 us against 1,190-1,340 for the
# C-ordered ``x @ w.T`` (torch 1,130-1,150), (128, 512, 256) 360 against 390-400; 0.5-0.7x
# for M <= 32, 0.8x at 64, even at 256 and 1.05-1.15x slower at 1024 (so ``_T_ROWS`` = 128).
# At two threads (wall clock, best of 400 calls, loaded machine) every product of the step is
# as fast or faster F-ordered ((128, 784, 512): 562-613 us against 610-758), and the compiled
# step's best single step 2.67-2.73 ms against 3.26-3.75 C-ordered (torch 2.84-3.64).
# The value then stays F-ordered through what reads it: relu in place (against an F-ordered
# zero array), relu's gradient (the product ``g @ w`` feeding it is made F-ordered too, as
# ``w.T @ g.T``: the same time, 0.96-1.07x), the next layer's product and the weight
# gradient, whose ``matmul`` reads either layout (BLAS's transpose flags).  A value of two
# layouts in one elementwise pass reads one across its rows (relu's gradient (128, 512):
# 144 us against 21), so a chain is F-ordered throughout or not at all
# (``_functorch/aot_autograd.py`` picks the chains, ``_transposed_chains``).  Only values that
# never leave the region are F-ordered: a returned tensor is C-contiguous as PyTorch's.
# relu's gradient takes its mask from the relu's own result, which the backward reads there
# for the last time (``_relu_grad_y``), so the step has no mask arrays.
# What mlp_step_nn's step measured besides (issue 17; thread time, 1 thread, a loaded
# machine; not kept unless said): it makes no page faults (0.0 minor faults a step, ember
# and torch); an 8 or 32 MB read between steps slows ember's step <= 2% and torch's 10-16%,
# and run alone ember/torch was 0.99 against 0.96 interleaved, so cache eviction by the other
# framework is not what separates them; the second of two back-to-back ember steps runs
# ~3% faster (A/A in one process). The non-GEMM lines run 2-5x their isolated time after the
# GEMMs evict the caches (cross-entropy's forward ~90-120 us against ~23), so the kept
# changes remove Python frames there (NOTE [ Compiled cross-entropy ] in
# ``_functorch/aot_autograd.py``, relu's mask, inline transposes). Bias gradients of the
# F-ordered gradients as a GEMV with ones: 2-3x faster, but 20 SGD steps then left the
# trajectory test's rtol 1e-5 / atol 1e-6 (abs 1.3e-5). relu against a zero row or with the
# clip ufunc: slower, and clip keeps -0.0. 4 KB-aligned GEMM operands: within 2-4% noise.


def mm_t(xp, a, b, add=None, out=None):
    """``a @ b (+ add)`` of two 2-d float arrays as an F-ordered result, the transpose of a
    C-contiguous ``b.T @ a.T`` from the workspace (NOTE [ Transposed activations ]); into
    ``out`` instead where given (in its own layout)."""
    if out is None:
        out = ws.empty(xp, (b.shape[1], a.shape[0]), a.dtype).T
    if out.flags.f_contiguous:
        _gemm(xp, b.T, a.T, out.T)
    else:
        _gemm(xp, a, b, out)
    if add is not None:
        xp.add(out, add, out=out)
    return out


def lowp_matmul(xp, a, b, keep: bool = False, add=None):
    """``a @ b`` (``+ add``, broadcast to the product, e.g. a bias); float16/bfloat16 operands
    are multiplied in float32 (one BLAS call) and the result rounded to their dtype, unless
    ``keep`` (then the float32 product is returned).

    NumPy has no half-precision BLAS (its float16 matmul is a slow loop, ml_dtypes' bfloat16
    one returns float32); PyTorch's cpu GEMMs also accumulate half types in float32.
    """
    dt = a.dtype
    if dt.itemsize == 2 and dt.kind in "fV" and b.dtype == dt:
        out = xp.matmul(half_to_float(xp, a), half_to_float(xp, b))
        if add is not None:
            out += add
        return out if keep else out.astype(dt)
    if a.ndim == 2 and b.ndim == 2 and b.dtype == dt and dt.kind == "f":
        return mm_into(xp, a, b, add)
    if a.ndim >= 2 and b.ndim >= 2 and a.shape[-1] == 1 and b.dtype == dt:
        out = xp.multiply(a, b)  # inner size 1: one product each (NOTE [ GEMM layouts ])
    else:
        out = xp.matmul(a, b)
    if add is not None:
        out += add
    return out if keep or out.dtype == dt else out.astype(dt)


class MatMul(Function):
    """``a @ b`` in any rank case (NumPy's matmul rules are PyTorch's); one BLAS call."""

    raw = True
    backward_name = "UnsafeViewBackward0"

    @staticmethod
    def forward(ctx, a, b):
        # the dtype check runs here, after the modes: autocast casts mixed inputs first
        if a.dtype != b.dtype:
            raise _dtype_error(a, b, (min(a.ndim, 3), min(b.ndim, 3)))
        ctx.save_for_backward(a, b)
        return lowp_matmul(ctx.xp, a, b)

    @holomorphic  # complex: g @ b^H and a^H @ g (NOTE [ Complex gradients ] in ops/_util.py)
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return _matmul_grads(g, a, b, need_a, need_b)


# torch's grad_fn for each (rank of a, rank of b) with ranks above 3 counted as 3
class _Dot(MatMul):
    backward_name = "DotBackward0"


class _Mv(MatMul):
    backward_name = "MvBackward0"


class _VecMat(MatMul):
    backward_name = "SqueezeBackward4"


class _Mm(MatMul):
    backward_name = "MmBackward0"


class _Bmm(MatMul):
    backward_name = "BmmBackward0"


class _MatBatch(MatMul):
    backward_name = "CloneBackward0"


class _Vdot(MatMul):
    backward_name = "VdotBackward0"


# matmul's own dot and mv: autocast lowers matmul but not torch.dot / torch.mv
class _MatmulDot(_Dot):
    pass


class _MatmulMv(_Mv):
    pass


_KIND = {(1, 1): _MatmulDot, (2, 1): _MatmulMv, (1, 2): _VecMat, (2, 2): _Mm, (2, 3): _MatBatch,
         (1, 3): MatMul, (3, 1): MatMul, (3, 2): MatMul, (3, 3): MatMul}


def _matmul_grads(g: Tensor, a: Tensor, b: Tensor, need_a: bool, need_b: bool):
    """Gradients of ``a @ b``: ``g @ b^T`` and ``a^T @ g``, summed over broadcast batch dims."""
    sa, sb = a._data.shape, b._data.shape
    na, nb = len(sa), len(sb)
    if na == 1 and nb == 1:
        return (g * b if need_a else None), (g * a if need_b else None)
    # Lift vectors to matrices so that one rule covers every rank case.
    a2 = a.reshape(1, sa[0]) if na == 1 else a
    b2 = b.reshape(sb[0], 1) if nb == 1 else b
    gs = tuple(g._data.shape)
    if nb == 1:
        gs = gs + (1,)
    if na == 1:
        gs = gs[:-1] + (1,) + gs[-1:]
    g2 = g.reshape(gs) if gs != g._data.shape else g
    ga = gb = None
    if need_a:
        ga = reduce_grad(g2 @ b2.mT, a2._data.shape, a._data.dtype)
        if na == 1:
            ga = ga.reshape(sa)
    if need_b:
        if nb <= 2 < na:
            # fold a's batch into its rows: one GEMM instead of a batch of them plus a sum
            k = sa[-1]
            gb = a.reshape(-1, k).mT @ g2.reshape(-1, gs[-1])
        else:
            gb = reduce_grad(a2.mT @ g2, b2._data.shape, b._data.dtype)
        if nb == 1:
            gb = gb.reshape(sb)
    return ga, gb


def _dtype_error(a, b, kind):
    da, db = a.dtype, b.dtype
    if kind == (1, 1):
        return RuntimeError(f"dot : expected both vectors to have same dtype, but found "
                            f"{scalar_name(da)} and {scalar_name(db)}")
    if kind[1] == 1:
        return RuntimeError(f"addmv input tensors must have the same dtype, but got "
                            f"{scalar_name(db)}, {scalar_name(da)}, and {scalar_name(db)}")
    if kind[1] == 2:
        return RuntimeError(f"expected m1 and m2 to have the same dtype, but got: "
                            f"{c_name(da)} != {c_name(db)}")
    return RuntimeError(f"expected scalar type {scalar_name(da)} but found {scalar_name(db)}")


_BOOL_KERNEL = {1: "addmv_impl_cpu", 2: "addmm_impl_cpu_", 3: "bmm"}


def _no_bool(dt, kind):
    if dt.kind == "b":
        name = "dot" if kind == (1, 1) else _BOOL_KERNEL[kind[1]]
        raise NotImplementedError(f"\"{name}\" not implemented for 'Bool'")


def _torch_folds(x: Tensor, y: Tensor) -> bool:
    """Whether torch's matmul folds the batched operand into a matrix (and calls mm/mv)."""
    a, b = x._data, y._data
    if a.ndim >= b.ndim:
        shape, strides, rg, n2 = a.shape, a.strides, x._requires_grad, b.ndim
    else:  # torch works with b^T @ a^T
        shape = b.shape[:-2] + b.shape[:-3:-1]
        strides = b.strides[:-2] + b.strides[:-3:-1]
        rg, n2 = y._requires_grad, a.ndim
    if len(shape) < 3 or n2 > 2:
        return False
    if rg:
        return True
    if a.ndim == 2:
        return False
    if 0 in shape:
        return True
    return all(strides[i] == strides[i + 1] * shape[i + 1] for i in range(len(shape) - 2))


def _matmul_shape_error(x: Tensor, y: Tensor):
    sa, sb = x._data.shape, y._data.shape
    na, nb = len(sa), len(sb)
    if na == 1 and nb == 1:
        return RuntimeError(f"inconsistent tensor size, expected tensor [{sa[0]}] and src "
                            f"[{sb[0]}] to have the same number of elements, but got {sa[0]} "
                            f"and {sb[0]} elements respectively")
    if na <= 2 and nb <= 2 or _torch_folds(x, y):
        if na >= nb:  # a's batch folded into rows, then mv/mm
            rows, k = 1, sa[-1]
            for s in sa[:-1]:
                rows *= s
            vec, other = nb == 1, (sb if nb == 2 else None)
        else:  # (b^T with its batch folded into rows) @ a^T
            rows, k = sb[-1], sb[-2]
            for s in sb[:-2]:
                rows *= s
            vec, other = na == 1, (sa[::-1] if na == 2 else None)
        if na == 1 and nb == 2:
            rows, k, vec, other = 1, sa[0], False, sb
        if na == 2 and nb == 1:
            vec = True
        if vec:
            n = sb[0] if na >= nb else sa[0]
            return RuntimeError(f"size mismatch, got input ({rows}), mat ({rows}x{k}), "
                                f"vec ({n})")
        return RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({rows}x{k} and "
                            f"{other[0]}x{other[1]})")
    batch = 1
    for s in _broadcast_shape(sa[:-2], sb[:-2]):
        batch *= s
    kb = sb[-2] if nb > 1 else sb[0]
    return RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                        f"[{batch}, {sa[-1]}] but got: [{batch}, {kb}].")


def _broadcast_shape(sa, sb) -> tuple:
    check_broadcast(sa, sb)
    n = max(len(sa), len(sb))
    sa = (1,) * (n - len(sa)) + tuple(sa)
    sb = (1,) * (n - len(sb)) + tuple(sb)
    return tuple(x if y == 1 else y for x, y in zip(sa, sb))


def _check_matmul(x: Tensor, y: Tensor):
    """Validate ``x @ y`` as PyTorch does; return the rank case ``(min(na, 3), min(nb, 3))``."""
    a, b = x._data, y._data
    na, nb = a.ndim, b.ndim
    if na == 0 or nb == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are "
                           f"{na}D and {nb}D")
    kind = (na if na < 3 else 3, nb if nb < 3 else 3)
    _no_bool(a.dtype, kind)  # (mixed dtypes are checked in MatMul.forward, after autocast)
    if na > 2 and nb > 2:
        check_broadcast(a.shape[:-2], b.shape[:-2])
    if a.shape[-1] != (b.shape[-2] if nb > 1 else b.shape[0]):
        raise _matmul_shape_error(x, y)
    return kind


def matmul(input: Tensor, other: Tensor, *, out=None) -> Tensor:
    """Matrix product with PyTorch's rank rules (dot, mv, mm, batched with broadcasting)."""
    need_tensor(input, "matmul")
    need_tensor(other, "matmul", "other", 2)
    kind = _check_matmul(input, other)
    return _finish(_KIND[kind].apply(input, other), out)


def mm(input: Tensor, mat2: Tensor, *, out=None) -> Tensor:
    """Product of two matrices."""
    need_tensor(input, "mm")
    need_tensor(mat2, "mm", "mat2", 2)
    a, b = input._data, mat2._data
    if a.ndim != 2:
        raise RuntimeError("self must be a matrix")
    if b.ndim != 2:
        raise RuntimeError("mat2 must be a matrix")
    _check_matmul(input, mat2)
    return _finish(_Mm.apply(input, mat2), out)


def bmm(input: Tensor, mat2: Tensor, *, out=None) -> Tensor:
    """Batched product of two 3-D tensors with equal batch sizes."""
    need_tensor(input, "bmm")
    need_tensor(mat2, "bmm", "mat2", 2)
    a, b = input._data, mat2._data
    _check_bmm(a, b, "batch1", "batch2")
    return _finish(_Bmm.apply(input, mat2), out)


def _check_bmm(a, b, n1, n2):
    if a.ndim != 3:
        raise RuntimeError(f"{n1} must be a 3D tensor")
    if b.ndim != 3:
        raise RuntimeError(f"{n2} must be a 3D tensor")
    _no_bool(a.dtype, (3, 3))
    if b.shape[0] != a.shape[0] or b.shape[1] != a.shape[2]:
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{a.shape[0]}, {a.shape[2]}] but got: [{b.shape[0]}, {b.shape[1]}].")


def mv(input: Tensor, vec: Tensor, *, out=None) -> Tensor:
    """Matrix-vector product."""
    need_tensor(input, "mv")
    need_tensor(vec, "mv", "vec", 2)
    a, b = input._data, vec._data
    if a.ndim != 2 or b.ndim != 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got 1, {a.ndim}, {b.ndim}")
    _check_matmul(input, vec)
    return _finish(_Mv.apply(input, vec), out)


def dot(input: Tensor, tensor: Tensor, *, out=None) -> Tensor:
    """Inner product of two 1-D tensors."""
    return _finish(_vector_product(_Dot, "dot", input, "tensor", tensor), out)


def vdot(input: Tensor, other: Tensor, *, out=None) -> Tensor:
    """``sum(conj(input) * other)`` of two 1-D tensors (``dot`` for real dtypes)."""
    if isinstance(input, Tensor) and input._data.dtype.kind == "c":
        input = input.conj()
    return _finish(_vector_product(_Vdot, "vdot", input, "other", other), out)


def _vector_product(cls, fn: str, input, name2: str, other) -> Tensor:
    """``cls`` (dot, vdot) of two 1-D tensors after PyTorch's checks; ``name2`` names ``other``."""
    need_tensor(input, fn)
    need_tensor(other, fn, name2, 2)
    a, b = input._data, other._data
    if a.ndim != 1 or b.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {a.ndim}D and {b.ndim}D tensors")
    _check_matmul(input, other)
    return cls.apply(input, other)


def outer(input: Tensor, vec2: Tensor, *, out=None) -> Tensor:
    """Outer product ``input[i] * vec2[j]`` of two vectors."""
    need_tensor(input, "outer")
    need_tensor(vec2, "outer", "vec2", 2)
    for name, t in (("self", input), ("vec2", vec2)):
        if t._data.ndim != 1:
            raise RuntimeError(f"outer: Expected 1-D argument {name}, but got {t._data.ndim}-D")
    return _finish(input.reshape(-1, 1) * vec2, out)


ger = outer


def inner(input: Tensor, other: Tensor, *, out=None) -> Tensor:
    """Sum over the last dims: ``inner(a, b)[i.., j..] = sum_k a[i.., k] * b[j.., k]``."""
    need_tensor(input, "inner")
    need_tensor(other, "inner", "other", 2)
    sa, sb = input._data.shape, other._data.shape
    if not sa or not sb:
        return _finish(input * other, out)
    if sa[-1] != sb[-1]:
        raise RuntimeError(f"inner() the last dimension must match on both input tensors but "
                           f"got shapes {list(sa)} and {list(sb)}")
    return _finish(tensordot(input, other, ([-1], [-1])), out)


# ----------------------------------------------------------------------------------------------
# beta * input + alpha * product


class _AddProduct(Function):
    """``beta * input + alpha * (m1 x m2)`` for the add* family; one BLAS call."""

    raw = True
    backward_name = "AddmmBackward0"

    @staticmethod
    def forward(ctx, inp, m1, m2, beta, alpha, kind):
        xp = ctx.xp
        if kind != "addmv":  # here, after the modes: autocast casts mixed inputs first
            _same_dtype(inp, m1, m2)
        ctx.save_for_backward(m1, m2)
        ctx.meta = (inp.shape, inp.dtype, beta, alpha, kind)
        if kind == "addr":
            prod = xp.multiply.outer(m1, m2)
        elif kind == "addbmm":
            prod = lowp_matmul(xp, m1, m2, keep=True).sum(0)
        elif kind == "mm" and alpha == 1 and beta == 1:  # input added in the product's pass
            prod = lowp_matmul(xp, m1, m2, keep=True, add=inp)
            return prod if prod.dtype == m1.dtype else prod.astype(m1.dtype)
        else:
            prod = lowp_matmul(xp, m1, m2, keep=True)
        if alpha != 1:
            prod *= alpha
        if beta != 0:  # beta == 0 ignores input, NaN and inf included
            prod += inp if beta == 1 else inp * beta
        # float16/bfloat16: the whole sum in float32, rounded once (as PyTorch's cpu GEMM)
        return prod if prod.dtype == m1.dtype else prod.astype(m1.dtype)

    @holomorphic
    def backward(ctx, g):
        m1, m2 = ctx.saved_tensors
        shape, dt, beta, alpha, kind = ctx.meta
        need = ctx.needs_input_grad
        gi = g1 = g2 = None
        if need[0]:
            gi = reduce_grad(g * beta if beta != 1 else g, shape, dt)
        if need[1] or need[2]:
            ga = g * alpha if alpha != 1 else g
            if kind == "addr":
                g1 = ga @ m2 if need[1] else None
                g2 = ga.mT @ m1 if need[2] else None
            elif kind == "addmv":
                g1 = ga.reshape(-1, 1) * m2 if need[1] else None
                g2 = m1.mT @ ga if need[2] else None
            else:  # mm, bmm; addbmm's 2-D g broadcasts over the batch
                g1 = ga @ m2.mT if need[1] else None
                g2 = m1.mT @ ga if need[2] else None
        return gi, g1, g2, None, None, None


class _Addmv(_AddProduct):
    backward_name = "AddmvBackward0"


class _Baddbmm(_AddProduct):
    backward_name = "BaddbmmBackward0"


class _Addbmm(_AddProduct):
    backward_name = "AddbmmBackward0"


class _Addr(_AddProduct):
    backward_name = "AddrBackward0"


def _check_expand(src, target):
    """PyTorch's error when ``input`` cannot broadcast to the product's shape."""
    src, target = tuple(src), tuple(target)
    if len(src) > len(target):
        raise RuntimeError(f"expand(size={list(target)}): the number of sizes provided "
                           f"({len(target)}) must be greater or equal to the number of "
                           f"dimensions in the tensor ({len(src)})")
    lead = len(target) - len(src)
    for i in range(len(src) - 1, -1, -1):
        if src[i] != 1 and src[i] != target[i + lead]:
            raise RuntimeError(f"The expanded size of the tensor ({target[i + lead]}) must match "
                               f"the existing size ({src[i]}) at non-singleton dimension "
                               f"{i + lead}.  Target sizes: {list(target)}.  Tensor sizes: "
                               f"{list(src)}")


def _check_scalars(m1, beta, alpha):
    if m1.dtype.kind in "iub" and (isinstance(beta, builtins.float) or
                                    isinstance(alpha, builtins.float)):
        raise RuntimeError("For integral input tensors, argument alpha must not be a floating "
                           "point number.")


def _same_dtype(inp, m1, m2):
    if inp.dtype != m2.dtype:
        raise RuntimeError(f"self and mat2 must have the same dtype, but got "
                           f"{scalar_name(inp.dtype)} and {scalar_name(m2.dtype)}")
    if m1.dtype != m2.dtype:
        raise RuntimeError(f"mat1 and mat2 must have the same dtype, but got "
                           f"{scalar_name(m1.dtype)} and {scalar_name(m2.dtype)}")


def addmm(input: Tensor, mat1: Tensor, mat2: Tensor, *, beta=1, alpha=1, out=None) -> Tensor:
    """``beta * input + alpha * (mat1 @ mat2)``."""
    _need_tensors("addmm", input=input, mat1=mat1, mat2=mat2)
    inp, a, b = input._data, mat1._data, mat2._data
    if a.ndim != 2:
        raise RuntimeError(f"mat1 must be a matrix, got {a.ndim}-D tensor")
    if b.ndim != 2:
        raise RuntimeError(f"mat2 must be a matrix, got {b.ndim}-D tensor")
    if a.shape[1] != b.shape[0]:
        raise _matmul_shape_error(mat1, mat2)
    _no_bool(a.dtype, (2, 2))
    _check_scalars(a, beta, alpha)
    _check_expand(inp.shape, (a.shape[0], b.shape[1]))
    return _finish(_AddProduct.apply(input, mat1, mat2, beta, alpha, "mm"), out)


def addmv(input: Tensor, mat: Tensor, vec: Tensor, *, beta=1, alpha=1, out=None) -> Tensor:
    """``beta * input + alpha * (mat @ vec)``."""
    _need_tensors("addmv", input=input, mat=mat, vec=vec)
    inp, a, b = input._data, mat._data, vec._data
    if a.ndim != 2 or b.ndim != 1 or inp.ndim > 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got {inp.ndim}, {a.ndim}, "
                           f"{b.ndim}")
    if a.shape[1] != b.shape[0] or inp.ndim == 1 and inp.shape[0] not in (1, a.shape[0]):
        n = inp.shape[0] if inp.ndim == 1 else 1
        raise RuntimeError(f"size mismatch, got input ({n}), mat ({a.shape[0]}x{a.shape[1]}), "
                           f"vec ({b.shape[0]})")
    if not inp.dtype == a.dtype == b.dtype:
        raise RuntimeError(f"addmv input tensors must have the same dtype, but got "
                           f"{scalar_name(inp.dtype)}, {scalar_name(a.dtype)}, and "
                           f"{scalar_name(b.dtype)}")
    _no_bool(a.dtype, (2, 1))
    _check_scalars(a, beta, alpha)
    return _finish(_Addmv.apply(input, mat, vec, beta, alpha, "addmv"), out)


def baddbmm(input: Tensor, batch1: Tensor, batch2: Tensor, *, beta=1, alpha=1,
            out=None) -> Tensor:
    """``beta * input + alpha * bmm(batch1, batch2)``."""
    _need_tensors("baddbmm", input=input, batch1=batch1, batch2=batch2)
    inp, a, b = input._data, batch1._data, batch2._data
    _check_bmm(a, b, "batch1", "batch2")
    _check_scalars(a, beta, alpha)
    _check_expand(inp.shape, (a.shape[0], a.shape[1], b.shape[2]))
    return _finish(_Baddbmm.apply(input, batch1, batch2, beta, alpha, "bmm"), out)


def addbmm(input: Tensor, batch1: Tensor, batch2: Tensor, *, beta=1, alpha=1,
           out=None) -> Tensor:
    """``beta * input + alpha * sum_b batch1[b] @ batch2[b]``."""
    _need_tensors("addbmm", input=input, batch1=batch1, batch2=batch2)
    inp, a, b = input._data, batch1._data, batch2._data
    if a.ndim != 3:
        raise RuntimeError("batch1 must be a 3D tensor")
    if b.ndim != 3:
        raise RuntimeError("batch2 must be a 3D tensor")
    if a.shape[0] != b.shape[0]:
        raise RuntimeError(f"batch1 and batch2 must have same number of batches, got "
                           f"{a.shape[0]} and {b.shape[0]}")
    if a.shape[2] != b.shape[1]:
        raise RuntimeError(f"Incompatible matrix sizes for bmm ({a.shape[1]}x{a.shape[2]} and "
                           f"{b.shape[1]}x{b.shape[2]})")
    _no_bool(a.dtype, (3, 3))
    _check_scalars(a, beta, alpha)
    _check_expand(inp.shape, (a.shape[1], b.shape[2]))
    return _finish(_Addbmm.apply(input, batch1, batch2, beta, alpha, "addbmm"), out)


def addr(input: Tensor, vec1: Tensor, vec2: Tensor, *, beta=1, alpha=1, out=None) -> Tensor:
    """``beta * input + alpha * outer(vec1, vec2)``."""
    _need_tensors("addr", input=input, vec1=vec1, vec2=vec2)
    inp, a, b = input._data, vec1._data, vec2._data
    for name, v in (("vec1", a), ("vec2", b)):
        if v.ndim != 1:
            raise RuntimeError(f"addr: Expected 1-D argument {name}, but got {v.ndim}-D")
    _check_scalars(a, beta, alpha)
    _check_expand(inp.shape, (a.shape[0], b.shape[0]))
    return _finish(_Addr.apply(input, vec1, vec2, beta, alpha, "addr"), out)


# ----------------------------------------------------------------------------------------------
# einsum

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_Plan = namedtuple("_Plan", "labels out np_eq")


def _parse_term(term: str, where: str, offset: int):
    """Letters of one side of an einsum term, with None standing for its ellipsis."""
    out = []
    j = 0
    while j < len(term):
        c = term[j]
        if c == ".":
            if None in out:
                raise RuntimeError(f"einsum(): found '.' for {where} for which an ellipsis was "
                                   "already found")
            if term[j:j + 3] != "...":
                raise RuntimeError(f"einsum(): found '.' for {where} that is not part of any "
                                   "ellipsis")
            out.append(None)
            j += 3
            continue
        if c not in _LETTERS:
            raise RuntimeError(f"einsum(): invalid subscript given at index {offset + j} in the "
                               "equation string, subscripts must be in [a-zA-Z]")
        out.append(c)
        j += 1
    return out


@functools.lru_cache(maxsize=512)
def _einsum_plan(equation: str, shapes: tuple) -> _Plan:
    """Check ``equation`` against the operand shapes and spell it out without ellipses."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) > len(shapes):
        raise RuntimeError("einsum(): fewer operands were provided than specified in the "
                           "equation")
    if len(terms) < len(shapes):
        raise RuntimeError("einsum(): more operands were provided than specified in the "
                           "equation")
    parsed = []
    offset = 0
    for i, term in enumerate(terms):
        parsed.append(_parse_term(term, f"operand {i}", offset))
        offset += len(term) + 1
    out_terms = _parse_term(rhs, "output", len(lhs) + 2) if arrow else None
    used = set(c for p in parsed for c in p if c is not None)
    # ellipsis dims get unused letters, right-aligned across operands
    n_ell = 0
    for i, (p, shape) in enumerate(zip(parsed, shapes)):
        n_lab = len(p) - (None in p)
        if None not in p and n_lab != len(shape):
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({n_lab}) "
                               f"does not match the number of dimensions ({len(shape)}) for "
                               f"operand {i} and no ellipsis was given")
        if n_lab > len(shape):
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({n_lab}) "
                               f"is more than the number of dimensions ({len(shape)}) for "
                               f"operand {i}")
        n_ell = builtins.max(n_ell, len(shape) - n_lab)
    free = [c for c in _LETTERS if c not in used]
    if n_ell > len(free):
        raise RuntimeError("einsum(): too many subscripts in the equation")
    ell = "".join(free[:n_ell])
    labels = []
    sizes = {}
    for i, (p, shape) in enumerate(zip(parsed, shapes)):
        e = len(shape) - (len(p) - (None in p))
        lab = "".join(ell[n_ell - e:] if c is None else c for c in p)
        labels.append(lab)
        seen_here = {}
        for c, s in zip(lab, shape):
            if c in seen_here:
                if seen_here[c] != s:
                    raise RuntimeError(f"einsum(): subscript {c} is repeated for operand {i} but "
                                       f"the sizes don't match, {s} != {seen_here[c]}")
                continue
            seen_here[c] = s
            prev = sizes.get(c)
            if prev is None or prev == 1:
                sizes[c] = s
            elif s != 1 and s != prev:
                if c in ell:
                    raise RuntimeError(
                        f"einsum(): dimension {ell.index(c) - (n_ell - e)} covered by ellipsis "
                        f"in operand {i}has size {s} which does not broadcast with previously "
                        f"seen ellipsis with size {prev} for the respective dimension")
                raise RuntimeError(f"einsum(): subscript {c} has size {s} for operand {i} which "
                                   f"does not broadcast with previously seen size {prev}")
    if out_terms is None:
        counts = {}
        for lab in labels:
            for c in lab:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c in used if counts[c] == 1))
    else:
        out = ""
        for c in out_terms:
            if c is None:
                out += ell
                continue
            if c not in used:
                raise RuntimeError(f"einsum(): output subscript {c} does not appear in the "
                                   "equation for any input operand")
            if c in out:
                raise RuntimeError(f"einsum(): output subscript {c} appears more than once in "
                                   "the output")
            out += c
    return _Plan(tuple(labels), out, ",".join(labels) + "->" + out)


class Einsum(Function):
    """Einstein summation; two or more operands go through BLAS via ``optimize=True``."""

    raw = True
    backward_name = "EinsumBackward0"

    @staticmethod
    def forward(ctx, plan, *arrays):
        xp = ctx.xp
        dt = arrays[0].dtype if arrays else None
        for a in arrays[1:]:  # here, after the modes: autocast casts mixed inputs first
            if a.dtype != dt:
                raise RuntimeError(f"expected scalar type {scalar_name(dt)} but found "
                                   f"{scalar_name(a.dtype)}")
        ctx.plan = plan
        ctx.save_for_backward(*arrays)
        if len(arrays) == 1:
            a = arrays[0]
            # a lone operand that sums over a label is torch.sum: ints and bool go to int64
            summed = a.dtype.kind in "biu" and not set(plan.labels[0]) <= set(plan.out)
            out = xp.einsum(plan.np_eq, a, dtype="int64" if summed else None)
        elif dt.itemsize == 2 and dt.kind in "fV":  # half types: float32 BLAS, rounded once
            out = xp.einsum(plan.np_eq, *[a.astype(xp.float32) for a in arrays],
                            optimize=True).astype(dt)
        else:
            out = xp.einsum(plan.np_eq, *arrays, optimize=True)
        if len(arrays) == 1 and xp.may_share_memory(out, arrays[0]):
            out = out.copy()  # NumPy returns views for transposes/diagonals
        return out

    @holomorphic
    def backward(ctx, g):
        ops = ctx.saved_tensors
        need = ctx.needs_input_grad
        return (None,) + tuple(_einsum_grad(ctx.plan, g, ops, k) if need[k + 1] else None
                               for k in range(len(ops)))


def _einsum_grad(plan: _Plan, g: Tensor, ops, k: int) -> Tensor:
    """Gradient of operand ``k``: the einsum of ``g`` with the other operands."""
    labels = plan.labels[k]
    shape = ops[k]._data.shape
    uniq = "".join(dict.fromkeys(labels))
    others = [plan.labels[j] for j in range(len(ops)) if j != k]
    avail = set(plan.out).union(*others)
    keep = "".join(c for c in uniq if c in avail)
    if not others and keep == plan.out:
        gk = g
    else:
        gk = einsum(",".join([plan.out] + others) + "->" + keep, g,
                    *[ops[j] for j in range(len(ops)) if j != k])
    # labels summed inside operand k alone come back as broadcast (size-1) dims
    gshape = tuple(gk._data.shape[keep.index(c)] if c in keep else 1 for c in uniq)
    if len(keep) != len(uniq):
        gk = gk.reshape(gshape)
    target = tuple(shape[labels.index(c)] for c in uniq)
    if gshape != target:
        big = tuple(t if x == 1 else x for x, t in zip(gshape, target))
        if big != gshape:
            gk = gk.expand(big)
        if big != target:  # operand k was broadcast along these labels
            gk = gk.sum_to_size(target)
    if len(uniq) != len(labels):
        gk = _embed_diagonal(gk, uniq, labels, shape)
    return gk


def _embed_diagonal(gk: Tensor, uniq: str, labels: str, shape) -> Tensor:
    """Place ``gk`` (one dim per distinct label) on the diagonals of repeated labels."""
    spare = iter(c for c in _LETTERS if c not in labels)
    seen = set()
    new = ""
    eyes = []
    for c, s in zip(labels, shape):
        if c in seen:
            f = next(spare)
            new += f
            eyes.append((c + f, s))
        else:
            seen.add(c)
            new += c
    eq = ",".join([uniq] + [e for e, _ in eyes]) + "->" + new
    return einsum(eq, gk, *[_eye(s, gk) for _, s in eyes])


def _sublist_equation(args):
    """Turn ``einsum(op0, [0, 1], op1, [1, 2], [0, 2])`` into an equation and operands."""
    def spell(sub):
        s = ""
        for v in sub:
            if v is Ellipsis:
                s += "..."
            elif isinstance(v, builtins.int) and 0 <= v < 52:
                s += _LETTERS[v]
            else:
                raise RuntimeError(f"einsum(): expected subscript to be within the range [0, 52),"
                                   f" but got {v}")
        return s
    ops = list(args[0::2])
    subs = list(args[1::2])
    out = None
    if len(ops) > len(subs):
        out = ops.pop()
        if not isinstance(out, (list, tuple)):
            raise TypeError("einsum(): the output subscripts must be a list")
    eq = ",".join(spell(s) for s in subs)
    if out is not None:
        eq += "->" + spell(out)
    return eq, ops


def einsum(*args) -> Tensor:
    """Einstein summation over an equation such as ``'bij,bjk->bik'`` (``...`` allowed)."""
    if not args:
        raise TypeError("einsum(): must specify the equation string and at least one operand, "
                        "or at least one operand and its subscripts list")
    if isinstance(args[0], str):
        eq = args[0]
        ops = args[1:]
        if len(ops) == 1 and isinstance(ops[0], (list, tuple)):
            ops = tuple(ops[0])
    else:
        eq, ops = _sublist_equation(args)
    for i, o in enumerate(ops):
        if not isinstance(o, Tensor):
            raise TypeError(f"expected Tensor as element {i} in argument 1, but got "
                            f"{type(o).__name__}")
    plan = _einsum_plan(eq, tuple(o._data.shape for o in ops))
    return Einsum.apply(plan, *ops)


# ----------------------------------------------------------------------------------------------
# products composed of the ops above


def tensordot(a: Tensor, b: Tensor, dims=2, out=None) -> Tensor:
    """Contract ``dims`` (a count of trailing/leading dims, or two dim lists) of ``a`` and ``b``."""
    need_tensor(a, "tensordot", "a", 1)
    need_tensor(b, "tensordot", "b", 2)
    sa, sb = a._data.shape, b._data.shape
    if isinstance(dims, Tensor):
        dims = dims.item() if dims._data.ndim == 0 else dims.tolist()
    if isinstance(dims, builtins.int):
        if dims < 0:
            raise RuntimeError(f"tensordot expects dims >= 0, but got dims={dims}")
        if dims > len(sa) or dims > len(sb):
            raise RuntimeError(f"tensordot expects dims < ndim_a or ndim_b, but got dims={dims}")
        da = list(range(len(sa) - dims, len(sa)))
        db = list(range(dims))
    else:
        da, db = dims
        da = [da] if isinstance(da, builtins.int) else list(da)
        db = [db] if isinstance(db, builtins.int) else list(db)
        if len(da) != len(db):
            raise RuntimeError("both dimension lists should have same length")
        da = [_wrap_dim(d, len(sa)) for d in da]
        db = [_wrap_dim(d, len(sb)) for d in db]
    for x, y in zip(da, db):
        if sa[x] != sb[y]:
            raise RuntimeError(f"contracted dimensions need to match, but first has size {sa[x]} "
                               f"in dim {x} and second has size {sb[y]} in dim {y}")
    fa = [d for d in range(len(sa)) if d not in da]
    fb = [d for d in range(len(sb)) if d not in db]
    k = 1
    for d in da:
        k *= sa[d]
    pa = a.permute(fa + da) if fa + da != list(range(len(sa))) else a
    pb = b.permute(db + fb) if db + fb != list(range(len(sb))) else b
    r = matmul(pa.reshape(-1, k), pb.reshape(k, -1))
    return _finish(r.reshape(tuple(sa[d] for d in fa) + tuple(sb[d] for d in fb)), out)


def kron(input: Tensor, other: Tensor, *, out=None) -> Tensor:
    """Kronecker product: every element of ``input`` scales a copy of ``other``."""
    need_tensor(input, "kron")
    need_tensor(other, "kron", "other", 2)
    sa, sb = input._data.shape, other._data.shape
    n = builtins.max(len(sa), len(sb))
    sa = (1,) * (n - len(sa)) + tuple(sa)
    sb = (1,) * (n - len(sb)) + tuple(sb)
    # interleave dims: a's (i, 1) against b's (1, j), then merge each pair
    ia = input.reshape(tuple(x for s in sa for x in (s, 1)))
    ib = other.reshape(tuple(x for s in sb for x in (1, s)))
    return _finish((ia * ib).reshape(tuple(x * y for x, y in zip(sa, sb))), out)


class Trace(Function):
    raw = True
    backward_name = "TraceBackward0"

    @staticmethod
    def forward(ctx, a):
        ctx.shape = a.shape
        dt = a.dtype if is_float(a.dtype) or a.dtype.kind == "c" else "int64"
        return ctx.xp.trace(a, dtype=dt)

    @staticmethod
    def backward(ctx, g):
        n, m = ctx.shape
        xp = xp_of(g._data)
        return g * _make(xp.eye(n, m, dtype=g._data.dtype))


def trace(input: Tensor) -> Tensor:
    """Sum of the main diagonal of a matrix."""
    need_tensor(input, "trace")
    a = input._data
    if a.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {a.ndim}")
    if a.dtype.kind == "b":
        raise NotImplementedError("\"trace\" not implemented for 'Bool'")
    return Trace.apply(input)


class Cross(Function):
    raw = True
    backward_name = "LinalgCrossBackward0"

    @staticmethod
    def forward(ctx, a, b, dim):
        ctx.save_for_backward(a, b)
        ctx.dim = dim
        return ctx.xp.cross(a, b, axis=dim)

    @holomorphic
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        d = ctx.dim
        ga = reduce_grad(Cross.apply(b, g, d), a._data.shape, a._data.dtype) \
            if ctx.needs_input_grad[0] else None
        gb = reduce_grad(Cross.apply(g, a, d), b._data.shape, b._data.dtype) \
            if ctx.needs_input_grad[1] else None
        return ga, gb, None


def _cross(input, other, dim, default_first: bool):
    need_tensor(input, "cross")
    need_tensor(other, "cross", "other", 2)
    a, b = input._data, other._data
    if a.ndim != b.ndim:
        raise RuntimeError("linalg.cross: inputs must have the same number of dimensions.")
    if a.dtype != b.dtype:
        raise RuntimeError(f"expected scalar type {scalar_name(a.dtype)} but found "
                           f"{scalar_name(b.dtype)}")
    shape = _broadcast_shape(a.shape, b.shape)
    if dim is None and default_first:
        dim = next((i for i, s in enumerate(shape) if s == 3), -1)
    dim = -1 if dim is None else dim
    d = _wrap_dim(dim, a.ndim)
    if a.shape[d] != 3 or b.shape[d] != 3:
        raise RuntimeError(f"linalg.cross: inputs dimension {dim} must have length 3. Got "
                           f"{a.shape[d]} and {b.shape[d]}")
    return Cross.apply(input, other, d)


def cross(input: Tensor, other: Tensor, dim=None, *, out=None) -> Tensor:
    """Cross product of 3-vectors along ``dim`` (default: the first dim of size 3)."""
    return _finish(_cross(input, other, dim, True), out)


def chain_matmul(*matrices, out=None) -> Tensor:
    """Product of 2-D matrices in the cheapest order (``linalg.multi_dot``)."""
    return _finish(multi_dot(matrices), out)


def _chain_order(dims):
    """Cheapest parenthesisation of a matrix chain (classic O(n^3) dynamic programme)."""
    n = len(dims) - 1
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i][j] = None
            for s in range(i, j):
                c = cost[i][s] + cost[s + 1][j] + dims[i] * dims[s + 1] * dims[j + 1]
                if cost[i][j] is None or c < cost[i][j]:
                    cost[i][j] = c
                    split[i][j] = s
    return split


def multi_dot(tensors, *, out=None) -> Tensor:
    """Product of a chain of matrices (first/last may be vectors) in the cheapest order."""
    orig = list(tensors)
    ts = list(orig)
    n = len(ts)
    if n < 2:
        raise RuntimeError(f"multi_dot(): expected at least 2 tensors but got {n}")
    for i, t in enumerate(ts):
        nd = t._data.ndim
        if i == 0 and nd not in (1, 2):
            raise RuntimeError(f"multi_dot(): the first tensor must be 1D or 2D but got {nd}D")
        if i == n - 1 and nd not in (1, 2):
            raise RuntimeError(f"multi_dot(): the last tensor must be 1D or 2D but got {nd}D")
        if 0 < i < n - 1 and nd != 2:
            raise RuntimeError(f"multi_dot(): tensor {i} must be 2D but got {nd}D")
        if t._data.dtype != ts[0]._data.dtype:
            raise RuntimeError(f"multi_dot(): all tensors must have be the same dtype but tensor "
                               f"0 is {c_name(ts[0]._data.dtype)} and tensor {i} "
                               f"{c_name(t._data.dtype)}")
    first_vec = ts[0]._data.ndim == 1
    last_vec = ts[-1]._data.ndim == 1
    if first_vec:
        ts[0] = ts[0].reshape(1, -1)
    if last_vec:
        ts[-1] = ts[-1].reshape(-1, 1)
    for i in range(n - 1):
        s1, s2 = ts[i]._data.shape, ts[i + 1]._data.shape
        if s1[1] != s2[0]:
            a_shape = list(orig[i].shape)
            b_shape = list(orig[i + 1].shape)
            raise RuntimeError(f"multi_dot(): tensors {i} and {i + 1} with shapes {a_shape} and "
                               f"{b_shape} cannot be multiplied")
    split = _chain_order([t._data.shape[0] for t in ts] + [ts[-1]._data.shape[1]])

    def product(i, j):
        if i == j:
            return ts[i]
        s = split[i][j]
        return _Mm.apply(product(i, s), product(s + 1, j))

    r = product(0, n - 1)
    if first_vec or last_vec:
        shape = tuple(s for s, drop in zip(r._data.shape, (first_vec, last_vec)) if not drop)
        r = r.reshape(shape)
    return _finish(r, out)


# ----------------------------------------------------------------------------------------------
# decompositions and solvers (the torch.linalg namespace is in ember/linalg.py)


def _check_square(a, fn: str) -> None:
    if a.ndim < 2:
        raise RuntimeError(f"{fn}: The input tensor A must have at least 2 dimensions.")
    if a.shape[-1] != a.shape[-2]:
        raise RuntimeError(f"{fn}: A must be batches of square matrices, but they are "
                           f"{a.shape[-2]} by {a.shape[-1]} matrices")


def _check_float(a, fn: str, later: bool = False) -> None:
    """A float32/float64 (or complex) input; with ``later`` float16/bfloat16 pass here and
    ``_full_precision`` in the op's forward refuses them, after autocast cast them up."""
    if a.dtype.kind != "f" or a.dtype.itemsize < 4:
        if a.dtype.kind == "c":  # PyTorch decomposes complex matrices; ember not yet
            raise NotImplementedError(f"{fn}: complex inputs are not supported by ember yet "
                                      "(matmul, einsum and the add*mm family are)")
        if is_float(a.dtype):
            if later:
                return
            _full_precision(a, fn)
        raise RuntimeError(f"{fn}: Expected a floating point or complex tensor as input. Got "
                           f"{scalar_name(a.dtype)}")


def _full_precision(a, fn: str) -> None:
    if a.dtype.itemsize < 4 and is_float(a.dtype):
        raise RuntimeError(f"{fn}: Low precision dtypes not supported. Got "
                           f"{scalar_name(a.dtype)}")


def _square_float_input(fn: str, input, op: str, float_op: str = None,
                        later: bool = False) -> None:
    """PyTorch's checks of a decomposition's ``input``: a Tensor of square float matrices."""
    need_tensor(input, fn)
    _check_square(input._data, op)
    _check_float(input._data, float_op or op, later)


def _first_failure(a, xp, fn):
    """Index of the first batch element on which ``fn`` raises the backend's LinAlgError."""
    flat = a.reshape((-1,) + a.shape[-2:])
    for i in range(flat.shape[0]):
        try:
            fn(flat[i])
        except xp.linalg.LinAlgError:
            return i, flat[i]
    return 0, flat[0]


def _batch_prefix(a, i) -> str:
    return f"(Batch element {i}): " if a.ndim > 2 else ""


def _zero_pivot(m, xp) -> int:
    """1-based column of the first zero pivot of LU with partial pivoting (LAPACK's ``info``)."""
    u = m.astype(m.dtype, copy=True)
    n = u.shape[0]
    for j in range(n):
        p = j + int(xp.argmax(xp.abs(u[j:, j])))
        if u[p, j] == 0:
            return j + 1
        if p != j:
            u[[j, p]] = u[[p, j]]
        u[j + 1:, j:] -= xp.multiply.outer(u[j + 1:, j] / u[j, j], u[j, j:])
    return n


def _singular_inv(a, xp, fn):
    i, m = _first_failure(a, xp, xp.linalg.inv)
    return LinAlgError(f"{fn}: {_batch_prefix(a, i)}The diagonal element {_zero_pivot(m, xp)} is "
                       "zero, the inversion could not be completed because the input matrix is "
                       "singular.")


class Inv(Function):
    raw = True
    backward_name = "LinalgInvExBackward0"

    @staticmethod
    def forward(ctx, a):
        _full_precision(a, "linalg.inv")  # after the modes: autocast casts up first
        xp = ctx.xp
        try:
            out = xp.linalg.inv(a)
        except xp.linalg.LinAlgError:
            raise _singular_inv(a, xp, "linalg.inv") from None
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (ai,) = ctx.saved_tensors
        ait = ai.mT
        return -(ait @ g @ ait)


def inverse(input: Tensor, *, out=None) -> Tensor:
    """Inverse of a square matrix (or a batch of them)."""
    _square_float_input("inverse", input, "linalg.inv", later=True)
    return _finish(Inv.apply(input), out)


def _adjugate_t(a, xp):
    """``adj(a)^T`` through the SVD, valid for singular matrices too."""
    u, s, vh = xp.linalg.svd(a)
    n = s.shape[-1]
    ones = xp.ones(s.shape[:-1] + (1,), s.dtype)
    left = xp.cumprod(xp.concatenate([ones, s[..., :-1]], -1), -1)
    right = xp.flip(xp.cumprod(xp.flip(xp.concatenate([s[..., 1:], ones], -1), -1), -1), -1)
    scale = xp.linalg.det(u) * xp.linalg.det(vh)
    prod_others = left[..., :n] * right[..., :n] * scale[..., None]
    return xp.matmul(u * prod_others[..., None, :], vh)


class Det(Function):
    raw = True
    backward_name = "LinalgDetBackward0"

    @staticmethod
    def forward(ctx, a):
        out = ctx.xp.linalg.det(a)
        out = ctx.xp.asarray(out, dtype=a.dtype)
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx, g):
        a, d = ctx.saved_tensors
        ge = g.reshape(tuple(g.shape) + (1, 1))
        if bool((d._data != 0).all()):
            # d det / dA = det(A) A^{-T}
            return ge * d.reshape(tuple(d.shape) + (1, 1)) * inverse(a).mT
        # singular somewhere: the adjugate (not differentiated again)
        return ge * _make(_adjugate_t(a._data, xp_of(a._data)))


def det(input: Tensor, *, out=None) -> Tensor:
    """Determinant of a square matrix (or a batch of them)."""
    _square_float_input("det", input, "linalg.det")
    return _finish(Det.apply(input), out)


class Slogdet(Function):
    raw = True
    backward_name = "LinalgSlogdetBackward0"

    @staticmethod
    def forward(ctx, a):
        xp = ctx.xp
        sign, lad = xp.linalg.slogdet(a)
        sign = xp.asarray(sign, dtype=a.dtype)
        lad = xp.asarray(lad, dtype=a.dtype)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(a)
        return sign, lad

    @staticmethod
    def backward(ctx, gsign, glad):
        if glad is None:
            return None
        (a,) = ctx.saved_tensors
        return glad.reshape(tuple(glad.shape) + (1, 1)) * inverse(a).mT


_SlogdetResult = namedtuple("slogdet", "sign logabsdet")


def slogdet(input: Tensor) -> tuple:
    """``(sign, log|det|)`` of a square matrix, stable where ``det`` under/overflows."""
    _square_float_input("slogdet", input, "linalg.slogdet")
    return _SlogdetResult(*Slogdet.apply(input))


class Logdet(Function):
    raw = True
    backward_name = "LogdetBackward0"

    @staticmethod
    def forward(ctx, a):
        xp = ctx.xp
        sign, lad = xp.linalg.slogdet(a)
        out = xp.where(sign < 0, xp.nan, lad).astype(a.dtype)
        ctx.negative = bool((sign < 0).any())
        if ctx.negative:  # torch's where(): no gradient flows to the NaN entries
            ctx.keep = (sign >= 0).astype(a.dtype)
        ctx.save_for_backward(a)
        return out

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        if ctx.negative:
            g = g * _make(ctx.keep)
        return g.reshape(tuple(g.shape) + (1, 1)) * inverse(a).mT


def logdet(input: Tensor) -> Tensor:
    """``log(det(input))``: NaN for a negative determinant, -inf for a singular matrix."""
    _square_float_input("logdet", input, "linalg.slogdet", "logdet")
    return Logdet.apply(input)


def _is_vector_rhs(a, b) -> bool:
    """PyTorch's rule: B is a (batch of) vector(s) when it is 1-D or has exactly A's shape[:-1]."""
    return b.ndim == 1 or b.ndim == a.ndim - 1 and b.shape == a.shape[:-1]


def _lapack_solve(xp, a, b):
    try:
        return xp.linalg.solve(a, b)
    except xp.linalg.LinAlgError:
        i, _ = _first_failure(a, xp, xp.linalg.inv)
        raise LinAlgError(f"torch.linalg.solve: {_batch_prefix(a, i)}The solver failed because "
                          "the input matrix is singular.") from None


class Solve(Function):
    raw = True
    backward_name = "LinalgSolveExBackward0"

    @staticmethod
    def forward(ctx, a, b, vec, left=True):
        _full_precision(a, "linalg.solve")  # after the modes: autocast casts up first
        xp = ctx.xp
        if not left:  # X A = B  <=>  A^T X^T = B^T
            x = xp.swapaxes(_lapack_solve(xp, xp.swapaxes(a, -1, -2), xp.swapaxes(b, -1, -2)),
                            -1, -2)
        elif vec:
            x = _lapack_solve(xp, a, b[..., None])[..., 0]
        else:
            x = _lapack_solve(xp, a, b)
        ctx.vec = vec
        ctx.left = left
        ctx.b_shape = b.shape
        ctx.save_for_backward(a, x)
        return x

    @staticmethod
    def backward(ctx, g):
        a, x = ctx.saved_tensors
        vec = ctx.vec
        need_a, need_b = ctx.needs_input_grad[:2]
        sa = a._data.shape
        ga = None
        if not ctx.left:
            # X = B A^{-1}: gB = g A^{-T}, gA = -X^T gB
            gb = Solve.apply(a.mT, g, False, False)
            if need_a:
                ga = reduce_grad(-(x.mT @ gb), sa, a._data.dtype)
        else:
            gb = Solve.apply(a.mT, g, vec)  # A^{-T} g, needed for both gradients
            if need_a:
                ga = -(_unsq(gb, -1) @ _unsq(x, -2)) if vec else -(gb @ x.mT)
                ga = reduce_grad(ga, sa, a._data.dtype)
        gb = reduce_grad(gb, ctx.b_shape, a._data.dtype) if need_b else None
        return ga, gb, None, None


def _solve(A: Tensor, B: Tensor, left: bool = True) -> Tensor:
    need_tensor(A, "solve", "A", 1)
    need_tensor(B, "solve", "B", 2)
    a, b = A._data, B._data
    _check_square(a, "linalg.solve")
    _check_float(a, "linalg.solve", later=True)
    if a.dtype != b.dtype:
        raise RuntimeError(f"linalg.solve: Expected A and B to have the same dtype, but found A "
                           f"of type {scalar_name(a.dtype)} and B of type {scalar_name(b.dtype)} "
                           "instead")
    vec = left and _is_vector_rhs(a, b)
    n = a.shape[-1]
    rows = b.shape[-1] if vec or not left else b.shape[-2]
    if b.ndim < 1 or rows != n or not left and b.ndim < 2:
        shape = f"{b.shape[-1]}x1" if vec or b.ndim < 2 else f"{b.shape[-2]}x{b.shape[-1]}"
        eqn = "AX = B" if left else "XA = B"
        raise RuntimeError(f"linalg.solve: Incompatible shapes of A and B for the equation "
                           f"{eqn} ({n}x{n} and {shape})")
    check_broadcast(b.shape[:-1] if vec else b.shape[:-2], a.shape[:-2])
    return Solve.apply(A, B, vec, left)


class Cholesky(Function):
    raw = True
    backward_name = "LinalgCholeskyExBackward0"
    fn = "linalg.cholesky"

    @staticmethod
    def forward(ctx, a, upper):
        _full_precision(a, "linalg.cholesky")  # after the modes: autocast casts up first
        xp = ctx.xp
        try:
            low = xp.linalg.cholesky(a)
        except xp.linalg.LinAlgError:
            i, m = _first_failure(a, xp, xp.linalg.cholesky)
            order = next((k for k in range(1, m.shape[0] + 1) if not _chol_ok(m[:k, :k], xp)),
                         m.shape[0])
            raise LinAlgError(f"{ctx.fn}: {_batch_prefix(a, i)}The factorization could "
                              "not be completed because the input is not positive-definite (the "
                              f"leading minor of order {order} is not positive-definite).") \
                from None
        out = xp.swapaxes(low, -1, -2) if upper else low
        ctx.upper = upper
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (L,) = ctx.saved_tensors
        if ctx.upper:
            L, g = L.mT, g.mT
        n = L._data.shape[-1]
        xp = xp_of(L._data)
        low = _make(xp.tril(xp.ones((n, n), L._data.dtype)))
        strict = _make(xp.tril(xp.ones((n, n), L._data.dtype), -1))
        # Murray (2016): gA = L^{-T} sym(tril(L^T gL)) L^{-1}, with sym halving the diagonal
        p = (L.mT @ g) * low
        p = (p + (p * strict).mT) * 0.5
        lt = L.mT
        return Solve.apply(lt, Solve.apply(lt, p, False).mT, False).mT, None


def _chol_ok(m, xp) -> bool:
    try:
        xp.linalg.cholesky(m)
        return True
    except xp.linalg.LinAlgError:
        return False


class _CholeskyOld(Cholesky):
    backward_name = "CholeskyBackward0"
    fn = "cholesky"


def _cholesky(input: Tensor, upper: bool, cls) -> Tensor:
    _square_float_input("cholesky", input, "linalg.cholesky", later=True)
    return cls.apply(input, builtins.bool(upper))


def cholesky(input: Tensor, upper: bool = False, *, out=None) -> Tensor:
    """Deprecated ``torch.cholesky``: the Cholesky factor of a positive-definite matrix."""
    return _finish(_cholesky(input, upper, _CholeskyOld), out)


class Eigh(Function):
    raw = True
    backward_name = "LinalgEighBackward0"

    @staticmethod
    def forward(ctx, a, uplo):
        _full_precision(a, "linalg.eigh")  # after the modes: autocast casts up first
        w, v = ctx.xp.linalg.eigh(a, UPLO=uplo)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(w, v)
        return w, v

    @staticmethod
    def backward(ctx, gw, gv):
        w, v = ctx.saved_tensors
        n = w._data.shape[-1]
        eye = _eye(n, w)
        inner = None
        if gv is not None:
            vg = v.mT @ gv
            skew = (vg - vg.mT) * 0.5
            # E[i, j] = w[j] - w[i]; its zero diagonal is replaced by ones (skew's is zero)
            e = _unsq(w, -2) - _unsq(w, -1) + eye
            inner = skew / e
        if gw is not None:
            dg = eye * _unsq(gw, -2)
            inner = dg if inner is None else inner + dg
        if inner is None:
            return None, None
        return v @ inner @ v.mT, None


class Svd(Function):
    raw = True
    backward_name = "LinalgSvdBackward0"

    @staticmethod
    def forward(ctx, a, full_matrices):
        _full_precision(a, "linalg.svd")  # after the modes: autocast casts up first
        u, s, vh = ctx.xp.linalg.svd(a, full_matrices=full_matrices)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(u, s, vh)
        return u, s.astype(a.dtype, copy=False), vh

    @staticmethod
    def backward(ctx, gu, gs, gvh):
        u, s, vh = ctx.saved_tensors
        m, n = u._data.shape[-2], vh._data.shape[-1]
        k = s._data.shape[-1]
        if u._data.shape[-1] != k:  # full_matrices: only the first k columns matter
            p = _make(xp_of(s._data).eye(m, k, dtype=s._data.dtype))
            u = u @ p
            gu = gu @ p if gu is not None else None
        if vh._data.shape[-2] != k:
            p = _make(xp_of(s._data).eye(k, n, dtype=s._data.dtype))
            vh = p @ vh
            gvh = p @ gvh if gvh is not None else None
        return _svd_grad(gu, gs, gvh, u, s, vh), None


def _svd_grad(gu, gs, gvh, u, s, vh):
    """Gradient of the reduced SVD ``A = U diag(S) Vh`` (real case)."""
    m, n = u._data.shape[-2], vh._data.shape[-1]
    if gu is None and gvh is None:
        if gs is None:
            return None
        return (u * _unsq(gs, -2)) @ vh
    if m < n:  # work with A^T = V S U^T, which is tall
        ga = _svd_grad(gvh.mT if gvh is not None else None, gs,
                       gu.mT if gu is not None else None, vh.mT, s, u.mT)
        return ga.mT
    eye = _eye(s._data.shape[-1], s)
    s_row = _unsq(s, -2)
    s_col = _unsq(s, -1)
    # E[i, j] = s_j^2 - s_i^2 with a unit diagonal (the skew parts below have a zero diagonal)
    e = s_row * s_row - s_col * s_col + eye
    inner = None
    if gu is not None:
        j = u.mT @ gu
        inner = (j - j.mT) * s_row
    if gvh is not None:
        kk = vh @ gvh.mT
        term = s_col * (kk - kk.mT)
        inner = term if inner is None else inner + term
    inner = inner / e
    if gs is not None:
        inner = inner + eye * _unsq(gs, -2)
    if m > n and gu is not None:
        gus = gu / s_row
        ga = u @ inner + gus - u @ (u.mT @ gus)
        return ga @ vh
    return u @ inner @ vh


class _SvdVals(Function):
    raw = True
    backward_name = "LinalgSvdBackward0"

    @staticmethod
    def forward(ctx, a):
        _full_precision(a, "linalg.svd")  # after the modes: autocast casts up first
        return ctx.xp.linalg.svd(a, compute_uv=False).astype(a.dtype, copy=False)


def svdvals(A: Tensor, *, driver=None, out=None) -> Tensor:
    """Singular values in descending order."""
    need_tensor(A, "svdvals", "A", 1)
    _check_float_matrix(A._data, "linalg.svd", later=True)
    if state.grad and A._requires_grad:
        return _finish(Svd.apply(A, False)[1], out)
    return _finish(_SvdVals.apply(A), out)


def _check_float_matrix(a, fn, later: bool = False):
    if a.ndim < 2:
        raise RuntimeError(f"{fn}: The input tensor A must have at least 2 dimensions.")
    _check_float(a, fn, later)


_SvdResult = namedtuple("linalg_svd", "U S Vh")
_OldSvdResult = namedtuple("svd", "U S V")


def linalg_svd(A: Tensor, full_matrices: bool = True, *, driver=None, out=None) -> tuple:
    """``A = U diag(S) Vh`` with singular values in descending order."""
    need_tensor(A, "svd", "A", 1)
    _check_float_matrix(A._data, "linalg.svd", later=True)
    return _SvdResult(*Svd.apply(A, builtins.bool(full_matrices)))


def svd(input: Tensor, some: bool = True, compute_uv: bool = True, *, out=None) -> tuple:
    """Deprecated ``torch.svd``: returns ``V`` (not ``Vh``); ``some=False`` gives square factors."""
    u, s, vh = linalg_svd(input, full_matrices=not some)
    v = vh.mT
    if not compute_uv:
        u = u.detach() * 0
        v = v.detach() * 0
    return _OldSvdResult(u, s, v)


class Qr(Function):
    raw = True
    backward_name = "LinalgQrBackward0"

    @staticmethod
    def forward(ctx, a, mode):
        _full_precision(a, "linalg.qr")  # after the modes: autocast casts up first
        xp = ctx.xp
        ctx.mode = mode
        ctx.set_materialize_grads(False)
        if mode == "r":
            r = xp.linalg.qr(a, mode="r")
            q = xp.zeros((0,), a.dtype)
            ctx.mark_non_differentiable(q)
            return q, r
        q, r = xp.linalg.qr(a, mode=mode)
        ctx.save_for_backward(q, r)
        return q, r

    @staticmethod
    def backward(ctx, gq, gr):
        if ctx.mode == "r":
            raise RuntimeError("The derivative of linalg.qr depends on Q, which is not computed "
                               "when mode='r'. Please use linalg.qr(A, mode='reduced') if you are "
                               "going to differentiate through linalg.qr.")
        q, r = ctx.saved_tensors
        m, n = q._data.shape[-2], r._data.shape[-1]
        if ctx.mode == "complete" and m > n:
            raise RuntimeError("The QR decomposition is not differentiable when mode='complete' "
                               "and nrows > ncols.")
        if m >= n:
            return _qr_grad_tall(gq, gr, q, r), None
        # wide: A = [X | Y] with X = Q U square and Y = Q V
        xp = xp_of(q._data)
        dt = q._data.dtype
        p1 = _make(xp.eye(n, m, dtype=dt))   # A @ p1 = X
        p2 = _make(xp.eye(n, n - m, k=-m, dtype=dt))  # A @ p2 = Y
        u = r @ p1
        gu = gr @ p1 if gr is not None else None
        gy = None
        if gr is not None:
            gv = gr @ p2
            y = q @ (r @ p2)
            gq = y @ gv.mT if gq is None else gq + y @ gv.mT
            gy = q @ gv
        gx = _qr_grad_tall(gq, gu, q, u)
        ga = gx @ p1.mT
        return (ga + gy @ p2.mT if gy is not None else ga), None


def _qr_grad_tall(gq, gr, q, r):
    """Gradient of the reduced QR of a tall matrix: ``(gQ + Q copyltu(M)) R^{-T}``."""
    m_ = None
    if gr is not None:
        m_ = r @ gr.mT
    if gq is not None:
        t = gq.mT @ q
        m_ = -t if m_ is None else m_ - t
    n = r._data.shape[-1]
    xp = xp_of(r._data)
    dt = r._data.dtype
    strict = _make(xp.tril(xp.ones((n, n), dt), -1))
    diag = _make(xp.eye(n, dtype=dt))
    low = m_ * strict
    sym = low + low.mT + m_ * diag
    b = q @ sym if gq is None else gq + q @ sym
    # X R^T = b  <=>  R X^T = b^T
    return Solve.apply(r, b.mT, False).mT


_QrResult = namedtuple("linalg_qr", "Q R")


def linalg_qr(A: Tensor, mode: str = "reduced", *, out=None) -> tuple:
    """``A = Q R`` with orthonormal ``Q`` and upper-triangular ``R``."""
    need_tensor(A, "qr", "A", 1)
    if mode not in ("reduced", "complete", "r"):
        raise RuntimeError(f"qr received unrecognized mode '{mode}' but expected one of "
                           "'reduced' (default), 'r', or 'complete'")
    _check_float_matrix(A._data, "linalg.qr", later=True)
    return _QrResult(*Qr.apply(A, mode))


_OldQrResult = namedtuple("qr", "Q R")


def qr(input: Tensor, some: bool = True, *, out=None) -> tuple:
    """``torch.qr``: ``some=False`` gives the complete factorisation."""
    return _OldQrResult(*linalg_qr(input, "reduced" if some else "complete"))


# ----------------------------------------------------------------------------------------------
# norms


class _AbsSumExtreme(Function):
    """max/min over one dim of ``sum(|A|)`` over another: the matrix 1- and inf-norms."""

    raw = True
    backward_name = "AmaxBackward0"

    @staticmethod
    def forward(ctx, a, sum_dim, largest):
        xp = ctx.xp
        sums = xp.sum(xp.abs(a), axis=sum_dim, keepdims=True)
        other = -1 if sum_dim == -2 else -2
        idx = xp.argmax(sums, axis=other) if largest else xp.argmin(sums, axis=other)
        idx = xp.expand_dims(idx, other)
        out = xp.take_along_axis(sums, idx, other)
        # the gradient is sign(A) on the chosen row/column: a constant mask
        hit = xp.arange(a.shape[other]).reshape((-1, 1) if other == -2 else (1, -1)) == idx
        ctx.mask = xp.sign(a) * hit
        return out.reshape(out.shape[:-2])

    @staticmethod
    def backward(ctx, g):
        mask = _make(ctx.mask.astype(g._data.dtype, copy=False))
        return g.reshape(tuple(g.shape) + (1, 1)) * mask, None, None


def _matrix_dims(ndim: int, dim, fn="linalg.matrix_norm"):
    if not isinstance(dim, (tuple, list)) or len(dim) != 2:
        got = " ".join(str(d) for d in dim) if isinstance(dim, (tuple, list)) else str(dim)
        raise RuntimeError(f"{fn}: dim must be a 2-tuple. Got {got}")
    d0, d1 = _wrap_dim(dim[0], ndim), _wrap_dim(dim[1], ndim)
    if d0 == d1:
        raise RuntimeError(f"{fn}: dims must be different. Got ({dim[0]}, {dim[1]})")
    return d0, d1


def matrix_norm(A: Tensor, ord="fro", dim=(-2, -1), keepdim: bool = False, *, dtype=None,
                out=None) -> Tensor:
    """Matrix norm over two dims: 'fro', 'nuc', 1, -1, 2, -2, inf, -inf."""
    need_tensor(A, "matrix_norm", "A", 1)
    a = A._data
    if a.ndim < 2:
        raise RuntimeError("linalg.matrix_norm: The input tensor A must have at least 2 "
                           "dimensions.")
    if ord not in ("fro", "nuc", 1, -1, 2, -2, float("inf"), float("-inf")):
        raise RuntimeError(f"linalg.matrix_norm: Order {ord} not supported.")
    if not is_float(a.dtype):
        raise RuntimeError(f"linalg.matrix_norm: Expected a floating point or complex tensor as "
                           f"input. Got {scalar_name(a.dtype)}")
    if not isinstance(dim, (tuple, list)):
        raise TypeError(f"linalg_matrix_norm(): argument 'dim' must be tuple of ints, not "
                        f"{type(dim).__name__}")
    if dtype is not None:
        A = A.to(dtype)
    d0, d1 = _matrix_dims(a.ndim, dim)
    if ord == "fro":
        return _finish(vector_norm(A, 2, (d0, d1), keepdim), out)
    # move the two matrix dims last
    rest = [i for i in range(a.ndim) if i not in (d0, d1)]
    perm = rest + [d0, d1]
    m = A.permute(perm) if perm != list(range(a.ndim)) else A
    if ord in (1, -1):
        r = _AbsSumExtreme.apply(m, -2, ord == 1)
    elif ord in (float("inf"), float("-inf")):
        r = _AbsSumExtreme.apply(m, -1, ord > 0)
    else:
        s = svdvals(m)
        if ord == "nuc":
            r = s.sum(-1)
        else:
            xp = xp_of(s._data)
            k = s._data.shape[-1]
            pick = xp.zeros(k, s._data.dtype)
            pick[0 if ord == 2 else k - 1] = 1
            r = (s * _make(pick)).sum(-1)
    if keepdim:
        shape = list(r._data.shape)
        for d in sorted((d0, d1)):
            shape.insert(d, 1)
        r = r.reshape(tuple(shape))
    return _finish(r, out)


_CDIST_MODES = ("use_mm_for_euclid_dist_if_necessary", "use_mm_for_euclid_dist",
                "donot_use_mm_for_euclid_dist")


def cdist(x1: Tensor, x2: Tensor, p: float = 2.0,
          compute_mode: str = "use_mm_for_euclid_dist_if_necessary") -> Tensor:
    """p-norm distances between the rows of ``x1`` (…, P, M) and ``x2`` (…, R, M) → (…, P, R).

    For p = 2 the matrix-product form ``√(‖a‖² - 2a·b + ‖b‖²)`` (clamped at 1e-30) is used when
    ``compute_mode`` asks for it, or by default when P or R exceeds 25, as in PyTorch;
    otherwise the norm of the row differences (its gradient is 0 at zero distance).
    """
    if compute_mode not in _CDIST_MODES:
        raise ValueError(f"{compute_mode} is not a valid value for compute_mode")
    x1 = need_tensor(x1, "cdist", "x1", 1)
    x2 = need_tensor(x2, "cdist", "x2", 2)
    for name, t in (("X1", x1), ("X2", x2)):
        if t.dim() < 2:
            raise RuntimeError(f"cdist only supports at least 2D tensors, {name} got: "
                               f"{t.dim()}D")
    for name, t in (("X1", x1), ("X2", x2)):
        if not t.dtype.is_floating_point:
            raise RuntimeError(f"cdist only supports floating-point dtypes, {name} got: "
                               f"{scalar_name(t._data.dtype)}")
    if x1.dtype != x2.dtype:
        raise RuntimeError(f"expected scalar type {scalar_name(x1._data.dtype)} but found "
                           f"{scalar_name(x2._data.dtype)}")
    if x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(f"X1 and X2 must have the same number of columns. X1: "
                           f"{x1.shape[-1]} X2: {x2.shape[-1]}")
    if not p >= 0:
        raise RuntimeError("cdist only supports non-negative p values")
    use_mm = p == 2 and (compute_mode == "use_mm_for_euclid_dist" or
                         compute_mode == _CDIST_MODES[0] and
                         (x1.shape[-2] > 25 or x2.shape[-2] > 25))
    if use_mm:
        sq1 = (x1 * x1).sum(-1, keepdim=True)
        sq2 = (x2 * x2).sum(-1, keepdim=True)
        d2 = sq1 - 2 * matmul(x1, x2.mT) + sq2.mT
        return d2.clamp_min(1e-30).sqrt()
    diff = x1.unsqueeze(-2) - x2.unsqueeze(-3)  # (…, P, R, M)
    return vector_norm(diff, p, dim=-1)


def _make_inplace(fn):
    return make_inplace(fn)


METHODS = {
    "matmul": matmul, "__matmul__": matmul,
    "__rmatmul__": lambda self, other: matmul(other, self),
    "mm": mm, "bmm": bmm, "mv": mv, "dot": dot, "vdot": vdot, "outer": outer, "ger": outer,
    "inner": inner, "kron": kron, "trace": trace, "cross": cross,
    "addmm": addmm, "addmv": addmv, "baddbmm": baddbmm, "addbmm": addbmm, "addr": addr,
    "addmm_": _make_inplace(addmm), "addmv_": _make_inplace(addmv),
    "baddbmm_": _make_inplace(baddbmm), "addbmm_": _make_inplace(addbmm),
    "addr_": _make_inplace(addr),
    "det": det, "logdet": logdet, "slogdet": slogdet, "inverse": inverse,
    "cholesky": cholesky, "qr": qr, "svd": svd,
}
