"""dtypes and PyTorch's type-promotion rules.

A dtype wraps the backend's dtype (a NumPy dtype on cpu).  Promotion follows
PyTorch (https://pytorch.org/docs/stable/tensor_attributes.html#type-promotion-doc):
categories bool < integer < floating < complex; dimensioned tensors outrank zero-dim tensors,
which outrank Python scalars, and a lower-ranked operand only changes the result
when its category is higher.  A complex operand of lower rank keeps a floating result's
precision (float64 tensor * 1j is complex128, float32 tensor * complex128 0-dim tensor is
complex64), as c10's ``combine_categories`` does.

Complex dtypes (issue 14): complex64 and complex128, NumPy's own.  complex32 (``chalf``)
has no NumPy twin and is not provided: where PyTorch would give complex32 (float16 with a
complex scalar) ember gives complex64.
"""
from __future__ import annotations

import builtins

import numpy as np

_BOOL, _INT, _FLOAT, _COMPLEX = 0, 1, 2, 3


class dtype:
    """A tensor element type, printed as ``ember.float32``."""

    __slots__ = ("name", "_np", "itemsize", "is_floating_point", "is_complex", "is_signed",
                 "_cat", "_rank",
                 "scalar_name", "legacy_name", "c_name", "finite_max")

    def __init__(self, name: str, np_dtype, cat: int, rank: int, itemsize: int, signed: bool,
                 scalar_name: str, c_name: str, finite_max=None):
        self.name = name
        # c10's ScalarType name, as PyTorch's messages print it ("Float", "Long", ...)
        self.scalar_name = scalar_name
        # the legacy tensor type name, as ``Tensor.type()`` gives it after "torch."
        self.legacy_name = scalar_name + "Tensor"
        # the C++ element type as c10's messages print it ("float", "long int", "c10::Half")
        self.c_name = c_name
        # largest finite value of a floating dtype (``finfo(d).max``), None for the others;
        # kept here because NumPy's finfo does not know ml_dtypes' bfloat16
        self.finite_max = finite_max
        self._np = np_dtype
        self._cat = cat
        self._rank = rank
        self.itemsize = itemsize
        self.is_floating_point = cat == _FLOAT
        self.is_complex = cat == _COMPLEX
        self.is_signed = signed

    @property
    def np(self) -> np.dtype:
        """The NumPy dtype; bfloat16 resolves ``ml_dtypes`` on first use."""
        if self._np is None:
            try:
                import ml_dtypes
            except ImportError:
                raise RuntimeError(
                    "ember.bfloat16 needs the optional package 'ml_dtypes' "
                    "(pip install 'ember[bf16]')") from None
            self._np = np.dtype(ml_dtypes.bfloat16)
            _FROM_NP[self._np] = self
            FLOAT_NP.add(self._np)
        return self._np

    def __repr__(self) -> str:
        return "ember." + self.name

    def __reduce__(self):
        # by name, so unpickling gives the same object (``bool`` is ``bool_`` in this module)
        return (_by_name, (self.name,))

    def to_real(self) -> "dtype":
        """The real dtype of a complex one (complex64 -> float32); other dtypes map to
        themselves."""
        return _TO_REAL.get(self, self)

    def to_complex(self) -> "dtype":
        """The complex dtype with this floating dtype's precision (float32 -> complex64)."""
        c = _TO_COMPLEX.get(self)
        if c is None:
            if self.is_complex:
                return self
            raise RuntimeError(f"Unknown Complex ScalarType for {self.scalar_name}")
        return c


bool_ = dtype("bool", np.dtype(np.bool_), _BOOL, 0, 1, False, "Bool", "bool")
uint8 = dtype("uint8", np.dtype(np.uint8), _INT, 1, 1, False, "Byte", "unsigned char")
int8 = dtype("int8", np.dtype(np.int8), _INT, 1, 1, True, "Char", "signed char")
int16 = dtype("int16", np.dtype(np.int16), _INT, 2, 2, True, "Short", "short int")
int32 = dtype("int32", np.dtype(np.int32), _INT, 3, 4, True, "Int", "int")
int64 = dtype("int64", np.dtype(np.int64), _INT, 4, 8, True, "Long", "long int")
float16 = dtype("float16", np.dtype(np.float16), _FLOAT, 1, 2, True, "Half", "c10::Half",
                65504.0)
