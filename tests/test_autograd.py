"""The autograd engine against torch: backward/grad, graph retention, higher derivatives,
grad modes, custom Functions, gradcheck, anomaly detection, hooks and in-place semantics."""
import threading
import time
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
from ember.autograd.gradcheck import GradcheckError
from opcheck import assert_close, check, rand


def both(f):
    """``f(m)`` for ember and torch; results compared by ``assert_close``."""
    e, t = f(ember), f(torch)
    assert_close(e, t)
    return e, t


def same_error(f, exc=RuntimeError, match=None):
    with pytest.raises(exc):
        f(torch)
    with pytest.raises(exc, match=match):
        f(ember)


def A(m, dtype=None):
    return m.arange(1.0, 7.0, dtype=dtype or m.float64).reshape(2, 3).requires_grad_()


# ---- backward / grad basics ---------------------------------------------------------------

def _scalar_backward(m):
    x = A(m)
    ((x * x).sum() / 2).backward()
    return x.grad


def _gradient_arg(m):
    x = A(m)
    (x * 2).backward(m.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=m.float64))
    return x.grad


def _scalar_gradient_arg(m):
    x = A(m)
    (x * 2).sum().backward(m.tensor(3.0, dtype=m.float64))
    return x.grad


def _accumulate(m):
    x = A(m)
    (x * 2).sum().backward()
    (x * x).sum().backward()
    return x.grad


def _broadcast(m):
    x = m.ones(3, 1, dtype=m.float64, requires_grad=True)
    b = m.ones(4, dtype=m.float64, requires_grad=True)
    s = m.tensor(2.0, dtype=m.float64, requires_grad=True)
    (x * b * s + b).sum().backward()
    return x.grad, b.grad, s.grad


def _retain_graph(m):
    x = A(m)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    return x.grad


def _multiple_roots(m):
    x = A(m)
    y = x * 2
    m.autograd.backward([y.sum(), (y * y).sum()])
    return x.grad


def _multiple_roots_with_grads(m):
    x = A(m)
    y = x * 2
    m.autograd.backward([y, (y * y).sum()], [m.ones(2, 3, dtype=m.float64), None])
    return x.grad


def _diamond(m):
    x = A(m)
    a = x * 2
    b = a.exp() + a * a - a / 3
    c = b * a
    c.sum().backward()
    return x.grad


def _cast_chain(m):
    x = A(m, m.float32)
    (x.double() * 2).sum().backward()
    return x.grad


def _gradient_dtype_cast(m):
    x = A(m, m.float32)
    (x * 2).backward(m.ones(2, 3, dtype=m.float64))
    return x.grad


def _zero_dim_reuse(m):
    x = m.tensor(2.0, dtype=m.float64, requires_grad=True)
    y = x * x * x + x
    y.backward()
    return x.grad


BACKWARD_CASES = [_scalar_backward, _gradient_arg, _scalar_gradient_arg, _accumulate, _broadcast,
                  _retain_graph, _multiple_roots, _multiple_roots_with_grads, _diamond,
                  _cast_chain, _gradient_dtype_cast, _zero_dim_reuse]


@pytest.mark.parametrize("case", BACKWARD_CASES, ids=lambda f: f.__name__)
def test_backward_matches_torch(case):
    both(case)


def test_chain_with_broadcasting_and_views_matches_torch():
    check(lambda m, x, w, b: ((x.transpose(0, 1) @ w + b).exp() * 2 - x.sum() / 3).mean(),
          None, rand(4, 3), rand(4, 5), rand(5))


@given(sa=st.lists(st.integers(1, 3), min_size=0, max_size=3),
       sb=st.lists(st.integers(1, 3), min_size=0, max_size=3))
@settings(max_examples=25, deadline=None)
def test_broadcast_gradients_are_summed_back_hypothesis(sa, sb):
    # make the shapes broadcast-compatible: where they differ, one side becomes 1
    n = min(len(sa), len(sb))
    for i in range(1, n + 1):
        if sa[-i] != sb[-i]:
            sb[-i] = 1
    check(lambda m, a, b: (a * b + a - b).exp().sum(), None, rand(*sa), rand(*sb))


def test_non_leaf_grad_is_none_without_retain_grad():
    for m in (ember, torch):
        x = A(m)
        y = x * 2
        y.sum().backward()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert y.grad is None
        assert x.grad is not None


def test_second_backward_without_retain_graph_raises():
    def f(m):
        x = A(m)
        y = (x * x).sum()
        y.backward()
        y.backward()
    same_error(f, RuntimeError, "Trying to backward through the graph a second time")

    def g(m):
        x = A(m)
        y = (x * x).sum()
        m.autograd.grad(y, x)
        m.autograd.grad(y, x)
    same_error(g, RuntimeError, "Trying to backward through the graph a second time")


