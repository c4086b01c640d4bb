"""ember.vision.datasets on fixture files the tests write in torchvision's on-disk formats
(idx files, CIFAR's python pickles, SVHN's .mat, class folders), downloads from a local HTTP
server and file:// URLs, and the restricted unpickler."""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import textwrap
import threading

import numpy as np
import pytest

import ember
from ember.utils.data import DataLoader
from ember.vision import datasets, transforms
from ember.vision.datasets import utils as dutils

Image = pytest.importorskip("PIL.Image")

RNG = np.random.default_rng(0)
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def md5(path) -> str:
    return hashlib.md5(open(path, "rb").read()).hexdigest()


def idx_bytes(arr: np.ndarray) -> bytes:
    """An idx file: magic (type code << 8 | ndim), big-endian sizes, the data."""
    code = {np.uint8: 8, np.int8: 9, np.int16: 11, np.int32: 12, np.float32: 13,
            np.float64: 14}[arr.dtype.type]
    head = struct.pack(">I", (code << 8) | arr.ndim) + b"".join(struct.pack(">I", s)
                                                                for s in arr.shape)
    return head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def mnist_arrays(n, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 28, 28)).astype(np.uint8),
            rng.integers(0, 10, n).astype(np.uint8))


def write_mnist(root, name="MNIST", n_train=12, n_test=5, gz=False, prefix=("train", "t10k")):
    """The four files as torchvision leaves them in ``root/<name>/raw``."""
    raw = os.path.join(root, name, "raw")
    os.makedirs(raw, exist_ok=True)
    out = {}
    for split, n in zip(prefix, (n_train, n_test)):
        imgs, labels = mnist_arrays(n, seed=n)
        for kind, arr in (("images-idx3", imgs), ("labels-idx1", labels)):
            fname = f"{split}-{kind}-ubyte"
            data = idx_bytes(arr)
            with open(os.path.join(raw, fname), "wb") as f:
                f.write(data)
            if gz:
                with gzip.open(os.path.join(raw, fname + ".gz"), "wb") as f:
                    f.write(data)
        out[split] = (imgs, labels)
    return out


# ---- MNIST family ----

@pytest.mark.parametrize("cls,n_classes", [(datasets.MNIST, 10), (datasets.FashionMNIST, 10),
                                           (datasets.KMNIST, 10)])
def test_mnist_family_reads_raw_idx(tmp_path, cls, n_classes):
    arrays = write_mnist(tmp_path, cls.__name__)
    for train, split in ((True, "train"), (False, "t10k")):
        ds = cls(str(tmp_path), train=train)
        imgs, labels = arrays[split]
        assert ds.data.dtype == ember.uint8 and tuple(ds.data.shape) == imgs.shape
        assert ds.targets.dtype == ember.int64
        np.testing.assert_array_equal(ds.data.numpy(), imgs)
        np.testing.assert_array_equal(ds.targets.numpy(), labels)
        assert len(ds) == len(labels) and len(ds.classes) == n_classes
        img, target = ds[2]
        assert img.mode == "L" and img.size == (28, 28) and type(target) is int
        np.testing.assert_array_equal(np.asarray(img), imgs[2])
        assert target == labels[2]
        assert ds.class_to_idx[ds.classes[3]] == 3
        assert ds.raw_folder == os.path.join(str(tmp_path), cls.__name__, "raw")
    assert f"Dataset {cls.__name__}" in repr(ds) and "Split: Test" in repr(ds)


def test_mnist_transforms_and_dataloader(tmp_path):
    arrays = write_mnist(tmp_path)
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    ds = datasets.MNIST(tmp_path, train=True, transform=tf, target_transform=lambda t: t + 100)
    x, y = ds[0]
    assert x.shape == (1, 28, 28) and x.dtype == ember.float32 and y == arrays["train"][1][0] + 100
    np.testing.assert_allclose(x.numpy()[0], (arrays["train"][0][0] / 255.0 - 0.1307) / 0.3081,
                               rtol=1e-5, atol=1e-5)
    batches = list(DataLoader(datasets.MNIST(tmp_path, transform=tf), batch_size=5))
    assert [tuple(b[0].shape) for b in batches] == [(5, 1, 28, 28)] * 2 + [(2, 1, 28, 28)]
    assert batches[0][1].dtype == ember.int64
    assert "Transform: Compose(" in repr(ds)


