"""``Summary`` protocol buffers for each kind of value (``torch.utils.tensorboard.summary``).

Every function here returns a ``tensorboard.compat.proto.summary_pb2.Summary``; the protos
come from the ``tensorboard`` package, imported on first use.  Values arrive as ember tensors,
NumPy arrays or Python numbers and are read as NumPy arrays.
"""
from __future__ import annotations

import struct
import time
import zlib

import numpy as np

_EXTRA_HINT = ("ember.utils.tensorboard needs the tensorboard package: "
               "pip install 'ember[tensorboard]' (or pip install tensorboard)")


def require_tensorboard():
    """Import ``tensorboard`` or raise ``ImportError`` naming the extra that installs it."""
    try:
        import tensorboard  # noqa: F401
        from tensorboard.compat.proto import summary_pb2  # noqa: F401
    except ImportError as e:
        raise ImportError(_EXTRA_HINT) from e


def make_np(x) -> np.ndarray:
    """``x`` (tensor, array, number) as a NumPy array, detached from any graph."""
    if hasattr(x, "detach") and hasattr(x, "numpy"):
        return np.asarray(x.detach().cpu().numpy())
    return np.asarray(x)


def _scalar_of(x) -> float:
    a = make_np(x).squeeze()
    if a.ndim != 0:
        raise AssertionError("Tensor should contain one element (0 dimensions). Was given "
                             f"size: {a.size} and {a.ndim} dimensions.")
    return float(a)


def scalar(name: str, value, new_style: bool = False, double_precision: bool = False):
    """A scalar: ``simple_value``, or a 0-d tensor under the scalars plugin (``new_style``)."""
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    v = _scalar_of(value)
    if not new_style:
        return Summary(value=[Summary.Value(tag=name, simple_value=float(v))])
    if double_precision:
        tensor = TensorProto(double_val=[v], dtype="DT_DOUBLE")
    else:
        tensor = TensorProto(float_val=[v], dtype="DT_FLOAT")
    meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"))
    return Summary(value=[Summary.Value(tag=name, tensor=tensor, metadata=meta)])


def _tf_bins() -> list:
    """TensorFlow's default histogram edges: +-1e-12 growing by 10% while below 1e20, and 0."""
    pos = []
    v = 1e-12
    while v < 1e20:
        pos.append(v)
        v *= 1.1
    return [-p for p in reversed(pos)] + [0] + pos


def histogram(name: str, values, bins="tensorflow", max_bins: int | None = None):
    """A histogram of ``values`` (``bins`` as ``numpy.histogram``'s, or TensorFlow's edges)."""
    from tensorboard.compat.proto.summary_pb2 import Summary, HistogramProto
    v = make_np(values).astype(np.float64).reshape(-1)
    if v.size == 0:
        raise ValueError("The input has no element.")
    if isinstance(bins, str) and bins == "tensorflow":
        bins = _tf_bins()
    counts, limits = np.histogram(v, bins=bins)
    if max_bins is not None and len(counts) > max_bins:
        # sum groups of len // max_bins neighbouring buckets (torch's rule)
        group = len(counts) // max_bins
        counts = np.pad(counts, (0, (-len(counts)) % group)).reshape(-1, group).sum(1)
        limits = np.concatenate([limits[:-1:group], limits[-1:]])
    nz = np.flatnonzero(counts)
    first, last = nz[0], nz[-1]
    # TensorBoard reads only right edges: keep one empty bucket left of the support so its
    # left edge is stored too
    counts = counts[first - 1:last + 1] if first > 0 else np.concatenate([[0], counts[:last + 1]])
    limits = limits[first:last + 2]
    hist = HistogramProto(min=v.min(), max=v.max(), num=v.size, sum=v.sum(),
                          sum_squares=float(np.dot(v, v)), bucket_limit=limits.tolist(),
                          bucket=counts.astype(np.float64).tolist())
    return Summary(value=[Summary.Value(tag=name, histo=hist)])


