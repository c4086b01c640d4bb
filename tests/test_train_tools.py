"""Training tools (issue 22): `ember diagnose`, `ember lr-find`, `ember tune`.

Diagnosis is tested on small runs made to fail on purpose, one way each, logged with
`TrainingLog` exactly as a user's loop would; each must be named, and a healthy run must not be.
"""
import contextlib
import io
import os
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ember
import ember.nn as nn
from ember.__main__ import main
from ember.cli.tune import STAGES
from ember.utils.diagnose import TrainingLog, diagnose, read_run, smooth


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


# --- runs made to fail on purpose --------------------------------------------------------------

def _blobs(n, seed, d=20, k=4):
    """Four overlapping Gaussian classes in 20 dimensions (a loss that cannot reach 0)."""
    centers = np.random.default_rng(123).normal(0, 0.4, (k, d))
    r = np.random.default_rng(seed)
    y = r.integers(0, k, n)
    return (ember.tensor(centers[y] + r.normal(0, 1, (n, d)), dtype=ember.float32),
            ember.tensor(y))


def _mlp(depth=2, width=64, act=nn.ReLU, bias=None):
    layers, i = [], 20
    for _ in range(depth):
        lin = nn.Linear(i, width)
        if bias is not None:
            nn.init.constant_(lin.bias, bias)
        layers += [lin, act()]
        i = width
    return nn.Sequential(*layers, nn.Linear(i, 4))


