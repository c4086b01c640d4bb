"""``gradcheck``/``gradgradcheck``: compare autograd with central finite differences.

Complex inputs and outputs are checked as pairs of reals (PyTorch's "slow mode" for
complex): each complex element is two rows/columns of the Jacobian, its real and its
imaginary part; the analytical columns come from unit gradients 1 and 1j, whose results
under PyTorch's conjugate-Wirtinger convention hold d Re(out)/d(re, im) and
d Im(out)/d(re, im) as their real and imaginary parts.
"""
from __future__ import annotations

import numpy as np  # noqa: E402  (finite differences are a host-side numerical check)


class GradcheckError(RuntimeError):
    """Raised when analytical and numerical Jacobians disagree."""


def _tensors(x):
    from .._tensor import Tensor
    if isinstance(x, Tensor):
        return (x,)
    return tuple(x)


def _outputs(func, inputs):
    from .._tensor import Tensor
    out = func(*inputs)
    if isinstance(out, Tensor):
        return (out,)
    return tuple(o for o in out if isinstance(o, Tensor))


def _nreal(a) -> int:
    """Real degrees of freedom of array ``a`` (two per complex element)."""
    return a.size * 2 if a.dtype.kind == "c" else a.size


def _flat_real(a):
    """``a`` as a flat float64 vector, a complex element as its (real, imaginary) pair."""
    if a.dtype.kind == "c":
        return np.stack([a.real, a.imag], -1).astype(np.float64).reshape(-1)
    return a.astype(np.float64).reshape(-1)


def _numerical_jacobians(func, inputs, diff_idx, eps):
    """J[i][j]: d output j / d input i, shape (numel_in, numel_out), by central differences."""
    from ..autograd.grad_mode import no_grad
    with no_grad():
        outs = _outputs(func, inputs)
        jac = []
        for i in diff_idx:
            x = inputs[i]
            flat = x._data.reshape(-1) if x._data.flags.c_contiguous else None
            if flat is None:
                raise ValueError("gradcheck needs contiguous inputs")
            cols = [np.zeros((_nreal(x._data), _nreal(o._data))) for o in outs]
            steps = (eps, 1j * eps) if x._data.dtype.kind == "c" else (eps,)
            row = 0
            for k in range(flat.size):
                for step in steps:
                    orig = flat[k].copy()
                    flat[k] = orig + step
                    plus = [_flat_real(o._data) for o in _outputs(func, inputs)]
                    flat[k] = orig - step
                    minus = [_flat_real(o._data) for o in _outputs(func, inputs)]
                    flat[k] = orig
                    for j in range(len(outs)):
                        cols[j][row] = (plus[j] - minus[j]) / (2 * eps)
                    row += 1
            jac.append(cols)
    return jac, outs


def _analytical_jacobians(func, inputs, diff_idx):
    from .._tensor import _make
    from . import grad
    outs = _outputs(func, inputs)
    jac = [[np.zeros((_nreal(inputs[i]._data), _nreal(o._data))) for o in outs]
           for i in diff_idx]
    diff_inputs = [inputs[i] for i in diff_idx]
    for j, o in enumerate(outs):
        if not o._requires_grad:
            continue
        units = (1, 1j) if o._data.dtype.kind == "c" else (1,)
        col = 0
        for k in range(o._data.size):
            for unit in units:
                g = np.zeros(o._data.size, o._data.dtype)
                g[k] = unit
                gs = grad(o, diff_inputs, _make(g.reshape(o._data.shape)), retain_graph=True,
                          allow_unused=True)
                for n, gi in enumerate(gs):
                    if gi is not None:
                        jac[n][j][:, col] = _flat_real(gi._data)
                col += 1
    return jac


def gradcheck(func, inputs, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True, nondet_tol: float = 0.0,
              check_undefined_grad: bool = True, check_grad_dtypes: bool = False,
              check_batched_grad: bool = False, check_batched_forward_grad: bool = False,
              check_forward_ad: bool = False, check_backward_ad: bool = True,
              fast_mode: bool = False, masked=None) -> bool:
    """Check ``func``'s gradients w.r.t. float64 ``inputs`` that require grad."""
    from .._tensor import Tensor
    inputs = _tensors(inputs)
    diff_idx = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x._requires_grad]
    if not diff_idx:
        raise ValueError("gradcheck expects at least one input tensor to require gradient, but "
                         "none of the them have requires_grad=True.")
    for i in diff_idx:
        if inputs[i].dtype.name not in ("float64", "complex128"):
            import warnings
            warnings.warn(f"Input #{i} requires gradient and is not a double precision floating "
                          "point. This check will likely fail if all the inputs are not of "
                          "double precision floating point.")
    num, outs = _numerical_jacobians(func, inputs, diff_idx, eps)
    ana = _analytical_jacobians(func, inputs, diff_idx)
    for n, i in enumerate(diff_idx):
        for j in range(len(outs)):
            a, b = ana[n][j], num[n][j]
            if not np.allclose(a, b, rtol=rtol, atol=atol):
                if not raise_exception:
                    return False
                raise GradcheckError(
                    f"Jacobian mismatch for output {j} with respect to input {i},\n"
                    f"numerical:{b}\nanalytical:{a}\n")
    return True


def gradgradcheck(func, inputs, grad_outputs=None, *, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, gen_non_contig_grad_outputs: bool = False,
                  raise_exception: bool = True, nondet_tol: float = 0.0,
                  check_undefined_grad: bool = True, check_grad_dtypes: bool = False,
                  check_batched_grad: bool = False, check_fwd_over_rev: bool = False,
                  check_rev_over_rev: bool = True, fast_mode: bool = False,
                  masked: bool = False) -> bool:
    """Check second derivatives: gradcheck of the vector-Jacobian product of ``func``."""
    from .._tensor import Tensor, _make
    from . import grad
    from .grad_mode import enable_grad
    inputs = _tensors(inputs)
    if grad_outputs is None:
        outs = _outputs(func, inputs)
        rng = np.random.default_rng(0)
        grad_outputs = tuple(_make(rng.standard_normal(o._data.shape).astype(o._data.dtype))
                             .requires_grad_() for o in outs)
    else:
        grad_outputs = _tensors(grad_outputs)
    n_in = len(inputs)
    diff_idx = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x._requires_grad]

    def vjp(*args):
        ins, gos = args[:n_in], args[n_in:]
        with enable_grad():  # the numerical pass runs ``vjp`` under no_grad
            outs = _outputs(func, ins)
            gs = grad(outs, [ins[i] for i in diff_idx], gos, create_graph=True,
                      allow_unused=True)
        return tuple(g for g in gs if g is not None)

    return gradcheck(vjp, inputs + tuple(grad_outputs), eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception)
