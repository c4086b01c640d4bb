"""The examples run as scripts, train, never import PyTorch, and run unchanged on PyTorch;
the benchmark workloads compute the same numbers under ember and PyTorch."""
from __future__ import annotations

import importlib
import math
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import ember

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # bench/ is not installed; plain `pytest` may not put it on the path
from bench import workloads  # noqa: E402,F401  (registers the workloads)
from bench.harness import REGISTRY, _as_array  # noqa: E402

STEP_LINE = re.compile(r"^step +(\d+) +loss ([\d.e+-]+) +lr ([\d.e+-]+)$", re.M)
FINAL_LINE = re.compile(r"final loss ([\d.e+-]+) after 300 steps \(initial loss ([\d.e+-]+)")


def run_script(path: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    # The working tree's ember, whatever is installed; -X importtime lists every import.
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-X", "importtime", str(path), *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def check_training(proc: subprocess.CompletedProcess) -> list:
    """Three falling losses at steps 0/100/200, the cosine schedule's rates at those steps
    and a final loss a tenth of the first; returns the (step, loss, lr) rows."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [(int(s), float(loss), float(lr)) for s, loss, lr in STEP_LINE.findall(proc.stdout)]
    assert [r[0] for r in rows] == [0, 100, 200], proc.stdout
    losses = [r[1] for r in rows]
    assert losses[0] > losses[1] > losses[2], losses
    for step, _, lr in rows:  # CosineAnnealingLR(T_max=300) from lr 0.1, printed to 5 places
        assert lr == pytest.approx(0.05 * (1 + math.cos(math.pi * step / 300)), abs=1e-5)
    m = FINAL_LINE.search(proc.stdout)
    assert m, proc.stdout
    final, initial = float(m.group(1)), float(m.group(2))
    assert initial == losses[0]
    assert final < 0.1 * initial, (final, initial)
    assert "TwoLayerNet(\n  (fc1): Linear(in_features=1, out_features=32" in proc.stdout
    assert "SGD lr 0.1 momentum 0.9, CosineAnnealingLR T_max=300" in proc.stdout
    return rows


def imported_modules(proc: subprocess.CompletedProcess) -> list:
    return re.findall(r"\|\s*(\S+)\s*$", proc.stderr, re.M)


def test_regression_trains_without_torch():
    proc = run_script(ROOT / "examples" / "regression.py", "--steps", "300", "--every", "100")
    check_training(proc)
    imported = imported_modules(proc)
    assert "ember" in imported and "ember.nn" in imported
    assert not [m for m in imported if m == "torch" or m.startswith("torch.")]


def test_regression_runs_unchanged_on_torch(tmp_path):
    source = (ROOT / "examples" / "regression.py").read_text()
    swapped = source.replace("import ember as torch\n", "import torch\n")
    swapped = swapped.replace("import ember.nn as nn\n", "import torch.nn as nn\n")
    assert not re.search(r"^\s*(import|from) ember", swapped, re.M), swapped
    script = tmp_path / "regression_torch.py"
    script.write_text(swapped)
    proc = run_script(script, "--steps", "300", "--every", "100")
    check_training(proc)
    imported = imported_modules(proc)
    assert "torch" in imported and "ember" not in imported


# Tolerance on |ember - torch|, relative to the largest |torch| value.  Adam divides each
# gradient by its own magnitude (g / (|g| + eps)), so the few elements whose float32 gradient
# is near eps (1e-8) move by slightly different fractions of lr; still far below lr = 1e-3.
ATOL = {"mlp_step_adam": 1e-3}
WORKLOADS = ["mlp_step_ops", "mlp_step_raw", "mlp_step_nn", "ln_gelu_block", "op_overhead",
             "mlp_step_adam", "adam_step_100"]


def three_steps(name):
    """``{module: [result of step 1, 2, 3]}`` of workload ``name`` under ember and torch."""
    outs = {}
    for mod in (ember, torch):
        step, convert = REGISTRY[name].fn(mod)
        outs[mod] = [_as_array(step()) for _ in range(3)]
        assert convert(1.0) > 0
    return outs


@pytest.mark.parametrize("name", WORKLOADS)
def test_workload_matches_torch(name):
    # Three steps: the later ones depend on the first step's gradients through the update.
    outs = three_steps(name)
    for e, t in zip(outs[ember], outs[torch]):
        assert e.shape == t.shape
        np.testing.assert_allclose(e, t, rtol=1e-4, atol=ATOL.get(name, 1e-5) * np.abs(t).max())


@pytest.mark.parametrize("name", ["mlp_step_adam", "adam_step_100"])
def test_adam_workload_checks_the_update(name):
    # The steps return parameters; each Adam step moves every one with a nonzero gradient
    # by about lr = 1e-3, well above both the test's and the bench's tolerance, so a
    # missing or wrong update cannot pass either check.
    first, second, _ = three_steps(name)[ember]
    moved = np.abs(second - first)
    ref = np.abs(first).max()
    assert np.median(moved) > 5e-4
    assert np.median(moved) > 10 * ATOL.get(name, 1e-5) * ref
    assert np.median(moved) > 10 * 1e-3 * ref  # the bench's harness uses atol 1e-3 * max


def test_adam_step_100_runs_torch_default_single_tensor_path(monkeypatch):
    # The workload's unit says torch's default Adam on CPU is the single-tensor loop.
    adam = importlib.import_module("torch.optim.adam")
    calls = []
    for impl in ("_single_tensor_adam", "_multi_tensor_adam"):
        real = getattr(adam, impl)
        monkeypatch.setattr(adam, impl, lambda *a, _real=real, _impl=impl, **k:
                            calls.append(_impl) or _real(*a, **k))
    step, _ = REGISTRY["adam_step_100"].fn(torch)
    step()
    assert calls == ["_single_tensor_adam"]
    assert "single-tensor" in REGISTRY["adam_step_100"].unit


def test_nn_and_raw_mlp_compute_the_same_steps():
    # The nn/raw ratio printed by the bench compares two spellings of one computation.
    for mod in (ember, torch):
        nn_step, _ = REGISTRY["mlp_step_nn"].fn(mod)
        raw_step, _ = REGISTRY["mlp_step_raw"].fn(mod)
        for _ in range(3):
            np.testing.assert_allclose(_as_array(nn_step()), _as_array(raw_step()), rtol=1e-6)


AMP_EPOCH = re.compile(r"^epoch +(\d+) +loss ([\d.]+) +scale (\S+) +skipped (\d+)/(\d+)$", re.M)
AMP_FINAL = re.compile(r"^final loss ([\d.]+) on the known labels; skipped (\d+) of (\d+) "
                       r"steps; scaler state (.*)$", re.M)


def amp_rows(proc: subprocess.CompletedProcess):
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("device cpu, 0 cuda device(s)\n"), proc.stdout
    epochs = AMP_EPOCH.findall(proc.stdout)
    final = AMP_FINAL.search(proc.stdout)
    assert [int(e[0]) for e in epochs] == [0, 4, 8, 11] and final, proc.stdout
    return epochs, final.groups()


def test_amp_device_agnostic_example_matches_torch(tmp_path):
    # The device-agnostic GradScaler script (issue 13): same device line, same skipped steps
    # and scales, same losses under ember and, imports swapped, under PyTorch.
    path = ROOT / "examples" / "amp_device_agnostic.py"
    ember_proc = run_script(path, "--epochs", "12", "--every", "4")
    assert not [m for m in imported_modules(ember_proc) if m == "torch" or m.startswith("torch.")]
    swapped = path.read_text().replace("import ember as torch\n", "import torch\n")
    swapped = swapped.replace("import ember.nn as nn\n", "import torch.nn as nn\n")
    assert not re.search(r"^\s*(import|from) ember", swapped, re.M)
    script = tmp_path / "amp_torch.py"
    script.write_text(swapped)
    (e_epochs, e_final), (t_epochs, t_final) = (amp_rows(ember_proc),
                                                amp_rows(run_script(script, "--epochs", "12",
                                                                    "--every", "4")))
    for e, t in zip(e_epochs, t_epochs):
        assert (e[0], e[2], e[3], e[4]) == (t[0], t[2], t[3], t[4])  # epoch, scale, skips
        assert float(e[1]) == pytest.approx(float(t[1]), rel=1e-4)
    assert e_final[1:] == t_final[1:]  # skipped/steps and the scaler's state dict
    assert int(e_final[1]) == 12  # the missing label's batch, once per epoch
    assert float(e_final[0]) == pytest.approx(float(t_final[0]), rel=1e-4)
    assert float(e_final[0]) < 0.5 * float(e_epochs[0][1])  # it trained
