"""Download, checksum and archive helpers, as ``torchvision.datasets.utils``.

Downloads use urllib (http, https and file:// URLs); a failed fetch raises RuntimeError
naming the URL. Archives are extracted with tarfile's "data" filter and zipfile's own path
checks, so a member cannot land outside the target folder.
"""
from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import pickle
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from typing import Any, Iterable

__all__ = ["calculate_md5", "check_md5", "check_integrity", "check_local_integrity",
           "download_url", "extract_archive",
           "download_and_extract_archive", "verify_str_arg", "restricted_pickle_load"]

_USER_AGENT = "ember-vision"
_CHUNK = 1024 * 1024


def calculate_md5(fpath: str | os.PathLike, chunk_size: int = _CHUNK) -> str:
    """The hex md5 of a file's bytes."""
    md5 = hashlib.md5(usedforsecurity=False)
    with open(fpath, "rb") as f:
        while chunk := f.read(chunk_size):
            md5.update(chunk)
    return md5.hexdigest()


def check_md5(fpath, md5: str, **kwargs) -> bool:
    return md5 == calculate_md5(fpath, **kwargs)


def check_integrity(fpath, md5: str | None = None) -> bool:
    """True if ``fpath`` is a file and (when ``md5`` is given) its md5 matches."""
    if not os.path.isfile(fpath):
        return False
    if md5 is None:
        return True
    return check_md5(fpath, md5)


def check_local_integrity(fpath, md5: str | None = None) -> bool:
    """``check_integrity`` for a dataset file already under ``root``, except that the
    environment variable ``EMBER_VISION_SKIP_LOCAL_MD5=1`` trusts any file that is present.

    torchvision refuses a CIFAR/SVHN file whose md5 is not the published one; the switch lets
    fixture or re-packed copies in the same layout load (downloads are always verified)."""
    if os.environ.get("EMBER_VISION_SKIP_LOCAL_MD5", "") not in ("", "0"):
        md5 = None
    return check_integrity(fpath, md5)


def download_url(url: str, root, filename: str | None = None, md5: str | None = None,
                 max_redirect_hops: int = 3) -> None:
    """Fetch ``url`` into ``root/filename`` unless a file with that md5 is already there."""
    root = os.path.expanduser(root)
    filename = filename or os.path.basename(url)
    fpath = os.fspath(os.path.join(root, filename))
    os.makedirs(root, exist_ok=True)
    if check_integrity(fpath, md5):
        return
    # written to a temporary name first, so an interrupted download never looks complete
    tmp = fpath + ".part"
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=60) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out, _CHUNK)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    os.replace(tmp, fpath)
    if not check_integrity(fpath, md5):
        raise RuntimeError("File not found or corrupted.")


def _safe_tar_extract(tar: tarfile.TarFile, to_path: str) -> None:
    try:
        tar.extractall(to_path, filter="data")
    except TypeError:  # a Python without extraction filters: check member paths ourselves
        base = os.path.realpath(to_path)
        for member in tar.getmembers():
            dest = os.path.realpath(os.path.join(to_path, member.name))
            if os.path.commonpath([base, dest]) != base or member.issym() or member.islnk():
                raise RuntimeError(f"refusing to extract {member.name!r} outside {to_path}")
        tar.extractall(to_path)


_DECOMPRESSORS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def extract_archive(from_path: str, to_path: str | None = None,
                    remove_finished: bool = False) -> str:
    """Extract a .tar(.gz/.bz2/.xz)/.tgz/.zip archive, or decompress a single .gz/.bz2/.xz."""
    from_path = os.fspath(from_path)
    if to_path is None:
        to_path = os.path.dirname(from_path)
    name = from_path.lower()
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz", ".txz")):
        with tarfile.open(from_path, "r:*") as tar:
            _safe_tar_extract(tar, to_path)
        out = to_path
    elif name.endswith(".zip"):
        with zipfile.ZipFile(from_path) as archive:
            archive.extractall(to_path)
        out = to_path
    else:
        ext = os.path.splitext(name)[1]
        if ext not in _DECOMPRESSORS:
            raise RuntimeError(f"Unsupported compression or archive type: '{ext}'.")
        out = os.path.join(to_path, os.path.basename(from_path)[:-len(ext)])
        with _DECOMPRESSORS[ext](from_path, "rb") as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, _CHUNK)
    if remove_finished:
        os.remove(from_path)
    return out


def download_and_extract_archive(url: str, download_root, extract_root=None,
                                 filename: str | None = None, md5: str | None = None,
                                 remove_finished: bool = False) -> None:
    """``download_url`` then ``extract_archive`` into ``extract_root`` (default: the same)."""
    download_root = os.path.expanduser(download_root)
    if extract_root is None:
        extract_root = download_root
    filename = filename or os.path.basename(url)
    download_url(url, download_root, filename, md5)
    archive = os.path.join(download_root, filename)
    extract_archive(archive, extract_root, remove_finished)


def verify_str_arg(value: str, arg: str | None = None, valid_values: Iterable[str] | None = None,
                   custom_msg: str | None = None) -> str:
    """``value`` if it is a str among ``valid_values``, else torchvision's ValueError."""
    if not isinstance(value, str):
        msg = "Expected type str" + ("" if arg is None else f" for argument {arg}")
        raise ValueError(f"{msg}, but got type {type(value)}.")
    if valid_values is None or value in valid_values:
        return value
    if custom_msg is not None:
        raise ValueError(custom_msg)
    valid = ", ".join(f"'{v}'" for v in valid_values)
    raise ValueError(f"Unknown value '{value}' for argument {arg}. Valid values are {{{valid}}}.")


# NOTE [ Restricted unpickling of dataset files ]
# CIFAR's batches are pickles of dicts holding NumPy arrays. A pickle may name any callable, so
# they are read by an unpickler that resolves only the few globals such a file needs (NumPy's
# array reconstruction and dtype, and the latin-1 bytes codec Python 3 uses at protocol 2);
# any other name raises pickle.UnpicklingError and nothing from the file is executed.
def _latin1_encode(text, encoding="latin1"):
    if not isinstance(text, str) or encoding.lower().replace("-", "") != "latin1":
        raise pickle.UnpicklingError("only latin-1 byte strings may be encoded by a dataset file")
    return text.encode("latin1")


def _safe_globals() -> dict:
    import numpy as np

    allowed = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = _reconstruct
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(mod, "_frombuffer")] = _frombuffer
    return allowed


def _reconstruct(subtype, shape, dtype):
    import numpy as np
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError("only plain NumPy arrays may be unpickled from a dataset file")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _frombuffer(buf, dtype, shape, order):
    import numpy as np
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("object arrays may not be unpickled from a dataset file")
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, allowed, **kwargs):
        super().__init__(file, **kwargs)
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"a dataset file may not load the global '{module}.{name}'") from None


def restricted_pickle_load(file, encoding: str = "latin1"):
    """Unpickle a dataset file allowing only NumPy arrays and plain Python containers."""
    return _RestrictedUnpickler(file, _safe_globals(), encoding=encoding).load()
