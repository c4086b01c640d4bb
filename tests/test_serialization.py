"""ember.save / ember.load against real torch.save / torch.load (both directions)."""
import io
import os
import pathlib
import pickle
import struct
import subprocess
import sys
import warnings
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch

import ember
import ember.serialization as ser

DTYPES = ["float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64",
          "uint8", "bool"]


def _np(t):
    """A torch or ember tensor's values as float64/bool NumPy (bfloat16 widened)."""
    if isinstance(t, torch.Tensor):
        t = t.detach()
        return (t.float() if t.dtype == torch.bfloat16 else t).numpy()
    a = t.detach()._data
    return a.astype(np.float32) if a.dtype.name == "bfloat16" else a


def _torch_tensor(dtype, shape=(3, 4)):
    n = int(np.prod(shape))
    base = torch.arange(n, dtype=torch.float64).reshape(shape) - n // 3
    if dtype == "bool":
        return base.remainder(2) == 0
    if dtype == "uint8":
        return base.abs().to(torch.uint8)
    return base.to(getattr(torch, dtype))


def _ember_tensor(dtype, shape=(3, 4)):
    return ember.from_numpy(_np(_torch_tensor(dtype, shape)).copy()).to(getattr(ember, dtype))


def _storage_ptr(t):
    return t.untyped_storage().data_ptr()


# ---- tensors of every dtype ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_dtypes_torch_to_ember(dtype, tmp_path):
    t = _torch_tensor(dtype)
    obj = {"t": t, "scalar": t[1, 2].clone(), "empty": t[:0], "row": t[1]}
    torch.save(obj, tmp_path / "t.pt")
    e = ember.load(tmp_path / "t.pt")
    for k, v in obj.items():
        assert e[k].dtype == getattr(ember, dtype), k
        assert tuple(e[k].shape) == tuple(v.shape), k
        np.testing.assert_array_equal(_np(e[k]), _np(v))
    assert e["scalar"].dim() == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtypes_ember_to_torch(dtype, tmp_path):
    t = _ember_tensor(dtype)
    obj = {"t": t, "scalar": t[1, 2].clone(), "empty": ember.zeros(0, 5).to(t.dtype),
           "row": t[1]}
    ember.save(obj, tmp_path / "e.pt")
    r = torch.load(tmp_path / "e.pt", weights_only=True)
    for k, v in obj.items():
        assert r[k].dtype == getattr(torch, dtype), k
        assert tuple(r[k].shape) == tuple(v.shape), k
        np.testing.assert_array_equal(_np(r[k]), _np(v))
    # and back through torch.save
    torch.save(r, tmp_path / "t.pt")
    back = ember.load(tmp_path / "t.pt")
    np.testing.assert_array_equal(_np(back["t"]), _np(t))


def test_views_saved_by_torch(tmp_path):
    t = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    views = {"base": t, "slice": t[1:, ::2], "T": t.T, "off": t[2], "col": t[:, 3],
             "exp": t[0:1].expand(3, 6)}
    torch.save(views, tmp_path / "v.pt")
    e = ember.load(tmp_path / "v.pt")
    for k, v in views.items():
        np.testing.assert_array_equal(_np(e[k]), v.numpy(), err_msg=k)
        assert e[k].stride() == v.stride(), k
    # one storage: writing through the base shows in every view
    e["base"]._data[2, 2] = -1.0
    assert e["slice"][1, 1].item() == -1.0 and e["T"][2, 2].item() == -1.0
    assert e["off"][2].item() == -1.0
    e["base"]._data[0, 3] = -2.0
    assert e["col"][0].item() == -2.0 and e["exp"][2, 3].item() == -2.0


def test_views_saved_by_ember(tmp_path):
    t = ember.arange(24, dtype=ember.float32).reshape(4, 6)
    views = {"base": t, "slice": t[1:, ::2], "T": t.t(), "off": t[2], "col": t[:, 3],
             "exp": t[0:1].expand(3, 6)}
    ember.save(views, tmp_path / "v.pt")
    r = torch.load(tmp_path / "v.pt", weights_only=True)
    ptr = _storage_ptr(r["base"])
    for k, v in views.items():
        np.testing.assert_array_equal(r[k].numpy(), _np(v), err_msg=k)
        assert r[k].stride() == v.stride(), k
        assert _storage_ptr(r[k]) == ptr, k
    assert r["slice"].storage_offset() == 6 and r["off"].storage_offset() == 12
    with zipfile.ZipFile(tmp_path / "v.pt") as z:  # one storage record for all six
        assert sorted(n for n in z.namelist() if "/data/" in n) == ["v/data/0"]


