"""``assert_close`` / ``assert_allclose`` as ``torch/testing/_comparison.py`` behaves."""
from __future__ import annotations

import cmath
import collections.abc
import math
import warnings

import numpy as np

from .. import _dtype
from .._tensor import Tensor

__all__ = ["assert_close", "assert_allclose"]

# default (rtol, atol) per dtype name, as torch.testing; integers and bool compare exactly
_TOLERANCES = {"float16": (1e-3, 1e-5), "bfloat16": (1.6e-2, 1e-5), "float32": (1.3e-6, 1e-5),
               "float64": (1e-7, 1e-7), "complex32": (1e-3, 1e-5),
               "complex64": (1.3e-6, 1e-5), "complex128": (1e-7, 1e-7)}
# assert_allclose's older table (torch.testing._asserts._DTYPE_PRECISIONS)
_ALLCLOSE_TOLERANCES = {"float16": (1e-3, 1e-3), "float32": (1e-4, 1e-5),
                        "float64": (1e-5, 1e-8)}


class _Mismatch(AssertionError):
    """A failed leaf comparison; ``path`` says which item of a container failed."""

    def __init__(self, message: str, path=()):
        super().__init__(message)
        self.message = message
        self.path = path


def _dtype_name(x) -> str:
    return x.dtype.name if isinstance(x, Tensor) else np.dtype(x.dtype).name


def _default_tolerances(actual, expected, table=_TOLERANCES):
    pairs = [table.get(_dtype_name(x), (0.0, 0.0)) for x in (actual, expected)]
    return max(p[0] for p in pairs), max(p[1] for p in pairs)


def _diff_line(kind: str, diff, idx, tol) -> str:
    line = (f"{kind.title()} difference: {diff}" if idx is None
            else f"Greatest {kind} difference: {diff} at index {idx}")
    return line + (f" (up to {tol} allowed)" if tol > 0 else "") + "\n"


def _mismatch_message(what: str, extra: str, abs_diff, abs_idx, atol, rel_diff, rel_idx,
                      rtol) -> str:
    verdict = "equal" if rtol == 0 and atol == 0 else "close"
    return (f"{what} are not {verdict}!\n\n{extra}\n"
            + _diff_line("absolute", abs_diff, abs_idx, atol)
            + _diff_line("relative", rel_diff, rel_idx, rtol)).strip()


def _check_tolerances(rtol, atol):
    if (rtol is None) != (atol is None):
        missing = "atol" if atol is None else "rtol"
        raise ValueError(f"Both 'rtol' and 'atol' must be either specified or omitted, "
                         f"but got no {missing}.")


def _as_array(x):
    if isinstance(x, Tensor):
        return x.detach().numpy()
    return np.asarray(x)


