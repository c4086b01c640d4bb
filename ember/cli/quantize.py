"""``ember quantize CHECKPOINT --mode static|dynamic|qat``: the digits CNN of a training
checkpoint in int8, with float vs int8 test accuracy, file size and latency.

static: QuantStub/DeQuantStub around the model, conv-bn-relu and linear-relu fused, the
backend's default qconfig, calibrated on training images, converted.  dynamic: the Linear
layers only (int8 weights, activations quantized per call).  qat: fused for QAT, fine-tuned
with fake quantization (observers and BN statistics frozen for the last epoch), converted.
The quantized model's state dict is saved with ``ember.save`` in PyTorch's format (its
quantized weights as PyTorch's quantized tensors, Linear weights under PyTorch's
``_packed_params._packed_params`` key).
"""
from __future__ import annotations

import io
import os
import sys
import time
import warnings

from . import CLIError

__all__ = ["add_parser", "run", "quantize_model"]

_FUSE = [["1", "2", "3"], ["5", "6", "7"], ["10", "11"]]


def add_parser(sub) -> None:
    p = sub.add_parser(
        "quantize", help="quantize a checkpoint's model to int8 and compare it with float",
        description="Quantize the model of a `ember train digits` checkpoint to int8 "
                    "(static, dynamic or quantization-aware training) and print float vs int8 "
                    "test accuracy, model size and latency; save the quantized state dict.")
    p.add_argument("checkpoint", help="a checkpoint written by `ember train` (last.pt/best.pt)")
    p.add_argument("--mode", choices=("static", "dynamic", "qat"), default="static",
                   help="static (default): calibrated activations and weights; dynamic: "
                        "Linear weights only; qat: fine-tune with fake quantization first")
    p.add_argument("--backend", choices=("x86", "fbgemm", "qnnpack"), default="x86",
                   help="the qconfig's backend (default x86)")
    p.add_argument("--calibration", type=int, default=512, metavar="N",
                   help="training images used to calibrate (static) (default 512)")
    p.add_argument("--qat-epochs", type=int, default=2, metavar="N",
                   help="fine-tuning epochs for --mode qat (default 2)")
    p.add_argument("--out", default=None,
                   help="where to save the quantized state dict (default: beside the "
                        "checkpoint, quantized_<mode>.pt)")
    from .digits import add_threads_argument
    add_threads_argument(p)


def _state_bytes(mod, model) -> int:
    buf = io.BytesIO()
    mod.save(model.state_dict(), buf)
    return buf.tell()


def _latency_ms(mod, model, x, repeat: int = 20) -> float:
    with mod.no_grad():
        model(x)
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2] * 1e3


def quantize_model(mod, model, mode: str, backend: str, calib, train=None, epochs: int = 2,
                   seed: int = 0):
    """``model`` (the digits CNN, float) quantized by ``mode``; ``calib`` are calibration
    images, ``train`` ``(x, y)`` the fine-tuning data of QAT."""
    aq = mod.ao.quantization
    if mode == "dynamic":
        return aq.quantize_dynamic(model.eval(), {mod.nn.Linear}, dtype=mod.qint8)
    wrapped = mod.nn.Sequential(aq.QuantStub(), *model, aq.DeQuantStub())
    if mode == "static":
        wrapped.eval()
        wrapped.qconfig = aq.get_default_qconfig(backend)
        prepared = aq.prepare(aq.fuse_modules(wrapped, _FUSE))
        with mod.no_grad():
            for i in range(0, calib.shape[0], 256):
                prepared(calib[i:i + 256])
        return aq.convert(prepared.eval())
    wrapped.train()
    wrapped.qconfig = aq.get_default_qat_qconfig(backend)
    prepared = aq.prepare_qat(aq.fuse_modules_qat(wrapped, _FUSE))
    x, y = train
    opt = mod.optim.Adam(prepared.parameters(), lr=1e-4)
    gen = mod.Generator().manual_seed(seed)
    steps = epochs * -(-x.shape[0] // 64)
    step = 0
    for epoch in range(epochs):
        order = mod.randperm(x.shape[0], generator=gen)
        for i in range(0, x.shape[0], 64):
            if step == steps // 2:  # settle the qparams and BN statistics for the second half
                prepared.apply(aq.disable_observer)
                prepared.apply(aq.freeze_bn_stats)
            step += 1
            idx = order[i:i + 64]
            loss = mod.nn.functional.cross_entropy(prepared(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return aq.convert(prepared.eval())


def run(args, stdout=None) -> int:
    """Run ``ember quantize``: quantize, compare with float, save."""
    from .digits import blas_threads
    with blas_threads(args.threads):
        return _run(args, stdout)


def _run(args, stdout) -> int:
    import ember as mod
    from .digits import _read_checkpoint, _tensors, build_model, _predict
    out = stdout if stdout is not None else sys.stdout
    if args.calibration < 1:
        raise CLIError(f"--calibration must be at least 1, got {args.calibration}")
    if args.qat_epochs < 1:
        raise CLIError(f"--qat-epochs must be at least 1, got {args.qat_epochs}")
    ckpt = _read_checkpoint(mod, args.checkpoint)
    model = build_model(mod)
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, TypeError) as e:
        raise CLIError(f"{args.checkpoint}: weights do not fit the digits model: {e}", 1) \
            from None
    model.eval()
    target = args.out or os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)),
                                      f"quantized_{args.mode}.pt")
    if not os.path.isdir(os.path.dirname(os.path.abspath(target))):
        raise CLIError(f"no such directory for the output file: {os.path.dirname(target)}")
    x_test, y_test = _tensors(mod, "test")
    x_train, y_train = _tensors(mod, "train")
    truth = y_test.numpy()
    float_acc = float((_predict(mod, model, x_test) == truth).mean())
    float_size = _state_bytes(mod, model)
    batch = x_test[:64]
    float_ms = _latency_ms(mod, model, batch)
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # PyTorch's deprecation notices of the eager API
        warnings.simplefilter("ignore")
        qmodel = quantize_model(mod, model, args.mode,
                                args.backend, x_train[:args.calibration],
                                (x_train, y_train), args.qat_epochs)
    took = time.perf_counter() - t0
    q_acc = float((_predict(mod, qmodel, x_test) == truth).mean())
    q_ms = _latency_ms(mod, qmodel, batch)
    mod.save(qmodel.state_dict(), target)
    q_size = os.path.getsize(target)
    print(f"{args.mode} int8 ({args.backend}) of {args.checkpoint} in {took:.1f}s", file=out)
    print(f"test accuracy  float {100 * float_acc:6.2f}%   int8 {100 * q_acc:6.2f}%   "
          f"({100 * (q_acc - float_acc):+.2f} points)", file=out)
    print(f"state dict     float {float_size / 1024:7.1f} KiB   int8 {q_size / 1024:7.1f} KiB  "
          f" ({q_size / float_size:.2f}x)", file=out)
    print(f"latency (batch 64)  float {float_ms:6.2f} ms   int8 {q_ms:6.2f} ms   "
          f"({q_ms / float_ms:.2f}x)", file=out)
    print(f"saved {target}", file=out)
    return 0
