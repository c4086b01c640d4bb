"""Constructs of public programs that call ``torch.compile`` (pytorch/tutorials' set_stance and
compiled-optimizer recipes, gpt-fast's generate.py, llm.c's train_gpt2.py): the compiler's
stances, ``torch._logging.set_logs``, the ``torch._inductor``/``torch._functorch`` config
names, in-place samplers as graph nodes, and tensor indices read per call (NOTE [ Tensor
indices ]: they were baked into the graph before)."""
import numpy as np
import pytest
import torch

import ember
import ember.nn as nn
from ember._dynamo import exc

pytestmark = pytest.mark.usefixtures("fresh_compile")  # conftest: empty caches and counters


@pytest.fixture(autouse=True)
def _default_stance():
    yield
    ember.compiler.set_stance("default")


def _sign_fn():
    @ember.compile
    def foo(x):
        return x + 1 if ember.compiler.is_compiling() else x - 1
    return foo


# ---- torch.compiler.set_stance -----------------------------------------------------------------
def test_force_eager_as_function_context_manager_and_decorator():
    foo, z = _sign_fn(), ember.zeros(3)
    assert foo(z).tolist() == [1, 1, 1]  # compiled (the capture saw is_compiling())

    @ember.compiler.set_stance("force_eager")
    def bar(x):
        return foo(x)
    assert bar(z).tolist() == [-1, -1, -1]
    assert foo(z).tolist() == [1, 1, 1]  # the decorator applies only inside bar
    with ember.compiler.set_stance("force_eager"):
        assert foo(z).tolist() == [-1, -1, -1]
    assert foo(z).tolist() == [1, 1, 1]
    ember.compiler.set_stance("force_eager")
    assert foo(z).tolist() == [-1, -1, -1]
    ember.compiler.set_stance("default")
    assert foo(z).tolist() == [1, 1, 1]


def test_force_eager_skips_a_compiled_modules_fast_path():
    lin = nn.Linear(3, 2)
    m = ember.compile(lin)
    x = ember.randn(1, 3)
    for _ in range(3):
        m(x)  # the fast guard is set up
    seen = []
    lin.register_forward_hook(lambda mod, i, o: seen.append(1))
    with ember.compiler.set_stance("force_eager"):
        m(x)
    assert seen == [1]  # the module itself ran


def test_force_eager_runs_a_compiled_optimizer_step_eagerly(monkeypatch):
    from ember._dynamo.optim_step import CompiledStep
    planned = []
    plan = CompiledStep._plan
    monkeypatch.setattr(CompiledStep, "_plan", lambda self: planned.append(1) or plan(self))
    net = nn.Linear(3, 2)
    opt = ember.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    step = ember.compile(opt.step)
    for stance, want in (("force_eager", 0), ("default", 2)):
        with ember.compiler.set_stance(stance):
            for _ in range(2):
                opt.zero_grad()
                net(ember.randn(4, 3)).sum().backward()
                step()
        assert len(planned) == want


def test_stance_change_inside_a_compiled_function_raises_as_torch():
    @ember.compile
    def baz(x):
        with ember.compiler.set_stance("force_eager"):
            return x + 1

    @ember.compiler.set_stance("force_eager")
    def inner(x):
        return x + 1

    @ember.compile
    def outer(x):
        return inner(x)
    for fn in (baz, outer):
        with pytest.raises(AssertionError, match="Attempt to trace forbidden callable"):
            fn(ember.zeros(3))


def test_fail_on_recompile_raises_runtime_error_naming_the_function():
    @ember.compile
    def my_big_model(x):
        return ember.relu(x)
    my_big_model(ember.randn(3))
    with ember.compiler.set_stance("fail_on_recompile"):
        my_big_model(ember.randn(3))  # cached: fine
        with pytest.raises(RuntimeError, match="(?s)Detected recompile when torch.compile "
                           "stance is 'fail_on_recompile'.*my_big_model.*guard failure"):
            my_big_model(ember.randn(4, 2))

    @ember.compile
    def fresh(x):
        return x * 2
    with ember.compiler.set_stance("fail_on_recompile"):  # a first compile too, as torch's
        with pytest.raises(RuntimeError, match="fail_on_recompile"):
            fresh(ember.ones(2))


