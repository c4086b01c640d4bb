"""Complex-number ops: the parts of a complex tensor, conjugation, polar form.

NOTE [ Complex tensors ]
A complex tensor is a NumPy complex64/complex128 array; elementwise maths, reductions and
matmul take it natively, so the float paths pay nothing for it.  What is new lives here:
views that reinterpret the storage (``real``, ``imag``, ``view_as_real``,
``view_as_complex``: writable views, as in PyTorch), conjugation, ``angle``, ``polar`` and
``complex``.  Gradients follow PyTorch's convention (the conjugate Wirtinger derivative, see
NOTE [ Complex gradients ] in ops/_util.py); the ops here are not holomorphic, so each
backward writes its complex formula out.

``conj`` is lazy in PyTorch (a view with a conjugate bit, ``is_conj()`` True).  ember has no
such bit: ``conj`` returns a new conjugated tensor (PyTorch's ``conj_physical``), so
``is_conj()`` is always False, ``resolve_conj``/``resolve_neg`` return their input, and
``view_as_real(z.conj())`` works (PyTorch asks for ``resolve_conj()`` first).  Values and
gradients are PyTorch's; only writes through ``z.conj()`` do not reach ``z``.
"""
from __future__ import annotations

from .. import _dtype
from ..autograd.function import Function
from .._tensor import Tensor
from ._util import reduce_grad, check_broadcast, need_tensor, scalar_name

__all__ = ["real", "imag", "view_as_real", "view_as_complex", "conj", "conj_physical",
           "resolve_conj", "resolve_neg", "is_conj", "is_neg", "angle", "polar", "complex"]


def _complex_of(dt):
    """The backend complex dtype with real backend dtype ``dt``'s precision."""
    return _dtype.from_np(dt).to_complex().np


# ---- views of the storage ----------------------------------------------------------------

class Real(Function):
    """The real parts of a complex tensor, as a writable view."""

    raw = True
    view = True
    backward_name = "SelectBackward0"  # PyTorch takes view_as_real(z)[..., 0]

    @staticmethod
    def forward(ctx, z):
        ctx.cdt = z.dtype
        return z.real

    @staticmethod
    def backward(ctx, g):
        return g.to(_dtype.from_np(ctx.cdt))  # d(Re z): the gradient is real, g + 0j


class Imag(Function):
    """The imaginary parts of a complex tensor, as a writable view."""

    raw = True
    view = True
    backward_name = "SelectBackward0"

    @staticmethod
    def forward(ctx, z):
        ctx.cdt = z.dtype
        return z.imag

    @staticmethod
    def backward(ctx, g):
        return g * 1j  # d(Im z): the gradient is 0 + 1j * g


class ViewAsReal(Function):
    """``(..., 2)`` real view of a complex tensor: ``[..., 0]`` real, ``[..., 1]`` imaginary."""

    raw = True
    view = True
    backward_name = "ViewAsRealBackward0"

    @staticmethod
    def forward(ctx, z):
        r = z.real  # same strides as z, in the real dtype; the pair is half an element apart
        return ctx.xp.lib.stride_tricks.as_strided(
            r, z.shape + (2,), r.strides + (r.itemsize,), writeable=z.flags.writeable)

    @staticmethod
    def backward(ctx, g):
        return view_as_complex(g.contiguous())


class ViewAsComplex(Function):
    """The complex view of a real ``(..., 2)`` tensor (the inverse of ``view_as_real``)."""

    raw = True
    view = True
    backward_name = "ViewAsComplexBackward0"

    @staticmethod
    def forward(ctx, a):
        return a.view(_complex_of(a.dtype))[..., 0]

    @staticmethod
    def backward(ctx, g):
        return view_as_real(g)


def real(input) -> Tensor:
    """The real part: a view for complex ``input``, ``input`` itself otherwise."""
    input = need_tensor(input, "real", wrap_arrays=True)
    if input._data.dtype.kind != "c":
        return input
    return Real.apply(input)


def imag(input) -> Tensor:
    """The imaginary part of complex ``input``, as a view."""
    input = need_tensor(input, "imag", wrap_arrays=True)
    if input._data.dtype.kind != "c":
        raise RuntimeError("imag is not implemented for tensors with non-complex dtypes.")
    return Imag.apply(input)


def view_as_real(input) -> Tensor:
    """A real view of complex ``input`` with a last dimension of 2 (real, imaginary)."""
    input = need_tensor(input, "view_as_real", wrap_arrays=True)
    if input._data.dtype.kind != "c":
        raise RuntimeError("view_as_real is only supported for complex tensors")
    return ViewAsReal.apply(input)


