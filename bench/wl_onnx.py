"""Benchmark workloads: ONNX inference of the digits CNN (registered by bench.workloads).

``onnx_infer_b1``/``_b64``: eager inference, ember vs PyTorch.  ``onnx_ort_b1``/``_b64``: the
same model exported by ``ember.onnx.export`` and run in onnxruntime (its "ember" column; its
ratio to ``onnx_infer`` is onnxruntime over ember eager) vs PyTorch eager.  ``onnx_export``
and ``onnx_export_transformer`` (a two-layer ``nn.TransformerEncoder``): the time of one export,
ember's exporter vs PyTorch's TorchScript-based one.
"""
from __future__ import annotations

import io
import warnings

import numpy as np

from .harness import workload
from .workloads import _rng


def _digits(mod):
    """The main job's CNN (ember/cli/digits.py) in eval mode, weights drawn from NumPy."""
    from ember.cli.digits import build_model
    model = build_model(mod)
    rng = _rng()
    state = model.state_dict()
    for name, p in model.named_parameters():
        shape = tuple(p.shape)
        bound = (int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]) ** -0.5
        state[name] = mod.from_numpy(rng.uniform(-bound, bound, shape).astype(np.float32))
    for name in state:
        if name.endswith("running_var"):
            state[name] = mod.from_numpy(rng.uniform(0.5, 1.5, tuple(state[name].shape))
                                         .astype(np.float32))
    model.load_state_dict(state)
    return model.eval()


def _images(batch: int):
    return np.random.default_rng(1).random((batch, 1, 8, 8), dtype=np.float32)


def _eager(mod, batch):
    model = _digits(mod)
    x = mod.from_numpy(_images(batch))

    def step():
        with mod.no_grad():
            return model(x)
    return step, lambda s: s * 1e3


def _ort(mod, batch):
    if mod.__name__ != "ember":  # the PyTorch column: eager, as in onnx_infer
        return _eager(mod, batch)
    import onnxruntime as ort
    model = _digits(mod)
    f = io.BytesIO()
    mod.onnx.export(model, (mod.from_numpy(_images(batch)),), f, input_names=["input"],
                    dynamic_axes={"input": {0: "batch"}})
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = _threads()
    sess = ort.InferenceSession(f.getvalue(), opts, providers=["CPUExecutionProvider"])
    feed = {"input": _images(batch)}

    def step():
        return sess.run(None, feed)[0]
    return step, lambda s: s * 1e3


def _threads() -> int:
    from .harness import blas_threads
    return blas_threads()[0]


@workload("onnx_infer_b1", "ms/batch")
def onnx_infer_b1(mod):
    """Eager inference of the digits CNN on one (1, 1, 8, 8) image, under no_grad."""
    return _eager(mod, 1)


@workload("onnx_infer_b64", "ms/batch")
def onnx_infer_b64(mod):
    """Eager inference of the digits CNN on a (64, 1, 8, 8) batch, under no_grad."""
    return _eager(mod, 64)


@workload("onnx_ort_b1", "ms/batch", ratio_to=("onnx_infer_b1", "over eager"))
def onnx_ort_b1(mod):
    """onnxruntime on ember's export ("ember" column) vs PyTorch eager, batch 1."""
    return _ort(mod, 1)


@workload("onnx_ort_b64", "ms/batch", ratio_to=("onnx_infer_b64", "over eager"))
def onnx_ort_b64(mod):
    """onnxruntime on ember's export ("ember" column) vs PyTorch eager, batch 64."""
    return _ort(mod, 64)


@workload("onnx_export", "ms/export")
def onnx_export(mod):
    """One ONNX export of the digits CNN: ember.onnx.export vs torch.onnx.export(dynamo=False)."""
    model = _digits(mod)
    x = mod.from_numpy(_images(1))

    def step():
        f = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mod.onnx.export(model, (x,), f, input_names=["input"], dynamo=False,
                            dynamic_axes={"input": {0: "batch"}}, opset_version=17)
        return None
    return step, lambda s: s * 1e3


@workload("onnx_export_transformer", "ms/export")
def onnx_export_transformer(mod):
    """One ONNX export of a 2-layer TransformerEncoder (d 64, 4 heads), dynamic batch and seq."""
    mod.manual_seed(0)
    layer = mod.nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True)
    model = mod.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    x = mod.from_numpy(np.random.default_rng(1).standard_normal((2, 10, 64), dtype=np.float32))

    def step():
        f = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mod.onnx.export(model, (x,), f, input_names=["src"], dynamo=False, opset_version=17,
                            dynamic_axes={"src": {0: "batch", 1: "seq"}})
        return None
    return step, lambda s: s * 1e3
