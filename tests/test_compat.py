"""ember.compat / ember run: `import torch` resolves to ember, even with real torch installed."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

import ember
import ember.compat as compat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(args, cwd, timeout=120):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


PROBE = textwrap.dedent('''
    import json, sys
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from torch.utils.data import DataLoader
    import ember
    out = {"torch_is_ember": torch is ember, "nn": nn is ember.nn,
           "sys_modules": sys.modules["torch.nn"] is ember.nn and
                          sys.modules["torch.nn.functional"] is F is ember.nn.functional,
           "spec": torch.__spec__.name, "argv": sys.argv, "path0": sys.path[0],
           "name": __name__, "isinstance": isinstance(nn.Linear(2, 2), ember.nn.Module)}
    errors = {}
    def probe(key, fn):
        try:
            fn()
            errors[key] = None
        except BaseException as err:
            errors[key] = [type(err).__name__, str(err)]
    probe("attr", lambda: torch.no_such_thing)
    probe("nn_attr", lambda: nn.NoSuchLayer)
    def from_import():
        from torch import no_such_thing  # noqa: F401
    probe("from_import", from_import)
    def sub_import():
        import torch.no_such_module  # noqa: F401
    probe("sub_import", sub_import)
    def vision():
        import torchvision.no_such_module  # noqa: F401  (torchvision itself is ember.vision)
    probe("vision", vision)
    out["errors"] = errors
    out["hasattr"] = [hasattr(torch, "no_such_thing"), hasattr(torch, "tensor")]
    print(json.dumps(out))
''')


@pytest.fixture(scope="module")
def probe_script(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scripts")
    path = folder / "probe.py"
    path.write_text(PROBE)
    return path


def _check_probe(result, script, args):
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["torch_is_ember"] and out["nn"] and out["sys_modules"] and out["isinstance"]
    assert out["spec"] == "ember"  # the aliased module keeps its own spec
    assert out["argv"] == [str(script), *args]
    assert out["path0"] == str(script.parent)
    assert out["name"] == "__main__"
    errs = out["errors"]
    assert errs["attr"] == ["AttributeError", "ember does not implement torch.no_such_thing yet"]
    assert errs["nn_attr"] == ["AttributeError",
                               "ember does not implement torch.nn.NoSuchLayer yet"]
    assert errs["from_import"] == ["ImportError",
                                   "ember does not implement torch.no_such_thing yet"]
    assert errs["sub_import"] == ["ModuleNotFoundError",
                                  "ember does not implement torch.no_such_module yet"]
    assert errs["vision"] == ["ModuleNotFoundError",
                              "ember does not implement torchvision.no_such_module yet"]
    assert out["hasattr"] == [False, True]


def test_python_m_ember_run(probe_script, tmp_path):
    # run from another folder: sys.path[0] must still be the script's own folder
    args = ["a", "--flag", "-x"]
    result = _run(["-m", "ember.run", str(probe_script), *args], cwd=tmp_path)
    _check_probe(result, probe_script, args)


def test_ember_cli_run(probe_script, tmp_path):
    result = _run(["-m", "ember", "run", str(probe_script), "--lr", "3"], cwd=tmp_path)
    _check_probe(result, probe_script, ["--lr", "3"])


def test_run_exit_code_and_missing_file(tmp_path):
    script = tmp_path / "exits.py"
    script.write_text("import sys, torch\nsys.exit(3)\n")
    assert _run(["-m", "ember.run", str(script)], cwd=tmp_path).returncode == 3
    result = _run(["-m", "ember.run", str(tmp_path / "missing.py")], cwd=tmp_path)
    assert result.returncode == 2 and "can't open file" in result.stderr
    result = _run(["-m", "ember.run"], cwd=tmp_path)
    assert result.returncode == 2 and "usage" in result.stderr


def test_run_module(tmp_path):
    (tmp_path / "modprog.py").write_text(
        "import sys, torch\nprint(torch.__name__, __name__, sys.argv[1:])\n")
    result = _run(["-m", "ember.run", "-m", "modprog", "x"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ember", "__main__", "['x']"]
    # a folder with a __main__.py runs as `python folder` runs it
    app = tmp_path / "app"
    app.mkdir()
    (app / "__main__.py").write_text("import sys, torch\nprint(torch.__name__, sys.path[0])\n")
    result = _run(["-m", "ember.run", str(app)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ember", str(app)]


CHILDREN = textwrap.dedent('''
    import json, sys
    import torch
    from torch.utils.data import Dataset, DataLoader


    class Probe(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            import torch as inner  # resolved in the worker process
            return inner.tensor([float(i), float(inner.__name__ == "ember")])


    def work(q):
        import torch
        q.put(torch.__name__)


    if __name__ == "__main__":
        out = {}
        for ctx in sys.argv[1:]:
            loader = DataLoader(Probe(), batch_size=2, num_workers=2, multiprocessing_context=ctx)
            out[ctx] = [b[:, 1].tolist() for b in loader]
        import multiprocessing as mp
        c = mp.get_context("spawn")
        q = c.Queue()
        p = c.Process(target=work, args=(q,))
        p.start()
        out["process"] = q.get(timeout=60)
        p.join()
        print(json.dumps(out))
''')


def test_children_inherit_alias(tmp_path):
    script = tmp_path / "children.py"
    script.write_text(CHILDREN)
    result = _run(["-m", "ember.run", str(script), "spawn", "forkserver"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {"spawn": [[1.0, 1.0], [1.0, 1.0]], "forkserver": [[1.0, 1.0], [1.0, 1.0]],
                   "process": "ember"}


def test_install_uninstall_in_process():
    import torch as real_torch  # the oracle, imported before install
    assert real_torch is not ember
    compat.install()
    try:
        assert compat.is_installed()
        import torch
        import torch.nn.functional as F
        assert torch is ember and F is ember.nn.functional
        assert sys.modules["torch.nn"] is ember.nn
        with pytest.raises(AttributeError, match="ember does not implement torch.nope yet"):
            torch.nope
        compat.install()  # idempotent
    finally:
        compat.uninstall()
    assert not compat.is_installed()
    import torch
    assert torch is real_torch and sys.modules["torch"] is real_torch
    # plain ember is unchanged: no torch wording, only ember's own (lazy-import) __getattr__
    assert not getattr(vars(ember).get("__getattr__"), "_ember_compat", False)
    with pytest.raises(AttributeError) as info:
        ember.nope
    assert "torch" not in str(info.value)
    compat.uninstall()  # idempotent