def test_eager_on_recompile_runs_new_guards_eagerly_and_keeps_cached_code():
    foo = _sign_fn()
    assert foo(ember.zeros(3)).tolist() == [1, 1, 1]
    with ember.compiler.set_stance("eager_on_recompile"):
        assert foo(ember.zeros(3)).tolist() == [1, 1, 1]
        assert foo(ember.zeros(4)).tolist() == [-1] * 4
        assert foo(ember.zeros(3)).tolist() == [1, 1, 1]
    with ember.compiler.set_stance("eager_on_recompile"):  # a first call: eager too
        assert _sign_fn()(ember.zeros(2)).tolist() == [-1, -1]


def test_eager_then_compile_counts_backend_calls_as_torch():
    def counted(t):
        calls = []

        def backend(gm, example_inputs):
            calls.append(1)
            return gm
        g = t.compile(lambda x: x * 2, backend=backend)
        counts = []
        with t.compiler.set_stance("eager_then_compile"):
            for n in (2, 2, 3):  # (a fourth size: ember hands a custom backend each size's graph)
                assert g(t.ones(n)).tolist() == [2.0] * n
                counts.append(len(calls))
        return counts
    # PyTorch 2.13 counts [0, 1, 2] too (checked by hand: running torch.compile in this
    # process changes torch's own state, and the distribution tests read torch after this)
    assert counted(ember) == [0, 1, 2]


@pytest.mark.parametrize("call,err,match", [
    (lambda: ember.compiler.set_stance("force_eager", force_backend="eager"), RuntimeError,
     "non-default stance cannot have force_backend set"),
])
def test_bad_stances_raise(call, err, match):
    with pytest.raises(err, match=match):
        call()
# an unknown stance raises at the compiled call, as PyTorch's: tests/test_compile_parity.py


def test_force_backend_compiles_with_that_backend():
    seen = []

    def backend(gm, example_inputs):
        seen.append(gm)
        return gm
    f = ember.compile(lambda x: x.sin())
    with ember.compiler.set_stance("default", force_backend=backend):
        out = f(ember.ones(2))
    assert len(seen) == 1 and np.allclose(out.numpy(), np.sin(1.0))


# ---- torch._logging, torch._inductor, torch._functorch ----------------------------------------
def test_set_logs_turns_recompile_logs_on_and_off(capsys):
    f = ember.compile(lambda x: x + 1, dynamic=False)
    ember._logging.set_logs(recompiles=True)
    try:
        f(ember.ones(2))
        f(ember.ones(3))
        assert "recompiling" in capsys.readouterr().err
        ember._logging.set_logs()
        f(ember.ones(4))
        assert "recompiling" not in capsys.readouterr().err
    finally:
        from ember._dynamo import eval_frame
        eval_frame._logs_set[0] = None


@pytest.mark.parametrize("kwargs,err", [({"recompiles": 1}, ValueError),
                                        ({"no_such_log": True}, TypeError)])
def test_set_logs_bad_arguments_raise_as_torch(kwargs, err):
    for t in (ember, torch):
        with pytest.raises(err):
            t._logging.set_logs(**kwargs)
    torch._logging.set_logs()