def _compare_arrays(actual, expected, rtol, atol, equal_nan, check_dtype, check_stride):
    """Compare two tensors (or two NumPy arrays) with torch's attribute checks first."""
    if tuple(actual.shape) != tuple(expected.shape):
        raise _Mismatch(f"The values for attribute 'shape' do not match: "
                        f"{actual.shape} != {expected.shape}.")
    if check_dtype and actual.dtype != expected.dtype:
        raise _Mismatch(f"The values for attribute 'dtype' do not match: "
                        f"{actual.dtype} != {expected.dtype}.")
    if check_stride and isinstance(actual, Tensor) and actual.stride() != expected.stride():
        raise _Mismatch(f"The values for attribute 'stride()' do not match: "
                        f"{actual.stride()} != {expected.stride()}.")
    if rtol is None:
        rtol, atol = _default_tolerances(actual, expected)
    a, e = _as_array(actual), _as_array(expected)
    if a.dtype != e.dtype:  # check_dtype=False: compare in the promoted dtype, as torch
        if isinstance(actual, Tensor):
            common = _dtype.promote_types(actual.dtype, expected.dtype).np
        else:
            common = np.promote_types(a.dtype, e.dtype)
        a, e = a.astype(common), e.astype(common)
    exact = a.dtype.kind in "biu"
    if exact:  # differences of integers in int64, as torch (no overflow in the subtraction)
        a, e = a.astype(np.int64), e.astype(np.int64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        matches = _isclose(a, e, rtol, atol, equal_nan)
        if matches.all():
            return
        if a.ndim == 0:
            raise _Mismatch(_scalar_message(a.item(), e.item(), rtol, atol, "Scalars"))
        abs_diff = np.abs(a - e).reshape(-1)
        abs_diff[matches.reshape(-1)] = 0
        denom = np.abs(e.reshape(-1))
        if exact:  # int / int is true division into the default float dtype, as in torch
            default = _dtype.get_default_dtype().np
            rel_diff = abs_diff.astype(default) / denom.astype(default)
        else:
            rel_diff = abs_diff / denom
        rel_diff[matches.reshape(-1)] = 0
    n, bad = matches.size, int(matches.size - matches.sum())
    extra = f"Mismatched elements: {bad} / {n} ({bad / n:.1%})"
    ia, ir = _argmax(abs_diff), _argmax(rel_diff)
    raise _Mismatch(_mismatch_message(
        "Tensor-likes", extra, abs_diff[ia].item(), _index(ia, a.shape), atol,
        rel_diff[ir].item(), _index(ir, a.shape), rtol))


def _index(flat: int, shape) -> tuple:
    return tuple(int(i) for i in np.unravel_index(flat, shape))


def _argmax(x) -> int:
    """Index of the greatest value, NaN counting as greatest (as torch.max)."""
    nans = np.flatnonzero(np.isnan(x)) if x.dtype.kind in "fc" else ()
    return int(nans[0]) if len(nans) else int(np.argmax(x))


def _isclose(a, e, rtol, atol, equal_nan):
    if a.dtype.kind in "biu":
        return a == e
    close = (a == e) | (np.abs(a - e) <= atol + rtol * np.abs(e))
    close &= (np.isfinite(a) & np.isfinite(e)) | (a == e)  # inf only matches the same inf
    if equal_nan:
        close |= np.isnan(a) & np.isnan(e)
    return close


def _scalar_message(actual, expected, rtol, atol, what="Scalars") -> str:
    abs_diff = abs(actual - expected)
    rel_diff = abs_diff / abs(expected) if expected != 0 else (
        math.inf if abs_diff != 0 else 0.0)
    return _mismatch_message(what, f"Expected {expected} but got {actual}.", abs_diff, None,
                             atol, rel_diff, None, rtol)


_NUMBERS = (bool, int, float, complex)


def _compare_numbers(actual, expected, rtol, atol, equal_nan, check_dtype):
    if isinstance(actual, bool) or isinstance(expected, bool):
        if type(actual) is not type(expected):
            raise _Mismatch(f"The (d)types do not match: {type(actual)} != {type(expected)}.")
        if actual is not expected:
            raise _Mismatch(f"Booleans mismatch: {actual} is not {expected}")
        return
    if check_dtype and type(actual) is not type(expected):
        raise _Mismatch(f"The (d)types do not match: {type(actual)} != {type(expected)}.")
    if rtol is None:
        kinds = {type(actual), type(expected)}
        rtol, atol = ((0.0, 0.0) if kinds == {int} else
                      _TOLERANCES["complex128" if complex in kinds else "float64"])
    if actual == expected:
        return
    both_nan = (cmath.isnan(actual) and cmath.isnan(expected))
    if equal_nan and both_nan:
        return
    finite = not (cmath.isinf(actual) or cmath.isinf(expected))
    if finite and abs(actual - expected) <= atol + rtol * abs(expected):
        return
    raise _Mismatch(_scalar_message(actual, expected, rtol, atol))


def _is_array(x) -> bool:
    return isinstance(x, (Tensor, np.ndarray))


def _compare(actual, expected, path, opts):
    """Walk containers pairwise, raising ``_Mismatch`` (with ``path``) at the first failure."""
    strs = (str, bytes)
    seq = collections.abc.Sequence
    if (isinstance(actual, seq) and isinstance(expected, seq)
            and not isinstance(actual, strs) and not isinstance(expected, strs)):
        if len(actual) != len(expected):
            raise _Mismatch(f"The length of the sequences mismatch: "
                            f"{len(actual)} != {len(expected)}", path)
        for i, (a, e) in enumerate(zip(actual, expected)):
            _compare(a, e, path + (i,), opts)
        return
    mapping = collections.abc.Mapping
    if isinstance(actual, mapping) and isinstance(expected, mapping):
        missing = sorted(set(expected) - set(actual), key=repr)
        additional = sorted(set(actual) - set(expected), key=repr)
        if missing or additional:
            raise _Mismatch(f"The keys of the mappings do not match:\n"
                            f"Missing keys in the actual mapping: {missing}\n"
                            f"Additional keys in the actual mapping: {additional}", path)
        for k in actual:
            _compare(actual[k], expected[k], path + (k,), opts)
        return
    try:
        _compare_leaf(actual, expected, opts)
    except _Mismatch as err:
        raise _Mismatch(err.message, path) from None


def _compare_leaf(actual, expected, opts):
    rtol, atol, equal_nan, check_dtype, check_stride, allow_subclasses = opts
    if _is_array(actual) and _is_array(expected):
        ta, te = type(actual), type(expected)
        same_kind = (isinstance(actual, Tensor) == isinstance(expected, Tensor))
        if same_kind and (ta is te or allow_subclasses):
            _compare_arrays(actual, expected, rtol, atol, equal_nan, check_dtype, check_stride)
            return
    elif isinstance(actual, _NUMBERS) and isinstance(expected, _NUMBERS):
        _compare_numbers(actual, expected, rtol, atol, equal_nan, check_dtype)
        return
    raise TypeError(f"No comparison pair was able to handle inputs of type {type(actual)} "
                    f"and {type(expected)}.")


def _format_path(path) -> str:
    return "".join(f"[{p!r}]" for p in path)


def assert_close(actual, expected, *, allow_subclasses: bool = True, rtol=None, atol=None,
                 equal_nan: bool = False, check_device: bool = True, check_dtype: bool = True,
                 check_layout: bool = True, check_stride: bool = False, msg=None) -> None:
    """Assert ``|actual - expected| <= atol + rtol * |expected|`` elementwise
    (``torch.testing.assert_close``), walking sequences and mappings; tolerances default per
    dtype. ``check_device``/``check_layout`` always hold: ember has one device and layout."""
    _check_tolerances(rtol, atol)
    opts = (rtol, atol, equal_nan, check_dtype, check_stride, allow_subclasses)
    try:
        _compare(actual, expected, (), opts)
    except _Mismatch as err:
        if isinstance(msg, str):
            raise AssertionError(msg) from None
        message = err.message
        if callable(msg):
            message = msg(message)
        if err.path:
            message += f"\n\nThe failure occurred for item {_format_path(err.path)}"
        raise AssertionError(message) from None


def assert_allclose(actual, expected, rtol=None, atol=None, equal_nan: bool = True,
                    msg: str = "") -> None:
    """The deprecated ``torch.testing.assert_allclose``: ``expected`` converted to ``actual``'s
    dtype, dtypes not checked, its own (looser) default tolerances."""
    from .._creation import tensor
    warnings.warn("`torch.testing.assert_allclose()` is deprecated since 1.12 and will be "
                  "removed in a future release. Please use `torch.testing.assert_close()` "
                  "instead.", FutureWarning, stacklevel=2)
    if not isinstance(actual, Tensor):
        actual = tensor(actual)
    if not isinstance(expected, Tensor):
        expected = tensor(expected, dtype=actual.dtype)
    if rtol is None and atol is None:
        d = (actual.dtype if actual.dtype is expected.dtype
             else _dtype.promote_types(actual.dtype, expected.dtype))
        rtol, atol = _ALLCLOSE_TOLERANCES.get(d.name, (0.0, 0.0))
    assert_close(actual, expected, rtol=rtol, atol=atol, equal_nan=equal_nan,
                 check_device=True, check_dtype=False, check_stride=False, msg=msg or None)
