"""ember.utils.tensorboard.SummaryWriter against torch.utils.tensorboard: both write event
files, read back with tensorboard's own EventAccumulator and compared record by record."""
from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from torch.utils.tensorboard import SummaryWriter as TorchWriter

import ember
from ember.utils.tensorboard import SummaryWriter

WRITERS = {"ember": (ember, SummaryWriter), "torch": (torch, TorchWriter)}


def read(path) -> EventAccumulator:
    acc = EventAccumulator(str(path), size_guidance={k: 0 for k in (
        "scalars", "images", "histograms", "tensors", "compressedHistograms", "audio")})
    acc.Reload()
    return acc


def both(tmp_path, write):
    """``write(mod, writer)`` run with ember's and torch's writer; both runs read back."""
    out = {}
    for name, (mod, cls) in WRITERS.items():
        with cls(str(tmp_path / name)) as w:
            write(mod, w)
        out[name] = read(tmp_path / name)
    return out["ember"], out["torch"]


def raw_events(path):
    files = sorted(f for f in os.listdir(path) if f.startswith("events.out.tfevents"))
    return [e for f in files for e in EventFileLoader(os.path.join(path, f)).Load()]


SCALARS = [1.5, 2, np.float32(0.25), np.array([3.0]), "tensor0d", "tensor1"]


def _value(mod, v):
    if v == "tensor0d":
        return mod.tensor(0.125, dtype=mod.float64)
    if v == "tensor1":
        return mod.tensor([[7.0]])
    return v


def test_scalars_match_torch(tmp_path):
    def write(mod, w):
        for i, v in enumerate(SCALARS):
            w.add_scalar("loss/train", _value(mod, v), i, walltime=100.0 + i)
        w.add_scalar("new", _value(mod, 0.3), 5, walltime=1.0, new_style=True)
        w.add_scalar("new64", 0.3, 6, walltime=1.0, new_style=True, double_precision=True)
    e, t = both(tmp_path, write)
    assert e.Scalars("loss/train") == t.Scalars("loss/train")
    assert [s.value for s in e.Scalars("loss/train")] == [1.5, 2, 0.25, 3, 0.125, 7]
    for tag in ("new", "new64"):
        assert e.Tensors(tag) == t.Tensors(tag)
        assert e.SummaryMetadata(tag) == t.SummaryMetadata(tag)


def test_add_scalars_writes_one_run_per_key(tmp_path):
    def write(mod, w):
        for step in range(3):
            w.add_scalars("run/loss", {"train": step * 1.0, "val": _value(mod, "tensor1")},
                          step, walltime=10.0 + step)
    both(tmp_path, write)
    for name in WRITERS:
        assert sorted(d for d in os.listdir(tmp_path / name) if "_" in d) == \
            ["run_loss_train", "run_loss_val"]
    for sub in ("run_loss_train", "run_loss_val"):
        e, t = read(tmp_path / "ember" / sub), read(tmp_path / "torch" / sub)
        assert e.Scalars("run/loss") == t.Scalars("run/loss")
        assert len(e.Scalars("run/loss")) == 3


HISTS = [("tensorflow", None), ("auto", None), (7, None), ("tensorflow", 40), (20, 6)]


@pytest.mark.parametrize("bins,max_bins", HISTS)
def test_histograms_match_torch(tmp_path, bins, max_bins):
    data = [np.random.default_rng(0).standard_normal(500), np.array([0.0, 0.0, 1e-30]),
            np.array([-3.0, 2.5, 7.0]).astype(np.float32)]

    def write(mod, w):
        for i, d in enumerate(data):
            w.add_histogram("w", mod.from_numpy(d.copy()), i, bins=bins, walltime=1.0,
                            max_bins=max_bins)
    e, t = both(tmp_path, write)
    assert e.Histograms("w") == t.Histograms("w")
    h = e.Histograms("w")[0].histogram_value
    assert (h.num, h.sum) == (500, pytest.approx(data[0].sum()))


def _pixels(img):
    return np.asarray(Image.open(io.BytesIO(img.encoded_image_string)))


IMAGES = [  # name, array, dataformats, method
    ("chw_float", np.random.default_rng(0).random((3, 5, 7)), "CHW", "add_image"),
    ("hwc_uint8", np.random.default_rng(1).integers(0, 256, (4, 6, 3)).astype(np.uint8),
     "HWC", "add_image"),
    ("hwc_rgba", np.random.default_rng(2).random((4, 6, 4)).astype(np.float32), "HWC",
     "add_image"),
    ("hw_out_of_range", np.linspace(-1, 2, 20).reshape(4, 5), "HW", "add_image"),
    ("chw_gray", np.random.default_rng(3).random((1, 6, 6)), "CHW", "add_image"),
    ("nchw_batch", np.random.default_rng(4).random((11, 1, 3, 4)), "NCHW", "add_images"),
    ("nhwc_batch", np.random.default_rng(5).random((3, 4, 5, 3)).astype(np.float32), "NHWC",
     "add_images"),
]


