"""`ember train digits` production-loop flags: --log, --accumulate, --clip, --patience, --amp."""
import contextlib
import io
import math

import numpy as np
import pytest

import ember
from ember.__main__ import main
from ember.cli import digits
from ember.utils.diagnose import layer_grad_norms, read_run

QUICK = ["--epochs", "2", "--limit", "128", "--no-progress"]


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def _train(tmp_path, name, *argv):
    rc, stdout, stderr = _run(["train", "digits", *argv, "--out", str(tmp_path / name)])
    assert rc == 0, stderr
    return tmp_path / name, stdout


def _weights(run_dir):
    ckpt = ember.load(str(run_dir / "last.pt"), weights_only=True)
    return ckpt, {k: v.numpy() for k, v in ckpt["model"].items()}


def _linear_model(mod):
    """A batch-norm-free model: N small batches then equal one big batch exactly."""
    nn = mod.nn
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """The same quick run logged both ways: {backend: run dir}."""
    tmp = tmp_path_factory.mktemp("logged")
    return {b: _train(tmp, b, *QUICK, "--log", b)[0] for b in ("csv", "tensorboard")}


@pytest.mark.parametrize("backend", ["csv", "tensorboard"])
def test_log_writes_step_and_epoch_curves(logged, backend):
    run = logged[backend]
    curves = read_run(str(run))
    steps, loss = curves["train/loss"]
    assert list(steps) == list(range(1, 5))  # 2 epochs x 128/64 optimizer steps
    assert np.isfinite(loss).all()
    # the cosine schedule, logged as the rate each step used
    lr = curves["train/lr"][1]
    np.testing.assert_allclose(lr, 3e-3 * (1 + np.cos(np.pi * np.arange(4) / 4)) / 2,
                               rtol=1e-6)
    layers = [t for t in curves if t.startswith("grad_norm/")]
    assert sorted(layers) == sorted(["grad_norm/0", "grad_norm/1", "grad_norm/4", "grad_norm/5",
                                     "grad_norm/9", "grad_norm/11", "grad_norm/total"])
    per_layer = np.stack([curves[t][1] for t in layers if t != "grad_norm/total"])
    np.testing.assert_allclose(np.sqrt((per_layer ** 2).sum(0)), curves["grad_norm/total"][1],
                               rtol=1e-5)
    for tag in ("epoch/train_loss", "epoch/train_acc", "epoch/val_loss", "epoch/val_acc",
                "epoch/lr", "dead_relu/2", "dead_relu/6", "dead_relu/10"):
        assert list(curves[tag][0]) == [1, 2], tag
    ckpt, _ = _weights(run)
    np.testing.assert_allclose(curves["epoch/val_acc"][1], ckpt["history"]["test_acc"])
    np.testing.assert_allclose(curves["epoch/val_loss"][1], ckpt["history"]["test_loss"])
    assert ((curves["dead_relu/2"][1] >= 0) & (curves["dead_relu/2"][1] <= 1)).all()


def test_csv_and_tensorboard_logs_hold_the_same_run(logged):
    ra, rb = read_run(str(logged["csv"])), read_run(str(logged["tensorboard"]))
    assert ra.keys() == rb.keys()
    for tag in ra:  # TensorBoard stores float32
        np.testing.assert_allclose(ra[tag][1], rb[tag][1], rtol=1e-6, atol=1e-12, err_msg=tag)


def test_resumed_run_appends_to_the_csv_log(tmp_path):
    run, _ = _train(tmp_path, "r", *QUICK, "--log", "csv", "--stop-after", "1")
    rc, _, stderr = _run(["train", "digits", "--resume", str(run / "last.pt"), "--log", "csv",
                          "--no-progress"])
    assert rc == 0, stderr
    assert list(read_run(str(run))["train/loss"][0]) == list(range(1, 5))


def test_layer_grad_norms_match_torch():
    torch = pytest.importorskip("torch")
    ember.manual_seed(0)
    m = digits.build_model(ember)
    tm = digits.build_model(torch)
    tm.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in m.state_dict().items()})
    x = np.random.default_rng(0).random((8, 1, 8, 8), dtype=np.float32)
    y = np.arange(8) % 10
    for mod, model in ((ember, m), (torch, tm)):
        mod.nn.functional.cross_entropy(model(mod.from_numpy(x)), mod.from_numpy(y)).backward()
    got, want = layer_grad_norms(m), layer_grad_norms(tm)
    assert got.keys() == want.keys() == {"0", "1", "4", "5", "9", "11", "total"}
    for k in got:
        assert got[k] == pytest.approx(want[k], rel=1e-4), k
    total = torch.nn.utils.get_total_norm([p.grad for p in tm.parameters()])
    assert got["total"] == pytest.approx(float(total), rel=1e-4)


def test_accumulate_equals_one_big_batch(tmp_path, monkeypatch):
    # 160 images: batches of 32 group as 2+2+1 and batches of 64 are 64+64+32, the same data
    monkeypatch.setattr(digits, "build_model", _linear_model)
    small, _ = _train(tmp_path, "small", "--epochs", "2", "--limit", "160", "--no-progress",
                      "--batch-size", "32", "--accumulate", "2")
    big, _ = _train(tmp_path, "big", "--epochs", "2", "--limit", "160", "--no-progress",
                    "--batch-size", "64")
    (cs, ws), (cb, wb) = _weights(small), _weights(big)
    assert cs["step"] == cb["step"] == 6
    for k in ws:
        np.testing.assert_allclose(ws[k], wb[k], rtol=1e-4, atol=1e-6, err_msg=k)
    one, _ = _train(tmp_path, "one", "--epochs", "2", "--limit", "160", "--no-progress",
                    "--batch-size", "32", "--accumulate", "1")
    _, w1 = _weights(one)
    assert not all(np.allclose(w1[k], ws[k]) for k in ws)  # accumulation changed the run