def test_view_of_view_and_separate_storages(tmp_path):
    a = ember.arange(10.0)
    b = ember.arange(5.0)
    obj = [a[2:8].view(2, 3)[:, 1:], a, b, b[::2]]
    ember.save(obj, tmp_path / "x.pt")
    r = torch.load(tmp_path / "x.pt", weights_only=True)
    assert _storage_ptr(r[0]) == _storage_ptr(r[1]) != _storage_ptr(r[2])
    assert _storage_ptr(r[2]) == _storage_ptr(r[3])
    np.testing.assert_array_equal(r[0].numpy(), [[3, 4], [6, 7]])
    e = ember.load(tmp_path / "x.pt")
    e[1]._data[3] = 100
    assert e[0][0, 0].item() == 100


def test_negative_stride_array_is_saved_as_a_copy(tmp_path):
    a = ember.from_numpy(np.arange(6.0)[::-1])
    ember.save({"a": a}, tmp_path / "n.pt")
    r = torch.load(tmp_path / "n.pt", weights_only=True)
    np.testing.assert_array_equal(r["a"].numpy(), np.arange(6.0)[::-1])


def test_same_tensor_twice_is_one_object(tmp_path):
    t = ember.ones(3)
    ember.save([t, t, {"again": t}], tmp_path / "s.pt")
    e = ember.load(tmp_path / "s.pt")
    assert e[0] is e[1] is e[2]["again"]
    r = torch.load(tmp_path / "s.pt", weights_only=True)
    assert r[0] is r[1]


def test_views_of_one_storage_as_different_dtypes_raise(tmp_path):
    arr = np.zeros(4, np.float32)
    a, b = ember.from_numpy(arr), ember.from_numpy(arr.view(np.int32))
    with pytest.raises(RuntimeError, match="view the same data as different types"):
        ember.save([a, b], tmp_path / "d.pt")
    assert not os.path.exists(tmp_path / "d.pt")
    assert os.listdir(tmp_path) == []


# ---- parameters and requires_grad ------------------------------------------------------------
def test_parameters_and_requires_grad_round_trip(tmp_path):
    p = ember.nn.Parameter(ember.randn(3, 2))
    frozen = ember.nn.Parameter(ember.randn(2), requires_grad=False)
    g = ember.ones(2, requires_grad=True)
    nonleaf = g * 2
    ember.save({"p": p, "frozen": frozen, "g": g, "nonleaf": nonleaf}, tmp_path / "p.pt")
    r = torch.load(tmp_path / "p.pt", weights_only=True)
    assert isinstance(r["p"], torch.nn.Parameter) and r["p"].requires_grad
    assert isinstance(r["frozen"], torch.nn.Parameter) and not r["frozen"].requires_grad
    assert type(r["g"]) is torch.Tensor and r["g"].requires_grad
    assert r["nonleaf"].requires_grad and r["nonleaf"].is_leaf  # as torch.save does
    np.testing.assert_array_equal(r["p"].detach().numpy(), p.detach().numpy())
    e = ember.load(tmp_path / "p.pt")
    assert isinstance(e["p"], ember.nn.Parameter) and e["p"].requires_grad
    assert isinstance(e["frozen"], ember.nn.Parameter) and not e["frozen"].requires_grad
    assert type(e["g"]) is ember.Tensor and e["g"].requires_grad and e["g"].is_leaf
    torch.save(r, tmp_path / "t.pt")
    e2 = ember.load(tmp_path / "t.pt")
    assert isinstance(e2["p"], ember.nn.Parameter) and e2["p"].requires_grad
    assert not e2["frozen"].requires_grad and e2["nonleaf"].requires_grad


def test_torch_parameter_with_attributes_and_tensor_attributes(tmp_path):
    p = torch.nn.Parameter(torch.ones(2))
    p.tag = "w"
    t = torch.zeros(3)
    t.note = 5
    torch.save({"p": p, "t": t}, tmp_path / "a.pt")
    e = ember.load(tmp_path / "a.pt")
    assert isinstance(e["p"], ember.nn.Parameter) and e["p"].tag == "w"
    assert e["t"].note == 5


# ---- modules, optimizers, schedulers ------------------------------------------------------------
def _torch_net():
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))


def _ember_net():
    return ember.nn.Sequential(ember.nn.Linear(4, 3), ember.nn.BatchNorm1d(3))


