"""The mode stack on ``Function.apply`` (NOTE [ Modes ]) against PyTorch's modes."""
import pytest
import torch

import ember
from ember.overrides import TorchFunctionMode as ETFMode
from ember.utils._python_dispatch import TorchDispatchMode as ETDMode
from torch.overrides import TorchFunctionMode as TTFMode
from torch.utils._python_dispatch import TorchDispatchMode as TTDMode


def _counting(base, hook):
    class Count(base):
        def __init__(self):
            super().__init__()
            self.names = []

        def handler(self, func, types, args=(), kwargs=None):
            self.names.append(func.__name__ if hook == "__torch_function__"
                              else func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))
    setattr(Count, hook, Count.handler)
    return Count


def _program(m, x, w):
    y = (x * w + 1).relu().sum()
    y.backward()
    return y


def test_function_mode_sees_each_op_and_backward_as_torch():
    names = {}
    for m, base in ((ember, ETFMode), (torch, TTFMode)):
        x = m.tensor([1.0, -2.0, 3.0], requires_grad=True)
        w = m.tensor([0.5, 0.5, -1.0])
        with _counting(base, "__torch_function__")() as mode:
            _program(m, x, w)
        names[m.__name__] = mode.names
    assert names["ember"] == names["torch"] == ["mul", "add", "relu", "sum", "backward"]


def test_dispatch_mode_sees_forward_ops_as_torch_and_backward_ops_too():
    names = {}
    for m, base in ((ember, ETDMode), (torch, TTDMode)):
        x = m.tensor([1.0, -2.0, 3.0])
        w = m.tensor([0.5, 0.5, -1.0])
        with _counting(base, "__torch_dispatch__")() as mode:
            (x * w + 1).relu().sum()
        names[m.__name__] = mode.names
    assert names["ember"] == names["torch"] == ["mul", "add", "relu", "sum"]
    x = ember.tensor([1.0, -2.0, 3.0], requires_grad=True)
    with _counting(ETDMode, "__torch_dispatch__")() as mode:
        _program(ember, x, ember.tensor([0.5, 0.5, -1.0]))
    forward = ["mul", "add", "relu", "sum"]
    assert mode.names[:4] == forward and len(mode.names) > 4  # the backward's ops follow
    assert "threshold_backward" in mode.names


def test_function_modes_run_before_dispatch_modes_and_nest():
    order = []

    class F(ETFMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            order.append(("F", func.__name__))
            return func(*args, **(kwargs or {}))

    class D(ETDMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            order.append(("D", func.__name__))
            return func(*args, **(kwargs or {}))

    with D(), F():  # pushed in the other order: function modes still come first
        ember.ones(2).exp()
    assert order == [("F", "exp"), ("D", "exp")]
    assert ember.autograd.modes.current_modes() == ()


def test_rewriting_mode_matches_torch():
    """A mode that turns every add into a mul gives the same values in both frameworks."""
    outs = {}
    for m, base in ((ember, ETFMode), (torch, TTFMode)):
        class AddToMul(base):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                if func.__name__ == "add":
                    return m.mul(args[0], args[1])
                return func(*args, **(kwargs or {}))
        x = m.tensor([1.0, 2.0, 3.0], requires_grad=True)
        with AddToMul():
            y = (x + 3).sum()
        y.backward()
        outs[m.__name__] = (y.item(), x.grad.tolist())
    assert outs["ember"] == outs["torch"] == (18.0, [3.0, 3.0, 3.0])


def test_handler_runs_without_its_own_mode():
    seen = []

    class Inner(ETFMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            seen.append(func.__name__)
            out = func(*args, **(kwargs or {}))
            return out.neg().neg()  # ops inside the handler do not re-enter this mode
    with Inner():
        ember.ones(2).exp()
    assert seen == ["exp"]


def test_mode_exit_out_of_order_and_exceptions_restore_the_stack():
    class M(ETFMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            raise ValueError("boom")
    with pytest.raises(ValueError, match="boom"):
        with M():
            ember.ones(2).exp()
    assert ember.autograd.modes.current_modes() == ()
    assert ember.ones(2).exp().tolist() == pytest.approx([2.718281828] * 2)
    with pytest.raises(RuntimeError, match="not on the mode stack"):
        M().__exit__(None, None, None)


def test_no_mode_no_interception():
    """In a fresh process (no subclass defined yet) the fast path is on; a subclass turns the
    check on for good, as a mode does while it is active."""
    import subprocess
    import sys
    code = ("import ember; from ember._state import state; a = bool(state.intercept)\n"
            "class S(ember.Tensor): pass\n"
            "print(a, bool(state.intercept))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "True"]


def test_custom_function_forward_ops_are_seen():
    class Double(ember.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2
    mode = _counting(ETFMode, "__torch_function__")()
    with mode:
        Double.apply(ember.ones(2, requires_grad=True))
    assert mode.names == ["mul"]  # as torch: the ops of forward, not ``apply``


# ---- __torch_function__ on Tensor subclasses ----------------------------------------------
def _subclasses():
    out = {}
    for m in (ember, torch):
        class Sub(m.Tensor):
            pass

        class Logged(m.Tensor):
            calls = []

            @classmethod
            def __torch_function__(cls, func, types, args=(), kwargs=None):
                cls.calls.append(func.__name__)
                return super().__torch_function__(func, types, args, kwargs)
        out[m.__name__] = (Sub, Logged)
    return out


def test_subclass_results_keep_the_subclass_as_torch():
    subs = _subclasses()
    for m in (ember, torch):
        Sub, Logged = subs[m.__name__]
        s = m.tensor([1.0, 2.0]).as_subclass(Sub)
        for r in (s + 1, m.add(s, 1), s.sum(), s[0], s.exp()):
            assert type(r) is Sub, (m.__name__, type(r))
        p = m.nn.Parameter(m.ones(2))
        assert type(p * 2) is m.Tensor  # Parameter opts out, in both
        lg = m.tensor([1.0, 2.0]).as_subclass(Logged)
        Logged.calls.clear()
        out = (lg * 3).exp()
        assert type(out) is Logged
        assert [c for c in Logged.calls if c in ("mul", "exp")] == ["mul", "exp"]


def test_subclass_gradients_flow():
    class Sub(ember.Tensor):
        pass
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    s = x.as_subclass(Sub)
    (s * s).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0]


def test_subclass_not_implemented_everywhere_raises_type_error():
    class Refuse(ember.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            return NotImplemented
    r = ember.ones(2).as_subclass(Refuse)
    with pytest.raises(TypeError, match="no implementation found for 'exp'"):
        r.exp()
