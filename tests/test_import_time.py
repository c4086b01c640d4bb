"""``import ember`` stays light: what it loads (not how long it takes; timing is never asserted).

The engineering rule is that ``import ember`` costs within 50 ms of ``import numpy``; measure it
with ``python -X importtime -c "import ember"``.  These tests pin the cause instead: a fresh
interpreter's ``sys.modules`` after ``import ember`` (and after a first tensor and backward)
holds none of the deferred namespaces (NOTE [ Lazy namespaces ] in ember/__init__.py) and no
heavy library that ``import numpy`` does not load itself; and every deferred name still
resolves to the same object, from a fresh process too (unpickling, ``ember run``).
"""
import importlib
import json
import os
import subprocess
import sys
import textwrap
import types

import pytest
import torch

import ember

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ember's namespaces that ``import ember`` defers to first use
DEFERRED = ["ember.nn", "ember.optim", "ember.utils", "ember.utils.data", "ember.serialization",
            "ember._utils", "ember._weights_only_unpickler", "ember.linalg", "ember.fft",
            "ember.special", "ember.version", "ember.cuda", "ember.accelerator", "ember.mps",
            "ember.backends", "ember.amp", "ember.cpu", "ember.autograd.graph",
            "ember.autograd.functional", "ember.autograd.profiler", "ember.ops.conv",
            "ember.ops.loss", "ember.ops.normalization", "ember.ops.rnn", "ember.ops.attention",
            "ember.ops.quantized", "ember.distributions", "ember.fx",
            "ember.func", "ember.profiler", "ember.hub", "ember.testing", "ember.futures",
            "ember.multiprocessing", "ember.jit", "ember.export", "ember.onnx", "ember.compiler",
            "ember._dynamo", "ember._functorch", "ember.ao", "ember.vision", "ember.metrics",
            "ember.distributed", "ember.recipes", "ember.cli", "ember.compat", "ember.datasets"]
# libraries a plain ``import ember`` has no use for (checked where ``import numpy`` does not
# load them itself)
HEAVY = ["json", "traceback", "dataclasses", "multiprocessing", "subprocess", "logging",
         "argparse", "uuid", "socket", "asyncio", "concurrent.futures", "unittest", "email",
         "http", "xml", "sqlite3", "decimal", "fractions", "statistics", "copy",
         "numpy.fft", "scipy", "torch", "ml_dtypes", "tqdm", "matplotlib",
         "threadpoolctl", "PIL", "safetensors", "onnx", "mpi4py"]

PROBE = textwrap.dedent('''
    import json, sys
    import numpy
    numpy_loads = set(sys.modules)
    import ember
    after_import = set(sys.modules)
    x = ember.randn(3, requires_grad=True)
    (x * x).sum().backward()
    assert x.grad.tolist() == (2 * x).tolist()
    after_backward = set(sys.modules)
    print(json.dumps({"numpy": sorted(numpy_loads), "import": sorted(after_import),
                      "backward": sorted(after_backward)}))
''')


def _python(code, cwd=ROOT, timeout=120):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def loaded():
    return {k: set(v) for k, v in json.loads(_python(PROBE).splitlines()[-1]).items()}


@pytest.mark.parametrize("stage", ["import", "backward"])
def test_deferred_namespaces_not_loaded(loaded, stage):
    assert "ember" in loaded[stage] and "ember._tensor" in loaded[stage]  # the probe is real
    assert sorted(set(DEFERRED) & loaded[stage]) == []


@pytest.mark.parametrize("stage", ["import", "backward"])
def test_no_heavy_library_loaded(loaded, stage):
    heavy = {m for m in loaded[stage] - loaded["numpy"]
             if any(m == h or m.startswith(h + ".") for h in HEAVY)}
    assert sorted(heavy) == []
    assert ("numpy.random" in loaded[stage]) == (stage == "backward")  # randn's first draw


def test_probe_sees_a_deferred_import():
    # the probe would catch a regression: a core module importing json shows up
    out = _python("import sys, ember, json; print('json' in sys.modules)")
    assert out.split() == ["True"]


@pytest.mark.parametrize("name", sorted(ember._LAZY))
def test_lazy_name_resolves(name):
    module, attr = ember._LAZY[name]
    target = importlib.import_module(module)
    value = getattr(ember, name)
    value = getattr(value, "__wrapped__", value)  # fx's trace wraps ember's functions for good
    assert value is (getattr(target, attr) if attr else target)
    assert name in dir(ember)


def test_no_lazy_top_level_op():
    # fx's symbolic trace wraps the top-level functions present when it starts; an op loaded
    # later would see a Proxy.  (ops/quantized.py's functions were lazy before this rule.)
    ops = [n for n, (module, attr) in ember._LAZY.items()
           if attr and module.startswith("ember.ops.") and module != "ember.ops.quantized"]
    assert ops == []
    code = textwrap.dedent('''
        import ember
        class M(ember.nn.Module):
            def forward(self, x):
                return ember.pixel_shuffle(x, 2) + 1
        gm = ember.fx.symbolic_trace(M())
        print([str(n.target) for n in gm.graph.nodes if n.op == "call_function"],
              tuple(gm(ember.ones(1, 4, 2, 2)).shape))
    ''')
    out = _python(code).splitlines()[-1]
    assert out.startswith("['<function pixel_shuffle") and out.endswith("(1, 1, 4, 4)")


def test_lazy_names_are_torch_top_level_names():
    # the deferred names are ones torch has at top level, with the same kind of object
    for name in ("nn", "optim", "utils", "serialization", "linalg", "fft", "special", "cuda",
                 "backends", "amp", "cpu", "mps", "accelerator", "version"):
        assert isinstance(getattr(ember, name), types.ModuleType), name
        assert isinstance(getattr(torch, name), types.ModuleType), name
    for name in ("save", "load", "autocast", "pixel_shuffle", "is_autocast_enabled"):
        assert callable(getattr(ember, name)) and callable(getattr(torch, name)), name