bfloat16 = dtype("bfloat16", None, _FLOAT, 1, 2, True, "BFloat16", "c10::BFloat16",
                 3.3895313892515355e38)
float32 = dtype("float32", np.dtype(np.float32), _FLOAT, 2, 4, True, "Float", "float",
                3.4028234663852886e38)
float64 = dtype("float64", np.dtype(np.float64), _FLOAT, 3, 8, True, "Double", "double",
                1.7976931348623157e308)

complex64 = dtype("complex64", np.dtype(np.complex64), _COMPLEX, 2, 8, True, "ComplexFloat",
                  "c10::complex<float>")
complex128 = dtype("complex128", np.dtype(np.complex128), _COMPLEX, 3, 16, True,
                   "ComplexDouble", "c10::complex<double>")

# PyTorch's aliases
half, float, double = float16, float32, float64
short, int, long = int16, int32, int64
cfloat, cdouble = complex64, complex128

# Quantized dtypes (issue 19): the element type of a quantized tensor's integer storage (its
# int_repr); the scale and zero point live on the tensor (ember/ops/quantized.py).  They are
# not in ALL or _FROM_NP: an int8 NumPy array is an int8 tensor, never a qint8 one.
qint8 = dtype("qint8", np.dtype(np.int8), _INT, 1, 1, True, "QInt8", "c10::qint8")
quint8 = dtype("quint8", np.dtype(np.uint8), _INT, 1, 1, False, "QUInt8", "c10::quint8")
qint32 = dtype("qint32", np.dtype(np.int32), _INT, 3, 4, True, "QInt32", "c10::qint32")
quint4x2 = dtype("quint4x2", np.dtype(np.uint8), _INT, 1, 1, False, "QUInt4x2",
                 "c10::quint4x2")
QUANTIZED = (qint8, quint8, qint32, quint4x2)

_TO_REAL = {complex64: float32, complex128: float64}
# float16 and bfloat16 have no complex twin here (complex32 is not provided): complex64
_TO_COMPLEX = {float16: complex64, bfloat16: complex64, float32: complex64,
               float64: complex128}

ALL = (bool_, uint8, int8, int16, int32, int64, float16, bfloat16, float32, float64,
       complex64, complex128)
_FROM_NP = {d._np: d for d in ALL if d._np is not None}
# NumPy dtypes of floating and complex tensors (the ones that can require grad); bfloat16 is
# added on first use
FLOAT_NP = {float16._np, float32._np, float64._np, complex64._np, complex128._np}
_BY_NAME = {d.name: d for d in ALL + QUANTIZED}


def _by_name(name: str) -> dtype:
    return _BY_NAME[name]


def from_np(npd) -> dtype:
    """The ember dtype of a backend (NumPy) dtype."""
    d = _FROM_NP.get(npd)
    if d is not None:
        return d
    npd = np.dtype(npd)
    d = _FROM_NP.get(npd)
    if d is not None:
        return d
    if npd.name == "bfloat16":
        bfloat16.np  # registers it
        return bfloat16
    if npd.kind == "U" or npd.kind == "S" or npd.kind == "O":
        raise TypeError(f"can't convert np.ndarray of type numpy.{npd.name}. The only supported "
                        "types are: float64, float32, float16, bfloat16, int64, int32, int16, "
                        "int8, uint8, and bool.")
    if npd.kind == "u":  # uint16/32/64 have no ember twin: widen like a user would
        return int64
    if npd.kind == "c":  # complex256 (long double) has no PyTorch twin
        raise TypeError(f"can't convert np.ndarray of type numpy.{npd.name}. The only supported "
                        "types are: float64, float32, float16, complex64, complex128, int64, "
                        "int32, int16, int8, uint8, and bool.")
    raise TypeError(f"unsupported dtype {npd}")


_default_float = float32


def get_default_dtype() -> dtype:
    """The dtype of float tensors made from Python floats (float32 unless changed)."""
    return _default_float


def set_default_dtype(d: dtype) -> None:
    """Set the default floating dtype; PyTorch allows only floating types here."""
    global _default_float
    if not isinstance(d, dtype) or not d.is_floating_point:
        raise TypeError(f"only floating-point types are supported as the default type, got {d}")
    _default_float = d


