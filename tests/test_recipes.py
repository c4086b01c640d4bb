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
    "gan": (["samples_epoch01.png", "modes.png"], "class_entropy_bits"),
    "seq2seq": (["attention.png"], "beam_exact_match"),
    "distill": (["teacher.pt", "temperature.png"], "student_kd_acc"),
    "simclr": (["augment.png"], "probe_acc"),
    "finetune": (["pretrained.pt", "compare.png"], "finetune_acc"),
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
    # the only ember-specific lines: the framework import, the bundled digits (NumPy) and
    # the recipes' shared flags/matplotlib helpers (ember/recipes/_common.py: plain Python,
    # no ember import, so it runs unchanged beside real torch)
    ember_lines = {ln.strip() for ln in src.splitlines()
                   if re.match(r"\s*(import|from) ember\b", ln)}
    allowed = {"import ember as torch",
               "from ember.datasets import load_digits  # NumPy arrays, the same under PyTorch",
               ("from ember.recipes._common import pyplot, recipe_args, save_figure"
                "  # plain Python, no ember")}
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


def test_common_helpers_import_no_ember():
    # the recipes' shared module must stay plain Python: under real torch it runs beside torch
    src = open(os.path.join(ROOT, "ember", "recipes", "_common.py")).read()
    assert not re.search(r"^\s*(import|from) (ember|torch)\b", src, re.M)


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


# the pieces of gan/seq2seq/simclr/distill that a smoke run cannot judge, checked exactly

def test_seq2seq_beam_of_one_is_greedy():
    import numpy as np
    s2s = importlib.import_module("ember.recipes.seq2seq")
    ember.manual_seed(0)
    model = s2s.Seq2Seq().eval()
    src, _ = s2s.make_data(16, np.random.default_rng(0))
    greedy, attn = s2s.greedy(model, src)
    beam = s2s.beam_search(model, src, k=1)
    # equal up to the end token (after it, beam search pads where greedy runs on)
    assert [s2s.strip(b) for b in beam] == [s2s.strip(g) for g in greedy]
    # each attention row is a distribution over the real (unpadded) source tokens only
    assert ember.allclose(attn.sum(-1), ember.ones(attn.shape[:2]))
    assert (attn.masked_fill((src != s2s.PAD).unsqueeze(1), 0) == 0).all()


def test_simclr_nt_xent_matches_formula():
    sim = importlib.import_module("ember.recipes.simclr")
    z1, z2 = ember.randn(4, 8, dtype=ember.float64), ember.randn(4, 8, dtype=ember.float64)
    loss, _ = sim.nt_xent(z1, z2)
    z = ember.nn.functional.normalize(ember.cat([z1, z2]), dim=1)
    s = (z @ z.T / sim.TAU).exp()
    # -log of the partner's share of all similarities but one's own, averaged over 2N views
    terms = [-(s[i, (i + 4) % 8] / (s[i].sum() - s[i, i])).log() for i in range(8)]
    assert ember.allclose(loss, ember.stack(terms).mean())


def test_distillation_loss_against_torch():
    dist = importlib.import_module("ember.recipes.distill")
    zs, zt = ember.randn(6, 10, dtype=ember.float64), ember.randn(6, 10, dtype=ember.float64)
    y = ember.randint(0, 10, (6,))
    F = torch.nn.functional
    ts, tt, ty = (torch.tensor(a.numpy()) for a in (zs, zt, y))
    # Hinton et al.: the T^2-scaled KL between the softened distributions, plus the hard CE
    want = (0.7 * 16 * F.kl_div(F.log_softmax(ts / 4, 1), F.softmax(tt / 4, 1),
                                reduction="batchmean") + 0.3 * F.cross_entropy(ts, ty))
    assert dist.distillation_loss(zs, zt, y, 4.0, 0.7).item() == pytest.approx(want.item(),
                                                                             rel=1e-12)
    assert dist.distillation_loss(zs, zt, y, 4.0, 0.0).item() == pytest.approx(
        F.cross_entropy(ts, ty).item(), rel=1e-12)


def test_gan_shapes_and_mode_entropy():
    gan = importlib.import_module("ember.recipes.gan")
    g, d = gan.Generator(), gan.Discriminator()
    img = g(ember.randn(5, gan.NZ, 1, 1))
    assert img.shape == (5, 1, 8, 8) and img.abs().max() <= 1
    assert d(img).shape == (5,)

    class Always(ember.nn.Module):  # a judge that calls everything digit c
        def __init__(self, c):
            super().__init__()
            self.c = c

        def forward(self, x):
            return ember.nn.functional.one_hot(ember.full((len(x),), self.c), 10).double()
    _, h = gan.class_histogram(Always(3), img)
    assert h == 0.0  # one mode only: total collapse


def test_simclr_refuses_a_batch_without_negatives(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(["train", "simclr", "--batch-size", "1", "--out", str(tmp_path / "never")])
    assert exc.value.code == 2
    assert "--batch-size must be at least 2 for NT-Xent's negatives, got 1" in (
        capsys.readouterr().err)
    assert not (tmp_path / "never").exists()
