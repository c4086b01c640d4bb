"""ember.utils.safetensors against safetensors.torch (files written by one, read by the other)."""
import sys

import numpy as np
import pytest
import torch

import ember
from ember.utils import safetensors as est

safetensors_torch = pytest.importorskip("safetensors.torch")

DTYPES = ["float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64",
          "uint8", "bool"]


def _values(t):
    if isinstance(t, torch.Tensor):
        return (t.float() if t.dtype == torch.bfloat16 else t).numpy()
    a = t._data
    return a.astype(np.float32) if a.dtype.name == "bfloat16" else a


def _torch_dict():
    out = {}
    for d in DTYPES:
        base = torch.arange(-3, 9, dtype=torch.float64).reshape(3, 4)
        out[d] = (base.remainder(2) == 0) if d == "bool" else base.abs().to(getattr(torch, d))
    out["scalar"] = torch.tensor(2.5)
    out["empty"] = torch.zeros(0, 3)
    return out


def test_files_from_safetensors_torch(tmp_path):
    tensors = _torch_dict()
    safetensors_torch.save_file(tensors, tmp_path / "t.safetensors", metadata={"k": "v"})
    e = est.load_file(tmp_path / "t.safetensors")
    assert set(e) == set(tensors)
    for k, v in tensors.items():
        if k in DTYPES:
            assert e[k].dtype == getattr(ember, k), k
        assert tuple(e[k].shape) == tuple(v.shape), k
        np.testing.assert_array_equal(_values(e[k]), _values(v), err_msg=k)
    e["float32"].add_(1)  # loaded tensors are ordinary writable tensors
    blob = safetensors_torch.save(tensors)
    e2 = est.load(blob)
    np.testing.assert_array_equal(_values(e2["bfloat16"]), _values(tensors["bfloat16"]))
    e2["int64"].mul_(2)


def test_files_read_by_safetensors_torch(tmp_path):
    tensors = {k: ember.from_numpy(_values(v).copy()).to(getattr(ember, k))
               if k in DTYPES else ember.from_numpy(v.numpy().copy())
               for k, v in _torch_dict().items()}
    est.save_file(tensors, tmp_path / "e.safetensors", metadata={"format": "pt"})
    t = safetensors_torch.load_file(tmp_path / "e.safetensors")
    for k, v in tensors.items():
        if k in DTYPES:
            assert t[k].dtype == getattr(torch, k), k
        np.testing.assert_array_equal(_values(t[k]), _values(v), err_msg=k)
    from safetensors import safe_open
    with safe_open(tmp_path / "e.safetensors", framework="pt") as f:
        assert f.metadata() == {"format": "pt"}
    t2 = safetensors_torch.load(est.save(tensors))
    assert t2["int16"].tolist() == tensors["int16"].tolist()


def test_shared_and_non_contiguous_tensors_are_refused_as_safetensors_torch(tmp_path):
    w = ember.randn(4, 4)
    with pytest.raises(RuntimeError, match=r"Some tensors share memory.*\['a', 'b'\]"):
        est.save_file({"a": w, "b": w[1]}, tmp_path / "x.safetensors")
    tw = torch.randn(4, 4)
    with pytest.raises(RuntimeError, match="Some tensors share memory"):
        safetensors_torch.save_file({"a": tw, "b": tw[1]}, tmp_path / "y.safetensors")
    # disjoint slices of one buffer are fine (safetensors.torch accepts them too)
    est.save_file({"r0": w[0], "r1": w[1]}, tmp_path / "rows.safetensors")
    assert est.load_file(tmp_path / "rows.safetensors")["r1"].tolist() == w[1].tolist()
    with pytest.raises(ValueError, match="non contiguous tensor: `t`"):
        est.save_file({"t": w.t()}, tmp_path / "z.safetensors")
    est.save_file({"t": w.t().contiguous(), "c": w.clone()}, tmp_path / "ok.safetensors")


def test_bad_inputs():
    with pytest.raises(ValueError, match="Expected a dict"):
        est.save([ember.ones(1)])
    with pytest.raises(ValueError, match="Key `a` is invalid"):
        est.save({"a": np.ones(1)})
    with pytest.raises(ValueError, match="metadata must be a dict of str to str"):
        est.save({"a": ember.ones(1)}, metadata={"a": 1})
    blob = safetensors_torch.save({"c": torch.ones(2, dtype=torch.complex64)})
    with pytest.raises(ValueError, match="dtype C64, which ember does not support"):
        est.load(blob)


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    with pytest.raises(ImportError, match=r"pip install 'ember\[safetensors\]'"):
        est.save({"a": ember.ones(1)})