def test_from_import_and_isinstance_across_paths():
    from ember import nn, optim  # noqa: F401
    from ember.nn import Linear
    import ember.utils.data as data
    assert ember.nn is nn and ember.nn.Linear is Linear and ember.utils.data is data
    layer = Linear(2, 3)
    assert isinstance(layer, ember.nn.Module) and isinstance(layer.weight, ember.nn.Parameter)
    assert isinstance(layer.weight, ember.Tensor)
    assert ember.autograd.graph is importlib.import_module("ember.autograd.graph")
    assert ember.autograd.functional.jacobian is importlib.import_module(
        "ember.autograd.functional").jacobian
    with pytest.raises(AttributeError, match="has no attribute 'no_such_thing'"):
        ember.no_such_thing  # noqa: B018
    with pytest.raises(AttributeError, match="has no attribute 'no_such_thing'"):
        ember.autograd.no_such_thing  # noqa: B018


@pytest.mark.parametrize("name", ["max", "min", "sort", "topk", "kthvalue", "median", "mode",
                                  "cummax", "cummin", "nanmedian", "aminmax", "histogram"])
def test_return_types_built_on_first_use(name):
    # named tuples are built on first use; each is built once and has torch's fields
    cls = getattr(ember.return_types, name)
    assert getattr(ember.return_types, name) is cls and name in dir(ember.return_types)
    ours, theirs = cls(1, 2), getattr(torch.return_types, name)((1, 2))
    assert len(cls._fields) == theirs.n_fields
    assert [getattr(ours, f) for f in cls._fields] == [getattr(theirs, f) for f in cls._fields]
    assert repr(cls) == f"<class 'ember.return_types.{name}'>"


def test_return_type_is_the_same_class_as_a_result():
    x = ember.tensor([[1.0, 3.0], [2.0, 0.0]])
    assert type(ember.max(x, 1)) is ember.return_types.max
    assert type(ember.aminmax(x)) is ember.return_types.aminmax
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ember.return_types.nope  # noqa: B018


def test_fresh_process_unpickles_modules_and_state_dicts(tmp_path):
    # files holding state dicts, or pickled nn classes, load in an interpreter that has only
    # ``import ember`` (the classes' modules load as pickle finds them)
    model = ember.nn.Sequential(ember.nn.Linear(2, 3), ember.nn.ReLU())
    opt = ember.optim.SGD(model.parameters(), lr=0.1)
    ember.save({"sd": model.state_dict(), "opt": opt.state_dict()}, tmp_path / "sd.pt")
    ember.save(model, tmp_path / "model.pt")
    code = textwrap.dedent(f'''
        import sys, ember
        assert "ember.nn" not in sys.modules
        d = ember.load({str(tmp_path / "sd.pt")!r})  # weights_only: tensors and dicts
        m = ember.load({str(tmp_path / "model.pt")!r}, weights_only=False)
        assert type(m) is ember.nn.Sequential and isinstance(m[0].weight, ember.nn.Parameter)
        assert all(ember.equal(d["sd"][k], v) for k, v in m.state_dict().items())
        print(sorted(d["sd"]), d["opt"]["param_groups"][0]["lr"])
    ''')
    assert _python(code).splitlines()[-1] == "['0.bias', '0.weight'] 0.1"
    assert torch.load(tmp_path / "sd.pt")["sd"]["0.weight"].shape == (3, 2)


def test_ember_run_sees_deferred_namespaces_in_torch_words(tmp_path):
    # ``ember run`` loads what ``import torch`` loads, so attribute errors on namespaces the
    # script never imported by name still say "ember does not implement torch.X yet"
    script = tmp_path / "probe.py"
    script.write_text(textwrap.dedent('''
        import torch
        for get in (lambda: torch.nn.NoSuchLayer, lambda: torch.nn.functional.nope,
                    lambda: torch.optim.Nope, lambda: torch.utils.data.Nope):
            try:
                get()
            except AttributeError as err:
                print(err)
        print(tuple(torch.nn.Linear(2, 2).weight.shape), torch.cuda.is_available())
    '''))
    run = f"import sys; from ember.cli import main; sys.exit(main(['run', {str(script)!r}]))"
    out = _python(run, cwd=tmp_path)
    assert out.splitlines() == [
        "ember does not implement torch.nn.NoSuchLayer yet",
        "ember does not implement torch.nn.functional.nope yet",
        "ember does not implement torch.optim.Nope yet",
        "ember does not implement torch.utils.data.Nope yet",
        "(2, 2) False"]


def test_fresh_process_loads_a_jit_archive_calling_deferred_ops(tmp_path):
    # a saved graph names its ops by module (ember.ops.fft:FftC2C); a process that has not
    # touched ember.fft finds them all the same
    class M(ember.nn.Module):
        def forward(self, x):
            return ember.fft.fft(x).abs() + ember.special.erf(x) + ember.linalg.norm(x)
    x = ember.linspace(-1.0, 1.0, 4)
    with pytest.warns(DeprecationWarning):
        traced = ember.jit.trace(M(), x)
        ember.jit.save(traced, tmp_path / "m.pt")
    code = textwrap.dedent(f'''
        import sys, warnings, ember
        assert "ember.fft" not in sys.modules
        warnings.simplefilter("ignore", DeprecationWarning)
        m = ember.jit.load({str(tmp_path / "m.pt")!r})
        print(m(ember.linspace(-1.0, 1.0, 4)).tolist())
    ''')
    got = json.loads(_python(code).splitlines()[-1])
    assert got == pytest.approx(M()(x).tolist(), rel=1e-6)
