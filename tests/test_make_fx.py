"""make_fx (op-level capture of a real run) against torch's make_fx and eager ember."""
import operator

import numpy as np
import pytest
import torch
from torch.fx.experimental.proxy_tensor import make_fx as torch_make_fx

import ember
import ember.nn as nn
import ember.nn.functional as F
from ember.autograd.modes import Op
from ember.fx import GraphModule
from ember.fx.experimental.proxy_tensor import make_fx, record


def _mlp():
    ember.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def _ops(gm):
    return [n.target.__name__ for n in gm.graph.nodes
            if n.op == "call_function" and isinstance(n.target, Op)]


@pytest.mark.parametrize("dtype", [ember.float32, ember.float64])
def test_mlp_graph_replays_on_new_inputs(dtype):
    m = _mlp().to(dtype)
    x, y = ember.randn(5, 4, dtype=dtype), ember.tensor([0, 1, 2, 0, 1])

    def f(x, y):
        return F.cross_entropy(m(x), y)
    gm = make_fx(f)(x, y)
    assert isinstance(gm, GraphModule)
    assert _ops(gm) == ["addmm", "relu", "addmm", "nll_loss"]
    phs = [n.name for n in gm.graph.nodes if n.op == "placeholder"]
    assert phs == ["x_1", "y_1"]  # PyTorch's names: the parameter's name + "_1"
    attrs = [n.target for n in gm.graph.nodes if n.op == "get_attr"]
    assert attrs == [f"_param_constant{i}" for i in range(4)]
    assert "addmm" in gm.code and "def forward(self, x_1, y_1)" in gm.code
    x2, y2 = ember.randn(5, 4, dtype=dtype), ember.tensor([2, 2, 1, 0, 0])
    np.testing.assert_array_equal(gm(x2, y2).detach().numpy(), f(x2, y2).detach().numpy())
    # the replay is differentiable: same gradients as eager
    gm(x2, y2).backward()
    g1 = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    f(x2, y2).backward()
    for a, p in zip(g1, m.parameters()):
        np.testing.assert_allclose(a.numpy(), p.grad.numpy(), rtol=1e-6)


def test_same_numbers_as_torch_make_fx():
    xs = np.random.default_rng(0).standard_normal((3, 4)).astype("float32")

    def body(m):
        return lambda x: (m.tanh(x) * 2 + x.exp()).sum(1)
    ours = make_fx(body(ember))(ember.tensor(xs))
    theirs = torch_make_fx(body(torch))(torch.tensor(xs))
    np.testing.assert_allclose(ours(ember.tensor(xs + 1)).numpy(),
                               theirs(torch.tensor(xs + 1)).numpy(), rtol=1e-6)
    assert len(_ops(ours)) == len([n for n in theirs.graph.nodes if n.op == "call_function"])


def test_backward_ops_are_recorded():
    m = _mlp()
    x = ember.randn(5, 4)

    def f(x):
        loss = m(x).sum()
        loss.backward()
        return loss
    ops = _ops(make_fx(f)(x))
    assert ops[:4] == ["addmm", "relu", "addmm", "sum"]
    assert "threshold_backward" in ops and ops.count("mm") >= 3


def test_saved_outputs_read_by_backward_are_their_nodes():
    x = ember.randn(4, 3, requires_grad=True)

    def f(x):
        y = ember.exp(x)
        (g,) = ember.autograd.grad(y.sum(), x)
        return g
    gm = make_fx(f)(x)
    # exp's backward reads exp's own output: the exp node, not a baked constant
    assert not [n for n in gm.graph.nodes if n.op == "get_attr" and
                n.target.startswith("_tensor_constant") and n.meta["val"].shape == (4, 3)]
    x2 = ember.randn(4, 3)
    np.testing.assert_allclose(gm(x2).numpy(), np.exp(x2.numpy()), rtol=1e-6)


def test_multi_result_ops_get_getitem_nodes():
    def f(x):
        v, i = x.max(1)
        return v * 2, i
    gm = make_fx(f)(ember.randn(3, 5))
    getitems = [n for n in gm.graph.nodes if n.target is operator.getitem]
    assert len(getitems) == 2
    x = ember.randn(3, 5)
    v, i = gm(x)
    np.testing.assert_array_equal(v.numpy(), x.max(1).values.numpy() * 2)
    np.testing.assert_array_equal(i.numpy(), x.max(1).indices.numpy())


