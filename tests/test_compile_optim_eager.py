"""The optimizers ``ember.compile`` runs eagerly, as PyTorch's compile does (their ``step`` is
``torch.compiler.disable``d there: "optimizer ... step not supported"): SparseAdam (sparse
gradients) and LBFGS (a closure re-run under data-dependent control flow).  Inside a compiled
function their step is a graph break naming the optimizer and why, ``fullgraph=True`` raises
it, and the numbers are eager's (and PyTorch's)."""
import numpy as np
import pytest
import torch

import ember
from ember._dynamo.exc import Unsupported

_X = np.random.default_rng(0).standard_normal((8, 3))
_Y = np.random.default_rng(1).standard_normal((8, 1))
_W = np.random.default_rng(2).standard_normal((1, 3))
_E = np.random.default_rng(3).standard_normal((10, 3))
_IDX = [[1, 2, 2], [0, 9, 1], [4, 4, 4], [7, 1, 3]]


def _lbfgs(lib, **kw):
    """A linear least-squares model, its LBFGS and the training function (closure inside)."""
    m = lib.nn.Linear(3, 1).double()
    with lib.no_grad():
        m.weight.copy_(lib.tensor(_W))
        m.bias.zero_()
    opt = lib.optim.LBFGS(m.parameters(), lr=0.5, max_iter=5, **kw)
    x, y = lib.tensor(_X), lib.tensor(_Y)

    def step():
        def closure():
            opt.zero_grad()
            loss = ((m(x) - y) ** 2).mean()
            loss.backward()
            return loss
        return opt.step(closure)
    return m, opt, step


def _sparse(lib):
    emb = lib.nn.Embedding(10, 3, sparse=True).double()
    with lib.no_grad():
        emb.weight.copy_(lib.tensor(_E))
    opt = lib.optim.SparseAdam(emb.parameters(), lr=0.1)

    def step(i):
        opt.zero_grad()
        loss = (emb(i) ** 2).sum()
        loss.backward()
        opt.step()
        return loss
    return emb, opt, step


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_step_inside_a_compiled_function_breaks_with_eagers_numbers(line_search_fn):
    ember.compiler.reset()
    me, _, se = _lbfgs(ember, line_search_fn=line_search_fn)
    mc, _, sc = _lbfgs(ember, line_search_fn=line_search_fn)
    mt, _, st = _lbfgs(torch, line_search_fn=line_search_fn)
    cf = ember.compile(sc)
    for _ in range(6):
        a, b, t = se(), cf(), st()
        assert float(b) == float(a)
        assert float(b) == pytest.approx(t.item(), rel=1e-10)
    for e, c, t in zip(me.parameters(), mc.parameters(), mt.parameters()):
        np.testing.assert_array_equal(c.detach().numpy(), e.detach().numpy())
        np.testing.assert_allclose(c.detach().numpy(), t.detach().numpy(), rtol=1e-9)
    reasons = [r.reason for r in ember.compiler.explain(sc)().break_reasons]
    assert "LBFGS step not supported" in reasons[0] and "closure" in reasons[0]
    # its writes to the parameters are that break's, not a second one
    assert not any("modified outside ops" in r for r in reasons)


def test_lbfgs_fullgraph_raises_naming_it_and_the_line():
    _, _, step = _lbfgs(ember)
    with pytest.raises(Unsupported, match=r"LBFGS\.step\(\).*step not supported") as info:
        ember.compile(step, fullgraph=True)()
    assert "return opt.step(closure)" in str(info.value)


def test_compiled_lbfgs_step_runs_its_own_step():
    # ember.compile(opt.step) on LBFGS is its eager step with the closure, not the base one
    me, oe, _ = _lbfgs(ember)
    mc, oc, _ = _lbfgs(ember)
    x, y = ember.tensor(_X), ember.tensor(_Y)

    def closure_of(m, opt):
        def closure():
            opt.zero_grad()
            loss = ((m(x) - y) ** 2).mean()
            loss.backward()
            return loss
        return closure
    step = ember.compile(oc.step)
    for _ in range(4):
        assert float(step(closure_of(mc, oc))) == float(oe.step(closure_of(me, oe)))
    assert step.kind is None and step.version is None
    np.testing.assert_array_equal(mc.weight.detach().numpy(), me.weight.detach().numpy())
    with pytest.raises(TypeError):
        step()  # LBFGS.step needs its closure, as PyTorch's


def test_sparse_adam_inside_a_compiled_function_breaks_with_eagers_numbers():
    ember.compiler.reset()
    ee, _, se = _sparse(ember)
    ec, oc, sc = _sparse(ember)
    et, _, st = _sparse(torch)
    cf = ember.compile(sc)
    for idx in _IDX:
        a = se(ember.tensor(idx))
        b = cf(ember.tensor(idx))
        t = st(torch.tensor(idx))
        assert float(b) == float(a)
        assert float(b) == pytest.approx(t.item(), rel=1e-12)
    np.testing.assert_array_equal(ec.weight.detach().numpy(), ee.weight.detach().numpy())
    np.testing.assert_allclose(ec.weight.detach().numpy(), et.weight.detach().numpy(),
                               rtol=1e-12)
    out = ember.compiler.explain(sc)(ember.tensor(_IDX[0]))
    reasons = [r.reason for r in out.break_reasons]
    assert reasons == ["SparseAdam.step() inside the function: optimizer SparseAdam step not "
                       "supported (its gradients are sparse: the entries it updates, and their "
                       "number, depend on the data); it runs eagerly"]
    with pytest.raises(Unsupported, match="SparseAdam step not supported"):
        ember.compile(sc, fullgraph=True)(ember.tensor(_IDX[0]))


def test_compiled_sparse_adam_step_is_its_eager_step():
    ee, oe, _ = _sparse(ember)
    ec, oc, _ = _sparse(ember)
    step = ember.compile(oc.step)
    for idx in _IDX:
        for emb, opt, s in ((ee, oe, oe.step), (ec, oc, step)):
            opt.zero_grad()
            (emb(ember.tensor(idx)) ** 2).sum().backward()
            s()
    assert step.kind is None
    np.testing.assert_array_equal(ec.weight.detach().numpy(), ee.weight.detach().numpy())
