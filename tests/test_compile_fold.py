"""Constant folding in the default backend (NOTE [ Constant folding ] in
ember/_functorch/passes.py): constant subgraphs run once at compile time, results equal eager
ember's and torch's, and nothing that can change between calls is folded."""
import numpy as np
import pytest
import torch

import ember
from compilecheck import compile_keeping


_compile = compile_keeping


def _masked_head(lib):
    """Linear, then positions from a buffer and an arange, then a causal mask."""
    class Head(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lib.nn.Linear(6, 6)
            self.register_buffer("scale", lib.arange(6.0) / 4)

        def forward(self, x):
            t = x.shape[-2]
            mask = lib.ones(t, t).triu(1).bool()
            pos = lib.arange(6).to(x.dtype) * 0.5 + self.scale.exp()
            return (self.lin(x) + pos).masked_fill(mask, 0.0).softmax(-1)
    return Head


def _pair(dtype):
    ember.manual_seed(0)
    em = _masked_head(ember)().to(getattr(ember, dtype))
    tm = _masked_head(torch)().to(getattr(torch, dtype))
    with torch.no_grad():
        for (_, p), (_, q) in zip(em.state_dict().items(), tm.state_dict().items()):
            q.copy_(torch.from_numpy(p.numpy().copy()))
    return em, tm


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_constant_subgraphs_fold_and_equal_eager_and_torch(dtype):
    em, tm = _pair(dtype)
    em.eval()
    tm.eval()
    cm, regions = _compile(em)
    x = np.random.default_rng(0).standard_normal((6, 6))
    with ember.inference_mode():
        out = cm(ember.tensor(x, dtype=getattr(ember, dtype)))
        ref = em(ember.tensor(x, dtype=getattr(ember, dtype)))
    with torch.inference_mode():
        tref = tm(torch.tensor(x, dtype=getattr(torch, dtype)))
    np.testing.assert_array_equal(out.numpy(), ref.numpy())
    tol = 1e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(out.numpy(), tref.numpy(), rtol=tol, atol=tol)
    (r,) = regions
    # ones, triu, the bool cast, arange, its cast, mul, exp, add: eight ops, run once
    assert r.gm.meta_passes["fold"] == 8
    src = r.forward_src
    assert "_folded" not in src and "arange" not in src and "triu" not in src
    calls = [ln for ln in src.splitlines() if " = " in ln and not ln.strip().endswith("None")]
    assert len(calls) <= 5  # the product, its bias and position adds, the fill, the softmax
    # the captured graph is kept as recorded (a dynamic graph and create_graph replay it)
    assert any(n.target.__name__ == "triu" for n in r.gm.graph.nodes
               if n.op == "call_function")


def test_folded_graph_trains_as_eager():
    em = _pair("float64")[0]
    em2 = _pair("float64")[0]
    cm, regions = _compile(em2)
    x = ember.randn(6, 6, dtype=ember.float64)
    for m, f in ((em, em), (em2, cm)):
        f(x).pow(2).sum().backward()
    assert regions[0].gm.meta_passes["fold"] == 8
    for p, q in zip(em.parameters(), em2.parameters()):
        np.testing.assert_allclose(q.grad.numpy(), p.grad.numpy(), rtol=1e-12)


def test_a_buffer_written_in_place_between_calls_gives_fresh_numbers():
    em = _pair("float32")[0].eval()
    cm, regions = _compile(em)
    x = ember.randn(6, 6)
    with ember.no_grad():
        for k in range(4):
            if k:
                em.scale.add_(0.25)  # an in-place write: the folded positions are recomputed
            np.testing.assert_array_equal(cm(x).numpy(), em(x).numpy())
    assert len(regions) == 1 and regions[0].gm.meta_passes["fold"] == 8


def test_parameters_inputs_and_returned_values_are_never_folded():
    lin = ember.nn.Linear(3, 3)

    def f(x):
        w = lin.weight.exp()              # a parameter: read at each call
        c = ember.arange(3.0) * 2         # returned: the caller may write into it
        return x @ w + c, c, x.sum() * ember.ones(3)

    cf, regions = _compile(f)
    opt = ember.optim.SGD(lin.parameters(), lr=0.5)
    x = ember.randn(2, 3)
    for _ in range(3):
        y, c, s = cf(x)
        ey, ec, es = f(x)
        np.testing.assert_array_equal(y.detach().numpy(), ey.detach().numpy())
        np.testing.assert_array_equal(c.numpy(), ec.numpy())
        np.testing.assert_array_equal(s.detach().numpy(), es.detach().numpy())
        with ember.no_grad():
            c.add_(100.0)  # a write into a returned value never reaches the next call
        opt.zero_grad()
        y.sum().backward()
        opt.step()  # the parameter changes in place between calls
    assert len(regions) == 1
    # ones(3) is folded (its reader x.sum() * ... is not); exp of the parameter is not
    assert regions[0].gm.meta_passes["fold"] == 1
    assert "exp" in regions[0].forward_src


def test_batch_norm_running_statistics_are_not_folded():
    ember.manual_seed(0)
    nets = [ember.nn.Sequential(ember.nn.Linear(4, 4), ember.nn.BatchNorm1d(4))
            for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    cf, regions = _compile(nets[1])
    for k in range(3):
        x = ember.randn(8, 4)
        np.testing.assert_allclose(cf(x).detach().numpy(), nets[0](x).detach().numpy(),
                                   rtol=1e-5, atol=1e-6)
    for key, v in nets[0][1].state_dict().items():
        np.testing.assert_allclose(nets[1][1].state_dict()[key].numpy(), v.numpy(), rtol=1e-6)
    # in eval mode the statistics the training calls left are read, and follow later writes
    for n in nets:
        n.eval()
    with ember.no_grad():
        for k in range(2):
            x = ember.randn(8, 4)
            np.testing.assert_allclose(cf(x).numpy(), nets[0](x).numpy(), rtol=1e-5, atol=1e-6)
            for n in nets:
                n[1].running_mean.add_(1.0)


def test_a_folded_operand_of_a_product_trains_as_eager_and_follows_its_buffer():
    class Scaled(ember.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = ember.nn.Linear(6, 6)
            self.register_buffer("scale", ember.arange(6.0) / 4)

        def forward(self, x):
            return (self.lin(x) * (ember.arange(6.0) * 0.5 + self.scale.exp())).tanh()

    ember.manual_seed(0)
    nets = [Scaled().double() for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    cf, regions = _compile(nets[1])
    x = ember.randn(4, 6, dtype=ember.float64)
    for k in range(3):
        for n, f in ((nets[0], nets[0]), (nets[1], cf)):
            if k:
                with ember.no_grad():
                    n.scale.mul_(1.5)  # the product's backward reads the refreshed value
            n.zero_grad()
            f(x).sum().backward()
        for p, q in zip(nets[0].parameters(), nets[1].parameters()):
            np.testing.assert_allclose(q.grad.numpy(), p.grad.numpy(), rtol=1e-12)
    assert len(regions) == 1 and regions[0].gm.meta_passes["fold"] == 4  # arange mul exp add