def test_second_backward_through_nodes_that_saved_nothing_is_allowed():
    def f(m):
        x = A(m)
        y = (x + 1).sum()
        y.backward()
        y.backward()
        return x.grad
    both(f)


@pytest.mark.parametrize("f,match", [
    (lambda m: (A(m) * 2).backward(), "grad can be implicitly created only for scalar outputs"),
    (lambda m: m.ones(3).sum().backward(),
     "element 0 of tensors does not require grad and does not have a grad_fn"),
    (lambda m: (A(m) * 2).backward(m.ones(2)), "Mismatch in shape"),
    (lambda m: (A(m) * 2).sum().backward(inputs=[]), "cannot be empty"),
    (lambda m: m.autograd.grad((A(m) * 2).sum(), []), "cannot be empty"),
    (lambda m: m.autograd.grad(m.ones(3).sum(), m.ones(3)), "does not require grad"),
    (lambda m: m.autograd.grad((A(m) * 2).sum(), m.ones(3)), "does not require grad"),
    (lambda m: m.autograd.grad((A(m) * 2).sum(), [A(m)]), "appears to not have been used"),
    (lambda m: m.autograd.grad([(A(m) * 2).sum()], [A(m)], [None, None]), None),
])
def test_backward_errors_match_torch(f, match):
    same_error(f, RuntimeError, match)


def test_unused_input_error_names_index():
    x = A(ember)
    z = ember.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="The differentiated Tensor at index 1 appears"):
        ember.autograd.grad((x * 2).sum(), [x, z])


# ---- autograd.grad ------------------------------------------------------------------------

def _grad_outputs(m):
    x = A(m)
    return m.autograd.grad(x * x, x, grad_outputs=m.full((2, 3), 2.0, dtype=m.float64))


def _grad_allow_unused(m):
    x, z = A(m), m.ones(2, dtype=m.float64, requires_grad=True)
    gx, gz = m.autograd.grad((x * 2).sum(), [x, z], allow_unused=True)
    assert gz is None
    return gx


def _grad_materialize(m):
    x, z = A(m), m.ones(2, dtype=m.float64, requires_grad=True)
    return m.autograd.grad((x * 2).sum(), [x, z], materialize_grads=True)


def _grad_non_leaf(m):
    x = A(m)
    y = x * 3
    z = (y * y).sum()
    return m.autograd.grad(z, [y, x])


def _grad_retain(m):
    x = A(m)
    y = (x.exp()).sum()
    g1 = m.autograd.grad(y, x, retain_graph=True)
    g2 = m.autograd.grad(y, x)
    return g1 + g2


def _grad_multi_out(m):
    x = A(m)
    return m.autograd.grad([(x * 2).sum(), x.exp().sum()], [x])


def _grad_does_not_accumulate(m):
    x = A(m)
    m.autograd.grad((x * 2).sum(), x)
    assert x.grad is None
    return m.zeros(1)


GRAD_CASES = [_grad_outputs, _grad_allow_unused, _grad_materialize, _grad_non_leaf, _grad_retain,
              _grad_multi_out, _grad_does_not_accumulate]


@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda f: f.__name__)
def test_autograd_grad_matches_torch(case):
    both(case)


def test_backward_inputs_argument():
    def only_w(m):
        x, w = A(m), m.ones(2, 3, dtype=m.float64, requires_grad=True)
        (x * w * 2).sum().backward(inputs=[w])
        assert x.grad is None
        return w.grad

    def single_tensor(m):
        x = A(m)
        (x * 2).sum().backward(inputs=x)
        return x.grad

    def sequential(m):
        x, w = A(m), m.ones(3, dtype=m.float64, requires_grad=True)
        y = (x * w).sum()
        y.backward(inputs=[w], retain_graph=True)
        y.backward(inputs=[x])
        return x.grad, w.grad

    def non_leaf(m):
        x = A(m)
        y = x * 3
        (y * y).sum().backward(inputs=[y])
        assert x.grad is None
        return y.grad

    for f in (only_w, single_tensor, sequential, non_leaf):
        both(f)


# ---- higher-order derivatives -------------------------------------------------------------

def test_second_and_third_derivative_of_cube():
    def f(m):
        x = m.tensor([2.0, -1.5], dtype=m.float64, requires_grad=True)
        y = (x * x * x).sum()
        g, = m.autograd.grad(y, x, create_graph=True)
        g2, = m.autograd.grad(g.sum(), x, create_graph=True)
        g3, = m.autograd.grad(g2.sum(), x)
        return g, g2, g3
    e, _ = both(f)
    np.testing.assert_allclose(e[1].detach().numpy(), [12.0, -9.0])
    assert e[0].requires_grad and e[0].grad_fn is not None


def test_gradient_penalty_backward():
    def f(m):
        x = m.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=m.float64, requires_grad=True)
        w = m.tensor([[0.5], [-1.0]], dtype=m.float64, requires_grad=True)
        y = (x @ w).exp().sum()
        g, = m.autograd.grad(y, x, create_graph=True)
        (g * g).sum().backward()
        return x.grad, w.grad
    both(f)