def test_module_state_dict_torch_to_ember(tmp_path):
    net = _torch_net()
    net(torch.randn(8, 4))  # updates running stats and num_batches_tracked
    torch.save(net.state_dict(), tmp_path / "m.pt")
    sd = ember.load(tmp_path / "m.pt")
    assert list(sd) == list(net.state_dict())
    assert isinstance(sd, OrderedDict) and sd._metadata[""] == {"version": 1}
    assert sd["1.num_batches_tracked"].dtype == ember.int64
    assert sd["1.num_batches_tracked"].item() == 1
    enet = _ember_net()
    enet.load_state_dict(sd)
    x = np.random.randn(5, 4).astype(np.float32)
    net.eval()
    enet.eval()
    np.testing.assert_allclose(enet(ember.from_numpy(x)).detach().numpy(),
                               net(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_module_state_dict_ember_to_torch(tmp_path):
    enet = _ember_net()
    enet(ember.randn(8, 4))
    ember.save(enet.state_dict(), tmp_path / "m.pt")
    sd = torch.load(tmp_path / "m.pt", weights_only=True)
    assert list(sd) == list(enet.state_dict())
    assert sd["1.num_batches_tracked"].dtype == torch.int64
    net = _torch_net()
    net.load_state_dict(sd)
    x = np.random.randn(5, 4).astype(np.float32)
    net.eval()
    enet.eval()
    np.testing.assert_allclose(net(torch.from_numpy(x)).detach().numpy(),
                               enet(ember.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


LAYERS = [("Linear", (4, 3), {}), ("Bilinear", (2, 3, 4), {}), ("Conv1d", (2, 3, 3), {}),
          ("Conv2d", (2, 3, 3), {"bias": False}), ("Conv3d", (1, 2, 2), {}),
          ("ConvTranspose2d", (2, 3, 3), {}), ("BatchNorm2d", (3,), {}),
          ("LayerNorm", (5,), {}), ("GroupNorm", (2, 4), {}),
          ("InstanceNorm1d", (3,), {"affine": True, "track_running_stats": True}),
          ("Embedding", (10, 4), {}), ("EmbeddingBag", (10, 4), {}), ("PReLU", (), {}),
          ("RMSNorm", (4,), {}), ("LSTM", (3, 4), {"num_layers": 2}),
          ("GRU", (3, 4), {"bidirectional": True}), ("RNN", (3, 4), {}),
          ("LSTMCell", (3, 4), {}), ("MultiheadAttention", (8, 2), {}),
          ("LSTM", (3, 4), {"proj_size": 2, "bidirectional": True}), ("GRUCell", (3, 4), {}),
          ("RNNCell", (3, 4), {}), ("ConvTranspose1d", (2, 3, 3), {"groups": 1}),
          ("MultiheadAttention", (8, 2), {"kdim": 3, "vdim": 5, "add_bias_kv": True}),
          ("TransformerEncoderLayer", (8, 2), {"dim_feedforward": 16}),
          ("TransformerDecoderLayer", (8, 2), {"dim_feedforward": 16, "norm_first": True}),
          ("Transformer", (), {"d_model": 8, "nhead": 2, "num_encoder_layers": 1,
                               "num_decoder_layers": 1, "dim_feedforward": 16})]


@pytest.mark.parametrize("name,args,kwargs", LAYERS, ids=[x[0] for x in LAYERS])
def test_layer_state_dicts_both_ways(name, args, kwargs, tmp_path):
    tmod = getattr(torch.nn, name)(*args, **kwargs)
    tsd = tmod.state_dict()
    torch.save(tsd, tmp_path / "t.pt")
    sd = ember.load(tmp_path / "t.pt")
    assert list(sd) == list(tsd)
    for k, v in tsd.items():
        assert sd[k].dtype == getattr(ember, str(v.dtype).split(".")[1]), k
        np.testing.assert_array_equal(sd[k].numpy(), v.numpy(), err_msg=k)
    if hasattr(ember.nn, name):  # through ember's twin of the layer
        emod = getattr(ember.nn, name)(*args, **kwargs)
        emod.load_state_dict(sd)
        sd = emod.state_dict()
    ember.save(sd, tmp_path / "e.pt")
    back = torch.load(tmp_path / "e.pt", weights_only=True)
    fresh = getattr(torch.nn, name)(*args, **kwargs)
    fresh.load_state_dict(back)
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, tsd[k]), k


def test_whole_ember_module_with_weights_only_false(tmp_path):
    enet = _ember_net()
    ember.save(enet, tmp_path / "whole.pt")
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        ember.load(tmp_path / "whole.pt")
    with pytest.warns(UserWarning, match="malicious pickle data which will execute arbitrary"):
        back = ember.load(tmp_path / "whole.pt", weights_only=False)
    assert type(back) is ember.nn.Sequential
    for (k, a), (_, b) in zip(enet.state_dict().items(), back.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
    assert isinstance(back[0].weight, ember.nn.Parameter)


def test_adam_state_dict_both_ways(tmp_path):
    w0 = np.random.randn(3, 2).astype(np.float32)
    tp = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    topt = torch.optim.Adam([tp], lr=0.1, betas=(0.8, 0.9))
    tp.sum().backward()
    topt.step()
    torch.save(topt.state_dict(), tmp_path / "t.pt")
    sd = ember.load(tmp_path / "t.pt")
    assert sd["param_groups"][0]["betas"] == (0.8, 0.9)
    ep = ember.nn.Parameter(ember.from_numpy(tp.detach().numpy().copy()))
    eopt = ember.optim.Adam([ep], lr=0.1, betas=(0.8, 0.9))
    eopt.load_state_dict(sd)
    # one more identical step on both sides
    g = np.random.randn(3, 2).astype(np.float32)
    tp.grad = torch.from_numpy(g.copy())
    topt.step()
    ep.grad = ember.from_numpy(g.copy())
    eopt.step()
    np.testing.assert_allclose(ep.detach().numpy(), tp.detach().numpy(), rtol=1e-6)
    # ember's state dict read by torch's weights-only loader into a torch Adam
    ember.save(eopt.state_dict(), tmp_path / "e.pt")
    tsd = torch.load(tmp_path / "e.pt", weights_only=True)
    tp2 = torch.nn.Parameter(torch.from_numpy(ep.detach().numpy().copy()))
    topt2 = torch.optim.Adam([tp2], lr=0.1, betas=(0.8, 0.9))
    topt2.load_state_dict(tsd)
    np.testing.assert_allclose(topt2.state[tp2]["exp_avg"].numpy(),
                               eopt.state[ep]["exp_avg"].numpy(), rtol=1e-6)
    assert float(topt2.state[tp2]["step"]) == 2.0


def test_scheduler_state_dict_both_ways(tmp_path):
    tp = torch.nn.Parameter(torch.zeros(1))
    topt = torch.optim.SGD([tp], lr=1.0)
    tsched = torch.optim.lr_scheduler.StepLR(topt, step_size=2, gamma=0.5)
    for _ in range(3):
        topt.step()
        tsched.step()
    torch.save(tsched.state_dict(), tmp_path / "t.pt")
    sd = ember.load(tmp_path / "t.pt")
    ep = ember.nn.Parameter(ember.zeros(1))
    eopt = ember.optim.SGD([ep], lr=1.0)
    esched = ember.optim.lr_scheduler.StepLR(eopt, step_size=2, gamma=0.5)
    esched.load_state_dict(sd)
    assert esched.last_epoch == 3 and esched.get_last_lr() == tsched.get_last_lr()
    for _ in range(3):
        eopt.step()
        esched.step()
    ember.save(esched.state_dict(), tmp_path / "e.pt")
    tsd = torch.load(tmp_path / "e.pt", weights_only=True)
    assert tsd["last_epoch"] == 6 and tsd["_last_lr"] == esched.get_last_lr()
    cos = ember.optim.lr_scheduler.CosineAnnealingLR(eopt, T_max=10)
    cos.step()
    ember.save(cos.state_dict(), tmp_path / "c.pt")
    assert torch.load(tmp_path / "c.pt", weights_only=True)["T_max"] == 10


def test_nested_containers_both_ways(tmp_path):
    def make(m):
        return {"list": [m.ones(2), 1, 2.5, None, True, "s", b"bytes"],
                "tuple": (m.zeros(1, dtype=m.int64), (False, -(2 ** 70))),
                "od": OrderedDict([("b", m.tensor(1.0)), ("a", {"deep": [m.arange(3)]})]),
                "dtype": m.float16, "size": m.Size([2, 3]), "dev": m.device("cpu"),
                "set": {1, 2}, 3: "int key"}

    ember.save(make(ember), tmp_path / "e.pt")
    r = torch.load(tmp_path / "e.pt", weights_only=True)
    torch.save(make(torch), tmp_path / "t.pt")
    e = ember.load(tmp_path / "t.pt")
    for got, mod in ((r, torch), (e, ember)):
        assert got["list"][1:] == [1, 2.5, None, True, "s", b"bytes"]
        assert got["tuple"][1] == (False, -(2 ** 70)) and got["set"] == {1, 2}
        assert isinstance(got["od"], OrderedDict) and list(got["od"]) == ["b", "a"]
        assert got["dtype"] is mod.float16 and got[3] == "int key"
        assert type(got["size"]) is mod.Size and tuple(got["size"]) == (2, 3)
        assert got["dev"] == mod.device("cpu")
        np.testing.assert_array_equal(_np(got["od"]["a"]["deep"][0]), [0, 1, 2])


# ---- files, buffers, mmap, map_location ---------------------------------------------------------
def test_file_objects_buffers_and_pathlike(tmp_path):
    t = ember.arange(5.0)
    buf = io.BytesIO()
    ember.save(t, buf)
    buf.seek(0)
    assert torch.load(buf, weights_only=True).tolist() == t.tolist()
    buf.seek(0)
    assert ember.load(buf).tolist() == t.tolist()
    with open(tmp_path / "f.pt", "wb") as fh:
        ember.save({"t": t}, fh)
    with open(tmp_path / "f.pt", "rb") as fh:
        assert ember.load(fh)["t"].tolist() == t.tolist()
    ember.save(t, str(tmp_path / "s.pt"))
    assert ember.load(pathlib.Path(tmp_path / "s.pt")).tolist() == t.tolist()
    tbuf = io.BytesIO()
    torch.save(torch.ones(2), tbuf)
    assert ember.load(io.BytesIO(tbuf.getvalue())).tolist() == [1.0, 1.0]


def test_loaded_tensors_are_writable_and_usable(tmp_path):
    torch.save({"w": torch.ones(2, 2)}, tmp_path / "t.pt")
    for mmap in (False, True):
        w = ember.load(tmp_path / "t.pt", mmap=mmap)["w"]
        w.add_(1)
        assert (w * 2).sum().item() == 16.0
    assert torch.load(tmp_path / "t.pt")["w"].sum().item() == 4.0  # mmap is copy-on-write


def test_mmap_is_lazy_and_offsets_are_right(tmp_path):
    sd = {f"w{i}": torch.randn(100, 7) for i in range(4)}
    sd["bf"] = torch.randn(5, dtype=torch.bfloat16)
    torch.save(sd, tmp_path / "t.pt")
    e = ember.load(tmp_path / "t.pt", mmap=True)
    for k, v in sd.items():
        np.testing.assert_array_equal(_np(e[k]), _np(v))
    import mmap
    obj = e["w0"]._data
    while isinstance(obj, np.ndarray):
        obj = obj.base
    assert isinstance(obj.obj, mmap.mmap)  # a view of the mapped file, not a copy
    ember.save(e, tmp_path / "e.pt")  # re-saving a mapped checkpoint works
    with zipfile.ZipFile(tmp_path / "e.pt") as z:
        for info in z.infolist():  # every record's data is 64-byte aligned, as torch's
            with open(tmp_path / "e.pt", "rb") as fh:
                fh.seek(info.header_offset + 26)
                nl, el = struct.unpack("<HH", fh.read(4))
            assert (info.header_offset + 30 + nl + el) % 64 == 0
    r = torch.load(tmp_path / "e.pt", mmap=True, weights_only=True)
    np.testing.assert_array_equal(r["w3"].numpy(), sd["w3"].numpy())


def test_mmap_needs_a_path_and_a_zip_file(tmp_path):
    buf = io.BytesIO()
    ember.save(ember.ones(1), buf)
    with pytest.raises(ValueError, match="f must be a file path in order to use the mmap"):
        ember.load(buf, mmap=True)
    (tmp_path / "txt").write_text("hello")
    with pytest.raises(RuntimeError, match="mmap can only be used with files saved with"):
        ember.load(tmp_path / "txt", mmap=True)


@pytest.mark.parametrize("ml", ["cpu", ember.device("cpu"), torch.device("cpu"),
                                {"cuda:0": "cpu"}, lambda s, loc: s, lambda s, loc: None])
def test_map_location_variants(ml, tmp_path):
    torch.save({"t": torch.arange(3)}, tmp_path / "t.pt")
    assert ember.load(tmp_path / "t.pt", map_location=ml)["t"].tolist() == [0, 1, 2]


def test_map_location_bad_values():
    buf = io.BytesIO()
    ember.save(ember.ones(1), buf)
    buf.seek(0)
    with pytest.raises(TypeError, match="map_location must be"):
        ember.load(buf, map_location=3)
    with pytest.raises(RuntimeError, match="Expected one of cpu, cuda"):
        ember.load(buf, map_location="gpu")
    buf.seek(0)
    with pytest.raises(TypeError, match="map_location callable must return a storage"):
        ember.load(buf, map_location=lambda s, loc: 42)


def test_weights_only_rules_for_arguments(tmp_path):
    ember.save(ember.ones(1), tmp_path / "o.pt")
    with pytest.raises(RuntimeError, match="explicit pickle_module"):
        ember.load(tmp_path / "o.pt", pickle_module=pickle, weights_only=True)
    # weights_only left unset: a pickle module chooses full unpickling, as in torch 2.13
    with pytest.warns(UserWarning, match="from a source you trust"):
        assert ember.load(tmp_path / "o.pt", pickle_module=pickle).tolist() == [1]
    with pytest.warns(UserWarning, match="pickle_load_args only works"):
        ember.load(tmp_path / "o.pt", encoding="latin1")
    with pytest.warns(UserWarning, match="from a source you trust"):
        assert ember.load(tmp_path / "o.pt", pickle_module=pickle,
                          weights_only=False).tolist() == [1]


def test_torch_file_full_pickle_mode_maps_rebuilders_without_torch(tmp_path):
    torch.save({"w": torch.arange(4.0).reshape(2, 2)[:, 1], "p": torch.nn.Parameter(
        torch.ones(1)), "dt": torch.int8}, tmp_path / "t.pt")
    ember.save({"x": ember.ones(2)}, tmp_path / "e.pt")
    code = (
        "import sys, ember\n"
        f"d = ember.load({str(tmp_path / 't.pt')!r}, weights_only=False)\n"
        "assert d['w'].tolist() == [1.0, 3.0], d\n"
        "assert isinstance(d['p'], ember.nn.Parameter) and d['dt'] is ember.int8\n"
        f"ember.save(d, {str(tmp_path / 'x.pt')!r})\n"
        f"ember.load({str(tmp_path / 'e.pt')!r})\n"
        "import ember.utils.safetensors, ember.utils.checkpoint_io\n"
        "assert 'torch' not in sys.modules\n")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(ember.__file__)))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)
    assert torch.load(tmp_path / "x.pt", weights_only=True)["w"].tolist() == [1.0, 3.0]


def test_full_pickle_mode_rejects_unknown_torch_globals(tmp_path):
    torch.save({"l": torch.strided}, tmp_path / "t.pt")
    with pytest.raises(pickle.UnpicklingError, match="no ember equivalent"), \
            pytest.warns(UserWarning, match="weights_only=False"):
        ember.load(tmp_path / "t.pt", weights_only=False)


# ---- format details ---------------------------------------------------------------------------
def test_archive_layout_matches_torch(tmp_path):
    ember.save({"a": ember.ones(2), "b": ember.zeros(0)}, tmp_path / "ckpt.pt")
    torch.save({"a": torch.ones(2), "b": torch.zeros(0)}, tmp_path / "tckpt.pt")
    with zipfile.ZipFile(tmp_path / "ckpt.pt") as z, zipfile.ZipFile(tmp_path / "tckpt.pt") as t:
        ours = [n.split("/", 1)[1] for n in z.namelist()]
        theirs = [n.split("/", 1)[1] for n in t.namelist()]
        assert ours == theirs
        assert z.namelist()[0] == "ckpt/data.pkl"
        for name in ("version", "byteorder", ".format_version", ".storage_alignment"):
            assert z.read("ckpt/" + name) == t.read("tckpt/" + name), name
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
        assert z.read("ckpt/data.pkl")[:2] == b"\x80\x02"


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_every_pickle_protocol_both_ways(protocol):
    obj = {"a": torch.arange(3), "o": OrderedDict(x=torch.ones(1)), "b": b"xy", "s": {1, 2},
           "f": frozenset([3])}
    buf = io.BytesIO()
    torch.save(obj, buf, pickle_protocol=protocol)
    e = ember.load(io.BytesIO(buf.getvalue()))
    assert e["a"].tolist() == [0, 1, 2] and e["o"]["x"].tolist() == [1.0]
    assert (e["b"], e["s"], e["f"]) == (b"xy", {1, 2}, frozenset([3]))
    buf = io.BytesIO()
    ember.save(e, buf, pickle_protocol=protocol)
    assert ember.load(io.BytesIO(buf.getvalue()))["a"].tolist() == [0, 1, 2]
    if protocol == 2:  # torch's weights-only loader allows no frozenset
        del e["f"]
        buf = io.BytesIO()
        ember.save(e, buf)
        assert torch.load(io.BytesIO(buf.getvalue()), weights_only=True)["s"] == {1, 2}


def test_deflated_archive(tmp_path):
    torch.save({"w": torch.arange(6.0).reshape(2, 3)}, tmp_path / "t.pt")
    with zipfile.ZipFile(tmp_path / "t.pt") as src, \
            zipfile.ZipFile(tmp_path / "d.pt", "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    assert ember.load(tmp_path / "d.pt")["w"].tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(RuntimeError, match="mmap needs uncompressed storage records"):
        ember.load(tmp_path / "d.pt", mmap=True)


def test_forced_zip64_records_are_read_by_torch_and_ember(tmp_path, monkeypatch):
    monkeypatch.setattr(ser, "_ZIP64_LIMIT", 200)
    obj = {"a": ember.arange(100, dtype=ember.float32), "b": ember.ones(3)}
    ember.save(obj, tmp_path / "z.pt")
    with zipfile.ZipFile(tmp_path / "z.pt") as z:
        assert z.testzip() is None
    r = torch.load(tmp_path / "z.pt", weights_only=True)
    assert r["a"].tolist() == list(range(100)) and r["b"].tolist() == [1.0] * 3
    e = ember.load(tmp_path / "z.pt", mmap=True)
    assert e["a"].tolist() == list(range(100))


def test_big_endian_checkpoint_is_byteswapped(tmp_path):
    torch.save({"f": torch.tensor([1.5, -2.0]), "i": torch.tensor([1, 256], dtype=torch.int16),
                "bf": torch.tensor([3.0], dtype=torch.bfloat16)}, tmp_path / "le.pt")
    sizes = {"0": 4, "1": 2, "2": 2}
    with zipfile.ZipFile(tmp_path / "le.pt") as src, \
            zipfile.ZipFile(tmp_path / "be.pt", "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            key = info.filename.rsplit("/", 1)[-1]
            if info.filename.endswith("/byteorder"):
                data = b"big"
            elif "/data/" in info.filename:
                n = sizes[key]
                data = np.frombuffer(data, f"u{n}").byteswap().tobytes()
            dst.writestr(info.filename, data)
    t = torch.load(tmp_path / "be.pt", weights_only=True)
    e = ember.load(tmp_path / "be.pt")
    assert t["f"].tolist() == e["f"].tolist() == [1.5, -2.0]
    assert t["i"].tolist() == e["i"].tolist() == [1, 256]
    assert e["bf"].item() == 3.0


def test_unknown_byte_order_raises(tmp_path):
    ember.save(ember.ones(1), tmp_path / "a.pt")
    with zipfile.ZipFile(tmp_path / "a.pt") as src, \
            zipfile.ZipFile(tmp_path / "b.pt", "w") as dst:
        for info in src.infolist():
            data = b"middle" if info.filename.endswith("byteorder") else src.read(info)
            dst.writestr(info.filename, data)
    with pytest.raises(ValueError, match="Unknown endianness type: middle"):
        ember.load(tmp_path / "b.pt")


def test_bfloat16_without_ml_dtypes_is_a_clear_error(tmp_path, monkeypatch):
    torch.save(torch.ones(2, dtype=torch.bfloat16), tmp_path / "bf.pt")
    monkeypatch.setattr(ember.bfloat16, "_np", None)
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)
    with pytest.raises(RuntimeError, match="ml_dtypes"):
        ember.load(tmp_path / "bf.pt")


# ---- atomic writes ------------------------------------------------------------------------------
def test_failed_rename_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    ember.save({"v": ember.tensor([1.0])}, path)
    before = path.read_bytes()

    def boom(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk on fire"):
        ember.save({"v": ember.tensor([2.0])}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.pt"]
    monkeypatch.undo()
    assert ember.load(path)["v"].tolist() == [1.0]


def test_failed_write_midway_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    ember.save({"v": ember.tensor([1.0])}, path)
    before = path.read_bytes()
    real = ser._ZipWriter.record

    def record(self, name, data):
        if name.startswith("data/"):
            raise KeyboardInterrupt  # a kill between the pickle and the storages
        return real(self, name, data)

    monkeypatch.setattr(ser._ZipWriter, "record", record)
    with pytest.raises(KeyboardInterrupt):
        ember.save({"v": ember.tensor([2.0])}, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["ckpt.pt"]


def test_save_keeps_file_mode_and_reports_missing_folder(tmp_path):
    path = tmp_path / "m.pt"
    ember.save(ember.ones(1), path)
    os.chmod(path, 0o640)
    ember.save(ember.ones(1), path)
    assert os.stat(path).st_mode & 0o777 == 0o640
    with pytest.raises(RuntimeError, match="Parent directory .*nope does not exist"):
        ember.save(ember.ones(1), tmp_path / "nope" / "x.pt")


def test_save_argument_errors(tmp_path):
    with pytest.raises(RuntimeError, match="legacy"):
        ember.save(ember.ones(1), tmp_path / "x.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match="pickle_protocol"):
        ember.save(ember.ones(1), tmp_path / "x.pt", pickle_protocol=1)
    with pytest.raises(TypeError, match="writable binary file"):
        ember.save(ember.ones(1), 42)
    ember.save(ember.ones(1), tmp_path / "x.pt", pickle_protocol=4)
    assert ember.load(tmp_path / "x.pt").tolist() == [1.0]


# ---- bad input ----------------------------------------------------------------------------------
def test_not_a_checkpoint(tmp_path):
    (tmp_path / "t.txt").write_text("hello world\n")
    with pytest.raises(RuntimeError, match=r"not a checkpoint .*b'hello wo'"):
        ember.load(tmp_path / "t.txt")
    (tmp_path / "r.bin").write_bytes(np.random.RandomState(0).bytes(100))
    with pytest.raises(RuntimeError, match="not a checkpoint"):
        ember.load(tmp_path / "r.bin")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(RuntimeError, match="empty"):
        ember.load(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="No such file"):
        ember.load(tmp_path / "missing.pt")


def test_legacy_torch_format_is_a_clear_error(tmp_path):
    torch.save({"a": torch.ones(1)}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(RuntimeError, match="legacy .*non-zip"):
        ember.load(tmp_path / "old.pt")


def test_torchscript_archive_is_a_clear_error(tmp_path):
    ember.save(ember.ones(1), tmp_path / "a.pt")
    with zipfile.ZipFile(tmp_path / "a.pt") as src, \
            zipfile.ZipFile(tmp_path / "s.pt", "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
        dst.writestr("a/constants.pkl", b"")  # what marks a torch.jit.save archive
    with pytest.raises(RuntimeError, match="TorchScript"):
        ember.load(tmp_path / "s.pt")


def test_state_dict_into_wrong_architecture(tmp_path):
    torch.save(torch.nn.Linear(4, 3).state_dict(), tmp_path / "lin.pt")
    sd = ember.load(tmp_path / "lin.pt")
    with pytest.raises(RuntimeError, match=r"size mismatch for weight: copying a param with "
                                           r"shape \w+.Size\(\[3, 4\]\)"):
        ember.nn.Linear(4, 5).load_state_dict(sd)
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "0.weight"'):
        _ember_net().load_state_dict(sd)
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "bias"'):
        ember.nn.Linear(4, 3, bias=False).load_state_dict(sd)


def test_unsupported_torch_dtype_is_named(tmp_path):
    # complex64/128 load (tests/test_complex.py); complex32 has no ember twin
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch: "ComplexHalf support is experimental"
        torch.save(torch.ones(2, dtype=torch.complex32), tmp_path / "c.pt")
    with pytest.raises(pickle.UnpicklingError, match="torch.complex32 has no ember"):
        ember.load(tmp_path / "c.pt")


def test_complex_tensors_round_trip_with_torch(tmp_path):
    z = ember.tensor([1 + 2j, 3 - 4j])
    ember.save({"z": z, "w": z.to(ember.complex128)}, tmp_path / "z.pt")
    back = torch.load(tmp_path / "z.pt", weights_only=True)
    assert back["z"].dtype == torch.complex64 and back["w"].dtype == torch.complex128
    assert back["z"].tolist() == z.tolist()
    torch.save({"p": torch.nn.Parameter(torch.ones(2, dtype=torch.cdouble) * 1j)},
               tmp_path / "p.pt")
    p = ember.load(tmp_path / "p.pt")["p"]
    assert p.dtype is ember.complex128 and p.requires_grad and p.tolist() == [1j, 1j]


def test_safe_globals_api(tmp_path):
    ember.save({"c": _Point(1, 2)}, tmp_path / "p.pt")
    with pytest.raises(pickle.UnpicklingError, match="test_serialization._Point was not an "
                                                     "allowed global"):
        ember.load(tmp_path / "p.pt")
    with ember.serialization.safe_globals([_Point]):
        assert _Point in ember.get_safe_globals()
        assert ember.load(tmp_path / "p.pt")["c"] == _Point(1, 2)
    assert _Point not in ember.get_safe_globals()
    ember.add_safe_globals([(_Point, "test_serialization._Point")])
    try:
        assert ember.load(tmp_path / "p.pt")["c"].x == 1
    finally:
        ember.clear_safe_globals()
    assert ember.get_safe_globals() == []
    with pytest.raises(ValueError, match="Expected tuple of length 2"):
        ember.add_safe_globals([(_Point,)])
    with pytest.raises(TypeError, match="second item in tuple to be str"):
        ember.add_safe_globals([(_Point, 3)])


class _Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return (self.x, self.y) == (other.x, other.y)


def test_whole_module_pickle_loads_weights_only_with_its_class_allowed():
    """A module saved whole loads under weights_only=True once its class is allow-listed
    (nothing internal to Module needs allowing), as in PyTorch."""
    m = ember.nn.Linear(2, 3)
    buf = io.BytesIO()
    ember.save(m, buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError, match="Linear"):
        ember.load(buf)
    buf.seek(0)
    with ember.serialization.safe_globals([ember.nn.Linear]):
        r = ember.load(buf)
    assert type(r) is ember.nn.Linear
    np.testing.assert_array_equal(r.weight.detach().numpy(), m.weight.detach().numpy())
    np.testing.assert_array_equal(r(ember.ones(1, 2)).detach().numpy(),
                                  m(ember.ones(1, 2)).detach().numpy())


@pytest.mark.parametrize("env", [{}, {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"},
                                 {"TORCH_FORCE_WEIGHTS_ONLY_LOAD": "true"},
                                 {"TORCH_FORCE_WEIGHTS_ONLY_LOAD": "1",
                                  "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "yes"}], ids=str)
@pytest.mark.parametrize("kw", [{}, {"weights_only": False}, {"weights_only": True}], ids=str)
def test_weights_only_environment_variables_as_torch(monkeypatch, env, kw):
    import warnings
    buf = io.BytesIO()
    ember.save({"a": ember.ones(2), "f": os.getcwd}, buf)  # a global outside the allow-list
    for k in ("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_WEIGHTS_ONLY_LOAD"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    outcome = {}
    for m in (ember, torch):
        buf.seek(0)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            try:
                r = m.load(buf, **kw)
                res = ("ok", sorted(r))
            except Exception as e:  # noqa: BLE001 - the type is what is compared
                res = (type(e).__name__,)
        forced = any("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD detected" in str(x.message) for x in w)
        outcome[m.__name__] = res + (forced,)
    assert outcome["ember"] == outcome["torch"]
