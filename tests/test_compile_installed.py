"""ember's own frames are ember's, not a library's, when ember is installed under a
``site-packages`` directory (review rv2 C0): its own os.environ read on the first convolution
was blamed on the user's code and broke the graph of every conv model of a pip-installed ember."""
import os
import subprocess
import sys
import textwrap

from ember._dynamo import eval_frame


def test_kind_checks_embers_directory_before_site_packages(monkeypatch):
    root = "/opt/venv/lib/python3.11/site-packages/ember"
    monkeypatch.setattr(eval_frame, "_EMBER_DIR", root)
    monkeypatch.setattr(eval_frame, "_kinds", {})
    own = compile("pass", root + "/ops/_threads.py", "exec")
    lib = compile("pass", "/opt/venv/lib/python3.11/site-packages/timm/models/x.py", "exec")
    user = compile("pass", "/home/me/train.py", "exec")
    assert [eval_frame._kind(c) for c in (own, lib, user)] == ["ember", "lib", "user"]


def test_installed_ember_conv_model_compiles_to_one_graph(tmp_path):
    site = tmp_path / "site-packages"
    site.mkdir()
    os.symlink(os.path.dirname(os.path.dirname(eval_frame.__file__)), site / "ember")
    script = textwrap.dedent("""
        import ember
        from ember._dynamo.utils import counters
        from ember.ops import _threads
        _threads.LOADED_PER_CPU = 0.0  # the conv reads the BLAS thread settings (os.environ)
        assert ember.__file__.startswith(%r)
        m = ember.nn.Sequential(ember.nn.Conv2d(3, 8, 3), ember.nn.ReLU(), ember.nn.Flatten(),
                                ember.nn.Linear(8 * 6 * 6, 4))
        f = ember.compile(lambda a, b: ember.nn.functional.cross_entropy(m(a), b))
        x, y = ember.randn(2, 3, 8, 8), ember.tensor([0, 3])
        for _ in range(3):
            f(x, y).backward()
        print(counters["frames"]["total"], dict(counters["graph_break"]))
    """ % str(site))
    env = {**os.environ, "PYTHONPATH": str(site)}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[0] == "1" and r.stdout.strip().endswith("{}"), r.stdout