def _grid(nchw: np.ndarray, ncols: int = 8) -> np.ndarray:
    """N x C x H x W images (C = 1 or 3) tiled ``ncols`` to a row into one 3 x H' x W'."""
    if nchw.shape[1] == 1:
        nchw = np.concatenate([nchw] * 3, 1)
    if nchw.shape[1] != 3:
        raise AssertionError("Input should be a 4D numpy array with 3 channels")
    n, _, h, w = nchw.shape
    ncols = min(n, ncols)
    nrows = -(-n // ncols)
    grid = np.zeros((3, nrows * h, ncols * w), dtype=nchw.dtype)
    for i in range(n):
        r, q = divmod(i, ncols)
        grid[:, r * h:(r + 1) * h, q * w:(q + 1) * w] = nchw[i]
    return grid


def to_hwc(a: np.ndarray, dataformats: str) -> np.ndarray:
    """An image (``CHW``, ``HWC``, ``HW``) or a batch (``NCHW``, ``NHWC``, tiled into a grid)
    in ``dataformats`` as H x W x C with 3 channels (4 for an RGBA ``HWC`` image)."""
    if len(set(dataformats)) != len(dataformats):
        raise AssertionError("You can not use the same dimension shorthand twice. "
                             f"input_format: {dataformats}")
    if a.ndim != len(dataformats):
        raise AssertionError("size of input tensor and input format are different. "
                             f"tensor shape: {a.shape}, input_format: {dataformats}")
    fmt = dataformats.upper()
    if len(fmt) == 4:
        return _grid(a.transpose([fmt.find(c) for c in "NCHW"])).transpose(1, 2, 0)
    if len(fmt) == 2:
        a = a.transpose([fmt.find(c) for c in "HW"])
        return np.stack([a, a, a], 2)
    a = a.transpose([fmt.find(c) for c in "HWC"])
    return np.concatenate([a] * 3, 2) if a.shape[2] == 1 else a


def encode_png(hwc: np.ndarray) -> bytes:
    """A uint8 H x W x C image (C = 1, 3 or 4) as PNG bytes (no Pillow needed)."""
    h, w, c = hwc.shape
    colour = {1: 0, 3: 2, 4: 6}[c]
    # each row starts with filter type 0 (none)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), hwc.reshape(h, w * c)], 1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0,
                                                              0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def image(tag: str, tensor, dataformats: str = "CHW"):
    """An image summary: floats are taken to be in [0, 1] and scaled by 255, uint8 as is;
    values outside [0, 255] are clipped (``torch.utils.tensorboard.summary.image``)."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    a = make_np(tensor)
    scale = 1 if a.dtype == np.uint8 else 255
    hwc = to_hwc((a.astype(np.float32) * scale).clip(0, 255).astype(np.uint8), dataformats)
    h, w, c = hwc.shape
    proto = Summary.Image(height=h, width=w, colorspace=c, encoded_image_string=encode_png(hwc))
    return Summary(value=[Summary.Value(tag=tag, image=proto)])


def figure_to_image(figures, close: bool = True) -> np.ndarray:
    """A matplotlib figure (or a list) rendered to a C x H x W (or N x C x H x W) uint8 array."""
    try:
        import matplotlib.pyplot as plt
        from matplotlib.backends.backend_agg import FigureCanvasAgg
    except ImportError as e:
        raise ImportError("add_figure needs matplotlib: pip install matplotlib") from e

    def render(fig):
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        rgba = np.asarray(canvas.buffer_rgba())
        if close:
            plt.close(fig)
        return np.moveaxis(rgba[:, :, :3], -1, 0).copy()
    if isinstance(figures, list):
        return np.stack([render(f) for f in figures])
    return render(figures)


def text(tag: str, text_string: str):
    """A string under the text plugin (tag ``<tag>/text_summary``)."""
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboard.plugins.text.plugin_data_pb2 import TextPluginData
    plugin = SummaryMetadata.PluginData(plugin_name="text",
                                        content=TextPluginData(version=0).SerializeToString())
    tensor = TensorProto(dtype="DT_STRING", string_val=[text_string.encode("utf_8")],
                         tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]))
    return Summary(value=[Summary.Value(tag=tag + "/text_summary",
                                        metadata=SummaryMetadata(plugin_data=plugin),
                                        tensor=tensor)])


def hparams(hparam_dict: dict, metric_dict: dict, hparam_domain_discrete: dict | None = None):
    """The experiment, session-start and session-end summaries of the hparams plugin."""
    from tensorboard.plugins.hparams import api_pb2
    from tensorboard.plugins.hparams.plugin_data_pb2 import (SessionEndInfo,
                                                            SessionStartInfo)
    if not isinstance(hparam_dict, dict) or not isinstance(metric_dict, dict):
        raise TypeError("hparam_dict and metric_dict should be dictionary.")
    domains = hparam_domain_discrete or {}
    for k, v in domains.items():
        if k not in hparam_dict or not isinstance(v, list) or \
                not all(isinstance(d, type(hparam_dict[k])) for d in v):
            raise TypeError(f"parameter: hparam_domain_discrete[{k}] should be a list of same "
                            "type as hparam_dict[{k}].")
    infos, values = [], {}
    for k, v in hparam_dict.items():
        if v is None:
            continue
        if hasattr(v, "detach"):
            v = _scalar_of(v)
        if isinstance(v, bool):
            kind = api_pb2.DATA_TYPE_BOOL
        elif isinstance(v, (int, float)):
            kind, v = api_pb2.DATA_TYPE_FLOAT64, float(v)
        elif isinstance(v, str):
            kind = api_pb2.DATA_TYPE_STRING
        else:
            raise ValueError("value should be one of int, float, str, bool, or torch.Tensor")
        info = api_pb2.HParamInfo(name=k, type=kind)
        if k in domains:
            info.domain_discrete.extend(domains[k])
        infos.append(info)
        values[k] = v
    metrics = [api_pb2.MetricInfo(name=api_pb2.MetricName(tag=k)) for k in metric_dict]
    start = SessionStartInfo(start_time_secs=time.time())
    for k, v in values.items():
        field = ("bool_value" if isinstance(v, bool) else
                 "string_value" if isinstance(v, str) else "number_value")
        setattr(start.hparams[k], field, v)
    exp = api_pb2.Experiment(hparam_infos=infos, metric_infos=metrics)
    end = SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time())
    return (_hparams_summary("_hparams_/experiment", experiment=exp),
            _hparams_summary("_hparams_/session_start_info", session_start_info=start),
            _hparams_summary("_hparams_/session_end_info", session_end_info=end))


def _hparams_summary(tag: str, **field):
    """A summary carrying one ``HParamsPluginData`` field in its metadata, no value."""
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
    content = HParamsPluginData(version=0, **field).SerializeToString()
    plugin = SummaryMetadata.PluginData(plugin_name="hparams", content=content)
    return Summary(value=[Summary.Value(tag=tag, metadata=SummaryMetadata(plugin_data=plugin))])