def view_as_complex(input) -> Tensor:
    """A complex view of real ``input`` whose last dimension (size 2, stride 1) holds the
    real and imaginary parts."""
    input = need_tensor(input, "view_as_complex", wrap_arrays=True)
    a = input._data
    if a.dtype.kind != "f":
        raise RuntimeError("view_as_complex is only supported for half, float and double "
                           f"tensors, but got a tensor of scalar type: {scalar_name(a.dtype)}")
    if a.dtype.itemsize == 2:
        raise RuntimeError("view_as_complex: complex32 (ComplexHalf) is not supported by ember")
    if a.ndim == 0 or a.shape[-1] != 2:
        raise RuntimeError("Tensor must have a last dimension of size 2")
    st = input.stride()
    if st[-1] != 1:
        raise RuntimeError("Tensor must have a last dimension with stride 1")
    if any(s % 2 for s in st[:-1]):
        raise RuntimeError("Tensor must have a stride divisible by 2 for all but last dimension")
    if a.size and _offset(a) % (2 * a.itemsize):
        raise RuntimeError("Tensor must have a storage_offset divisible by 2")
    return ViewAsComplex.apply(input)


def _offset(a) -> int:
    """Byte offset of ``a``'s first element from its base buffer's start."""
    base = a
    while base.base is not None and hasattr(base.base, "__array_interface__"):
        base = base.base
    return a.__array_interface__["data"][0] - base.__array_interface__["data"][0]


# ---- conjugation -------------------------------------------------------------------------

class Conj(Function):
    """``re - i im``, materialised (see NOTE [ Complex tensors ] for PyTorch's lazy conj)."""

    raw = True
    backward_name = "ConjBackward0"

    @staticmethod
    def forward(ctx, z):
        return ctx.xp.conj(z)

    @staticmethod
    def backward(ctx, g):
        return g.conj()


class ConjPhysical(Conj):
    backward_name = "ConjPhysicalBackward0"


def conj(input) -> Tensor:
    """The complex conjugate (``input`` itself for real tensors)."""
    input = need_tensor(input, "conj", wrap_arrays=True)
    if input._data.dtype.kind != "c":
        return input
    return Conj.apply(input)


def conj_physical(input, *, out=None) -> Tensor:
    """The complex conjugate in new memory (a copy-free alias for real tensors)."""
    input = need_tensor(input, "conj_physical", wrap_arrays=True)
    if input._data.dtype.kind != "c":
        r = input
    else:
        r = ConjPhysical.apply(input)
    if out is not None:
        from ..autograd.inplace import copy_into_out
        return copy_into_out(out, r)
    return r


def resolve_conj(input) -> Tensor:
    """``input``: ember's ``conj`` is never lazy, so there is no conjugate bit to resolve."""
    return need_tensor(input, "resolve_conj", wrap_arrays=True)


def resolve_neg(input) -> Tensor:
    """``input``: ember has no lazy negation bit."""
    return need_tensor(input, "resolve_neg", wrap_arrays=True)


def is_conj(input) -> bool:
    """Always False: ember's ``conj`` materialises (NOTE [ Complex tensors ])."""
    need_tensor(input, "is_conj", wrap_arrays=True)
    return False


def is_neg(input) -> bool:
    """Always False: ember has no lazy negation bit."""
    need_tensor(input, "is_neg", wrap_arrays=True)
    return False


def _conj_physical_(self) -> Tensor:
    from ..autograd.inplace import inplace
    return inplace(self, conj_physical)


# ---- angle, polar, complex ---------------------------------------------------------------

class Angle(Function):
    """The argument ``atan2(im, re)``; for real inputs pi below zero, 0 elsewhere."""

    raw = True
    backward_name = "AngleBackward0"

    @staticmethod
    def forward(ctx, a):
        xp = ctx.xp
        if a.dtype.kind == "c":
            ctx.save_for_backward(a)
            return xp.angle(a)
        ctx.meta = (a.shape, a.dtype)
        if a.dtype.kind != "f":
            a = a.astype(_dtype.get_default_dtype().np)
        # PyTorch: pi where x < 0, NaN stays NaN, 0 elsewhere (-0.0 included)
        return xp.where(a < 0, xp.pi, xp.where(a != a, a, 0)).astype(a.dtype)

    @staticmethod
    def backward(ctx, g):
        if not ctx.saved_tensors:  # piecewise constant on the reals
            return g.new_zeros(ctx.meta[0])
        z, = ctx.saved_tensors
        # d(arg z): grad = g * i z / |z|^2, 0 at z = 0 (PyTorch's angle_backward)
        r2 = z.real * z.real + z.imag * z.imag
        return (z * g / r2 * 1j).masked_fill(r2 == 0, 0)