def test_gradient_penalty_with_pow():
    def f(m):
        x = A(m)
        g, = m.autograd.grad((x ** 3).sum(), x, create_graph=True)
        g.pow(2).sum().backward()
        return x.grad
    both(f)


def test_backward_create_graph_makes_grad_differentiable():
    def f(m):
        x = A(m)
        (x * x * x).sum().backward(create_graph=True)
        g = x.grad
        assert g.requires_grad
        h, = m.autograd.grad(g.sum(), x)
        return h
    both(f)


def test_gradients_without_create_graph_do_not_require_grad():
    x = A(ember)
    g, = ember.autograd.grad((x * x).sum(), x)
    assert not g.requires_grad and g.grad_fn is None


# ---- long chains --------------------------------------------------------------------------

def test_ten_thousand_op_chain_backward_is_iterative_and_fast():
    x = ember.ones(1, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    start = time.perf_counter()
    y.sum().backward()
    assert time.perf_counter() - start < 5.0
    np.testing.assert_allclose(x.grad.item(), 1.0001 ** 10_000, rtol=1e-3)


def test_deep_graph_is_freed_without_recursion_error():
    x = ember.ones(1, requires_grad=True)
    y = x
    for _ in range(20_000):
        y = y + 1
    del y  # dropping a long chain must not recurse in the node destructors


# ---- grad modes ---------------------------------------------------------------------------

def _mode_trace(m):
    r = []
    with m.no_grad():
        r.append(m.is_grad_enabled())
        with m.enable_grad():
            r.append(m.is_grad_enabled())
        r.append((m.ones(1, requires_grad=True) * 2).requires_grad)
    r.append(m.is_grad_enabled())

    @m.no_grad()
    def f():
        return m.is_grad_enabled()

    @m.no_grad
    def f_bare():
        return m.is_grad_enabled()

    @m.enable_grad()
    def g():
        return m.is_grad_enabled()

    @m.enable_grad
    def g_bare():
        return m.is_grad_enabled()

    r += [f(), f_bare()]
    with m.no_grad():
        r += [g(), g_bare()]
    with m.set_grad_enabled(False):
        r.append(m.is_grad_enabled())
        with m.set_grad_enabled(True):
            r.append(m.is_grad_enabled())
    r.append(m.is_grad_enabled())
    m.set_grad_enabled(False)
    r.append(m.is_grad_enabled())
    m.set_grad_enabled(True)

    @m.set_grad_enabled(False)
    def h():
        return m.is_grad_enabled()
    r += [m.is_grad_enabled(), h(), m.is_grad_enabled()]

    @m.inference_mode()
    def i():
        return m.is_inference_mode_enabled(), m.is_grad_enabled()

    @m.inference_mode
    def i_bare():
        return m.is_inference_mode_enabled()

    @m.inference_mode(False)
    def i_off():
        return m.is_inference_mode_enabled()
    r += [i(), i_bare(), i_off()]
    with m.inference_mode():
        r.append((m.is_inference_mode_enabled(), m.is_grad_enabled()))
        with m.inference_mode(False):
            r.append((m.is_inference_mode_enabled(), m.is_grad_enabled()))
    r.append((m.is_inference_mode_enabled(), m.is_grad_enabled()))
    try:
        with m.no_grad():
            raise ValueError
    except ValueError:
        pass
    r.append(m.is_grad_enabled())
    return r


def test_grad_modes_as_context_managers_and_decorators_match_torch():
    assert _mode_trace(ember) == _mode_trace(torch)
    assert ember.is_grad_enabled() and not ember.is_inference_mode_enabled()


def test_grad_mode_decorated_generator_runs_each_step_in_the_mode():
    def trace(m):
        @m.no_grad()
        def gen():
            for _ in range(2):
                yield m.is_grad_enabled()
        out = []
        for v in gen():
            out.append((v, m.is_grad_enabled()))
        return out
    assert trace(ember) == trace(torch) == [(False, True), (False, True)]


def test_decorated_function_keeps_its_metadata():
    @ember.no_grad()
    def documented(x):
        """doc"""
        return x
    assert documented.__name__ == "documented" and documented.__doc__ == "doc"


def test_no_grad_results_do_not_require_grad():
    x = A(ember)
    with ember.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    with ember.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad


def test_grad_mode_is_thread_local():
    for m in (ember, torch):
        seen = []
        with m.no_grad():
            th = threading.Thread(target=lambda: seen.append(m.is_grad_enabled()))
            th.start()
            th.join()
            assert not m.is_grad_enabled()
        assert seen == [True]
        # a mode entered in another thread does not leak here
        ev, done = threading.Event(), threading.Event()

        def worker():
            with m.no_grad():
                ev.set()
                done.wait(5)
        th = threading.Thread(target=worker)
        th.start()
        ev.wait(5)
        assert m.is_grad_enabled()
        done.set()
        th.join()


def test_inference_mode_tensors():
    for m in (ember, torch):
        with m.inference_mode():
            t = m.ones(3)
            u = t * 2
            assert m.is_inference_mode_enabled() and not m.is_grad_enabled()
        assert t.is_inference() and u.is_inference()
        assert not m.ones(1).is_inference()
        assert not u.requires_grad


@pytest.mark.parametrize("f,match", [
    (lambda m, t: m.ones(3, requires_grad=True) * t, "Inference tensors cannot be saved for "
                                                     "backward"),
    (lambda m, t: t.add_(1), "Inplace update to inference tensor outside InferenceMode"),
    (lambda m, t: t.requires_grad_(), "inference tensor outside InferenceMode"),
])
def test_inference_tensors_outside_inference_mode_raise(f, match):
    def run(m):
        with m.inference_mode():
            t = m.ones(3)
        f(m, t)
    same_error(run, RuntimeError, match)


def test_inference_tensor_usable_inside_inference_mode_and_without_saving():
    for m in (ember, torch):
        with m.inference_mode():
            t = m.ones(3)
        with m.inference_mode():
            t.add_(1)
        assert t.tolist() == [2.0, 2.0, 2.0]
        x = m.ones(3, requires_grad=True)
        (x + t).sum().backward()  # add saves nothing: allowed
        assert x.grad.tolist() == [1.0, 1.0, 1.0]


# ---- custom Functions ---------------------------------------------------------------------

def make_functions(m):
    class Cube(m.autograd.Function):
        @staticmethod
        def forward(ctx, x, k):
            ctx.save_for_backward(x)
            ctx.k = k
            return x * x * x * k

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return g * 3 * x * x * ctx.k, None

    class WrongGrad(m.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 3

    class FlatSecondDerivative(m.autograd.Function):
        """Right first derivative (2x) but its backward is cut from the graph."""
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return g * 2 * x.detach()

    class WrongShape(m.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return m.ones(5)

    class TooMany(m.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g, g

    class MyFn(m.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            return g * float("nan")

    class Once(m.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        @m.autograd.function.once_differentiable
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return g * 2 * x

    class SortLike(m.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            idx = m.tensor([1, 0])
            scale = x * 3
            ctx.mark_non_differentiable(idx, scale)
            return x * 1, idx, scale

        @staticmethod
        def backward(ctx, g, g_idx, g_scale):
            return g * 2

    class Needs(m.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            Needs.in_forward = ctx.needs_input_grad
            ctx.save_for_backward(x, y)
            return x * y

        @staticmethod
        def backward(ctx, g):
            Needs.in_backward = ctx.needs_input_grad
            x, y = ctx.saved_tensors
            return (g * y if ctx.needs_input_grad[0] else None,
                    g * x if ctx.needs_input_grad[1] else None)

    class Dirty(m.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            x.mul_(2)
            ctx.mark_dirty(x)
            return x

        @staticmethod
        def backward(ctx, g):
            return g * 2

    class Identity(m.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, g):
            return g * 5

    class SetupCtx(m.autograd.Function):
        @staticmethod
        def forward(x, k):
            return x * k

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.k = inputs[1]

        @staticmethod
        def backward(ctx, g):
            return g * ctx.k, None

    class GradModeInside(m.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            GradModeInside.enabled = m.is_grad_enabled()
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    return dict((k, v) for k, v in locals().items() if isinstance(v, type))


FN = {ember: make_functions(ember), torch: make_functions(torch)}


def test_custom_function_forward_backward_matches_torch():
    def f(m):
        x = m.tensor([1.0, 2.0], dtype=m.float64, requires_grad=True)
        y = FN[m]["Cube"].apply(x, 2.0)
        assert y.grad_fn.name() == "CubeBackward"
        assert "grad_fn=<CubeBackward>" in repr(y)
        y.sum().backward()
        return y, x.grad
    both(f)


def test_custom_function_double_backward():
    def f(m):
        x = m.tensor([1.0, 2.0], dtype=m.float64, requires_grad=True)
        g, = m.autograd.grad(FN[m]["Cube"].apply(x, 2.0).sum(), x, create_graph=True)
        return m.autograd.grad(g.sum(), x)
    both(f)


def test_custom_function_runs_forward_without_grad():
    for m in (ember, torch):
        cls = FN[m]["GradModeInside"]
        y = cls.apply(m.ones(2, requires_grad=True))
        assert cls.enabled is False and y.requires_grad


def test_custom_function_without_grad_inputs_records_nothing():
    for m in (ember, torch):
        y = FN[m]["Cube"].apply(m.ones(2), 2.0)
        assert not y.requires_grad and y.grad_fn is None


def test_needs_input_grad_in_forward_and_backward():
    for m in (ember, torch):
        cls = FN[m]["Needs"]
        x = m.tensor([1.0, 2.0], requires_grad=True)
        y = m.tensor([3.0, 4.0])
        cls.apply(x, y).sum().backward()
        assert cls.in_forward == (True, False) and cls.in_backward == (True, False)
        assert x.grad.tolist() == [3.0, 4.0]
        w = m.tensor([3.0, 4.0], requires_grad=True)
        cls.apply(w, x).sum().backward(inputs=[x])
        assert cls.in_backward == (True, True) and w.grad is None


def test_mark_non_differentiable():
    def f(m):
        x = m.tensor([1.0, 2.0], requires_grad=True)
        y, idx, scale = FN[m]["SortLike"].apply(x)
        assert not idx.requires_grad and not scale.requires_grad and y.requires_grad
        assert scale.grad_fn is None
        y.sum().backward()
        return x.grad, idx
    both(f)


def test_mark_dirty_returns_input_with_new_history():
    def f(m):
        a = m.ones(2, requires_grad=True)
        x = a.clone()
        y = FN[m]["Dirty"].apply(x)
        assert y is x and x._version == 2  # the in-place op, then mark_dirty
        y.sum().backward()
        return a.grad
    both(f)


def test_returning_an_input_gives_a_new_tensor():
    def f(m):
        x = m.ones(2, requires_grad=True)
        y = FN[m]["Identity"].apply(x)
        assert y is not x and x.is_leaf and not y.is_leaf
        y.sum().backward()
        return x.grad
    both(f)


def test_setup_context_style():
    def f(m):
        x = m.ones(2, requires_grad=True)
        FN[m]["SetupCtx"].apply(x, 3.0).sum().backward()
        return x.grad
    both(f)


def test_once_differentiable():
    def first(m):
        x = m.tensor([1.0, 2.0], requires_grad=True)
        FN[m]["Once"].apply(x).sum().backward()
        return x.grad
    both(first)

    def twice(m):
        x = m.tensor([1.0, 2.0], requires_grad=True)
        y = FN[m]["Once"].apply(x)
        g, = m.autograd.grad((y * y).sum(), x, create_graph=True)  # its grad input needs grad
        assert g.requires_grad
        g.sum().backward()
    same_error(twice, RuntimeError, "trying to differentiate twice")


@pytest.mark.parametrize("name,match", [("WrongShape", "returned an invalid gradient"),
                                        ("TooMany", "returned an incorrect number of gradients")])
def test_custom_function_bad_gradients_raise(name, match):
    def f(m):
        x = m.tensor([1.0, 2.0], requires_grad=True)
        FN[m][name].apply(x).sum().backward()
    same_error(f, RuntimeError, match)


# ---- gradcheck / gradgradcheck ------------------------------------------------------------

def _dbl(*shape):
    return ember.from_numpy(np.random.default_rng(0).uniform(0.5, 2, shape)).requires_grad_()


@pytest.mark.parametrize("fn", [
    lambda x: (x * x * x / (x + 3)).exp().sum(),
    lambda x: x.transpose(0, 1) @ x,
    lambda x: FN[ember]["Cube"].apply(x, 2.0),
    lambda x: (x.reshape(-1) - x.mean()).expand(2, 6) * 2,
])
def test_gradcheck_and_gradgradcheck_pass_on_correct_functions(fn):
    x = _dbl(2, 3)
    assert ember.autograd.gradcheck(fn, (x,))
    assert ember.autograd.gradgradcheck(fn, (x,))


def test_gradcheck_fails_on_a_wrong_backward():
    from torch.autograd.gradcheck import GradcheckError as TorchGradcheckError
    for m, err in ((ember, GradcheckError), (torch, TorchGradcheckError)):
        x = m.tensor([1.0, 2.0], dtype=m.float64, requires_grad=True)
        with pytest.raises(err):
            m.autograd.gradcheck(FN[m]["WrongGrad"].apply, (x,))
        assert m.autograd.gradcheck(FN[m]["WrongGrad"].apply, (x,), raise_exception=False) \
            is False
    assert issubclass(GradcheckError, RuntimeError)


def test_gradgradcheck_fails_on_a_wrong_double_backward():
    for m in (ember, torch):
        x = m.tensor([1.0, 2.0], dtype=m.float64, requires_grad=True)
        assert m.autograd.gradcheck(FN[m]["FlatSecondDerivative"].apply, (x,))
        assert m.autograd.gradgradcheck(FN[m]["FlatSecondDerivative"].apply, (x,),
                                        raise_exception=False) is False


def test_gradcheck_needs_an_input_that_requires_grad():
    same_error(lambda m: m.autograd.gradcheck(lambda x: x * 2, (m.ones(2, dtype=m.float64),)),
               ValueError)


# ---- anomaly detection --------------------------------------------------------------------

def test_detect_anomaly_names_the_function_returning_nan():
    for m in (ember, torch):
        x = m.tensor([1.0, 2.0], requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(RuntimeError,
                               match="Function 'MyFnBackward' returned nan values in its 0th "
                                     "output."):
                with m.autograd.detect_anomaly():
                    FN[m]["MyFn"].apply(x).sum().backward()
        assert not (m.autograd if m is ember else m).is_anomaly_enabled()


def test_detect_anomaly_on_built_in_op_and_without():
    for m in (ember, torch):
        x = m.tensor([0.0, 2.0], requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(RuntimeError, match="returned nan values"):
                with m.autograd.detect_anomaly():
                    (x / x).sum().backward()
        (x / x).sum().backward()  # without anomaly mode a NaN gradient is just a value
        assert np.isnan(x.grad.numpy()[0])


def test_set_detect_anomaly():
    ember.autograd.set_detect_anomaly(True)
    try:
        assert ember.autograd.is_anomaly_enabled()
    finally:
        ember.autograd.set_detect_anomaly(False)
    assert not ember.autograd.is_anomaly_enabled()


# ---- hooks --------------------------------------------------------------------------------

def test_tensor_hooks_on_leaf_and_non_leaf():
    def f(m):
        x = A(m)
        y = x * 2
        seen = []
        y.register_hook(lambda g: g * 10)
        h = x.register_hook(lambda g: seen.append(g.clone()))
        y.sum().backward()
        h.remove()
        (x * 2).sum().backward()
        assert len(seen) == 1
        return x.grad, seen[0]
    both(f)


def test_leaf_hook_can_replace_the_gradient():
    def f(m):
        x = A(m)
        x.register_hook(lambda g: g + 1)
        (x * 3).sum().backward()
        return x.grad
    both(f)


def test_retain_grad_hook_runs_last():
    def f(m):
        x = A(m)
        y = x * 2
        y.retain_grad()
        y.register_hook(lambda g: g * 10)
        y.sum().backward()
        return y.grad, x.grad
    both(f)


def test_post_accumulate_grad_hook():
    def f(m):
        x = A(m)
        seen = []
        h = x.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.clone()))
        (x * 2).sum().backward()
        h.remove()
        (x * 2).sum().backward()
        assert len(seen) == 1
        return seen[0], x.grad
    both(f)
    same_error(lambda m: (A(m) * 2).register_post_accumulate_grad_hook(lambda t: None),
               RuntimeError, "non-leaf")


def test_grad_fn_hooks():
    for m in (ember, torch):
        x = A(m)
        y = x.exp()
        seen = []
        y.grad_fn.register_hook(lambda gi, go: seen.append((gi[0].clone(), go[0].clone())))
        y.grad_fn.register_prehook(lambda go: (go[0] * 2,))
        y.sum().backward()
        gi, go = seen[0]
        np.testing.assert_allclose(go.numpy(), 2 * np.ones((2, 3)))
        np.testing.assert_allclose(gi.numpy(), 2 * np.exp(np.arange(1, 7).reshape(2, 3)))
        np.testing.assert_allclose(x.grad.numpy(), gi.numpy())


def test_grad_fn_graph_inspection():
    x = A(ember)
    y = x * 2
    z = y.exp()
    assert z.grad_fn.next_functions[0][0] is y.grad_fn
    acc = y.grad_fn.next_functions[0][0]
    assert acc.name() == "torch::autograd::AccumulateGrad"
    assert acc.variable is x
    assert isinstance(z.grad_fn, ember.autograd.graph.Node)


# ---- version counter and in-place semantics -----------------------------------------------

@pytest.mark.parametrize("f", [
    lambda m: (lambda x: (lambda y: ((y * y).sum(), y.add_(1)))(x * 2))(A(m))[0].backward(),
    lambda m: (lambda y: (y.sum(), y.mul_(2)))(A(m).exp())[0].backward(),
    lambda m: (lambda y: (y.sum(), y.detach().add_(1)))(A(m).exp())[0].backward(),
])
def test_modified_saved_tensor_raises(f):
    same_error(f, RuntimeError, "one of the variables needed for gradient computation has been "
                                "modified by an inplace operation")


def test_modified_saved_tensor_message_names_version_and_op():
    x = A(ember)
    y = x * 2
    z = (y * y).sum()
    y.add_(1)
    with pytest.raises(RuntimeError, match=r"\[torch.DoubleTensor \[2, 3\]\], which is output 0 "
                                           r"of Add, is at version 1; expected version 0"):
        z.backward()



def _inplace_on_operand_no_needed_gradient_reads(m):
    c = m.tensor([0.5, -1.0, 2.0], dtype=m.float64)  # no grad
    x = A(m)
    h = x.clone()
    y = h * c         # d(h*c)/dh = c: the node keeps c only
    z = h / c         # d(h/c)/dh = 1/c: the node keeps c only
    w = c - h * 2     # keeps nothing
    h.add_(1)
    (y.sum() + z.sum() + w.sum()).backward()
    return x.grad, h


def test_inplace_on_operand_that_no_needed_gradient_reads_is_allowed():
    both(_inplace_on_operand_no_needed_gradient_reads)


@pytest.mark.parametrize("op", ["mul", "rmul", "div"])
def test_inplace_on_operand_a_needed_gradient_reads_still_raises(op):
    def f(m):
        c = m.tensor([0.5, -1.0, 2.0], dtype=m.float64)
        h = A(m).clone()
        y = {"mul": lambda: h * c, "rmul": lambda: c * h, "div": lambda: h / c}[op]()
        c.add_(1)
        y.sum().backward()
    same_error(f, RuntimeError, r"\[torch.DoubleTensor \[3\]\] is at version 1; expected "
                                r"version 0 instead")


def test_raw_forward_reads_needs_input_grad_when_recording():
    seen = []

    class Probe(ember.autograd.Function):
        raw = True

        @staticmethod
        def forward(ctx, a, b, k):
            seen.append((ctx.needs_input_grad, len(ctx.next_functions)) if ctx._record
                        else None)
            return a * b * k

        @staticmethod
        def backward(ctx, g):
            return g, g, None

    x, c = ember.ones(2, requires_grad=True), ember.ones(2)
    y = Probe.apply(x, c, 2.0)
    Probe.apply(c, y, 2.0)
    Probe.apply(c, c, 2.0)
    with ember.no_grad():
        Probe.apply(x, c, 2.0)
    assert seen == [((True, False, False), 3), ((False, True, False), 3), None, None]
    assert y.grad_fn.next_functions[0][0].variable is x and y.grad_fn.next_functions[1][0] is None

def test_version_counter_shared_with_views_and_detach():
    for m in (ember, torch):
        x = m.ones(2, 3)
        v = x.view(-1)
        d = x.detach()
        assert x._version == v._version == d._version == 0
        v.add_(1)
        assert x._version == v._version == d._version == 1
        d.mul_(2)
        assert x._version == 2
        x.zero_()
        assert v._version == 3


def test_inplace_on_leaf_requiring_grad():
    same_error(lambda m: A(m).add_(1), RuntimeError,
               "a leaf Variable that requires grad is being used in an in-place operation.")
    same_error(lambda m: A(m).view(-1).mul_(2), RuntimeError,
               "a view of a leaf Variable that requires grad is being used in an in-place")

    def allowed(m):
        x = A(m)
        with m.no_grad():
            x.add_(1)
            x.view(-1).mul_(2)
        assert x.requires_grad and x.is_leaf
        return x
    both(allowed)


def _add_other(m):
    x = A(m)
    z = m.full((3,), 2.0, dtype=m.float64, requires_grad=True)
    y = x * 2
    y.add_(z * z)
    (y * y).sum().backward()
    return x.grad, z.grad


def _mul_non_leaf(m):
    x = A(m)
    y = x * 2
    y.mul_(3)
    assert y.grad_fn.name() == "MulBackward0"
    y.sum().backward()
    return x.grad


def _iops(m):
    x = A(m)
    y = x * 1
    y += 1
    y *= 3
    y -= x
    y /= 2
    y.sum().backward()
    return x.grad, y


def test_inplace_op_with_itself_as_argument_saves_the_modified_tensor():
    def f(m):
        y = A(m) * 1
        y *= y  # mul_ saved ``other``, which is ``y`` itself, then modified it
        y.sum().backward()
    same_error(f, RuntimeError, "modified by an inplace operation")


def _inplace_not_requiring_input(m):
    x = m.ones(3, dtype=m.float64)
    w = m.full((3,), 2.0, dtype=m.float64, requires_grad=True)
    x.mul_(w)
    assert not x.is_leaf and x.requires_grad
    (x * x).sum().backward()
    return w.grad


def _zero_fill(m):
    x = A(m)
    y = x * 1
    y.zero_()
    y2 = x * 1
    y2.fill_(2.0)
    (y * y + y2 * y2 + x).sum().backward()
    return x.grad


def _fill_with_tensor(m):
    x = A(m)
    z = m.tensor(4.0, dtype=m.float64, requires_grad=True)
    y = x * 1
    y.fill_(z)
    (y * y).sum().backward()
    return x.grad, z.grad


def _copy_broadcast(m):
    x = A(m)
    z = m.full((3,), 4.0, dtype=m.float64, requires_grad=True)
    y = x * 1
    y.copy_(z)
    (y * y).sum().backward()
    return x.grad, z.grad


def _retain_grad_follows_inplace(m):
    x = A(m)
    y = x * 2
    y.retain_grad()
    y.mul_(3)
    y.sum().backward()
    return x.grad, y.grad


def _exp_then_inplace_on_input(m):
    x = A(m)
    y = x * 2
    z = y.exp()  # exp saves its output, not y
    y.mul_(2)
    z.sum().backward()
    return x.grad


def _detached_then_inplace_with_grad(m):
    x = A(m)
    d = x.detach()
    w = m.ones(2, 3, dtype=m.float64, requires_grad=True)
    d.add_(w)
    d.sum().backward()
    assert x.grad is None and x.is_leaf
    return w.grad, x


def _data_modified_is_invisible(m):
    x = A(m)
    y = x.exp()
    y.data.mul_(2)
    y.sum().backward()
    return x.grad


VIEW_CASES = {
    "view_flat": lambda m, y: y.view(-1).mul_(2),
    "transpose": lambda m, y: y.transpose(0, 1).mul_(m.arange(1.0, 7.0, dtype=m.float64)
                                                     .reshape(3, 2)),
    "row": lambda m, y: y[0].mul_(2),
    "column_slice": lambda m, y: y[:, 1:].add_(1),
    "view_of_view": lambda m, y: y.view(-1)[2:].mul_(3),
    "transpose_then_row": lambda m, y: y.t()[1].mul_(2),
    "setitem_constant": lambda m, y: y.__setitem__(0, 5.0),
    "setitem_tensor": lambda m, y: y.__setitem__(
        1, m.tensor([1.0, 2.0, 3.0], dtype=m.float64, requires_grad=True) * 2),
    "permute_add_other": lambda m, y: y.permute(1, 0).add_(
        m.ones(3, 2, dtype=m.float64, requires_grad=True) * 5),
}


@pytest.mark.parametrize("name", sorted(VIEW_CASES))
def test_inplace_on_view_of_non_leaf_updates_base_gradient(name):
    def f(m):
        x = A(m)
        y = x * 1
        VIEW_CASES[name](m, y)
        assert y.grad_fn.name().endswith("CopySlices")
        (y * y).exp().sum().backward()
        return x.grad, y
    both(f)


def _view_used_after_base_inplace(m):
    x = A(m)
    y = x * 1
    v = y.view(-1)
    y.mul_(2)
    (v * v).sum().backward()
    return x.grad, v._version


def _sibling_views(m):
    x = A(m)
    y = x * 1
    v = y.view(-1)
    w = y.view(3, 2)
    v.mul_(2)
    (w * w).sum().backward()
    return x.grad


def _row_view_then_base_setitem(m):
    x = A(m)
    y = x * 1
    r = y[0]
    y[1] = 0
    r.mul_(3)
    (r * r).sum().backward()
    return x.grad


def _retained_view_after_inplace(m):
    x = A(m)
    y = x * 1
    v = y[1]
    v.retain_grad()
    v.mul_(2)
    (y * y).sum().backward()
    return v.grad, x.grad


def _view_of_no_grad_base(m):
    b = m.ones(6, dtype=m.float64)
    bv = b.view(2, 3)
    g = m.ones(2, 3, dtype=m.float64, requires_grad=True)
    bv.mul_(g * 3)
    assert b.requires_grad
    b.sum().backward()
    return g.grad


OTHER_INPLACE = [_mul_non_leaf, _add_other, _iops, _inplace_not_requiring_input, _zero_fill,
                 _fill_with_tensor, _copy_broadcast, _retain_grad_follows_inplace,
                 _exp_then_inplace_on_input, _detached_then_inplace_with_grad,
                 _data_modified_is_invisible, _view_used_after_base_inplace, _sibling_views,
                 _row_view_then_base_setitem, _retained_view_after_inplace, _view_of_no_grad_base]


@pytest.mark.parametrize("case", OTHER_INPLACE, ids=lambda f: f.__name__)
def test_inplace_autograd_matches_torch(case):
    both(case)


@pytest.mark.parametrize("f,exc", [
    (lambda m: m.ones(3, dtype=m.int64).add_(1.5), RuntimeError),
    (lambda m: m.ones(3).add_(m.ones(2, 3)), RuntimeError),
    (lambda m: m.ones(3).fill_(m.ones(2)), RuntimeError),
    (lambda m: m.ones(3).copy_(m.ones(2)), RuntimeError),
    (lambda m: m.ones(3).copy_([1, 2, 3]), TypeError),
])
def test_inplace_bad_inputs_raise(f, exc):
    same_error(f, exc)


def test_inplace_results_match_torch():
    def f(m):
        x = m.ones(2, 3)
        x.add_(m.arange(3.0))
        x.mul_(2)
        x += 1
        x *= 2
        x -= 1
        x /= 3
        x.add_(m.ones(3), alpha=2)
        return x, m.tensor(x._version)
    both(f)


def test_views_of_leaves_are_not_tracked_for_rebase():
    # a parameter viewed every step must not accumulate view records (a slow memory leak)
    w = ember.ones(3, 4, requires_grad=True)
    for _ in range(100):
        (w.t() * 2).sum().backward()
    assert w._views is None
    y = w * 1
    for _ in range(3):
        y.view(-1)
    y.mul_(2)  # the rebase prunes views that died
    assert len(y._views) == 0
