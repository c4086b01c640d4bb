"""The examples run as scripts, train, and never import PyTorch."""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run_example(name: str, *args: str) -> subprocess.CompletedProcess:
    # The working tree's ember, whatever is installed; -X importtime lists every import.
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "examples" / name),
                           *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_regression_trains_without_torch():
    proc = run_example("regression.py", "--steps", "300", "--every", "100")
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = [float(v) for v in re.findall(r"^step +\d+ +loss ([\d.e+-]+)$", proc.stdout, re.M)]
    assert len(losses) == 3, proc.stdout
    assert losses[0] > losses[1] > losses[2], losses
    m = re.search(r"final loss ([\d.e+-]+) after 300 steps \(initial loss ([\d.e+-]+)",
                  proc.stdout)
    assert m, proc.stdout
    final, initial = float(m.group(1)), float(m.group(2))
    assert initial == losses[0]
    assert final < 0.1 * initial, (final, initial)
    imported = re.findall(r"\|\s*(\S+)\s*$", proc.stderr, re.M)
    assert "ember" in imported
    assert not [m for m in imported if m == "torch" or m.startswith("torch.")]
