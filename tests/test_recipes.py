"""The recipes of ``ember train NAME`` (ember/recipes/): smoke runs on ember, the same files on
real PyTorch with the import swapped, the checkpoints readable by ``torch.load``, and the flags
a user can get wrong (exit code 2, before any work)."""
import contextlib
import importlib
import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import ember.recipes
from ember.cli import main as cli_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# recipe -> (figures it draws besides curves.png, the metric of its last line)
RECIPES = {
    "mlp-scratch": (["weights.png"], "test_acc"),
    "char-gpt": (["attention.png", "sample.txt"], "val_loss"),
    "char-lstm": (["gates.png", "sample.txt"], "val_loss"),
    "autoencoder": (["reconstructions.png", "latent.png", "interpolation.png", "anomaly.png"],
                    "test_mse"),
    "vae": (["reconstructions.png", "latent.png", "interpolation.png", "anomaly.png"],
            "test_neg_elbo"),
}
FINAL = re.compile(r"final (\w+) (-?\d+(\.\d+)?(e[-+]\d+)?)$")


def _source(name):
    return os.path.join(ROOT, "ember", "recipes", name.replace("-", "_") + ".py")


def _check_run(name, out, stdout):
    """The run wrote its checkpoint, curves and figures, and ended with its final metric."""
    figures, metric = RECIPES[name]
    for f in ["last.pt", "curves.png", *figures]:
        assert os.path.getsize(os.path.join(out, f)) > 0, f
    match = FINAL.fullmatch(stdout.strip().splitlines()[-1])
    assert match and match.group(1) == metric, stdout[-300:]
    # PyTorch's own loader reads the checkpoint with its safe unpickler
    state = torch.load(os.path.join(out, "last.pt"), weights_only=True)
    assert state["model"] and all(isinstance(v, torch.Tensor) for v in state["model"].values())
    return float(match.group(2))


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_registered(name):
    assert name in ember.recipes.RECIPES
    assert ember.recipes.RECIPES[name] == "ember.recipes." + name.replace("-", "_")


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_smoke_on_ember(name, tmp_path):
    out = str(tmp_path / "run")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli_main(["train", name, "--smoke", "--out", out]) == 0
    value = _check_run(name, out, buf.getvalue())
    assert value == value  # not NaN


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_runs_unchanged_on_torch(name, tmp_path):
    src = open(_source(name)).read()
    # the only ember-specific lines: the framework import and the bundled digits (NumPy)
    ember_lines = {ln.strip() for ln in src.splitlines()
                   if re.match(r"\s*(import|from) ember\b", ln)}
    allowed = {"import ember as torch",
               "from ember.datasets import load_digits  # NumPy arrays, the same under PyTorch"}
    assert "import ember as torch" in ember_lines and ember_lines <= allowed, ember_lines
    swapped = src.replace("import ember as torch\n", "import torch\n", 1)
    scope = {"__name__": "recipe_on_torch", "__file__": _source(name)}
    exec(compile(swapped, _source(name), "exec"), scope)
    assert scope["torch"] is torch
    out = str(tmp_path / "run")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert scope["main"](["--smoke", "--out", out]) == 0
    _check_run(name, out, buf.getvalue())


BAD_FLAGS = [
    (["--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["--epochs", "-3"], "--epochs must be at least 1, got -3"),
    (["--lr", "-0.1"], "--lr must be a positive finite number, got -0.1"),
    (["--lr", "0"], "--lr must be a positive finite number, got 0.0"),
    (["--lr", "nan"], "--lr must be a positive finite number, got nan"),
    (["--lr", "inf"], "--lr must be a positive finite number, got inf"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--threads", "0"], "--threads must be at least 1, got 0"),
    (["--epochs", "two"], "argument --epochs: invalid int value: 'two'"),
]


@pytest.mark.parametrize("name", sorted(RECIPES))
@pytest.mark.parametrize("flags,message", BAD_FLAGS)
def test_bad_flags_exit_2_before_work(name, flags, message, tmp_path, capsys):
    out = tmp_path / "never"
    with pytest.raises(SystemExit) as exc:
        cli_main(["train", name, "--out", str(out), *flags])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"ember train {name}: error: {message}" in err, err
    assert not out.exists()  # refused before any work: not even the run directory


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_unwritable_out(name, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as exc:
        cli_main(["train", name, "--out", str(blocker / "run")])
    assert exc.value.code == 2
    assert f"--out '{blocker / 'run'}' is not a writable directory" in capsys.readouterr().err


def test_unknown_recipe_lists_them(capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(["train", "no-such-recipe"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'no-such-recipe'" in err
    for name in [*RECIPES, "digits"]:
        assert f"'{name}'" in err


def test_registry_run_rejects_unknown_name():
    with pytest.raises(KeyError, match="unknown recipe 'nope'; recipes: "):
        ember.recipes.run("nope", [])


def test_file_runs_alone_and_validates(tmp_path):
    # `python ember/recipes/NAME.py` with a bad flag: exit 2 and the message, no traceback
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, _source("mlp-scratch"), "--epochs", "0",
                           "--out", str(tmp_path / "x")], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 2
    assert "error: --epochs must be at least 1, got 0" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_char_lstm_gates_replay_the_layer():
    # gates.png replays the LSTM by hand: its cell states must be nn.LSTM's own
    from ember.recipes import char_lstm
    ember.manual_seed(0)
    model = char_lstm.CharLSTM(20)
    idx = ember.randint(0, 20, (1, 12))
    forget, inp, cell = model.gates(idx)
    with ember.no_grad():
        out, (h_n, c_n) = model.lstm(model.embed(idx))
    assert forget.shape == inp.shape == cell.shape == (12, char_lstm.HIDDEN)
    np.testing.assert_allclose(cell[-1].numpy(), c_n[0, 0].numpy(), rtol=1e-5, atol=1e-6)
    assert ((forget > 0) & (forget < 1)).all() and ((inp > 0) & (inp < 1)).all()


@pytest.mark.parametrize("module", ["autoencoder", "vae"])
def test_anomaly_auc_matches_sklearn(module):
    from sklearn.metrics import roc_auc_score
    roc_auc = importlib.import_module(f"ember.recipes.{module}").roc_auc
    rng = np.random.default_rng(0)
    normal = rng.normal(size=50).round(1)  # rounded, so there are ties
    anomalous = rng.normal(0.7, size=30).round(1)
    expected = roc_auc_score(np.r_[np.zeros(50), np.ones(30)], np.r_[normal, anomalous])
    assert roc_auc(normal, anomalous) == pytest.approx(expected)


def test_vae_neg_elbo_matches_torch():
    # -ELBO = BCE(logits, x) summed + closed-form KL(N(mu, sigma^2) || N(0, I)), per image
    from ember.recipes import vae
    rng = np.random.default_rng(0)
    logits, x = rng.normal(size=(4, 64)), rng.random((4, 64))
    mu, logvar = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    got = vae.neg_elbo(*(ember.tensor(a) for a in (logits, x, mu, logvar)))
    t = [torch.tensor(a) for a in (logits, x, mu, logvar)]
    rec = torch.nn.functional.binary_cross_entropy_with_logits(t[0], t[1], reduction="none")
    q = torch.distributions.Normal(t[2], (0.5 * t[3]).exp())
    p = torch.distributions.Normal(torch.zeros_like(t[2]), torch.ones_like(t[2]))
    want = rec.sum(1) + torch.distributions.kl_divergence(q, p).sum(1)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-10)
