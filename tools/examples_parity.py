"""Run pytorch/examples' image programs on PyTorch+torchvision and on ember, from the same
starting weights and batch order, and compare the metrics they print.

    python tools/examples_parity.py EXAMPLES_DIR TORCH_PYTHON [--work DIR] [--only NAME]

EXAMPLES_DIR is a checkout of github.com/pytorch/examples; TORCH_PYTHON a Python where
torch and torchvision import (torchvision cannot beside the test oracle torch 2.13: a venv
with ``pip install torch==2.14.1 torchvision==0.29.1``).  Every program runs unchanged
(ember's side through ``ember run``'s alias).  The data are fixtures laid out as torchvision
leaves them on disk: MNIST's idx files made from ember's bundled 8x8 digits scaled to 28x28,
an ImageFolder of generated 64x64 images for DCGAN, BSDS300-style JPEGs for
super_resolution.  Only the harness reaches into the runs, identically on both sides: the
first forward of each top-level module saves (PyTorch) or loads (ember) its initial
state_dict, and RandomSampler's order, ``F.dropout``'s masks and the scripts' own
``torch.randn``/``randn_like`` draws (a GAN's z, a VAE's epsilon) come from NumPy, so the
two runs start from the same weights, see the same batches, noise and dropped units.  Float
summation order still differs (BLAS, reductions), so over an epoch the metrics agree to a
few digits, not bit for bit.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name: (folder, arguments, metric regexes: the last match of each is compared)
EXAMPLES = {
    "mnist": ("mnist", ["--epochs", "2", "--no-accel"],
              {"test loss": r"Test set: Average loss: ([\d.]+)",
               "test correct": r"Accuracy: (\d+)/\d+"}),
    "mnist_rnn": ("mnist_rnn", ["--epochs", "2"],
                  {"test loss": r"Test set: Average loss: ([\d.]+)",
                   "test correct": r"Accuracy: (\d+)/\d+"}),
    "vae": ("vae", ["--epochs", "2", "--no-accel"],
            {"train loss": r"Epoch: \d+ Average loss: ([\d.]+)",
             "test loss": r"Test set loss: ([\d.]+)"}),
    "siamese_network": ("siamese_network", ["--epochs", "1", "--no-accel"],
                        {"test loss": r"Test set: Average loss: ([\d.]+)",
                         "test correct": r"Accuracy: (\d+)/\d+"}),
    "super_resolution": ("super_resolution", ["--upscale_factor", "3", "--nEpochs", "4", "--lr", "0.001",
                                              "--threads", "0"],
                         {"train loss": r"Epoch \d+ Complete: Avg. Loss: ([\d.]+)",
                          "PSNR dB": r"Avg. PSNR: ([\d.]+)"}),
    "dcgan": ("dcgan", ["--dataset", "folder", "--dataroot", "{data}/folder", "--niter", "1",
                        "--workers", "0", "--manualSeed", "1", "--outf", "out"],
              {"Loss_D": r"Loss_D: ([\d.]+)", "Loss_G": r"Loss_G: ([\d.]+)"}),
    # FakeData's images come from each framework's own random stream, so only that the
    # program runs is comparable here, not its numbers
    "dcgan_fake": ("dcgan", ["--dataset", "fake", "--dry-run", "--workers", "0",
                             "--manualSeed", "1", "--outf", "out"],
                   {"Loss_D": r"Loss_D: ([\d.]+)", "Loss_G": r"Loss_G: ([\d.]+)"}),
}

# The runner: installs the weight/batch-order sync, then runs the script as __main__.
RUNNER = r'''
import os, runpy, sys
import numpy as np
side, sync_dir, script, *args = sys.argv[1:]
if side == "ember":
    import ember.compat
    ember.compat.install()
import torch
from torch.utils.data import RandomSampler

_epoch = [0]
def _iter(self):  # the same order on both sides: NumPy's, one seed per pass
    _epoch[0] += 1
    n = len(self.data_source)
    yield from np.random.RandomState(_epoch[0]).permutation(n).tolist()
RandomSampler.__iter__ = _iter

_masks = np.random.RandomState(12345)
def _dropout(input, p=0.5, training=True, inplace=False):  # masks from NumPy, both sides
    if not training or p == 0:
        return input
    keep = (_masks.random_sample(tuple(input.shape)) >= p).astype(np.float32) / (1 - p)
    return input * torch.from_numpy(keep).to(input.dtype)
torch.nn.functional.dropout = _dropout

_normal = np.random.RandomState(54321)
def _randn(*size, dtype=None, **kwargs):  # the scripts' noise (GAN z, VAE eps) from NumPy
    if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)):
        size = tuple(size[0])
    t = torch.from_numpy(_normal.standard_normal(size).astype(np.float32))
    return t.to(dtype) if dtype is not None else t
torch.randn = _randn
torch.randn_like = lambda t, **kw: _randn(tuple(t.shape), dtype=t.dtype)

_depth, _seen, _count = [0], set(), [0]
def _pre(module, inputs):
    if _depth[0] == 0 and id(module) not in _seen:
        _seen.add(id(module))
        path = os.path.join(sync_dir, f"init{_count[0]}.pt")
        _count[0] += 1
        if side == "torch":
            torch.save(module.state_dict(), path)
        else:
            module.load_state_dict(torch.load(path))
    _depth[0] += 1
def _post(module, inputs, output):
    _depth[0] -= 1
torch.nn.modules.module.register_module_forward_pre_hook(_pre)
torch.nn.modules.module.register_module_forward_hook(_post, always_call=True)
sys.argv = [script, *args]
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
runpy.run_path(script, run_name="__main__")
'''


def _idx(path: str, arr: np.ndarray) -> None:
    """Write ``arr`` (uint8) in MNIST's idx format, as torchvision's raw files."""
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def make_data(data: str) -> None:
    """The fixtures: MNIST idx files, an ImageFolder for DCGAN, BSDS300-style JPEGs."""
    from PIL import Image
    z = np.load(os.path.join(ROOT, "ember", "datasets", "digits.npz"))
    img = z["images"].astype(np.float64) * (255 / 16)
    # 8x8 -> 28x28: nearest-neighbour x3 (24x24), centred in a 28x28 frame as MNIST's digits
    big = np.zeros((len(img), 28, 28), np.uint8)
    big[:, 2:26, 2:26] = np.repeat(np.repeat(img, 3, 1), 3, 2).round().astype(np.uint8)
    labels = z["labels"]
    raw = os.path.join(data, "MNIST", "raw")
    os.makedirs(raw, exist_ok=True)
    n = 1500
    for split, sl in (("train", slice(0, n)), ("t10k", slice(n, None))):
        _idx(os.path.join(raw, f"{split}-images-idx3-ubyte"), big[sl])
        _idx(os.path.join(raw, f"{split}-labels-idx1-ubyte"), labels[sl])
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64] / 63.0
    for c in range(2):
        d = os.path.join(data, "folder", f"class{c}")
        os.makedirs(d, exist_ok=True)
        for i in range(64):
            f = rng.uniform(1, 4, 3)
            rgb = np.stack([0.5 + 0.5 * np.sin(2 * np.pi * (f[k] * xx + (k + c) * yy))
                            for k in range(3)], -1)
            Image.fromarray((rgb * 255).astype(np.uint8)).save(os.path.join(d, f"{i}.png"))
    yy, xx = np.mgrid[0:300, 0:300] / 299.0
    for split, count in (("train", 24), ("test", 6)):
        d = os.path.join(data, "BSDS300", "images", split)
        os.makedirs(d, exist_ok=True)
        for i in range(count):
            f = rng.uniform(1, 6, 3)
            rgb = np.stack([0.5 + 0.5 * np.sin(2 * np.pi * f[k] * (xx * np.cos(k + i)
                                                                   + yy * np.sin(k + i)))
                            for k in range(3)], -1)
            Image.fromarray((rgb * 255).astype(np.uint8)).save(os.path.join(d, f"{i}.jpg"))


def run_one(name: str, examples: str, torch_python: str, work: str) -> dict:
    folder, args, metrics = EXAMPLES[name]
    data = os.path.join(work, "data")
    results = {}
    sync = os.path.join(work, name, "sync")
    os.makedirs(sync, exist_ok=True)
    for side, python in (("torch", torch_python), ("ember", sys.executable)):
        cwd = os.path.join(work, name, side, folder)
        shutil.rmtree(cwd, ignore_errors=True)
        shutil.copytree(os.path.join(examples, folder), cwd)
        os.makedirs(os.path.join(cwd, "results"), exist_ok=True)  # vae's image folder
        os.makedirs(os.path.join(cwd, "out"), exist_ok=True)
        if folder == "super_resolution":
            os.symlink(data, os.path.join(cwd, "dataset"))
        else:
            link = os.path.join(work, name, side, "data")  # the '../data' the scripts use
            if not os.path.exists(link):
                os.symlink(data, link)
        env = dict(os.environ, PYTHONPATH=ROOT if side == "ember" else "")
        argv = [a.replace("{data}", data) for a in args]
        runner = os.path.join(work, "runner.py")
        proc = subprocess.run([python, runner, side, sync, "main.py", *argv], cwd=cwd,
                              env=env, capture_output=True, text=True, timeout=1800)
        with open(os.path.join(work, name, f"{side}.log"), "w") as f:
            f.write(proc.stdout + proc.stderr)
        if proc.returncode:
            raise SystemExit(f"{name} on {side} failed:\n{proc.stderr[-3000:]}")
        results[side] = {k: float(re.findall(rx, proc.stdout)[-1]) for k, rx in metrics.items()}
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("examples")
    ap.add_argument("torch_python")
    ap.add_argument("--work", default="/tmp/ember_parity")
    ap.add_argument("--only", action="append")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    with open(os.path.join(a.work, "runner.py"), "w") as f:
        f.write(RUNNER)
    if not os.path.exists(os.path.join(a.work, "data")):
        make_data(os.path.join(a.work, "data"))
    print(f"{'example':18} {'metric':16} {'PyTorch':>10} {'ember':>10} {'rel diff':>9}")
    for name in a.only or EXAMPLES:
        res = run_one(name, a.examples, a.torch_python, a.work)
        for k in res["torch"]:
            t, e = res["torch"][k], res["ember"][k]
            print(f"{name:18} {k:16} {t:10.4f} {e:10.4f} {abs(e - t) / max(abs(t), 1e-12):9.2%}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