def test_inductor_and_functorch_config_names_programs_set():
    from ember.compat import install, uninstall
    install()
    try:
        import torch as alias  # ember under the alias, as ``ember run`` gives it
        import torch._inductor.config as config
        import torch._dynamo.config  # noqa: F401  (gpt-fast's imports)
        assert config is ember._inductor.config and alias._inductor.config is config
        assert hasattr(config, "coordinate_descent_tuning")  # llm.c's check
        config.coordinate_descent_tuning = True
        config.triton.unique_kernel_names = True
        alias._functorch.config.enable_autograd_cache = True
        with alias._inductor.utils.fresh_inductor_cache():
            pass
    finally:
        uninstall()
        ember._inductor.config.coordinate_descent_tuning = False
    real = torch._inductor.config
    for name in ("fx_graph_cache", "freezing", "max_autotune", "epilogue_fusion"):
        assert getattr(ember._inductor.config, name) == getattr(real, name), name
    assert ember._inductor.config.triton.cudagraph_trees == real.triton.cudagraph_trees


def test_config_patch_restores_values():
    cfg = ember._inductor.config

    @cfg.patch("triton.cudagraphs", True)
    def inside():
        return cfg.triton.cudagraphs
    assert inside() is True and cfg.triton.cudagraphs is False
    with cfg.patch({"freezing": True}, max_autotune=True):
        assert cfg.freezing and cfg.max_autotune
    assert not cfg.freezing and not cfg.max_autotune
    with ember._dynamo.config.patch(cache_size_limit=2):
        assert ember._dynamo.config.cache_size_limit == 2
    assert ember._dynamo.config.cache_size_limit == 8


# ---- in-place samplers are graph nodes ----------------------------------------------------------
def _sample(t, probs):
    """gpt-fast's multinomial_sample_one_no_sync: an exponential draw made in place."""
    q = t.empty_like(probs).exponential_(1)
    return t.argmax(probs / q, dim=-1, keepdim=True)


def test_exponential_draw_is_a_node_with_eagers_stream():
    probs = ember.softmax(ember.randn(2, 50), -1)
    cf = ember.compile(lambda p: _sample(ember, p), fullgraph=True)
    for seed in range(4):
        ember.manual_seed(seed)
        a = cf(probs)
        ember.manual_seed(seed)
        b = _sample(ember, probs)
        assert a.tolist() == b.tolist()
    assert cf.explained.breaks == []


@pytest.mark.parametrize("name,args", [("uniform_", (-1.0, 2.0)), ("normal_", (1.0, 0.5)),
                                       ("bernoulli_", (0.3,)), ("random_", (0, 7))])
def test_inplace_samplers_replay_eagers_stream(name, args):
    def f(x):
        return x + getattr(ember.empty(5), name)(*args)
    cf = ember.compile(f, fullgraph=True)
    for seed in range(3):
        ember.manual_seed(seed)
        a = cf(ember.zeros(5))
        ember.manual_seed(seed)
        assert a.tolist() == f(ember.zeros(5)).tolist()


# ---- tensor indices ----------------------------------------------------------------------------
KEYS = {
    "x[i]": lambda x, i: x[i],
    "x[:, i]": lambda x, i: x[:, i],
    "x[None, None, i]": lambda x, i: x[None, None, i],
    "x[..., i]": lambda x, i: x[..., i],
    "x[1, i]": lambda x, i: x[1, i],
    "x[i, 1:]": lambda x, i: x[i, 1:],
}
INDICES = ([0, 2], [-1], [[1, 0], [2, 2]], 1)


@pytest.mark.parametrize("key", KEYS)
def test_tensor_index_is_read_per_call_and_matches_torch(key):
    fn = KEYS[key]
    data = np.arange(27.0).reshape(3, 3, 3)
    x = ember.tensor(data, requires_grad=True)
    cf = ember.compile(fn)
    for idx in INDICES:
        i = ember.tensor(idx)
        out = cf(x, i)
        tx = torch.tensor(data, requires_grad=True)
        ref = fn(tx, torch.tensor(idx))
        np.testing.assert_array_equal(out.detach().numpy(), ref.detach().numpy())
        g = np.linspace(-1, 1, ref.numel()).reshape(tuple(ref.shape))
        (gx,) = ember.autograd.grad(out, x, ember.tensor(g))
        ref.backward(torch.tensor(g))
        np.testing.assert_allclose(gx.numpy(), tx.grad.numpy(), rtol=1e-12)
    assert cf.explained.breaks == []


