"""Views whose in-place writes PyTorch forbids (NOTE [ Views ]), against torch: views of plain
tensors made in no_grad, the views unbind/split/chunk return, the views a custom Function
returns; and a view's requires_grad flag, which follows its base's."""
from __future__ import annotations

import pytest
import torch

import ember


def outcome(lib, fn):
    """What ``fn(lib)`` gives: its value, or the exception's type and full message."""
    try:
        return fn(lib)
    except Exception as e:  # noqa: BLE001 (the type and message are what is compared)
        return type(e).__name__, str(e)


def same(fn):
    got, want = outcome(ember, fn), outcome(torch, fn)
    assert got == want
    return want


MODES = {
    "no_grad": lambda L: L.no_grad(),
    "inference_mode": lambda L: L.inference_mode(),
}


# ---- requires_grad of a view follows its base ----------------------------------------------

@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("how", ["requires_grad_", "setattr"])
def test_view_of_grad_leaf_keeps_requires_grad(mode, how):
    def f(L):
        x = L.ones(3, requires_grad=True)
        with MODES[mode](L):
            v = x[:2]
        if how == "setattr":
            v.requires_grad = False
        else:
            v.requires_grad_(False)
        return v.requires_grad, v.is_leaf
    assert same(f) == (True, True)


@pytest.mark.parametrize("case", ["leaf", "non-leaf", "view in grad mode", "plain view"])
def test_requires_grad_false_elsewhere(case):
    def f(L):
        x = L.ones(3, requires_grad=case != "plain view")
        t = {"leaf": lambda: x, "non-leaf": lambda: x * 2, "view in grad mode": lambda: x[:2],
             "plain view": lambda: x[:2].requires_grad_()}[case]()
        t.requires_grad_(False)
        return t.requires_grad
    same(f)


@pytest.mark.parametrize("grad", [True, False])
def test_detach_inplace_on_any_view_raises(grad):
    def f(L):
        x = L.ones(3, requires_grad=grad)
        x[:2].detach_()
    assert same(f)[0] == "RuntimeError"


# ---- views of plain tensors made in no_grad ----------------------------------------------

VIEWS = {
    "slice": lambda x: x[:2],
    "select": lambda x: x[1],
    "view": lambda x: x.view(3, 2),
    "t": lambda x: x.t(),
    "unsqueeze": lambda x: x.unsqueeze(0),
    "transpose": lambda x: x.transpose(0, 1),
    "diagonal": lambda x: x.diagonal(),
    "view of view": lambda x: x[1:][0],
}
WRITES = {
    "mul_": lambda v, w: v.mul_(w),
    "copy_": lambda v, w: v.copy_(w),
    "add_": lambda v, w: v.add_(w),
    "setitem": lambda v, w: v.__setitem__(..., w),
}


@pytest.mark.parametrize("write", list(WRITES))
@pytest.mark.parametrize("view", list(VIEWS))
@pytest.mark.parametrize("operand_grad", [True, False])
def test_no_grad_view_of_plain_tensor_written_with_grad(view, write, operand_grad):
    def f(L):
        x = L.arange(6.0).reshape(3, 2)
        with L.no_grad():
            v = VIEWS[view](x)
        w = L.full(v.shape, 2.0, requires_grad=operand_grad)
        WRITES[write](v, w)
        return v.requires_grad, x.tolist()
    got = same(f)
    assert (got[0] == "RuntimeError") == operand_grad


def test_no_grad_view_of_plain_tensor_written_in_no_grad_or_view_of_it_in_grad():
    def f(L):
        x = L.ones(3)
        with L.no_grad():
            v = x[:2]
        w = L.ones(2, requires_grad=True)
        with L.no_grad():
            v.mul_(w)
        vv = v[:1]  # made in grad mode: inherits the mark
        vv.add_(w[:1])
    assert same(f)[0] == "RuntimeError"