def get_default_complex_dtype() -> dtype:
    """The dtype of complex tensors made from Python complex numbers: complex128 when the
    default float dtype is float64, else complex64."""
    return complex128 if _default_float is float64 else complex64


def promote_types(a: dtype, b: dtype) -> dtype:
    """The smallest dtype both ``a`` and ``b`` can be cast to (``torch.promote_types``)."""
    if a is b:
        return a
    if a._cat != b._cat:
        hi, lo = (a, b) if a._cat > b._cat else (b, a)
        if hi._cat == _COMPLEX and lo._cat == _FLOAT:  # complex64 with float64: complex128
            return promote_types(hi.to_real(), lo).to_complex()
        return hi
    if a._cat == _INT:
        if a is uint8 or b is uint8:  # uint8 with a signed int needs the next signed size
            other = b if a is uint8 else a
            return int16 if other is int8 else other
        return a if a._rank > b._rank else b
    if a._cat == _FLOAT:
        if a._rank == b._rank:  # float16 with bfloat16
            return float32
        return a if a._rank > b._rank else b
    if a._cat == _COMPLEX:
        return a if a._rank > b._rank else b
    return a


def _scalar_cat(x) -> int:
    if isinstance(x, bool):
        return _BOOL
    if isinstance(x, (builtins.int, np.integer)):
        return _INT
    if isinstance(x, (builtins.complex, np.complexfloating)):
        return _COMPLEX
    return _FLOAT




def default_for_cat(cat: int) -> dtype:
    if cat == _COMPLEX:
        return get_default_complex_dtype()
    return (bool_, int64, _default_float)[cat]


def _combine(higher, lower):
    """The result when a lower-priority operand's category outranks ``higher``'s (c10's
    ``combine_categories``): a complex one keeps a floating ``higher``'s precision."""
    if lower._cat == _COMPLEX and higher._cat == _FLOAT:
        return higher.to_complex()
    return lower


def result_type_of(operands) -> dtype:
    """Promotion over tensors and Python scalars (``torch.result_type`` for many operands)."""
    dims = zero = scal = None
    for x in operands:
        d = getattr(x, "dtype", None)
        # A tensor is what carries an ember dtype (NumPy scalars carry NumPy's): no import of
        # _tensor (which imports this module) on every call of the mixed-dtype path.
        if type(d) is dtype:
            if x._data.ndim:
                dims = d if dims is None else promote_types(dims, d)
            else:
                zero = d if zero is None else promote_types(zero, d)
        elif x is not None:
            c = _scalar_cat(x)
            scal = c if scal is None or c > scal else scal
    out = dims
    if zero is not None:
        if out is None:
            out = zero
        elif zero._cat > out._cat:
            out = _combine(out, zero)
    if scal is not None:
        if out is None:
            out = default_for_cat(scal)
        elif scal > out._cat:
            out = _combine(out, default_for_cat(scal))
    if out is None:
        raise TypeError("result_type needs at least one tensor or number")
    return out


def result_type(a, b) -> dtype:
    """``torch.result_type(tensor1, tensor2)``."""
    return result_type_of((a, b))


def can_cast(from_: dtype, to: dtype) -> bool:
    """Whether PyTorch allows an in-place/out cast from ``from_`` to ``to`` (no category drop:
    complex to float is refused)."""
    return from_._cat <= to._cat


# Python's scalar types name dtypes wherever PyTorch takes one (its argument parser's mapping)
_PY_TYPES = {builtins.bool: bool_, builtins.int: int64, builtins.float: float64,
             builtins.complex: complex128}


def as_dtype(d, fn: str = "", arg: str = "dtype") -> dtype:
    """``d`` as a dtype: a dtype itself, or Python's ``bool``/``int``/``float``/``complex``
    (bool, int64, float64, complex128, as PyTorch); anything else raises PyTorch's TypeError."""
    if isinstance(d, dtype):
        return d
    if isinstance(d, builtins.type) and d in _PY_TYPES:
        return _PY_TYPES[d]
    where = f"{fn}(): argument" if fn else "argument"
    raise TypeError(f"{where} '{arg}' must be torch.dtype, not {type(d).__name__}")