def test_mnist_missing_and_bad_files(tmp_path):
    with pytest.raises(RuntimeError, match="Dataset not found. You can use download=True"):
        datasets.MNIST(tmp_path)
    write_mnist(tmp_path)
    path = os.path.join(tmp_path, "MNIST", "raw", "train-images-idx3-ubyte")
    with open(path, "wb") as f:
        f.write(b"\x00\x00\x99\x03" + b"\x00" * 16)
    with pytest.raises(ValueError, match="not an idx file"):
        datasets.MNIST(tmp_path)
    with open(path, "wb") as f:  # int32 data where uint8 images are expected
        f.write(idx_bytes(np.zeros((2, 28, 28), np.int32)))
    with pytest.raises(TypeError):
        datasets.MNIST(tmp_path)
    with pytest.raises(ValueError):
        datasets.VisionDataset(str(tmp_path), transforms=lambda a, b: (a, b), transform=abs)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_read_sn3_pascalvincent_dtypes(tmp_path, dtype):
    arr = (RNG.random((3, 4)) * 100).astype(dtype)
    path = tmp_path / "f-idx2"
    path.write_bytes(idx_bytes(arr))
    out = datasets.mnist.read_sn3_pascalvincent_tensor(str(path))
    np.testing.assert_array_equal(out.numpy(), arr)
    path.write_bytes(idx_bytes(arr)[:-1])
    with pytest.raises(ValueError):
        datasets.mnist.read_sn3_pascalvincent_tensor(str(path))


