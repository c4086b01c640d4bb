"""``ember.linalg``: PyTorch's ``torch.linalg`` namespace (the ops live in ember/ops/linalg.py)."""
from __future__ import annotations

from collections import namedtuple

from ._tensor import Tensor
from .autograd.function import Function
from .ops import linalg as _ops
from .ops._util import need_tensor
from .ops.reduce import vector_norm as _vector_norm
from .ops.linalg import (LinAlgError, matmul, multi_dot, matrix_norm, svdvals,  # noqa: F401
                         linalg_svd as svd, linalg_qr as qr)

__all__ = ["LinAlgError", "matmul", "multi_dot", "det", "slogdet", "inv", "inv_ex", "solve",
           "cholesky", "cholesky_ex", "qr", "eigh", "eigvalsh", "svd", "svdvals", "norm",
           "vector_norm", "matrix_norm", "cross", "vecdot", "matrix_power", "pinv",
           "solve_triangular"]


def _finish(result, out):
    return _ops._finish(result, out)


def det(A: Tensor, *, out=None) -> Tensor:
    """Determinant of a square matrix (or a batch of them)."""
    return _ops.det(A, out=out)


_Slogdet = namedtuple("linalg_slogdet", "sign logabsdet")


def slogdet(A: Tensor, *, out=None) -> tuple:
    """``(sign, log|det A|)``."""
    return _Slogdet(*_ops.slogdet(A))


def inv(A: Tensor, *, out=None) -> Tensor:
    """Inverse of a square matrix; raises ``LinAlgError`` when it is singular."""
    return _ops.inverse(A, out=out)


_InvEx = namedtuple("linalg_inv_ex", "inverse info")


def inv_ex(A: Tensor, *, check_errors: bool = False, out=None) -> tuple:
    """``inv`` that reports singular matrices through ``info`` (the failing pivot, 1-based)."""
    try:
        result = _ops.inverse(A)
        info = 0
    except LinAlgError as e:
        if check_errors:
            raise
        from ._creation import full_like
        result = full_like(A, float("nan"))
        info = int(str(e).split("diagonal element ")[1].split()[0])
    from ._creation import tensor
    return _InvEx(result, tensor(info, dtype=_int32()))


def _int32():
    from ._dtype import int32
    return int32


def solve(A: Tensor, B: Tensor, *, left: bool = True, out=None) -> Tensor:
    """``X`` with ``A X = B`` (``X A = B`` when ``left=False``); B may be a (batch of) vector(s)."""
    return _finish(_ops._solve(A, B, left), out)


def cholesky(A: Tensor, *, upper: bool = False, out=None) -> Tensor:
    """Lower Cholesky factor ``L`` with ``A = L L^T`` (upper ``U = L^T`` when ``upper``)."""
    return _finish(_ops._cholesky(A, upper, _ops.Cholesky), out)


_CholeskyEx = namedtuple("linalg_cholesky_ex", "L info")


def cholesky_ex(A: Tensor, *, upper: bool = False, check_errors: bool = False, out=None):
    """``cholesky`` that reports failure through ``info`` (order of the failing minor)."""
    from ._creation import tensor, full_like
    try:
        return _CholeskyEx(cholesky(A, upper=upper), tensor(0, dtype=_int32()))
    except LinAlgError as e:
        if check_errors:
            raise
        order = int(str(e).split("minor of order ")[1].split()[0])
        return _CholeskyEx(full_like(A, float("nan")), tensor(order, dtype=_int32()))


_Eigh = namedtuple("linalg_eigh", "eigenvalues eigenvectors")


def _check_uplo(UPLO):
    if UPLO not in ("L", "U"):
        raise RuntimeError(f"Expected UPLO argument to be 'L' or 'U', but got {UPLO}")


def eigh(A: Tensor, UPLO: str = "L", *, out=None) -> tuple:
    """Eigenvalues (ascending) and orthonormal eigenvectors of a symmetric matrix."""
    need_tensor(A, "eigh", "A")
    _check_uplo(UPLO)
    _ops._check_square(A._data, "linalg.eigh")
    _ops._check_float(A._data, "linalg.eigh", later=True)  # half: refused in Eigh.forward
    return _Eigh(*_ops.Eigh.apply(A, UPLO))


