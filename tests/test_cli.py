"""The ``ember`` command: train digits (progress, checkpoints, curves, exact resume), eval,
info, help and bad input; plus the bundled digits data."""
import contextlib
import io
import os
import pathlib
import re
import subprocess
import sys
import time

import numpy as np
import pytest

import ember
from ember.__main__ import main
from ember.datasets import digits_split, load_digits

REPO = os.path.dirname(os.path.dirname(os.path.abspath(ember.__file__)))
QUICK = ["--epochs", "2", "--limit", "256", "--no-progress"]
N_TEST = 359


def _run(argv):
    """``main(argv)`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def _arrays(obj):
    """A checkpoint entry with every tensor as a NumPy array (for exact comparison)."""
    if isinstance(obj, ember.Tensor):
        return obj.numpy()
    if isinstance(obj, dict):
        return {k: _arrays(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_arrays(v) for v in obj]
    return obj


def _assert_identical(a, b, where="checkpoint"):
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, where
        assert np.array_equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_identical(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """A 2-epoch run on 256 training images: (run dir, stdout)."""
    out = tmp_path_factory.mktemp("quick") / "run"
    rc, stdout, stderr = _run(["train", "digits", *QUICK, "--out", str(out)])
    assert rc == 0, stderr
    return out, stdout


# --- the bundled data --------------------------------------------------------------------------

def test_load_digits_is_the_uci_digits():
    images, labels = load_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert images.min() == 0 and images.max() == 16
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    # pins the stored pixels: the sum of scikit-learn's load_digits().images
    assert int(images.astype(np.int64).sum()) == 561718
    assert labels[:10].tolist() == list(range(10))


def test_digits_split_is_fixed_stratified_and_disjoint():
    _, labels = load_digits()
    train, test = digits_split(labels)
    assert len(train) == 1438 and len(test) == N_TEST
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.union1d(train, test), np.arange(1797))
    per_class = np.bincount(labels[test])
    assert np.array_equal(per_class, np.round(0.2 * np.bincount(labels)).astype(int))
    train2, test2 = digits_split(labels)
    assert np.array_equal(test, test2) and np.array_equal(train, train2)
    x_test, y_test = load_digits("test")
    assert np.array_equal(y_test, labels[test]) and x_test.shape == (N_TEST, 8, 8)
    assert load_digits("train")[0].shape == (1438, 8, 8)


def test_load_digits_rejects_unknown_split():
    with pytest.raises(ValueError, match="split must be 'all', 'train' or 'test', got 'val'"):
        load_digits("val")


# --- ember train digits ------------------------------------------------------------------------

def test_train_writes_checkpoints_curves_and_reports(quick_run):
    out, stdout = quick_run
    for name in ("last.pt", "best.pt"):
        assert (out / name).is_file()
    png = (out / "curves.png").read_bytes()  # matplotlib is installed in the test env
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    lines = stdout.splitlines()
    assert re.match(r"epoch 1/2  loss \d+\.\d{4}  train acc +\d+\.\d\d%  test acc +\d+\.\d\d%",
                    lines[0]), stdout
    assert lines[1].startswith("epoch 2/2")
    m = re.search(r"test accuracy (\d+\.\d\d)% \((\d+)/359\) after 2 epochs; best", stdout)
    assert m, stdout
    ckpt = ember.load(str(out / "last.pt"), weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["step"] == 2 * 4  # 256 images / batch 64
    assert ckpt["task"] == "digits"
    assert ckpt["config"] == {"epochs": 2, "batch_size": 64, "lr": 3e-3, "seed": 0,
                              "limit": 256, "accumulate": 1, "clip": None, "amp": None,
                              "patience": None}
    assert len(ckpt["history"]["test_acc"]) == 2
    assert ckpt["history"]["test_acc"][-1] == pytest.approx(float(m.group(1)) / 100, abs=5e-5)
    assert int(m.group(2)) == round(ckpt["history"]["test_acc"][-1] * N_TEST)
    assert ckpt["history"]["lr"][-1] == 0.0  # the cosine schedule ran to its end
    best = ember.load(str(out / "best.pt"), weights_only=True)
    assert best["best_metric"] == max(ckpt["history"]["test_acc"]) == ckpt["best_metric"]


def test_train_progress_bar_goes_to_stderr(tmp_path):
    rc, stdout, stderr = _run(["train", "digits", "--epochs", "1", "--limit", "128",
                               "--out", str(tmp_path)])
    assert rc == 0
    assert "epoch 1/1:" in stderr and "batch" in stderr and "loss" in stderr  # tqdm's bar
    assert stdout.startswith("epoch 1/1  loss")


def test_train_without_tqdm_and_matplotlib(tmp_path, monkeypatch):
    # None in sys.modules makes the import raise ImportError, as if not installed
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # --threads 1 is then a no-op
    rc, stdout, stderr = _run(["train", "digits", "--epochs", "1", "--limit", "64",
                               "--out", str(tmp_path)])
    assert rc == 0
    assert stderr == ""
    assert stdout.startswith("epoch 1/1  loss")  # the plain progress line
    assert not (tmp_path / "curves.png").exists() and (tmp_path / "last.pt").exists()
    assert "curves.png" not in stdout


def test_resume_continues_bit_for_bit(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert _run(["train", "digits", *QUICK, "--out", str(straight)])[0] == 0
    rc, stdout, _ = _run(["train", "digits", *QUICK, "--out", str(split), "--stop-after", "1"])
    assert rc == 0
    assert f"after 1 epoch (stopped early; continue with --resume {split / 'last.pt'})" in stdout
    assert ember.load(str(split / "last.pt"), weights_only=True)["epoch"] == 1
    rc, stdout, _ = _run(["train", "digits", "--resume", str(split / "last.pt"),
                          "--out", str(split), "--no-progress"])
    assert rc == 0
    assert stdout.startswith(f"resuming {split / 'last.pt'}: epoch 1/2 done")
    assert "epoch 1/2" not in stdout.splitlines()[1] and "epoch 2/2" in stdout
    for name in ("last.pt", "best.pt"):
        a = _arrays(ember.load(str(straight / name), weights_only=True))
        b = _arrays(ember.load(str(split / name), weights_only=True))
        # weights, batch-norm buffers, Adam moments, schedule, counters, history, RNG states
        _assert_identical(a, b, name)


def test_ctrl_c_says_how_to_resume(tmp_path, monkeypatch):
    from ember.cli import digits
    real, calls = digits._predict, []

    def interrupted_in_epoch_2(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(digits, "_predict", interrupted_in_epoch_2)
    rc, stdout, stderr = _run(["train", "digits", *QUICK, "--out", str(tmp_path)])
    last = tmp_path / "last.pt"
    assert rc == 130
    assert stderr == (f"ember train: error: interrupted: {last} holds epoch 1; continue with "
                      f"--resume {last}\n")
    assert ember.load(str(last), weights_only=True)["epoch"] == 1
    monkeypatch.setattr(digits, "_predict", real)
    rc, stdout, _ = _run(["train", "digits", "--resume", str(last), "--no-progress"])
    assert rc == 0 and "after 2 epochs;" in stdout  # --out defaults to the checkpoint's dir
    assert ember.load(str(last), weights_only=True)["epoch"] == 2


def test_resume_of_a_finished_run_trains_nothing(quick_run):
    out, _ = quick_run
    before = (out / "last.pt").read_bytes()
    rc, stdout, _ = _run(["train", "digits", "--resume", str(out / "last.pt"),
                          "--out", str(out)])
    assert rc == 0
    assert "the run already finished its 2 epochs: nothing to train" in stdout
    assert (out / "last.pt").read_bytes() == before


def test_resume_rejects_a_changed_hyper_parameter(quick_run, tmp_path):
    out, _ = quick_run
    rc, stdout, stderr = _run(["train", "digits", "--resume", str(out / "last.pt"),
                               "--lr", "0.1", "--out", str(tmp_path)])
    assert rc == 2 and stdout == ""
    assert stderr == ("ember train: error: --lr 0.1 differs from the resumed run's --lr 0.003: "
                      "a resumed run finishes the run it continues (start a new run to change "
                      "it)\n")
    rc, _, stderr = _run(["train", "digits", "--resume", str(out / "last.pt"),
                          "--epochs", "5", "--out", str(tmp_path)])
    assert rc == 2 and "--epochs 5 differs from the resumed run's --epochs 2" in stderr


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--limit", "0"], "--limit must be at least 1, got 0"),
    (["--lr", "-1"], "--lr must be a positive number, got -1.0"),
    (["--lr", "nan"], "--lr must be a positive number, got nan"),
    (["--stop-after", "0"], "--stop-after must be at least 1, got 0"),
    (["--threads", "-1"], "--threads must be 0 or more, got -1"),
    (["--resume", "no/such.pt"], "no such checkpoint file: no/such.pt"),
])
def test_train_bad_options(tmp_path, argv, message):
    rc, stdout, stderr = _run(["train", "digits", *argv, "--out", str(tmp_path / "r")])
    assert rc == 2
    assert stderr == f"ember train: error: {message}\n"
    assert not (tmp_path / "r").exists()


def test_train_threads_zero_leaves_blas_alone(tmp_path):
    rc, stdout, _ = _run(["train", "digits", "--epochs", "1", "--limit", "64", "--threads", "0",
                          "--no-progress", "--out", str(tmp_path)])
    assert rc == 0 and "after 1 epoch;" in stdout


def test_blas_threads_limits_blas_only_inside_the_block(monkeypatch):
    from ember.cli.digits import blas_threads
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # without threadpoolctl the limit is a documented no-op
        with blas_threads(1):
            pass
        return

    def counts():
        return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}
    before = counts()
    with blas_threads(1):
        assert counts() == {1}
    with blas_threads(0):  # 0: leave the library's setting
        assert counts() == before
    assert counts() == before


def test_full_default_training_reaches_97_percent(tmp_path):
    """The acceptance criterion: the default run, under a minute, >= 97% held-out accuracy."""
    t0 = time.perf_counter()
    rc, stdout, stderr = _run(["train", "digits", "--no-progress", "--out", str(tmp_path)])
    elapsed = time.perf_counter() - t0
    assert rc == 0, stderr
    assert elapsed < 60, f"ember train digits took {elapsed:.1f}s"
    acc = float(re.search(r"test accuracy (\d+\.\d\d)% \(\d+/359\) after 10 epochs;",
                          stdout).group(1))
    assert acc >= 97.0, stdout
    assert len([ln for ln in stdout.splitlines() if ln.startswith("epoch ")]) == 10


# --- ember eval --------------------------------------------------------------------------------

def _parse_eval(stdout):
    acc = re.search(r"^test accuracy (\d+\.\d\d)% \((\d+)/(\d+)\)$", stdout, re.M)
    assert acc, stdout
    head = stdout.splitlines().index(
        "confusion matrix (rows: true digit, columns: predicted digit)")
    lines = stdout.splitlines()[head + 1:]
    assert lines[0].split() == ["true\\pred", *map(str, range(10)), "recall"]
    rows = [ln.split() for ln in lines[1:]]
    assert len(rows) == 10 and [r[0] for r in rows] == list(map(str, range(10)))
    cm = np.array([[int(v) for v in r[1:11]] for r in rows])
    return acc, cm


def test_eval_reports_accuracy_and_confusion_matrix(quick_run):
    out, _ = quick_run
    rc, stdout, stderr = _run(["eval", str(out / "best.pt")])
    assert rc == 0 and stderr == ""
    acc, cm = _parse_eval(stdout)
    assert cm.shape == (10, 10) and cm.sum() == N_TEST == int(acc.group(3))
    assert np.array_equal(cm.sum(1), np.bincount(load_digits("test")[1]))
    assert np.trace(cm) == int(acc.group(2))
    best = ember.load(str(out / "best.pt"), weights_only=True)
    # best.pt was kept for its test accuracy: eval must score exactly that
    assert int(acc.group(2)) == round(best["best_metric"] * N_TEST)
    assert stdout.startswith(f"checkpoint {out / 'best.pt'}: epoch {best['epoch']}/2")


def test_eval_batch_size_does_not_change_the_answer(quick_run):
    out, _ = quick_run
    a = _run(["eval", str(out / "last.pt")])[1]
    b = _run(["eval", str(out / "last.pt"), "--batch-size", "7"])[1]
    assert a == b


def test_eval_bad_input(tmp_path):
    rc, stdout, stderr = _run(["eval", str(tmp_path / "missing.pt")])
    assert (rc, stdout) == (2, "")
    assert stderr == f"ember eval: error: no such checkpoint file: {tmp_path / 'missing.pt'}\n"

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    rc, _, stderr = _run(["eval", str(junk)])
    assert rc == 1
    assert stderr.startswith(f"ember eval: error: cannot read checkpoint {junk}: ")
    assert "Traceback" not in stderr

    other = tmp_path / "other.pt"
    ember.save({"weights": ember.zeros(3)}, str(other))
    rc, _, stderr = _run(["eval", str(other)])
    assert rc == 1
    assert stderr == (f"ember eval: error: {other} is not a checkpoint written by "
                      "`ember train digits`\n")

    rc, _, stderr = _run(["eval", str(other), "--batch-size", "0"])
    assert rc == 2 and stderr == "ember eval: error: --batch-size must be at least 1, got 0\n"


def test_eval_rejects_weights_of_another_model(quick_run, tmp_path):
    out, _ = quick_run
    ckpt = ember.load(str(out / "last.pt"), weights_only=True)
    del ckpt["model"]["0.weight"]
    bad = tmp_path / "bad.pt"
    ember.save(ckpt, str(bad))
    rc, _, stderr = _run(["eval", str(bad)])
    assert rc == 1
    assert stderr.startswith(f"ember eval: error: {bad}: weights do not fit the digits model: ")
    assert "0.weight" in stderr


# --- ember info, help, usage errors ------------------------------------------------------------

def test_info_lists_versions_blas_threads_and_extras():
    from importlib import metadata
    rc, stdout, _ = _run(["info"])
    assert rc == 0
    assert re.search(rf"^ember +{re.escape(ember.__version__)}$", stdout, re.M)
    assert re.search(rf"^array backend +numpy {re.escape(np.__version__)}$", stdout, re.M)
    assert re.search(r"^BLAS +\S+", stdout, re.M)
    assert re.search(rf"^CPUs +{os.cpu_count()}$", stdout, re.M)
    assert re.search(r"^BLAS threads +\S+", stdout, re.M)
    for name in ("ml_dtypes", "tqdm", "matplotlib", "safetensors", "onnx", "onnxruntime",
                 "mpi4py", "threadpoolctl"):
        try:
            want = metadata.version(name)
        except metadata.PackageNotFoundError:
            want = "not installed"
        assert re.search(rf"^  {name} +{re.escape(want)}$", stdout, re.M), name


def test_info_without_threadpoolctl(monkeypatch):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    rc, stdout, _ = _run(["info"])
    assert rc == 0
    assert re.search(r"^BLAS threads +3 \(from OPENBLAS_NUM_THREADS\)$", stdout, re.M)
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    stdout = _run(["info"])[1]
    assert re.search(r"^BLAS threads +library default \(install threadpoolctl to see the "
                     r"count\)$", stdout, re.M)


def test_python_dash_m_ember_info_in_a_fresh_process(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    r = subprocess.run([sys.executable, "-m", "ember", "info"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"ember          {ember.__version__}\n")
    assert "optional extras:" in r.stdout and r.stderr == ""
    # the CLI is ember code: it never imports torch
    code = ("import sys; from ember.__main__ import main; rc = main(['info']); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_help_texts(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ember [-h]")
    for cmd in ("train", "eval", "info", "ember train digits --resume runs/digits/last.pt"):
        assert cmd in out
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--epochs", "--batch-size", "--lr", "--seed", "--out", "--resume",
                "--no-progress", "--limit", "--stop-after", "--threads", "'digits'"):
        assert opt in out, opt
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"ember {ember.__version__}\n"


@pytest.mark.parametrize("argv, message", [
    # the choices also list the recipes (tests/test_recipes.py checks each is named)
    (["train", "cifar"], "ember train: error: argument TASK: invalid choice: 'cifar' "
                         "(choose from "),
    ([], "ember: error: the following arguments are required: COMMAND"),
    (["fly"], "ember: error: argument COMMAND: invalid choice: 'fly'"),
    (["train", "digits", "--epochs", "ten"], "argument --epochs: invalid int value: 'ten'"),
    (["eval"], "the following arguments are required: checkpoint"),
])
def test_usage_errors_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: ember") and message in err and "Traceback" not in err


def test_info_into_a_closed_pipe_exits_quietly():
    # `ember info | head -1`: the reader closes the pipe early; no BrokenPipeError traceback
    env = dict(os.environ, PYTHONPATH=str(pathlib.Path(ember.__file__).resolve().parents[1]))
    proc = subprocess.run(f"{sys.executable} -m ember info | head -1", shell=True, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.startswith("ember"), proc.stdout
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