def test_emnist_splits(tmp_path):
    raw = tmp_path / "EMNIST" / "raw"
    raw.mkdir(parents=True)
    imgs, labels = mnist_arrays(6)
    labels = labels + 1
    for split in ("letters", "balanced"):
        for part in ("train", "test"):
            (raw / f"emnist-{split}-{part}-images-idx3-ubyte").write_bytes(idx_bytes(imgs))
            (raw / f"emnist-{split}-{part}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    ds = datasets.EMNIST(str(tmp_path), split="letters", train=False)
    assert ds.classes[0] == "N/A" and len(ds.classes) == 27 and len(ds) == 6
    np.testing.assert_array_equal(ds.data.numpy(), imgs)
    assert len(datasets.EMNIST(str(tmp_path), split="balanced").classes) == 47
    with pytest.raises(ValueError, match="Unknown value 'bogus' for argument split"):
        datasets.EMNIST(str(tmp_path), split="bogus")
    with pytest.raises(RuntimeError):
        datasets.EMNIST(str(tmp_path), split="digits")


# ---- downloads ----

@pytest.fixture
def http_root(tmp_path):
    """A local HTTP server on 127.0.0.1 serving ``tmp_path/www``; yields (folder, base URL)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(QuietHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _mnist_resources(www):
    src = www.parent / "src"
    write_mnist(src, gz=True)
    res = []
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        data = (src / "MNIST" / "raw" / name).read_bytes()
        (www / name).write_bytes(data)
        res.append((name, hashlib.md5(data).hexdigest()))
    return res


def test_mnist_download_over_http_with_md5(tmp_path, http_root, monkeypatch, capsys):
    www, base = http_root
    res = _mnist_resources(www)
    monkeypatch.setattr(datasets.MNIST, "resources", res)
    # the first mirror is down: the next one is tried, as torchvision does
    monkeypatch.setattr(datasets.MNIST, "mirrors", ["http://127.0.0.1:9/", base])
    root = tmp_path / "data"
    ds = datasets.MNIST(str(root), train=True, download=True)
    assert len(ds) == 12 and (root / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    assert (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").is_file()
    assert f"Downloading {base}train-images-idx3-ubyte.gz" in capsys.readouterr().out
    # present now: a second download=True fetches nothing
    monkeypatch.setattr(datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    assert len(datasets.MNIST(str(root), train=False, download=True)) == 5


def test_mnist_download_md5_mismatch_and_offline(tmp_path, http_root, monkeypatch):
    www, base = http_root
    res = _mnist_resources(www)
    bad = [(name, "0" * 32) for name, _ in res]
    monkeypatch.setattr(datasets.MNIST, "resources", bad)
    monkeypatch.setattr(datasets.MNIST, "mirrors", [base])
    with pytest.raises(RuntimeError, match="File not found or corrupted."):
        datasets.MNIST(str(tmp_path / "a"), download=True)
    monkeypatch.setattr(datasets.MNIST, "resources", res)
    monkeypatch.setattr(datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    with pytest.raises(RuntimeError, match="Error downloading train-images-idx3-ubyte.gz"):
        datasets.MNIST(str(tmp_path / "b"), download=True)
    monkeypatch.setattr(datasets.MNIST, "mirrors", [base + "missing/"])  # HTTP 404
    with pytest.raises(RuntimeError, match="Error downloading"):
        datasets.MNIST(str(tmp_path / "c"), download=True)


def test_emnist_download_zip_of_gz(tmp_path, http_root, monkeypatch):
    import zipfile
    www, base = http_root
    imgs, labels = mnist_arrays(4)
    with zipfile.ZipFile(www / "gzip.zip", "w") as z:
        for part in ("train", "test"):
            for kind, arr in (("images-idx3", imgs), ("labels-idx1", labels)):
                z.writestr(f"gzip/emnist-digits-{part}-{kind}-ubyte.gz",
                           gzip.compress(idx_bytes(arr)))
    monkeypatch.setattr(datasets.EMNIST, "url", base + "gzip.zip")
    monkeypatch.setattr(datasets.EMNIST, "md5", md5(www / "gzip.zip"))
    ds = datasets.EMNIST(str(tmp_path), split="digits", download=True)
    np.testing.assert_array_equal(ds.data.numpy(), imgs)
    assert not (tmp_path / "EMNIST" / "raw" / "gzip").exists()
    monkeypatch.setattr(datasets.EMNIST, "url", "http://127.0.0.1:9/gzip.zip")
    with pytest.raises(RuntimeError, match="Error downloading"):
        datasets.EMNIST(str(tmp_path / "b"), split="digits", download=True)


def test_download_url_file_scheme_and_integrity(tmp_path):
    src = tmp_path / "blob.bin"
    src.write_bytes(b"ember" * 100)
    dutils.download_url(src.as_uri(), str(tmp_path / "out"), md5=md5(src))
    assert (tmp_path / "out" / "blob.bin").read_bytes() == src.read_bytes()
    assert dutils.check_integrity(str(tmp_path / "out" / "blob.bin"), md5(src))
    assert not dutils.check_integrity(str(tmp_path / "out" / "blob.bin"), "0" * 32)
    assert not dutils.check_integrity(str(tmp_path / "nope"))
    with pytest.raises(RuntimeError, match="corrupted"):
        dutils.download_url(src.as_uri(), str(tmp_path / "out2"), md5="1" * 32)


def test_extract_archive_refuses_escaping_members(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(Exception):
        dutils.extract_archive(str(evil), str(tmp_path / "x"))
    assert not (tmp_path / "escaped.txt").exists()
    with pytest.raises(RuntimeError, match="Unsupported"):
        dutils.extract_archive(str(tmp_path / "a.rar"))


def test_verify_str_arg():
    assert dutils.verify_str_arg("a", "x", ("a", "b")) == "a"
    with pytest.raises(ValueError, match=r"Unknown value 'c' for argument x. Valid values are "
                                         r"\{'a', 'b'\}."):
        dutils.verify_str_arg("c", "x", ("a", "b"))
    with pytest.raises(ValueError):
        dutils.verify_str_arg(3, "x", ("a",))


# ---- CIFAR ----

class Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 byte strings (BINSTRING), as CIFAR's files hold them."""

    def _save_py2_string(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[str] = _save_py2_string
    dispatch[bytes] = _save_py2_string


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def write_cifar(root, cls, n_per_file=4, py2=True):
    """Batches and meta in ``root/<base_folder>``; returns the class with the fixtures' md5s."""
    folder = os.path.join(root, cls.base_folder)
    os.makedirs(folder, exist_ok=True)
    is100 = cls is datasets.CIFAR100 or issubclass(cls, datasets.CIFAR100)
    dump = py2_pickle if py2 else (lambda o: pickle.dumps(o, protocol=2))
    arrays = {}
    md5s = {}
    for i, (name, _) in enumerate(cls.train_list + cls.test_list):
        data = np.random.default_rng(i).integers(0, 256, (n_per_file, 3072)).astype(np.uint8)
        labels = [int(v) for v in np.random.default_rng(i + 50).integers(0, 10, n_per_file)]
        entry = {"batch_label": f"batch {i}", "data": data, "filenames": ["a.png"] * n_per_file}
        if is100:
            entry["fine_labels"], entry["coarse_labels"] = labels, [0] * n_per_file
        else:
            entry["labels"] = labels
        path = os.path.join(folder, name)
        with open(path, "wb") as f:
            f.write(dump(entry))
        arrays[name] = (data, labels)
        md5s[name] = md5(path)
    names = [f"class{i}" for i in range(100 if is100 else 10)]
    meta_path = os.path.join(folder, cls.meta["filename"])
    with open(meta_path, "wb") as f:
        f.write(dump({cls.meta["key"]: names, "num_cases_per_batch": n_per_file}))
    patched = type(cls.__name__, (cls,), {
        "train_list": [[n, md5s[n]] for n, _ in cls.train_list],
        "test_list": [[n, md5s[n]] for n, _ in cls.test_list],
        "meta": dict(cls.meta, md5=md5(meta_path)),
    })
    return patched, arrays, names


@pytest.mark.parametrize("py2", [True, False])
@pytest.mark.parametrize("base", [datasets.CIFAR10, datasets.CIFAR100])
def test_cifar_reads_python_pickles(tmp_path, base, py2):
    cls, arrays, names = write_cifar(tmp_path, base, py2=py2)
    train = cls(str(tmp_path), train=True)
    n_train = 4 * len(base.train_list)
    assert train.data.shape == (n_train, 32, 32, 3) and train.data.dtype == np.uint8
    first = arrays[base.train_list[0][0]]
    np.testing.assert_array_equal(train.data[1], first[0][1].reshape(3, 32, 32)
                                  .transpose(1, 2, 0))
    assert train.targets[:4] == first[1] and all(type(t) is int for t in train.targets)
    assert train.classes == names and train.class_to_idx[names[2]] == 2
    img, target = train[1]
    assert img.mode == "RGB" and img.size == (32, 32) and target == first[1][1]
    np.testing.assert_array_equal(np.asarray(img), train.data[1])
    test = cls(str(tmp_path), train=False, transform=transforms.ToTensor())
    assert len(test) == 4 and test[0][0].shape == (3, 32, 32)


def test_cifar_missing_corrupted_and_real_md5s(tmp_path, monkeypatch):
    with pytest.raises(RuntimeError, match="Dataset not found or corrupted"):
        datasets.CIFAR10(str(tmp_path))
    write_cifar(tmp_path, datasets.CIFAR10)
    # fixture batches are not the real files: torchvision's md5s refuse them
    with pytest.raises(RuntimeError, match="Dataset not found or corrupted"):
        datasets.CIFAR10(str(tmp_path))
    # ... unless local files are trusted as they are
    monkeypatch.setenv("EMBER_VISION_SKIP_LOCAL_MD5", "1")
    assert len(datasets.CIFAR10(str(tmp_path), download=True)) == 20
    monkeypatch.delenv("EMBER_VISION_SKIP_LOCAL_MD5")
    cls, _, _ = write_cifar(tmp_path, datasets.CIFAR10)
    meta = os.path.join(tmp_path, cls.base_folder, cls.meta["filename"])
    with open(meta, "ab") as f:
        f.write(b"x")
    with pytest.raises(RuntimeError, match="metadata file not found or corrupted"):
        cls(str(tmp_path))


def test_cifar_download_tarball(tmp_path, http_root, monkeypatch):
    www, base = http_root
    cls, _, _ = write_cifar(tmp_path / "src", datasets.CIFAR10)
    tgz = www / "cifar-10-python.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setattr(cls, "url", base + "cifar-10-python.tar.gz")
    monkeypatch.setattr(cls, "tgz_md5", md5(tgz))
    ds = cls(str(tmp_path / "data"), train=True, download=True)
    assert len(ds) == 20 and (tmp_path / "data" / "cifar-10-python.tar.gz").is_file()
    monkeypatch.setattr(cls, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    with pytest.raises(RuntimeError, match="Error downloading"):
        cls(str(tmp_path / "other"), download=True)


class _Boom:
    def __reduce__(self):
        return (os.mkdir, (self.path,))


@pytest.mark.parametrize("protocol", [2, 4])
def test_restricted_unpickler_runs_nothing(tmp_path, protocol):
    boom = _Boom()
    boom.path = str(tmp_path / "pwned")
    payload = pickle.dumps({"data": boom}, protocol=protocol)
    with pytest.raises(pickle.UnpicklingError, match="may not load the global"):
        dutils.restricted_pickle_load(io.BytesIO(payload))
    assert not (tmp_path / "pwned").exists()
    # an array of Python objects would need more than NumPy's reconstruction
    objs = pickle.dumps(np.array([boom], dtype=object), protocol=protocol)
    with pytest.raises(pickle.UnpicklingError):
        dutils.restricted_pickle_load(io.BytesIO(objs))
    assert not (tmp_path / "pwned").exists()
    # what a CIFAR file holds loads, in every protocol NumPy pickles with
    ok = {"data": np.arange(12, dtype=np.uint8).reshape(3, 4), "labels": [1, 2, 3]}
    out = dutils.restricted_pickle_load(io.BytesIO(pickle.dumps(ok, protocol=protocol)))
    np.testing.assert_array_equal(out["data"], ok["data"])
    out5 = dutils.restricted_pickle_load(io.BytesIO(pickle.dumps(ok, protocol=5)))
    np.testing.assert_array_equal(out5["data"], ok["data"])
    with pytest.raises(pickle.UnpicklingError):
        dutils.restricted_pickle_load(io.BytesIO(pickle.dumps(np.float64, protocol=protocol)))


# ---- SVHN ----

def test_svhn_mat_files(tmp_path, monkeypatch):
    sio = pytest.importorskip("scipy.io")
    X = RNG.integers(0, 256, (32, 32, 3, 5)).astype(np.uint8)
    y = np.array([[10], [1], [2], [10], [9]], dtype=np.uint8)
    sio.savemat(tmp_path / "test_32x32.mat", {"X": X, "y": y})
    split_list = dict(datasets.SVHN.split_list)
    split_list["test"] = [split_list["test"][0], "test_32x32.mat",
                          md5(tmp_path / "test_32x32.mat")]
    monkeypatch.setattr(datasets.SVHN, "split_list", split_list)
    ds = datasets.SVHN(str(tmp_path), split="test")
    assert ds.data.shape == (5, 3, 32, 32) and list(ds.labels) == [0, 1, 2, 0, 9]
    img, target = ds[1]
    assert img.mode == "RGB" and target == 1
    np.testing.assert_array_equal(np.asarray(img), X[:, :, :, 1])
    with pytest.raises(RuntimeError, match="Dataset not found or corrupted"):
        datasets.SVHN(str(tmp_path), split="train")
    with pytest.raises(ValueError, match="Unknown value 'val'"):
        datasets.SVHN(str(tmp_path), split="val")


# ---- folders ----

def _write_folder(root):
    arrays = {}
    for cls_name, n in (("cat", 2), ("dog", 3)):
        os.makedirs(os.path.join(root, cls_name, "sub"), exist_ok=True)
        for i in range(n):
            arr = RNG.integers(0, 256, (6, 5, 3)).astype(np.uint8)
            where = os.path.join(root, cls_name, "sub" if i == 2 else "", f"{i}.png")
            Image.fromarray(arr).save(where)
            arrays[where] = arr
        with open(os.path.join(root, cls_name, "notes.txt"), "w") as f:
            f.write("not an image")
    return arrays


def test_image_folder(tmp_path):
    arrays = _write_folder(tmp_path)
    ds = datasets.ImageFolder(str(tmp_path), transform=transforms.PILToTensor())
    assert ds.classes == ["cat", "dog"] and ds.class_to_idx == {"cat": 0, "dog": 1}
    assert len(ds) == 5 and ds.targets == [0, 0, 1, 1, 1] and ds.imgs == ds.samples
    assert [os.path.basename(p) for p, _ in ds.samples] == ["0.png", "1.png", "0.png", "1.png",
                                                            "2.png"]
    for k, (path, target) in enumerate(ds.samples):
        x, t = ds[k]
        np.testing.assert_array_equal(x.numpy(), arrays[path].transpose(2, 0, 1))
        assert t == target
    txt = datasets.DatasetFolder(str(tmp_path), loader=lambda p: open(p).read(),
                                 extensions=(".txt",))
    assert len(txt) == 2 and txt[1] == ("not an image", 1)
    only_sub = datasets.ImageFolder(str(tmp_path), is_valid_file=lambda p: "sub" in p,
                                    allow_empty=True)
    assert len(only_sub) == 1 and only_sub.targets == [1]


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Couldn't find any class folder"):
        datasets.ImageFolder(str(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="Found no valid file for the classes empty"):
        datasets.ImageFolder(str(tmp_path))
    assert len(datasets.ImageFolder(str(tmp_path), allow_empty=True)) == 0
    with pytest.raises(ValueError, match="Both extensions and is_valid_file"):
        datasets.DatasetFolder(str(tmp_path), loader=open, extensions=(".x",),
                               is_valid_file=bool)


# ---- FakeData ----

def test_fake_data():
    ds = datasets.FakeData(size=6, image_size=(3, 8, 10), num_classes=4,
                           transform=transforms.ToTensor())
    ember.manual_seed(123)
    before = ember.rand(3)
    ember.manual_seed(123)
    x, y = ds[2]
    # reading does not disturb the global RNG
    np.testing.assert_array_equal(ember.rand(3).numpy(), before.numpy())
    assert x.shape == (3, 8, 10) and 0 <= y < 4 and type(y) is int
    x2, y2 = ds[2]
    np.testing.assert_array_equal(x.numpy(), x2.numpy())
    assert y == y2 and not np.array_equal(ds[3][0].numpy(), x.numpy())
    assert len(ds) == 6 and "Number of datapoints: 6" in repr(ds)
    with pytest.raises(IndexError, match="FakeData index out of range"):
        ds[6]
    offset = datasets.FakeData(size=6, image_size=(1, 4, 4), random_offset=2)
    assert offset[0][0].mode == "L"


# ---- pytorch/examples' mnist pattern under `ember run` ----

def test_mnist_program_under_ember_run(tmp_path):
    write_mnist(tmp_path / "data", n_train=64, n_test=16, gz=True)
    script = tmp_path / "work" / "main.py"
    script.parent.mkdir()
    script.write_text(textwrap.dedent("""
        import torch
        import torch.nn.functional as F
        from torchvision import datasets, transforms
        torch.manual_seed(1)
        transform = transforms.Compose([transforms.ToTensor(),
                                        transforms.Normalize((0.1307,), (0.3081,))])
        train = datasets.MNIST('../data', train=True, download=True, transform=transform)
        test = datasets.MNIST('../data', train=False, transform=transform)
        loader = torch.utils.data.DataLoader(train, batch_size=16, shuffle=True)
        model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(),
                                    torch.nn.Flatten(), torch.nn.Linear(4 * 26 * 26, 10))
        opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
        for data, target in loader:
            opt.zero_grad()
            loss = F.nll_loss(F.log_softmax(model(data), 1), target)
            loss.backward()
            opt.step()
        x, y = next(iter(torch.utils.data.DataLoader(test, batch_size=16)))
        print("ok", tuple(x.shape), y.dtype, type(train).__module__, round(loss.item(), 3) > 0)
    """))
    out = subprocess.run([sys.executable, "-m", "ember.run", "main.py"], cwd=script.parent,
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=_REPO))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok (16, 1, 28, 28) ember.int64 ember.vision.datasets.mnist True"