def eigvalsh(A: Tensor, UPLO: str = "L", *, out=None) -> Tensor:
    """Eigenvalues (ascending) of a symmetric matrix."""
    return _finish(eigh(A, UPLO)[0], out)


def vector_norm(x: Tensor, ord=2, dim=None, keepdim: bool = False, *, dtype=None,
                out=None) -> Tensor:
    """``(sum |x|^ord)^(1/ord)`` over ``dim`` (all dims by default); also ord = inf, -inf, 0."""
    need_tensor(x, "vector_norm", "x")
    return _finish(_vector_norm(x, ord, dim, keepdim, dtype=dtype), out)


def norm(A: Tensor, ord=None, dim=None, keepdim: bool = False, *, out=None,
         dtype=None) -> Tensor:
    """A vector norm (1-D input or one dim) or a matrix norm (2-D input or two dims)."""
    need_tensor(A, "norm", "A")
    if isinstance(dim, int):
        dim = (dim,)
    if dim is None:
        nd = A._data.ndim
        if ord is None:
            return vector_norm(A, 2, None, keepdim, dtype=dtype, out=out)
        if nd not in (1, 2):
            raise RuntimeError(f"linalg.norm: If dim is not specified but ord is, the input "
                               f"must be 1D or 2D. Got {nd}D.")
        dim = tuple(range(nd))
    if len(dim) == 1:
        if isinstance(ord, str):
            raise RuntimeError(f"linalg.vector_norm: Expected a number for ord, got '{ord}'")
        return vector_norm(A, 2 if ord is None else ord, dim, keepdim, dtype=dtype, out=out)
    return matrix_norm(A, "fro" if ord is None else ord, dim, keepdim, dtype=dtype, out=out)


def cross(input: Tensor, other: Tensor, *, dim: int = -1, out=None) -> Tensor:
    """Cross product of 3-vectors along ``dim``."""
    return _finish(_ops._cross(input, other, dim, False), out)


def vecdot(x: Tensor, y: Tensor, *, dim: int = -1, out=None) -> Tensor:
    """Dot product of vectors along ``dim`` (broadcasting the other dims)."""
    return _finish((x * y).sum(dim), out)


def matrix_power(A: Tensor, n: int, *, out=None) -> Tensor:
    """``A`` multiplied by itself ``n`` times (``inv(A)`` powers for negative ``n``)."""
    need_tensor(A, "matrix_power", "A")
    _ops._check_square(A._data, "linalg.matrix_power")
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"matrix_power(): argument 'n' (position 2) must be int, not "
                        f"{type(n).__name__}")
    a = A._data
    if n == 0:
        xp = _ops.xp_of(a)
        eye = xp.broadcast_to(xp.eye(a.shape[-1], dtype=a.dtype), a.shape).copy()
        return _finish(_ops._make(eye), out)
    if n < 0:
        A = inv(A)
        n = -n
    # binary powering: O(log n) products
    result = None
    base = A
    while n:
        if n & 1:
            result = base if result is None else matmul(result, base)
        n >>= 1
        if n:
            base = matmul(base, base)
    if result is A:
        result = A.clone()
    return _finish(result, out)


def _pinv_values(A: Tensor, atol, rtol, hermitian: bool) -> Tensor:
    """``pinv``'s value, from the SVD (or ``eigh``) of a non-empty ``A``."""
    from ._typeinfo import finfo
    from .ops.elementwise import where, maximum
    m, n = A.shape[-2:]
    if hermitian:
        w, Q = eigh(A)
        s = w.abs()
    else:
        U, s, Vh = svd(A, full_matrices=False)
    default = finfo(s.dtype).eps * max(m, n)
    if rtol is None:  # PyTorch: no default rtol once a positive atol is given
        rtol = 0.0 if atol is not None and (not isinstance(atol, (int, float)) or atol > 0) \
            else default
    atol = 0.0 if atol is None else atol
    as_col = (lambda t: t.unsqueeze(-1) if isinstance(t, Tensor) else t)
    tol = maximum(s.new_tensor(0.0) + as_col(atol), as_col(rtol) * s.amax(-1, keepdim=True))
    keep = s > tol
    inv_s = where(keep, 1 / where(keep, w if hermitian else s, 1.0), 0.0)
    if hermitian:
        result = (Q * inv_s.unsqueeze(-2).to(Q.dtype)) @ Q.mH
    else:
        result = (Vh.mH * inv_s.unsqueeze(-2).to(Vh.dtype)) @ U.mH
    return result