def angle(input, *, out=None) -> Tensor:
    """The argument of each element (radians; real tensors give 0 or pi)."""
    input = need_tensor(input, "angle", wrap_arrays=True)
    r = Angle.apply(input)
    if out is not None:
        from ..autograd.inplace import copy_into_out
        return copy_into_out(out, r)
    return r


def _check_pair(a: Tensor, b: Tensor):
    """PyTorch's checks of ``polar``/``complex``'s two real operands of one float dtype."""
    da, db = a._data.dtype, b._data.dtype
    if da.kind != "f" or db.kind != "f":
        raise RuntimeError("Expected both inputs to be Half, Float or Double tensors but got "
                           f"{scalar_name(da)} and {scalar_name(db)}")
    if da != db:
        raise RuntimeError(f"Expected object of scalar type {scalar_name(da)} but got scalar "
                           f"type {scalar_name(db)} for second argument")
    check_broadcast(a._data.shape, b._data.shape)


class Polar(Function):
    """``abs * (cos(angle) + i sin(angle))``."""

    raw = True
    backward_name = "PolarBackward0"

    @staticmethod
    def forward(ctx, r, t):
        ctx.meta = (r.shape, r.dtype, t.shape, t.dtype)
        ctx.save_for_backward(r, t)
        xp = ctx.xp
        out = xp.empty(xp.broadcast_shapes(r.shape, t.shape), _complex_of(r.dtype))
        out.real = r * xp.cos(t)
        out.imag = r * xp.sin(t)
        return out

    @staticmethod
    def backward(ctx, g):
        r, t = ctx.saved_tensors
        sr, dr, st, dt = ctx.meta
        # d out = e^{it} dr + i r e^{it} dt; a real input's gradient is Re(conj(d out) g)
        cis = complex(t.cos(), t.sin())
        gc = g * cis.conj()
        gr = reduce_grad(gc.real, sr, dr) if ctx.needs_input_grad[0] else None
        gt = reduce_grad(gc.imag * r, st, dt) if ctx.needs_input_grad[1] else None
        return gr, gt


def polar(abs, angle, *, out=None) -> Tensor:
    """The complex tensor with magnitudes ``abs`` and arguments ``angle``."""
    abs = need_tensor(abs, "polar", "abs", 1)
    angle = need_tensor(angle, "polar", "angle", 2)
    _check_pair(abs, angle)
    r = Polar.apply(abs, angle)
    if out is not None:
        from ..autograd.inplace import copy_into_out
        return copy_into_out(out, r)
    return r


class Complex(Function):
    """``real + i imag`` from two real tensors (broadcast)."""

    raw = True
    backward_name = "ComplexBackward0"

    @staticmethod
    def forward(ctx, re, im):
        ctx.meta = (re.shape, re.dtype, im.shape, im.dtype)
        xp = ctx.xp
        out = xp.empty(xp.broadcast_shapes(re.shape, im.shape), _complex_of(re.dtype))
        out.real = re
        out.imag = im
        return out

    @staticmethod
    def backward(ctx, g):
        sr, dr, si, di = ctx.meta
        gr = reduce_grad(g.real, sr, dr) if ctx.needs_input_grad[0] else None
        gi = reduce_grad(g.imag, si, di) if ctx.needs_input_grad[1] else None
        return gr, gi


def complex(real, imag, *, out=None) -> Tensor:
    """``real + i * imag`` elementwise (both float tensors of one dtype)."""
    real = need_tensor(real, "complex", "real", 1)
    imag = need_tensor(imag, "complex", "imag", 2)
    _check_pair(real, imag)
    r = Complex.apply(real, imag)
    if out is not None:
        from ..autograd.inplace import copy_into_out
        return copy_into_out(out, r)
    return r


# ---- Tensor methods and properties -------------------------------------------------------

def _set_real(self, value):
    real(self).copy_(value)


def _set_imag(self, value):
    imag(self).copy_(value)


METHODS = {
    "real": property(real, _set_real, doc="The real part (a writable view for complex)."),
    "imag": property(imag, _set_imag, doc="The imaginary part (a writable view)."),
    "conj": conj, "conj_physical": conj_physical, "conj_physical_": _conj_physical_,
    "resolve_conj": resolve_conj, "resolve_neg": resolve_neg, "is_conj": is_conj,
    "is_neg": is_neg, "angle": angle,
}