def test_accumulate_1_is_the_default_run_bit_for_bit(tmp_path):
    a, _ = _train(tmp_path, "a", *QUICK)
    b, _ = _train(tmp_path, "b", *QUICK, "--accumulate", "1")
    (_, wa), (_, wb) = _weights(a), _weights(b)
    for k in wa:
        assert np.array_equal(wa[k], wb[k]), k


def test_clip_bounds_the_gradient_each_step(tmp_path, monkeypatch):
    real, seen = ember.nn.utils.clip_grad_norm_, []

    def spy(params, max_norm, *a, **k):
        params = list(params)
        before = real(params, max_norm, *a, **k)
        after = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in params))
        seen.append((float(before), after, max_norm))
        return before
    monkeypatch.setattr(ember.nn.utils, "clip_grad_norm_", spy)
    run, _ = _train(tmp_path, "c", *QUICK, "--clip", "0.05", "--log", "csv")
    assert len(seen) == 4
    for before, after, max_norm in seen:
        assert max_norm == 0.05
        assert after == pytest.approx(min(before, 0.05), rel=1e-4)
    assert any(before > 0.05 for before, _, _ in seen)
    # the logged norm is the one before clipping (what the model's loss asked for)
    np.testing.assert_allclose(read_run(str(run))["grad_norm/total"][1],
                               [b for b, _, _ in seen], rtol=1e-5)


def test_patience_stops_when_test_accuracy_stops_rising(tmp_path):
    run, stdout = _train(tmp_path, "p", "--epochs", "30", "--limit", "64", "--lr", "0.03",
                         "--no-progress", "--patience", "2")
    ckpt, _ = _weights(run)
    acc = ckpt["history"]["test_acc"]
    assert len(acc) < 30 and ckpt["epoch"] == len(acc)
    best = int(np.argmax(acc))
    assert len(acc) - 1 - best == 2  # stopped exactly 2 epochs after the best
    assert "early stopping: no better test accuracy for 2 epochs" in stdout
    assert ember.load(str(run / "best.pt"), weights_only=True)["epoch"] == best + 1


@pytest.mark.parametrize("amp, scaled", [("bf16", False), ("fp16", True)])
def test_amp_trains_in_low_precision(tmp_path, monkeypatch, amp, scaled):
    dtypes = []
    real_forward = digits.build_model

    def spying_model(mod):
        model = real_forward(mod)
        model[9].register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
        return model
    monkeypatch.setattr(digits, "build_model", spying_model)
    run, stdout = _train(tmp_path, amp, *QUICK, "--amp", amp)
    want = ember.bfloat16 if amp == "bf16" else ember.float16
    assert dtypes and dtypes[0] == want  # training forwards ran in the low dtype
    ckpt, w = _weights(run)
    # master weights stay float32
    assert all(v.dtype == np.float32 for v in w.values() if v.dtype.kind == "f")
    assert all(np.isfinite(v).all() for v in w.values())
    assert ("scaler" in ckpt) == scaled
    if scaled:
        assert ckpt["scaler"]["scale"] > 1
    assert ckpt["config"]["amp"] == amp
    rc, stdout, _ = _run(["eval", str(run / "last.pt")])
    assert rc == 0


def test_amp_flag_without_value_is_bf16():
    from ember.cli import build_parser
    ns = build_parser().parse_args(["train", "digits", "--amp"])
    assert ns.amp == "bf16"


@pytest.mark.parametrize("argv, message", [
    (["--accumulate", "0"], "--accumulate must be at least 1, got 0"),
    (["--clip", "0"], "--clip must be a positive number, got 0.0"),
    (["--clip", "nan"], "--clip must be a positive number, got nan"),
    (["--patience", "0"], "--patience must be at least 1, got 0"),
])
def test_bad_flag_values(tmp_path, argv, message):
    rc, stdout, stderr = _run(["train", "digits", *argv, "--out", str(tmp_path / "r")])
    assert rc == 2 and stderr == f"ember train: error: {message}\n"
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv", [["--log", "wandb"], ["--amp", "fp8"], ["--accumulate", "x"]])
def test_bad_flag_choices_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "digits", *argv])
    assert e.value.code == 2
    assert "invalid" in capsys.readouterr().err


def test_resume_rejects_a_changed_accumulate(tmp_path):
    run, _ = _train(tmp_path, "r", *QUICK, "--stop-after", "1")
    rc, _, stderr = _run(["train", "digits", "--resume", str(run / "last.pt"),
                          "--accumulate", "2"])
    assert rc == 2 and "--accumulate 2 differs from the resumed run's --accumulate 1" in stderr


def test_log_tensorboard_without_tensorboard_names_the_extra(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` now fails
    rc, stdout, stderr = _run(["train", "digits", *QUICK, "--log", "tensorboard", "--out",
                               str(tmp_path)])
    assert rc == 2 and stdout == ""
    assert stderr == ("ember train: error: ember.utils.tensorboard needs the tensorboard "
                      "package: pip install 'ember[tensorboard]' (or pip install tensorboard)\n")