def test_uint8_index_is_a_mask_not_positions():
    x = ember.arange(4.0)
    f = lambda m: x[m] * 1  # noqa: E731
    cf = ember.compile(f)
    for m in ([1, 0, 1, 1], [0, 1, 0, 0]):
        m = ember.tensor(m, dtype=ember.uint8)
        with pytest.warns(UserWarning):  # PyTorch's deprecation of uint8 masks
            np.testing.assert_array_equal(cf(m).numpy(), x.numpy()[np.array(m.tolist()) > 0])


def test_gathered_targets_are_not_baked_into_the_graph():
    ember.manual_seed(0)
    lin = nn.Linear(4, 3)

    def loss_fn(x, y):  # two tensor indices: a break, with eager's numbers
        logp = lin(x).log_softmax(-1)
        return -logp[ember.arange(x.shape[0]), y].mean()
    cf = ember.compile(loss_fn)
    x = ember.randn(5, 4)
    for y in ([0, 1, 2, 0, 1], [2, 2, 2, 2, 2], [1, 0, 1, 0, 1]):
        y = ember.tensor(y)
        assert float(cf(x, y)) == float(loss_fn(x, y))


def test_bool_mask_index_breaks_with_eagers_numbers():
    f = lambda x: x[x > 0].sum()  # noqa: E731
    cf = ember.compile(f)
    for _ in range(3):
        x = ember.randn(6)
        assert float(cf(x)) == float(f(x))
    assert "indexing with a tensor" in ember.compiler.explain(f)(x).break_reasons[0].reason
    with pytest.raises(exc.Unsupported, match="indexing with a tensor"):
        ember.compile(f, fullgraph=True)(ember.randn(6))


class KVCache(nn.Module):
    """gpt-fast's KV cache: a buffer written at the positions of each call."""

    def __init__(self, t):
        super().__init__()
        self.register_buffer("k_cache", t.zeros(1, 2, 8, 4))

    def forward(self, input_pos, k_val):
        k_out = self.k_cache
        k_out[:, :, input_pos] = k_val
        return k_out.sum(2)


def test_kv_cache_write_compiles_fullgraph_and_equals_eager():
    m, ref = KVCache(ember), KVCache(ember)
    cf = ember.compile(lambda pos, v: m(pos, v), fullgraph=True)
    for step in range(5):
        pos = ember.tensor([step] if step < 3 else [step, step + 1], dtype=ember.int32)
        v = ember.randn(1, 2, pos.shape[0], 4)
        np.testing.assert_array_equal(cf(pos, v).numpy(), ref(pos, v).numpy())
    np.testing.assert_array_equal(m.k_cache.numpy(), ref.k_cache.numpy())
    assert cf.explained.breaks == []


def test_indexed_write_with_autograd_matches_torch():
    def f(t, w, v, i):
        y = w * 2
        y[:, i] = v * 3  # v broadcast along the indexed rows
        return (y * y).sum()
    wd, vd = np.linspace(-1, 1, 12).reshape(3, 4), np.array([[0.5], [-1.0], [2.0]])
    cf = ember.compile(lambda w, v, i: f(ember, w, v, i))
    for idx in ([1], [3, 0], [-1, 2]):
        w = ember.tensor(wd, requires_grad=True)
        v = ember.tensor(vd, requires_grad=True)
        out = cf(w, v, ember.tensor(idx))
        out.backward()
        tw, tv = torch.tensor(wd, requires_grad=True), torch.tensor(vd, requires_grad=True)
        ref = f(torch, tw, tv, torch.tensor(idx))
        ref.backward()
        assert float(out) == pytest.approx(ref.item(), rel=1e-12)
        np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-12)
        np.testing.assert_allclose(v.grad.numpy(), tv.grad.numpy(), rtol=1e-12)
    assert cf.explained.breaks == []