@pytest.mark.parametrize("name,arr,fmt,method", IMAGES, ids=[i[0] for i in IMAGES])
def test_images_match_torch(tmp_path, name, arr, fmt, method):
    def write(mod, w):
        getattr(w, method)(name, mod.from_numpy(arr.copy()), 2, dataformats=fmt, walltime=1.0)
    e, t = both(tmp_path, write)
    (ie,), (it,) = e.Images(name), t.Images(name)
    assert (ie.step, ie.width, ie.height) == (it.step, it.width, it.height)
    np.testing.assert_array_equal(_pixels(ie), _pixels(it))


def test_text_matches_torch(tmp_path):
    def write(mod, w):
        w.add_text("notes", "**lr** 1e-3, ünïcode", 4, walltime=2.0)
    e, t = both(tmp_path, write)
    assert e.Tensors("notes/text_summary") == t.Tensors("notes/text_summary")
    assert e.SummaryMetadata("notes/text_summary") == t.SummaryMetadata("notes/text_summary")
    assert e.Tensors("notes/text_summary")[0].tensor_proto.string_val == \
        ["**lr** 1e-3, ünïcode".encode()]


def test_hparams_match_torch(tmp_path):
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    def write(mod, w):
        w.add_hparams({"lr": 0.01, "bs": 32, "opt": "adam", "nesterov": True,
                       "wd": mod.tensor([0.5])}, {"hparam/acc": 0.9, "hparam/loss": 0.1},
                      hparam_domain_discrete={"opt": ["adam", "sgd"]}, run_name="trial0")
    both(tmp_path, write)
    e, t = read(tmp_path / "ember" / "trial0"), read(tmp_path / "torch" / "trial0")
    assert e.Scalars("hparam/acc")[0].value == pytest.approx(0.9)
    assert [s.value for s in e.Scalars("hparam/loss")] == \
        [s.value for s in t.Scalars("hparam/loss")]
    contents = {}
    for name, acc in (("ember", e), ("torch", t)):
        content = acc.PluginTagToContent("hparams")
        parsed = {}
        for tag, raw in content.items():
            d = HParamsPluginData.FromString(raw)
            d.session_start_info.start_time_secs = 0
            d.session_end_info.end_time_secs = 0
            parsed[tag] = d
        contents[name] = parsed
    assert set(contents["ember"]) == {"_hparams_/experiment", "_hparams_/session_start_info",
                                      "_hparams_/session_end_info"}
    assert contents["ember"] == contents["torch"]