class _Pinv(Function):
    """The pseudo-inverse with PyTorch's gradient (``pinv_backward``): the derivative of
    ``A+`` as a function of ``A`` at constant rank, whatever values the cut-off dropped."""
    backward_name = "LinalgPinvBackward0"

    @staticmethod
    def forward(ctx, A, atol, rtol, hermitian):
        from .autograd.grad_mode import no_grad
        with no_grad():
            P = _pinv_values(A, atol, rtol, hermitian)
        ctx.save_for_backward(A, P)
        return P

    @staticmethod
    def backward(ctx, g):
        A, P = ctx.saved_tensors
        Ph, gh = P.mH, g.mH
        m, n = A.shape[-2:]
        if m <= n:  # the products are arranged to keep the matrices small
            K = gh @ P
            KPh = K @ Ph
            gA = -(P @ K).mH + KPh - (A @ P) @ KPh + (Ph @ P) @ (gh - K @ A)
        else:
            K = P @ gh
            PhK = Ph @ K
            gA = -(K @ P).mH + (gh - A @ K) @ P @ Ph + PhK - PhK @ P @ A
        return gA, None, None, None


def pinv(A: Tensor, *, atol=None, rtol=None, hermitian: bool = False, out=None) -> Tensor:
    """Moore-Penrose pseudo-inverse ``V diag(1/s) U^H`` over the singular values ``s`` above
    ``max(atol, rtol * s_max)`` (eigenvalues ``|w|`` with ``hermitian``), as PyTorch's."""
    from ._creation import zeros
    need_tensor(A, "pinv", "A")
    if A.dim() < 2 or not (A.dtype.is_complex or A.dtype.itemsize >= 4
                           and A.dtype.is_floating_point):
        raise RuntimeError(f"linalg.pinv({A.dtype.scalar_name}{{{list(A.shape)}}}): expected a "
                           "tensor with 2 or more dimensions of float, double, cfloat or cdouble "
                           "types")
    m, n = A.shape[-2:]
    if A.numel() == 0:
        return _finish(zeros(*A.shape[:-2], n, m, dtype=A.dtype), out)
    return _finish(_Pinv.apply(A, atol, rtol, hermitian), out)


def solve_triangular(A: Tensor, B: Tensor, *, upper: bool, left: bool = True,
                     unitriangular: bool = False, out=None) -> Tensor:
    """``X`` with ``A X = B`` (``X A = B`` when ``left=False``) reading only ``A``'s upper or
    lower triangle (its diagonal taken as ones when ``unitriangular``); the gradient for ``A``
    is confined to that triangle, as PyTorch's."""
    from ._creation import eye
    need_tensor(A, "solve_triangular", "A")
    need_tensor(B, "solve_triangular", "B")
    for name, t in (("A", A), ("B", B)):
        if t.dim() < 2:
            raise RuntimeError(f"linalg.solve_triangular: The input tensor {name} must have at "
                               "least 2 dimensions.")
    n, m = A.shape[-2:]
    if n != m:
        raise RuntimeError(f"linalg.solve_triangular: A must be batches of square matrices, but "
                           f"they are {n} by {m} matrices")
    if not (A.is_floating_point() or A.is_complex()):
        raise NotImplementedError(f'"triangular_solve_cpu" not implemented for '
                                  f"'{A.dtype.scalar_name}'")
    k = B.shape[-2] if left else B.shape[-1]
    if k != n:
        eq = "AX = B" if left else "XA = B"
        raise RuntimeError(f"linalg.solve_triangular: Incompatible shapes of A and B for the "
                           f"equation {eq} ({n}x{n} and {B.shape[-2]}x{B.shape[-1]})")
    if unitriangular:
        T = (A.triu(1) if upper else A.tril(-1)) + eye(n, dtype=A.dtype)
    else:
        T = A.triu() if upper else A.tril()
    return _finish(_ops._solve(T, B, left), out)