@pytest.mark.parametrize("grad_write", [True, False])
def test_no_grad_view_of_plain_tensor_after_its_base_is_written(grad_write):
    def f(L):
        x = L.ones(3)
        with L.no_grad():
            v = x[:2]
        x.add_(L.ones(3, requires_grad=grad_write))
        return v.grad_fn is None, v.requires_grad
    got = same(f)
    assert (got[0] == "RuntimeError") == grad_write


# ---- multi-output views ------------------------------------------------------------------

PIECES = {
    "unbind": lambda y: y.unbind(0),
    "unbind(1)": lambda y: y.unbind(1),
    "split": lambda y: y.split(1),
    "split one piece": lambda y: y.split(2),
    "chunk": lambda y: y.chunk(2),
    "split sizes": lambda y: y.split([1, 1]),
    "torch.split": lambda y: (torch if isinstance(y, torch.Tensor) else ember).split(y, 1),
    "tensor_split": lambda y: y.tensor_split(2),  # PyTorch allows these
}
CASES = ["base requires grad", "leaf base", "plain base, operand requires grad", "plain",
         "base requires grad, no_grad", "plain base in no_grad, operand requires grad",
         "base requires grad, output 1"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("op", list(PIECES))
@pytest.mark.parametrize("write", ["mul_", "setitem"])
def test_multi_output_views_written_in_place(op, case, write):
    def f(L):
        x = L.ones(2, 3, requires_grad="requires grad" in case or case == "leaf base")
        y = x if case == "leaf base" or not x.requires_grad else x * 1
        if "no_grad" in case:
            with L.no_grad():
                outs = PIECES[op](y)
        else:
            outs = PIECES[op](y)
        o = outs[1 if case.endswith("output 1") else 0]
        w = L.full(o.shape, 2.0, requires_grad="operand requires grad" in case)
        if write == "mul_":
            o.mul_(w)
        else:
            o[0] = w[0]
        return o.grad_fn is not None, y.tolist()
    got = same(f)
    if op == "split one piece" and case.endswith("output 1"):
        assert got[0] == "IndexError"
    elif op != "tensor_split" and case != "plain":
        assert got[0] == "RuntimeError"


def test_view_of_multi_output_view_inherits_the_mark():
    def f(L):
        y = L.ones(2, 3, requires_grad=True) * 1
        a, _ = y.unbind(0)
        a[:2].mul_(2)
    assert "returns multiple views" in same(f)[1]


# ---- views a custom Function returns -----------------------------------------------------

def _fn(L, how):
    class F(L.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return {"slice": lambda: x[:2], "as is": lambda: x, "view": lambda: x.view(3),
                    "clone": lambda: x.clone()}[how]()

        @staticmethod
        def backward(ctx, g):
            return L.cat([g, g.new_zeros(1)]) if how == "slice" else g
    return F


# (not an input returned as-is without recording: ember returns the input itself there, where
# PyTorch returns a view of it made in no_grad)
@pytest.mark.parametrize("how, case", [
    (how, case) for how in ["slice", "as is", "view", "clone"]
    for case in ["recorded", "plain input, operand requires grad", "made in no_grad",
                 "plain input, plain operand"]
    if not (how == "as is" and case != "recorded")])
def test_custom_function_views_written_in_place(how, case):
    def f(L):
        F = _fn(L, how)
        x = L.ones(3, requires_grad=case in ("recorded", "made in no_grad"))
        y = x * 1 if x.requires_grad else x
        if case == "made in no_grad":
            with L.no_grad():
                o = F.apply(y)
        else:
            o = F.apply(y)
        w = L.full(o.shape, 2.0, requires_grad=case.endswith("operand requires grad"))
        o.mul_(w if case != "recorded" else 2.0)
        return o.grad_fn is not None, y.tolist()
    got = same(f)
    if how != "clone" and case != "plain input, plain operand":
        assert got[0] == "RuntimeError"