def test_figure_matches_torch(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def figure():
        fig, ax = plt.subplots(figsize=(2, 1.5), dpi=50)
        ax.plot([0, 1, 2], [1, 0, 2])
        return fig

    open_after = {}

    def write(mod, w):
        fig = figure()
        w.add_figure("curve", fig, 0, walltime=1.0)
        closed = plt.fignum_exists(fig.number)  # before a new figure can reuse its number
        kept = [figure(), figure()]
        w.add_figure("two", kept, 0, close=False, walltime=1.0)
        open_after[mod] = (closed, [plt.fignum_exists(f.number) for f in kept])
        plt.close("all")
    e, t = both(tmp_path, write)
    for tag in ("curve", "two"):
        (ie,), (it,) = e.Images(tag), t.Images(tag)
        np.testing.assert_array_equal(_pixels(ie), _pixels(it))
    assert (e.Images("curve")[0].width, e.Images("curve")[0].height) == (100, 75)
    assert (e.Images("two")[0].width, e.Images("two")[0].height) == (200, 75)
    assert open_after[ember] == open_after[torch] == (False, [True, True])


class Net(ember.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = ember.nn.Linear(4, 3)
        self.head = ember.nn.Sequential(ember.nn.ReLU(), ember.nn.Linear(3, 2))

    def forward(self, x):
        return self.head(self.fc(x) * 2)


@pytest.mark.parametrize("traced", [False, True])
def test_graph(tmp_path, traced):
    model = ember.fx.symbolic_trace(Net()) if traced else Net()
    with SummaryWriter(str(tmp_path)) as w:
        w.add_graph(model, ember.randn(5, 4))
    g = read(tmp_path).Graph()
    nodes = {n.name: n for n in g.node}
    assert list(nodes) == ["input/x", "fc/fc", "mul", "head/0/head_0", "head/1/head_1",
                           "output/output"]
    assert [nodes[k].op for k in nodes] == ["IO Node", "Linear", "mul", "ReLU", "Linear",
                                            "IO Node"]
    assert list(nodes["mul"].input) == ["fc/fc"]
    assert list(nodes["output/output"].input) == ["head/1/head_1"]
    shapes = [[d.size for d in nodes[k].attr["_output_shapes"].list.shape[0].dim]
              for k in ("input/x", "fc/fc", "head/1/head_1")]
    assert shapes == [[5, 4], [5, 3], [5, 2]]


def test_default_log_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dirs = []
    for _, cls in WRITERS.values():
        w = cls(comment="_lr0.1")
        dirs.append(w.get_logdir())
        w.close()
    host = re.escape(socket.gethostname())
    for d in dirs:
        assert re.fullmatch(r"runs/[A-Z][a-z]{2}\d{2}_\d{2}-\d{2}-\d{2}_" + host + "_lr0.1", d)
        assert os.path.isdir(tmp_path / d)


def test_unwritable_log_dir_raises_at_construction(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    for _, cls in WRITERS.values():
        with pytest.raises(NotADirectoryError):
            cls(str(blocker / "run"))


def test_purge_step_event_matches_torch(tmp_path):
    for name, (_, cls) in WRITERS.items():
        with cls(str(tmp_path / name), purge_step=7, filename_suffix=".x") as w:
            w.add_scalar("a", 1.0, 8)
        (f,) = os.listdir(tmp_path / name)
        assert f.endswith(".x")
    e, t = (raw_events(tmp_path / n) for n in WRITERS)
    for ev in e + t:
        ev.wall_time = 0
    assert e == t
    assert any(ev.step == 7 and ev.session_log.status == 1 for ev in e)


def test_flush_close_and_reopen(tmp_path):
    w = SummaryWriter(str(tmp_path), flush_secs=10_000)
    w.add_scalar("a", 1.0, 0)
    w.flush()  # visible without closing
    assert [s.value for s in read(tmp_path).Scalars("a")] == [1.0]
    w.close()
    w.close()  # a second close is harmless
    w.add_scalar("a", 2.0, 1)  # opens a new event file
    w.close()
    assert len(raw_events(tmp_path)) == 4  # two file-version headers, two scalars
    assert [s.value for s in read(tmp_path).Scalars("a")] == [1.0, 2.0]
    with SummaryWriter(str(tmp_path / "ctx")) as w2:
        w2.add_scalar("b", 3.0, 0, walltime=5.0)
    assert w2.all_writers is None
    assert read(tmp_path / "ctx").Scalars("b")[0].wall_time == 5.0


BAD = [  # name, call(mod, writer), exception, message
    ("image_ndim", lambda m, w: w.add_image("i", m.rand(4, 5)), AssertionError,
     "size of input tensor and input format are different"),
    ("image_repeat", lambda m, w: w.add_image("i", m.rand(3, 4, 5), dataformats="CCH"),
     AssertionError, "same dimension shorthand twice"),
    ("images_ndim", lambda m, w: w.add_images("i", m.rand(3, 4, 5)), AssertionError,
     "size of input tensor and input format are different"),
    ("images_channels", lambda m, w: w.add_images("i", m.rand(2, 2, 4, 5)), AssertionError,
     "3 channels"),
    ("scalar_vector", lambda m, w: w.add_scalar("s", m.rand(3)), AssertionError,
     "should contain one element"),
    ("scalar_string", lambda m, w: w.add_scalar("s", "abc"), ValueError, "abc"),
    ("histogram_empty", lambda m, w: w.add_histogram("h", m.zeros(0)), ValueError,
     "The input has no element"),
    ("hparams_not_dict", lambda m, w: w.add_hparams([1], {}), TypeError,
     "should be dictionary"),
    ("hparams_value", lambda m, w: w.add_hparams({"a": [1]}, {}), ValueError,
     "value should be one of int, float, str, bool"),
]


@pytest.mark.parametrize("name,call,exc,msg", BAD, ids=[b[0] for b in BAD])
@pytest.mark.parametrize("which", list(WRITERS))
def test_bad_input(tmp_path, which, name, call, exc, msg):
    mod, cls = WRITERS[which]
    with cls(str(tmp_path)) as w:
        with pytest.raises(exc, match=msg):
            call(mod, w)


def test_missing_tensorboard_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(ImportError, match=r"ember\[tensorboard\]"):
        SummaryWriter(str(tmp_path))


def test_import_ember_loads_neither_tensorboard_nor_matplotlib():
    code = ("import sys, ember, ember.utils.tensorboard; "
            "print(sorted(m for m in ('tensorboard', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