def _train(run_dir, model, lr, epochs, batch_size, n_train=512, opt="adam", lr_growth=1.0,
           backend="csv"):
    """Train ``model`` on the blobs, logging every step and epoch; the run's Diagnosis."""
    ember.manual_seed(0)
    x, y = _blobs(n_train, 1)
    xv, yv = _blobs(256, 2)
    make = ember.optim.Adam if opt == "adam" else ember.optim.SGD
    optimizer = make(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    g = ember.Generator().manual_seed(0)
    step = 0
    with TrainingLog(str(run_dir), backend, hparams={"batch_size": batch_size}) as log:
        log.watch(model)
        for epoch in range(1, epochs + 1):
            perm, total = ember.randperm(n_train, generator=g), 0.0
            for i in range(0, n_train, batch_size):
                idx = perm[i:i + batch_size]
                loss = loss_fn(model(x[idx]), y[idx])
                optimizer.zero_grad()
                loss.backward()
                step += 1
                log.log_step(step, loss.item(), optimizer.param_groups[0]["lr"], model=model)
                optimizer.step()
                for group in optimizer.param_groups:  # an exponential warm-up, if asked
                    group["lr"] *= lr_growth
                total += loss.item() * len(idx)
            with ember.no_grad():
                model.eval()
                val = loss_fn(model(xv), yv).item()
                model.train()
            log.log_epoch(epoch, train_loss=total / n_train, val_loss=val)
    return diagnose(str(run_dir))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each failure mode once (shared by the tests below): {name: Diagnosis}."""
    tmp = tmp_path_factory.mktemp("runs")
    ember.manual_seed(0)
    specs = {
        "healthy": dict(model=_mlp(2, 16), lr=3e-3, epochs=6, batch_size=64, n_train=1024),
        # SGD whose rate grows 15% a step: it learns, then diverges past lr ~ 1
        "rising_lr": dict(model=_mlp(), lr=1e-3, epochs=8, batch_size=64, opt="sgd",
                          lr_growth=1.15),
        "nan": dict(model=_mlp(), lr=50.0, epochs=2, batch_size=64, opt="sgd"),
        "deep_sigmoid": dict(model=_mlp(10, 32, nn.Sigmoid), lr=0.1, epochs=4, batch_size=64,
                             opt="sgd"),
        "tiny_train_set": dict(model=_mlp(2, 128), lr=1e-2, epochs=30, batch_size=16,
                               n_train=16),
        "dead_relu": dict(model=_mlp(bias=-10.0), lr=1e-3, epochs=3, batch_size=64),
        "batch_of_1": dict(model=_mlp(), lr=0.05, epochs=1, batch_size=1, opt="sgd"),
        "lr_too_low": dict(model=_mlp(), lr=1e-7, epochs=4, batch_size=64),
    }
    out = {}
    for name, spec in specs.items():
        ember.manual_seed(0)
        with np.errstate(all="ignore"):
            out[name] = _train(tmp / name, **spec)
    return out


def test_healthy_run_has_no_findings(runs):
    d = runs["healthy"]
    assert d.findings == []
    assert "no problem found" in str(d)


def test_rising_learning_rate_is_named_diverging_with_its_onset_lr(runs):
    d = runs["rising_lr"]
    (f,) = [f for f in d.findings if f.kind == "diverging loss"]
    curves = d.run
    steps, loss = curves["train/loss"]
    lr = curves["train/lr"][1]
    onset = f.evidence["onset_step"]
    # the onset is the lowest loss before the rise, and its rate is the one logged there
    assert f.evidence["onset_lr"] == lr[list(steps).index(onset)]
    assert loss[list(steps).index(onset)] == loss[: list(steps).index(onset) + 1].min()
    assert loss[list(steps).index(onset):].mean() > loss[list(steps).index(onset)] * 1.2
    assert 0.1 < f.evidence["onset_lr"] < 3  # where SGD on these blobs turns unstable
    assert f"lr {f.evidence['onset_lr']:.3g}" in str(d)
    assert "noisy loss (small batch)" not in d.kinds  # the swings are the divergence


def test_nan_loss_is_diverging_and_exploding(runs):
    d = runs["nan"]
    assert {"diverging loss", "exploding gradients"} <= d.kinds
    f = next(f for f in d.findings if f.kind == "diverging loss")
    assert not np.isfinite(d.run["train/loss"][1][f.evidence["nonfinite_step"] - 1])
    assert "lr 50" in f.message


def test_deep_sigmoid_net_has_vanishing_gradients_in_its_first_layers(runs):
    d = runs["deep_sigmoid"]
    (f,) = [f for f in d.findings if f.kind == "vanishing gradients"]
    layers = f.layer.split(", ")
    assert layers[0] == "0" and "20" not in layers  # the first layer starves, not the last
    assert f.evidence["0"] < 1e-3 * f.evidence["largest"]
    assert "exploding gradients" not in d.kinds


def test_tiny_training_set_is_named_overfitting(runs):
    d = runs["tiny_train_set"]
    (f,) = [f for f in d.findings if f.kind == "overfitting"]
    val = d.run["epoch/val_loss"][1]
    assert f.evidence["best_val"] == val.min() and f.evidence["final_val"] == val[-1]
    assert f.evidence["gap_slope"] > 0
    assert "overfitting" not in runs["healthy"].kinds


def test_dead_relus_are_named_by_layer(runs):
    d = runs["dead_relu"]
    dead = [f for f in d.findings if f.kind == "dead ReLUs"]
    assert sorted(f.layer for f in dead) == ["1", "3"]
    assert all(f.evidence["fraction"] == 1.0 for f in dead)


def test_batch_of_one_is_named_noisy(runs):
    d = runs["batch_of_1"]
    (f,) = [f for f in d.findings if f.kind == "noisy loss (small batch)"]
    assert f.evidence["batch_size"] == 1 and "batch size 1" in f.message
    assert f.evidence["relative_std"] > 0.2


def test_too_low_learning_rate_is_a_plateau(runs):
    d = runs["lr_too_low"]
    assert "plateau" in d.kinds
    assert "plateau" not in runs["healthy"].kinds


def test_tensorboard_log_gives_the_same_diagnosis(tmp_path):
    ember.manual_seed(0)
    a = _train(tmp_path / "csv", _mlp(10, 32, nn.Sigmoid), 0.1, 2, 64, opt="sgd")
    ember.manual_seed(0)
    b = _train(tmp_path / "tb", _mlp(10, 32, nn.Sigmoid), 0.1, 2, 64, opt="sgd",
               backend="tensorboard")
    assert a.kinds == b.kinds == {"vanishing gradients"}
    assert [f.layer for f in a.findings] == [f.layer for f in b.findings]


def test_diagnosis_png_is_drawn(runs, tmp_path):
    path = runs["deep_sigmoid"].plot(str(tmp_path / "d.png"))
    png = open(path, "rb").read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20000


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=60), st.integers(1, 70))
def test_smooth_is_a_trailing_moving_average(values, window):
    v = np.array(values)
    w = min(window, len(v))
    want = [v[max(0, i - w + 1):i + 1].mean() for i in range(len(v))]
    np.testing.assert_allclose(smooth(v, window), want, rtol=1e-9, atol=1e-9)


# --- ember diagnose --------------------------------------------------------------------------

def test_cli_diagnose_prints_findings_and_draws_the_png(runs):
    run_dir = runs["dead_relu"].run_dir
    rc, stdout, stderr = _run(["diagnose", run_dir])
    assert rc == 0, stderr
    assert "- dead ReLUs: layer 1: 100% of its units output 0" in stdout
    assert os.path.getsize(os.path.join(run_dir, "diagnosis.png")) > 20000


def test_cli_diagnose_a_digits_run(tmp_path):
    rc, _, stderr = _run(["train", "digits", "--epochs", "2", "--limit", "128", "--no-progress",
                          "--log", "csv", "--out", str(tmp_path)])
    assert rc == 0, stderr
    rc, stdout, stderr = _run(["diagnose", str(tmp_path), "--no-plot"])
    assert rc == 0 and stdout.startswith(f"{tmp_path}: 4 logged steps, 2 epochs")
    assert not (tmp_path / "diagnosis.png").exists()


def test_digits_on_a_tiny_training_set_is_named_overfitting(tmp_path):
    # 100 images: 100% train accuracy, the held-out loss about twice the training loss
    rc, _, stderr = _run(["train", "digits", "--epochs", "8", "--limit", "100", "--lr", "0.01",
                          "--no-progress", "--log", "csv", "--out", str(tmp_path)])
    assert rc == 0, stderr
    d = diagnose(str(tmp_path))
    (f,) = [f for f in d.findings if f.kind == "overfitting"]
    assert f.evidence["final_val"] > 1.5 * f.evidence["final_train"]
    assert f.evidence["acc_gap"] > 0.1
    assert re.search(r"\(accuracy: train 9\d\.\d%|100\.0%, validation \d\d\.\d%\)", f.message)
    assert not {"diverging loss", "exploding gradients", "vanishing gradients"} & d.kinds


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "is not a directory; expected a run directory holding a scalars.csv or "
                     "TensorBoard event files"),
    (lambda p: p.mkdir(), "no logged run in {p}: expected a scalars.csv or TensorBoard event "
                          "files (events.out.tfevents.*) with a 'train/loss' curve"),
])
def test_cli_diagnose_without_a_logged_run(tmp_path, make, message):
    p = tmp_path / "run"
    make(p)
    rc, stdout, stderr = _run(["diagnose", str(p)])
    assert rc == 2 and stdout == ""
    assert stderr.startswith("ember diagnose: error: ")
    assert message.format(p=p) in stderr


def test_cli_diagnose_foreign_csv(tmp_path):
    (tmp_path / "scalars.csv").write_text("epoch,loss\n1,2.0\n")
    rc, _, stderr = _run(["diagnose", str(tmp_path)])
    assert rc == 1 and "expected the header 'tag,step,value'" in stderr


def test_training_log_rejects_an_unknown_backend(tmp_path):
    with pytest.raises(ValueError, match="'csv' or 'tensorboard', got 'wandb'"):
        TrainingLog(str(tmp_path), "wandb")


def test_read_run_orders_each_curve_by_step(tmp_path):
    with TrainingLog(str(tmp_path)) as log:
        log.scalar("train/loss", 2.0, 5)
        log.scalar("train/loss", 1.0, 3)
    steps, values = read_run(str(tmp_path))["train/loss"]
    assert list(steps) == [3, 5] and list(values) == [1.0, 2.0]


# --- ember tune --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    pytest.importorskip("optuna")  # the tune extra (in the test extra)
    out = tmp_path_factory.mktemp("tune")
    rc, stdout, stderr = _run(["tune", "digits", "--trials", "7", "--epochs", "3", "--limit",
                               "300", "--out", str(out), "--no-plots"])
    assert rc == 0, stderr
    return out, stdout


def test_tune_runs_the_stages_in_order(tuned):
    import csv
    out, stdout = tuned
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["stage"] for r in rows] == ["lr"] * 3 + ["optimization"] * 2 + \
        ["architecture"] * 2
    lr_best = max((r for r in rows[:3] if r["state"] == "complete"),
                  key=lambda r: float(r["val_acc"]))
    for r in rows[3:]:  # later stages start from stage 1's best learning rate
        assert float(r["lr"]) == float(lr_best["lr"])
    for r in rows[:3]:  # stage 1 moves the learning rate only
        assert (r["batch_size"], r["weight_decay"], r["hidden"]) == ("64", "0.0", "128")
        assert 1e-4 <= float(r["lr"]) <= 1e-1
    assert "results (val acc: accuracy on the held-out 20% of the training split)" in stdout
    assert re.search(r"best \(val acc \d+\.\d\d%\): lr ", stdout)
    assert "try it: ember train digits --lr " in stdout


def test_tune_prunes_trials_behind_the_median(tuned):
    import csv
    out, _ = tuned
    rows = list(csv.DictReader(open(out / "results.csv")))
    pruned = [r for r in rows if r["state"] == "pruned"]
    assert pruned, "seed 0 prunes trial 3 (lr 0.0064 behind the first two at epoch 1)"
    for r in pruned:
        assert int(r["epochs"]) < 3


def test_tune_saves_optunas_plots(tuned, tmp_path):
    out, stdout = tuned
    assert stdout.splitlines()[-1] == "saved " + str(out / "results.csv")  # --no-plots
    rc, stdout, stderr = _run(["tune", "digits", "--trials", "3", "--epochs", "1", "--limit",
                               "100", "--out", str(tmp_path)])
    assert rc == 0, stderr
    names = [f"stage{i}_{s}_{p}.png" for i, s in enumerate(STAGES, 1)
             for p in ("history", "intermediate", "slice")]
    assert sorted(os.listdir(tmp_path)) == sorted(names + ["results.csv"])
    for name in names:
        png = (tmp_path / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000, name
        assert str(tmp_path / name) in stdout


def test_tune_trial_stops_when_the_pruner_says_so():
    from ember.cli import tune
    data = tune._split(ember, 60)
    seen = []

    class Pruned(Exception):
        pass

    def report(acc, epoch):
        seen.append((epoch, acc))
        raise Pruned
    with pytest.raises(Pruned):
        tune.train_trial(tune.BASE, data, 5, 0, report)
    assert len(seen) == 1 and 0 <= seen[0][1] <= 1


@pytest.mark.parametrize("argv, message", [
    (["--trials", "2"], "--trials must be at least 3 (one per stage), got 2"),
    (["--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["--limit", "5"], "--limit must be at least 10, got 5"),
])
def test_tune_bad_options(tmp_path, argv, message):
    rc, _, stderr = _run(["tune", "digits", *argv, "--out", str(tmp_path / "t")])
    assert rc == 2 and stderr == f"ember tune: error: {message}\n"


def test_tune_without_optuna_names_the_extra(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    rc, _, stderr = _run(["tune", "digits", "--trials", "3", "--out", str(tmp_path)])
    assert rc == 2
    assert stderr == "ember tune: error: ember tune needs Optuna: pip install 'ember[tune]'\n"


def test_tune_mlp_example(tmp_path):
    import runpy
    pytest.importorskip("optuna")
    ns = runpy.run_path(os.path.join(os.path.dirname(__file__), "..", "examples",
                                     "tune_mlp.py"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ns["main"](["--trials", "3", "--epochs", "2", "--out", str(tmp_path)])
    lines = out.getvalue().splitlines()
    assert [ln.split()[0] for ln in lines[1:4]] == ["lr", "optimization", "architecture"]
    assert lines[-1].startswith("best val MSE ")
    assert (tmp_path / "stage1_lr_history.png").stat().st_size > 5000


@pytest.mark.parametrize("trials, sizes", [(3, [1, 1, 1]), (4, [2, 1, 1]), (7, [3, 2, 2]),
                                           (20, [8, 6, 6])])
def test_tune_splits_trials_learning_rate_first(trials, sizes):
    from ember.cli.tune import _stage_sizes
    assert _stage_sizes(trials) == sizes


# --- learning-rate range test ------------------------------------------------------------------

def _finder_setup(mod, seed=0):
    """A small MLP on the blobs with plain SGD, weights and batches fixed (no shuffling)."""
    rng = np.random.default_rng(seed)
    x, y = _blobs(256, 1)
    model = mod.nn.Sequential(mod.nn.Linear(20, 32), mod.nn.ReLU(), mod.nn.Linear(32, 4))
    with mod.no_grad():
        for p in model.parameters():
            p.copy_(mod.from_numpy(rng.normal(0, 0.3, tuple(p.shape)).astype(np.float32)))
    data = mod.utils.data.TensorDataset(mod.from_numpy(x.numpy()), mod.from_numpy(y.numpy()))
    loader = mod.utils.data.DataLoader(data, batch_size=32)
    opt = mod.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, opt, mod.nn.CrossEntropyLoss(), loader


def test_lr_find_matches_torch_and_restores_the_state():
    torch = pytest.importorskip("torch")
    from ember.utils.lr_finder import lr_find
    results = {}
    for mod in (ember, torch):
        model, opt, loss_fn, loader = _finder_setup(mod)
        before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
        res = lr_find(model, opt, loss_fn, loader, start_lr=1e-4, end_lr=100.0, num_iter=60)
        after = {k: v.numpy() for k, v in model.state_dict().items()}
        assert all(np.array_equal(before[k], after[k]) for k in before)  # weights put back
        assert opt.param_groups[0]["lr"] == 0.1 and not opt.state  # optimizer too
        results[mod.__name__] = res
    e, t = results["ember"], results["torch"]
    assert len(e.lrs) == len(t.lrs) and e.diverged and t.diverged  # both stop at the same step
    np.testing.assert_allclose(e.lrs, 1e-4 * (1e6 ** (np.arange(len(e.lrs)) / 59)), rtol=1e-12)
    n_ok = len(e.lrs) - 5  # the last, diverging steps amplify float32 rounding differences
    np.testing.assert_allclose(e.losses[:n_ok], t.losses[:n_ok], rtol=2e-3)
    assert e.suggestion == t.suggestion
    assert e.smoothed[-1] > 4 * min(e.smoothed)


def test_lr_find_smooths_with_a_bias_corrected_ema():
    from ember.utils.lr_finder import lr_find
    model, opt, loss_fn, loader = _finder_setup(ember)
    res = lr_find(model, opt, loss_fn, loader, 1e-5, 1e-3, num_iter=12, beta=0.9)
    avg, want = 0.0, []
    for i, v in enumerate(res.losses):
        avg = 0.9 * avg + 0.1 * v
        want.append(avg / (1 - 0.9 ** (i + 1)))
    np.testing.assert_allclose(res.smoothed, want, rtol=1e-12)
    assert len(res.lrs) == 12 and not res.diverged  # 8 batches: the data was cycled


def test_suggest_lr_is_the_steepest_descent():
    from ember.utils.lr_finder import suggest_lr
    lrs = np.logspace(-6, 1, 71)
    # a sigmoid-shaped drop in log(lr) centred on 1e-3, then a rise
    loss = 2 - 1 / (1 + np.exp(-3 * (np.log10(lrs) + 3))) + 0.5 * (lrs > 1)
    assert suggest_lr(lrs, loss) == pytest.approx(1e-3, rel=1e-9)
    assert suggest_lr(lrs[:4], loss[:4]) in lrs[:4]  # short curves use every point
    with pytest.raises(ValueError, match="at least 2 points"):
        suggest_lr(lrs[:1], loss[:1])


@pytest.mark.parametrize("kw, match", [
    (dict(start_lr=1.0, end_lr=0.1), "0 < start_lr < end_lr"),
    (dict(start_lr=0.0), "0 < start_lr < end_lr"),
    (dict(num_iter=1), "num_iter must be at least 2"),
    (dict(beta=1.0), r"beta must be in \[0, 1\)"),
])
def test_lr_find_bad_arguments(kw, match):
    from ember.utils.lr_finder import lr_find
    model, opt, loss_fn, loader = _finder_setup(ember)
    with pytest.raises(ValueError, match=match):
        lr_find(model, opt, loss_fn, loader, **kw)


def test_cli_lr_find(tmp_path):
    rc, stdout, stderr = _run(["lr-find", "digits", "--num-iter", "40", "--limit", "256",
                               "--out", str(tmp_path)])
    assert rc == 0, stderr
    m = re.search(r"suggested lr (\S+) \(steepest descent of the smoothed loss\); try: "
                  r"ember train digits --lr (\S+)", stdout)
    assert m, stdout
    rows = np.loadtxt(tmp_path / "lr_find.csv", delimiter=",", skiprows=1)
    assert rows.shape[1] == 3 and 5 <= len(rows) <= 40
    assert np.isclose(rows[:, 0], float(m.group(1)), rtol=1e-2).any()  # a swept rate
    assert 1e-5 < float(m.group(1)) < 1.0
    png = (tmp_path / "lr_find.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10000


@pytest.mark.parametrize("argv, message", [
    (["--start-lr", "1", "--end-lr", "0.1"], "expected 0 < --start-lr < --end-lr, got "
                                             "--start-lr 1 --end-lr 0.1"),
    (["--num-iter", "3"], "--num-iter must be at least 5, got 3"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
])
def test_cli_lr_find_bad_options(tmp_path, argv, message):
    rc, _, stderr = _run(["lr-find", "digits", *argv, "--out", str(tmp_path / "o")])
    assert rc == 2 and stderr == f"ember lr-find: error: {message}\n"
    assert not (tmp_path / "o").exists()


# --- bad input: SummaryWriter on an existing directory it cannot write -------------------------

@contextlib.contextmanager
def _unwritable_dir(path):
    """An existing directory no file can be created in: mode 555, or for root (which ignores
    modes) the immutable attribute."""
    import shutil
    import subprocess
    path.mkdir()
    path.chmod(0o555)
    immutable = False
    try:
        probe = path / "probe"
        try:
            probe.touch()
        except PermissionError:
            pass
        else:  # root: modes do not bind
            probe.unlink()
            if shutil.which("chattr") is None or subprocess.run(
                    ["chattr", "+i", str(path)], capture_output=True).returncode != 0:
                pytest.skip("running as root on a filesystem without chattr +i: no directory "
                            "here is unwritable")
            immutable = True
        yield path
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o755)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_summary_writer_on_an_unwritable_directory_raises_at_construction(tmp_path):
    from ember.utils.tensorboard import SummaryWriter
    with _unwritable_dir(tmp_path / "ro") as ro:
        with pytest.raises(PermissionError, match="events.out.tfevents"):
            SummaryWriter(str(ro))
        with pytest.raises(PermissionError):  # the CSV log too, before any training
            TrainingLog(str(ro), "csv")
        rc, stdout, stderr = _run(["train", "digits", "--epochs", "1", "--limit", "64",
                                   "--no-progress", "--log", "csv", "--out", str(ro)])
        assert rc == 1 and stdout == ""
        assert stderr.startswith(f"ember train: error: cannot write the csv log in {ro}: ")
