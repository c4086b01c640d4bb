"""``ember quantize CHECKPOINT --mode static|dynamic|qat``: accuracy, size and latency lines,
the saved quantized state dict (PyTorch-readable, loadable back), bad input."""
from __future__ import annotations

import contextlib
import io
import re
import warnings

import numpy as np
import pytest
import torch

import ember
from ember.__main__ import main


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("q") / "run"
    rc, _, err = _run(["train", "digits", "--epochs", "3", "--no-progress", "--out", str(out)])
    assert rc == 0, err
    return out / "best.pt"


@pytest.mark.parametrize("mode", ["static", "dynamic", "qat"])
def test_quantize_modes(ckpt, mode, tmp_path):
    target = tmp_path / f"{mode}.pt"
    rc, out, err = _run(["quantize", str(ckpt), "--mode", mode, "--qat-epochs", "1",
                         "--out", str(target)])
    assert rc == 0, err
    acc = re.search(r"float\s+([\d.]+)%\s+int8\s+([\d.]+)%", out)
    assert acc and abs(float(acc.group(1)) - float(acc.group(2))) <= 1.0, out
    ratio = float(re.search(r"KiB\s+\(([\d.]+)x\)", out).group(1))
    assert ratio <= (0.31 if mode != "dynamic" else 0.6), out
    assert "latency (batch 64)" in out and target.exists()
    # PyTorch reads the quantized weights as its own quantized tensors
    sd = torch.load(target, weights_only=True)
    if mode == "dynamic":
        w, _ = sd["9._packed_params._packed_params"]
    else:
        w = sd["1.weight"]
    assert w.is_quantized and w.dtype == torch.qint8


def test_saved_static_state_dict_loads_back(ckpt, tmp_path):
    from ember.cli.digits import build_model, _read_checkpoint, _tensors
    from ember.cli.quantize import quantize_model
    target = tmp_path / "s.pt"
    assert _run(["quantize", str(ckpt), "--out", str(target)])[0] == 0
    model = build_model(ember)
    model.load_state_dict(_read_checkpoint(ember, str(ckpt))["model"])
    x, _ = _tensors(ember, "test")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh = quantize_model(ember, model.eval(), "static", "x86", x[:8])  # other qparams
        ref = quantize_model(ember, model.eval(), "static", "x86",
                             _tensors(ember, "train")[0][:512])
    fresh.load_state_dict(ember.load(target))
    np.testing.assert_array_equal(fresh(x).numpy(), ref(x).numpy())


@pytest.mark.parametrize("argv,msg", [(["--calibration", "0"], "--calibration"),
                                      (["--mode", "qat", "--qat-epochs", "0"], "--qat-epochs")])
def test_bad_options(ckpt, argv, msg):
    rc, _, err = _run(["quantize", str(ckpt), *argv])
    assert rc == 2 and msg in err


def test_missing_checkpoint(tmp_path):
    rc, _, err = _run(["quantize", str(tmp_path / "nope.pt")])
    assert rc != 0 and "nope.pt" in err
