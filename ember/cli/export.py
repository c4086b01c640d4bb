"""``ember export CHECKPOINT OUT.onnx``: the digits CNN of a training checkpoint as ONNX.

The model is exported with ``ember.onnx.export`` (input ``input`` of shape
``(batch, 1, 8, 8)``, output ``logits`` of shape ``(batch, 10)``, the batch a dynamic axis
unless ``--static-batch``), then, when onnxruntime is installed, run on the held-out digits
and compared with ember eager.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

from . import CLIError

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export", help="export a checkpoint's model to ONNX (and check it in onnxruntime)",
        description="Write the model of a `ember train digits` checkpoint as an ONNX file "
                    "(needs the onnx extra: pip install 'ember[onnx]'); with onnxruntime "
                    "installed, run it on the test digits and compare with ember.")
    p.add_argument("checkpoint", help="a checkpoint written by `ember train` (last.pt/best.pt)")
    p.add_argument("output", help="the ONNX file to write, e.g. digits.onnx")
    p.add_argument("--opset", type=int, default=17,
                   help="ONNX opset version, 13 to 21 (default 17)")
    p.add_argument("--static-batch", type=int, metavar="N", default=None,
                   help="fix the batch size to N (default: a dynamic 'batch' axis)")
    p.add_argument("--no-check", action="store_true",
                   help="skip the onnxruntime run on the test digits")


def run(args, stdout=None) -> int:
    """Run ``ember export``: write the ONNX file, then check it in onnxruntime if installed."""
    import ember
    from .digits import _read_checkpoint, _tensors, build_model
    out = stdout if stdout is not None else sys.stdout
    if not 13 <= args.opset <= 21:
        raise CLIError(f"--opset must be between 13 and 21, got {args.opset}")
    if args.static_batch is not None and args.static_batch < 1:
        raise CLIError(f"--static-batch must be at least 1, got {args.static_batch}")
    folder = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(folder):
        raise CLIError(f"no such directory for the output file: {folder}")
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise CLIError("exporting needs the onnx package: pip install 'ember[onnx]'") from None
    ckpt = _read_checkpoint(ember, args.checkpoint)
    model = build_model(ember)
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, TypeError) as e:
        raise CLIError(f"{args.checkpoint}: weights do not fit the digits model: {e}", 1) \
            from None
    model.eval()
    x_test, y_test = _tensors(ember, "test")
    batch = args.static_batch or 1
    example = x_test[:batch] if batch <= x_test.shape[0] else ember.zeros(batch, 1, 8, 8)
    dynamic = None if args.static_batch else {"input": {0: "batch"}, "logits": {0: "batch"}}
    t = time.perf_counter()
    ember.onnx.export(model, (example,), args.output, input_names=["input"],
                      output_names=["logits"], opset_version=args.opset, dynamic_axes=dynamic,
                      dynamo=False)
    took = time.perf_counter() - t
    proto = onnx.load(args.output)
    onnx.checker.check_model(proto, full_check=True)
    shape = "batch" if dynamic else str(batch)
    print(f"wrote {args.output}: {len(proto.graph.node)} nodes, opset {args.opset}, "
          f"input 'input' ({shape}, 1, 8, 8) float32 -> output 'logits' ({shape}, 10); "
          f"{os.path.getsize(args.output) / 1024:.0f} KiB, exported in {took:.2f}s", file=out)
    if args.no_check:
        return 0
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime is not installed (pip install 'ember[onnxruntime]'): not run",
              file=out)
        return 0
    sess = ort.InferenceSession(args.output, providers=["CPUExecutionProvider"])
    xs = x_test.numpy() if dynamic else x_test.numpy()[:batch]
    got = sess.run(None, {"input": xs})[0]
    with ember.no_grad():
        want = model(ember.from_numpy(xs)).numpy()
    diff = float(np.abs(got - want).max())
    right = int((got.argmax(1) == y_test.numpy()[:len(xs)]).sum())
    print(f"onnxruntime {ort.__version__}: {len(xs)} test digits, accuracy "
          f"{100 * right / len(xs):.2f}% ({right}/{len(xs)}), max |logit - ember's| "
          f"{diff:.1e}", file=out)
    if diff > 1e-4 * max(1.0, float(np.abs(want).max())):
        print("warning: onnxruntime's logits differ from ember's", file=sys.stderr)
        return 1
    return 0