def test_captured_tensors_are_constants_and_fresh_ones_are_listed():
    c = ember.ones(3)

    def f(x):
        return x + c + ember.full((3,), 2.0)
    rec = record(f, (ember.zeros(3),), known=[c])
    gm = rec.graph_module()
    assert [n.target for n in gm.graph.nodes if n.op == "get_attr"] == \
        ["_tensor_constant0", "_tensor_constant1"]
    assert rec.fresh_constants == ["_tensor_constant1"]  # made during the call
    np.testing.assert_array_equal(gm(ember.ones(3)).numpy(), [4.0, 4.0, 4.0])
    assert gm._tensor_constant0 is c


def test_in_place_ops_and_nested_inputs():
    def f(pair, scale):
        a, b = pair
        out = a * scale
        out.add_(b)
        return {"out": out}
    a, b = ember.randn(2, 2), ember.randn(2, 2)
    gm = make_fx(f)((a, b), 3.0)
    assert _ops(gm) == ["mul", "add", "copy_"]
    # placeholders: one per flattened leaf, plain values too (their value is baked in)
    assert len([n for n in gm.graph.nodes if n.op == "placeholder"]) == 3
    out = gm(b, a, 3.0)["out"]
    np.testing.assert_allclose(out.numpy(), (b * 3 + a).numpy(), rtol=1e-6)


def test_decomposition_table_replaces_an_op():
    relu = ember.autograd.modes.op_for(type(ember.relu(ember.ones(1, requires_grad=True))
                                            .grad_fn))

    def decomposed(x):
        return ember.clamp(x, min=0)
    gm = make_fx(lambda x: ember.relu(x) * 2, decomposition_table={relu: decomposed})(
        ember.randn(4))
    ops = _ops(gm)
    assert "relu" not in ops and ops[-1] == "mul"
    x = ember.randn(4)
    np.testing.assert_array_equal(gm(x).numpy(), (ember.relu(x) * 2).numpy())


def test_bad_tracing_mode_raises_as_torch():
    with pytest.raises(AssertionError, match="tracing_mode must be real/fake/symbolic"):
        make_fx(lambda x: x, tracing_mode="bogus")
    with pytest.raises(AssertionError):
        torch_make_fx(lambda x: x, tracing_mode="bogus")(torch.ones(1))


def test_print_readable_and_recording_leaves_no_mode_behind():
    gm = make_fx(lambda x: x.sin())(ember.randn(2))
    assert "class GraphModule" in gm.print_readable(print_output=False)
    assert ember.autograd.modes.current_modes() == ()


def test_batch_norm_replay_updates_running_stats_as_eager():
    ember.manual_seed(0)
    bn = nn.BatchNorm1d(3)
    x = ember.randn(8, 3)
    gm = make_fx(bn)(x)
    mean_after_one = bn.running_mean.clone()
    gm(x)  # the replay updates the same buffers, as a second eager call would
    ref = nn.BatchNorm1d(3)
    ref(x)
    ref(x)
    np.testing.assert_allclose(bn.running_mean.numpy(), ref.running_mean.numpy(), rtol=1e-6)
    assert not np.allclose(bn.running_mean.numpy(), mean_after_one.numpy())
    # the counter is bumped by Python code, not by an op: the graph does not replay it
    assert int(bn.num_batches_tracked) == 1


def test_dropout_mask_is_drawn_at_replay_from_the_same_stream():
    def f(x):
        return F.dropout(x, 0.5, training=True) * 2
    x = ember.ones(64)
    gm = make_fx(f)(x)
    assert "dropout_mask" in _ops(gm) and not gm.graph.find_nodes(op="get_attr")
    ember.manual_seed(3)
    a = gm(x)
    ember.manual_seed(3)
    b = f(x)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert 0 < int((a == 0).sum()) < 64


def test_inplace_op_on_a_tensor_requiring_grad_replays_its_input():
    """ReLU(inplace=True) after a layer: the in-place op runs on a copy with the layer
    output's history, which must be that output's node, not a constant of this call."""
    from ember.fx.experimental.proxy_tensor import make_fx
    for m in (nn.Sequential(nn.Linear(4, 4), nn.ReLU(inplace=True)),
              nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.ReLU(inplace=True)).eval()):
        gm = make_fx(m)(ember.randn(3, 4))
        x = ember.randn(3, 4)
        assert ember.allclose(gm(x), m(x))