def test_write_into_an_intermediate_without_autograd_is_kept():
    def f(x):
        y = ember.zeros(5)
        y[1:3] = x[:2]
        y[ember.tensor([4])] = 7.0
        return y * 2
    cf = ember.compile(f)
    for _ in range(3):
        x = ember.randn(4)
        with ember.no_grad():
            np.testing.assert_array_equal(cf(x).numpy(), f(x).numpy())
        np.testing.assert_array_equal(cf(x).numpy(), f(x).numpy())


# ---- torch.distributed._functional_collectives -------------------------------------------------
def test_functional_collectives_import_and_refuse_other_group_kinds():
    from ember.distributed import _functional_collectives as funcol
    t = ember.ones(2)
    assert funcol.wait_tensor(t) is t
    with pytest.raises(NotImplementedError, match="ProcessGroup"):
        funcol.all_reduce(t, "sum", [0, 1])
    with pytest.raises(ValueError, match="reduce op"):
        funcol._op("median")


def test_zero_redundancy_optimizer_two_ranks_equal_plain_adamw():
    """llm.c's train_gpt2.py imports it; each rank keeps its share's state only."""
    import os
    import shutil
    import subprocess
    import sys
    if shutil.which("mpiexec") is None:
        pytest.skip("no mpiexec (the distributed extra installs MPICH's)")
    worker = os.path.join(os.path.dirname(__file__), "_zero_redundancy_worker.py")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(worker)))
    r = subprocess.run(["mpiexec", "-n", "2", sys.executable, worker], capture_output=True,
                       text=True, timeout=120, env=env)
    import re  # (the two ranks' lines may interleave on one line of stdout)
    lines = sorted(re.findall(r"rank \d ok \w+ own \d+ total \d+(?: states \[[\d, ]+\])?",
                              r.stdout))
    assert lines == ["rank 0 ok True own 1 total 4 states [0, 1, 2, 3]",
                     "rank 1 ok True own 3 total 4"], r.stdout + r.stderr
    from ember.distributed.optim import ZeroRedundancyOptimizer
    with pytest.raises(NotImplementedError, match="overlap_with_ddp"):
        ZeroRedundancyOptimizer([nn.Parameter(ember.ones(2))], ember.optim.SGD,
                                overlap_with_ddp=True, lr=0.1)


# ---- regional compilation: many compiled instances of one module class ------------------------
class _Layer(nn.Module):
    """The regional-compilation recipe's repeated layer."""

    def __init__(self):
        super().__init__()
        self.linear1, self.linear2 = nn.Linear(10, 10), nn.Linear(10, 10)

    def forward(self, x):
        return ember.relu(self.linear2(ember.sigmoid(ember.relu(self.linear1(x)))))


def test_each_compiled_instance_has_its_own_cache_limit(recwarn):
    from ember._dynamo.utils import counters
    layers = [ember.compile(_Layer()) for _ in range(12)]  # more than cache_size_limit
    x = ember.randn(4, 10)
    for _ in range(2):
        y = x
        for layer in layers:
            y = layer(y)
    assert counters["frames"]["total"] == 12  # one capture each, none ran eagerly for good
    assert not [w for w in recwarn if "cache_size_limit" in str(w.message)]
    with ember.compiler.set_stance("force_eager"):
        ref = x
        for layer in layers:
            ref = layer(ref)
    np.testing.assert_array_equal(y.detach().numpy(), ref.detach().numpy())


def test_accumulated_limit_bounds_one_code_objects_entries():
    layers = [ember.compile(_Layer()) for _ in range(4)]
    x = ember.randn(2, 10)
    with ember._dynamo.config.patch(accumulated_cache_size_limit=3):
        with pytest.warns(UserWarning, match="accumulated_cache_size_limit"):
            outs = [layer(x) for layer in layers]
    for layer, out in zip(layers, outs):
        np.testing.assert_array_equal(out.detach().numpy(), layer._orig_mod(x).detach().numpy())
