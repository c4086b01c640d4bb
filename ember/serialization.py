"""``ember.save`` / ``ember.load`` in PyTorch's zip format, with an allow-list unpickler.

The file layout is the one ``torch.save`` writes (``torch/serialization.py``, PyTorch 2.13):
a zip archive ``<name>/`` holding ``data.pkl`` (pickle protocol 2; every storage is a
persistent id ``('storage', torch.<T>Storage, key, location, numel)`` and every tensor a
``torch._utils._rebuild_tensor_v2`` reduce), one uncompressed record ``data/<key>`` per
storage aligned to 64 bytes, ``.format_version``, ``.storage_alignment``, ``byteorder``,
``version`` and ``.data/serialization_id``.  Real ``torch.load(f, weights_only=True)`` reads
ember's files and ``ember.load`` reads torch's; torch is never imported: the torch names
are written into and read out of the pickle as plain text.

``weights_only=True`` (the default) runs ember's own opcode interpreter, kept as torch keeps
it in ``ember/_weights_only_unpickler.py`` (the rebuild functions it allows are in
``ember/_utils.py``): only data opcodes, allow-listed globals, calls of allow-listed callables
and well-formed storage ids; anything else raises ``pickle.UnpicklingError`` before it can
import or call anything.
"""
from __future__ import annotations

import io
import mmap as _mmap
import os
import pickle
import re
import struct
import sys
import warnings
import zipfile
import zlib
from collections import OrderedDict

import numpy as np

from . import _backend, _dtype
from ._backend import device as _device
from ._tensor import Size, Tensor
from ._utils import _Storage
from ._weights_only_unpickler import (Unpickler as _WeightsOnlyUnpickler, _ALLOWED, _check_pid,
                                      _py3_name, add_safe_globals, clear_safe_globals,
                                      get_safe_globals, safe_globals)
from .nn.parameter import Parameter

__all__ = ["save", "load", "add_safe_globals", "get_safe_globals", "clear_safe_globals",
           "safe_globals"]


class _TorchRef:
    """A torch global written into a pickle by name (never imported)."""

    __slots__ = ("module", "name")

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle's save_reduce wants a callable
        raise RuntimeError(f"{self.module}.{self.name} is a placeholder for pickling")


_T_REBUILD_TENSOR_V2 = _TorchRef("torch._utils", "_rebuild_tensor_v2")
_T_REBUILD_PARAMETER = _TorchRef("torch._utils", "_rebuild_parameter")
_T_SIZE = _TorchRef("torch", "Size")
_T_DEVICE = _TorchRef("torch", "device")
# torch's typed storages are named after c10's scalar type ("FloatStorage")
_T_STORAGE = {d: _TorchRef("torch", d.scalar_name + "Storage") for d in _dtype.ALL}

# torch (2.13) writes this sentence into its "Weights only load failed" errors
UNSAFE_MESSAGE = (
    "Re-running `ember.load` with `weights_only` set to `False` will likely succeed, but it can "
    "result in arbitrary code execution. Do it only if you got the file from a trusted source.")

# PyTorch's text about trusting a file (torch.load's FutureWarning in 2.4-2.5)
FULL_PICKLE_WARNING = (
    "You are using `ember.load` with `weights_only=False`, which uses the default pickle module "
    "implicitly. It is possible to construct malicious pickle data which will execute arbitrary "
    "code during unpickling (See https://github.com/pytorch/pytorch/blob/main/SECURITY.md"
    "#untrusted-models). Only load files with `weights_only=False` from a source you trust.")

# ================================================================================================
# saving
# ================================================================================================
_ZIP64_LIMIT = 0xFFFFFFFF  # miniz's MZ_UINT32_MAX: records/offsets at or past it go zip64
_ALIGN = 64                # torch's storage alignment (``.storage_alignment``)
_CRC_THREAD_MIN = 1 << 20


class _ZipWriter:
    """A sequential zip writer laid out as PyTorch's miniz writer (stored records, data
    descriptors, ``FB`` padding fields aligning every record's data to 64 bytes, zip64 end
    records), so torch's reader and its mmap offset calculation both accept it."""

    def __init__(self, f, archive):
        self.f = f
        self.archive = archive
        self.pos = 0
        self.entries = []
        self.pool = None

    def _w(self, b):
        self.f.write(b)
        self.pos += b.nbytes if isinstance(b, memoryview) else len(b)

    def record(self, name, data):
        full = f"{self.archive}/{name}".encode()
        mv = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
        size = mv.nbytes
        crc = None
        if size >= _CRC_THREAD_MIN:  # the CRC trails the data, so compute it while writing
            if self.pool is None:
                from concurrent.futures import ThreadPoolExecutor  # big saves only
                self.pool = ThreadPoolExecutor(1)
            crc = self.pool.submit(zlib.crc32, mv)
        elif size:
            crc = zlib.crc32(mv)
        hdr = self.pos
        z64 = b""
        if size >= _ZIP64_LIMIT or hdr >= _ZIP64_LIMIT:
            body = (struct.pack("<QQ", size, size) if size >= _ZIP64_LIMIT else b"") + (
                struct.pack("<Q", hdr) if hdr >= _ZIP64_LIMIT else b"")
            z64 = struct.pack("<HH", 1, len(body)) + body
        start = hdr + 30 + len(full) + len(z64) + 4
        pad = -start % _ALIGN
        extra = z64 + b"FB" + struct.pack("<H", pad) + b"Z" * pad
        flags = 0x0808 if size else 0x0800  # data descriptor (non-empty records), UTF-8 names
        self._w(struct.pack("<IHHHHHIIIHH", 0x04034B50, 0, flags, 0, 0, 0, 0, 0, 0,
                            len(full), len(extra)))
        self._w(full)
        self._w(extra)
        if size:
            self._w(mv)
            if not isinstance(crc, int):
                crc = crc.result()
            if size >= _ZIP64_LIMIT or hdr >= _ZIP64_LIMIT:
                self._w(struct.pack("<IIQQ", 0x08074B50, crc, size, size))
            else:
                self._w(struct.pack("<IIII", 0x08074B50, crc, size, size))
        self.entries.append((full, crc or 0, size, hdr, flags))

    def finish(self):
        if self.pool is not None:
            self.pool.shutdown()
        cd_start = self.pos
        for full, crc, size, hdr, flags in self.entries:
            body = b""
            csize = usize = size
            off = hdr
            if size >= _ZIP64_LIMIT:
                body += struct.pack("<QQ", size, size)
                csize = usize = 0xFFFFFFFF
            if hdr >= _ZIP64_LIMIT:
                body += struct.pack("<Q", hdr)
                off = 0xFFFFFFFF
            extra = struct.pack("<HH", 1, len(body)) + body if body else b""
            self._w(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0, 0, flags, 0, 0, 0, crc,
                                csize, usize, len(full), len(extra), 0, 0, 0, 0, off))
            self._w(full)
            self._w(extra)
        n = len(self.entries)
        cd_size = self.pos - cd_start
        z64_pos = self.pos
        self._w(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 0x031E, 45, 0, 0, n, n, cd_size,
                            cd_start))
        self._w(struct.pack("<IIQI", 0x07064B50, 0, z64_pos, 1))
        self._w(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, min(n, 0xFFFF), min(n, 0xFFFF),
                            min(cd_size, 0xFFFFFFFF), min(cd_start, 0xFFFFFFFF), 0))


def _root_array(arr):
    """The last ndarray down ``arr``'s ``.base`` chain (through as_strided's DummyArray)."""
    root, obj = arr, arr
    while True:
        b = getattr(obj, "base", None)
        if b is None or b is obj:
            return root
        if isinstance(b, np.ndarray):
            root = b
        obj = b


def _contiguous_strides(shape):
    st, n = [], 1
    for s in reversed(shape):
        st.append(n)
        n *= max(s, 1)
    return tuple(reversed(st))


def _place(arr, root):
    """``(offset, strides)`` in elements of ``arr`` inside ``root``'s memory, or None."""
    item = arr.itemsize
    if not (root.flags.c_contiguous or root.flags.f_contiguous) or root.nbytes % item:
        return None
    if arr.size == 0:
        return 0, _contiguous_strides(arr.shape)
    delta = arr.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    if delta < 0 or delta % item:
        return None
    strides, last = [], delta
    for n, st, cs in zip(arr.shape, arr.strides, _contiguous_strides(arr.shape)):
        if n == 1:  # the stride of a size-1 dim never addresses memory
            strides.append(cs)
            continue
        if st < 0 or st % item:
            return None
        strides.append(st // item)
        last += (n - 1) * st
    if last + item > root.nbytes:
        return None
    return delta // item, tuple(strides)


def _flat_bytes(root):
    """``root``'s memory as a flat uint8 array (no copy)."""
    order = "F" if root.flags.f_contiguous and not root.flags.c_contiguous else "C"
    return root.reshape(-1, order=order).view(np.uint8)


class _StorageRef:
    __slots__ = ("pid",)

    def __init__(self, pid):
        self.pid = pid


class _StorageTable:
    """The storages of one ``save``: one per distinct memory block, so views stay shared."""

    def __init__(self):
        self.by_root = {}   # id(root) -> [key, root, dtype]
        self.order = []

    def describe(self, t):
        arr = t._data
        location = str(t.device)
        if not isinstance(arr, np.ndarray):  # another backend: copy to host memory
            arr = np.ascontiguousarray(arr.get())
        dt = _dtype.from_np(arr.dtype)
        root = _root_array(arr)
        plan = _place(arr, root)
        if plan is None:  # e.g. negative strides (torch has none): save a compact copy
            root = arr.copy(order="C")
            plan = (0, _contiguous_strides(arr.shape))
        entry = self.by_root.get(id(root))
        if entry is None:
            entry = [str(len(self.order)), root, dt]
            self.by_root[id(root)] = entry
            self.order.append(entry)
        elif entry[2] is not dt:
            raise RuntimeError("Cannot save multiple tensors or storages that view the same "
                               "data as different types")
        pid = ("storage", _T_STORAGE[dt], entry[0], location,
               root.nbytes // arr.itemsize)
        return _StorageRef(pid), plan[0], tuple(arr.shape), plan[1]


class _ParamData:
    """The plain tensor inside a saved Parameter (torch pickles ``param.data``)."""

    __slots__ = ("t",)

    def __init__(self, t):
        self.t = t


class _Pickler(pickle._Pickler):
    """Pure-Python pickler that writes torch's globals by name (so torch is never imported)."""

    def __init__(self, file, protocol, storages):
        super().__init__(file, protocol)
        self._storages = storages

    def persistent_id(self, obj):
        return obj.pid if type(obj) is _StorageRef else None

    def _global(self, obj, module, name):
        self.framer.commit_frame()
        x = self.memo.get(id(obj))
        if x is not None:
            self.write(self.get(x[0]))
            return
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
        self.memoize(obj)

    def save(self, obj, save_persistent_id=True):
        cls = type(obj)
        if cls is _TorchRef:
            return self._global(obj, obj.module, obj.name)
        if cls is _dtype.dtype:  # torch pickles dtypes as the global torch.<name>
            return self._global(obj, "torch", obj.name)
        if getattr(cls, "_torch_reduce", None) is not None:  # a quantized tensor (ops/quantized)
            return self.save_reduce(*obj._torch_reduce(self._storages), obj=obj)
        if isinstance(obj, Tensor) or cls is _ParamData:
            self.framer.commit_frame()
            x = self.memo.get(id(obj))
            if x is not None:
                self.write(self.get(x[0]))
                return
            if isinstance(obj, Parameter):  # torch: _rebuild_parameter(data, rg, hooks)
                return self.save_reduce(_T_REBUILD_PARAMETER,
                                        (_ParamData(obj), obj._requires_grad, OrderedDict()),
                                        obj=obj)
            t = obj.t if cls is _ParamData else obj
            ref, offset, size, stride = self._storages.describe(t)
            rg = False if cls is _ParamData else bool(t._requires_grad)
            return self.save_reduce(_T_REBUILD_TENSOR_V2,
                                    (ref, offset, size, stride, rg, OrderedDict()), obj=obj)
        if cls is Size:
            return self.save_reduce(_T_SIZE, (tuple(obj),), obj=obj)
        if cls is _device:
            return self.save_reduce(_T_DEVICE, (str(obj),), obj=obj)
        if isinstance(obj, np.generic) and obj.dtype.kind in "biuf" and obj.ndim == 0:
            # NumPy scalars (e.g. a scheduler's lr) as Python numbers: torch's weights-only
            # loader rejects numpy globals
            return super().save(obj.item(), save_persistent_id)
        return super().save(obj, save_persistent_id)


def _serialization_id():
    return f"{int.from_bytes(os.urandom(16), 'little'):040d}"[-40:]


def _write_archive(obj, fh, archive, protocol, byteorder_record):
    storages = _StorageTable()
    buf = io.BytesIO()
    _Pickler(buf, protocol, storages).dump(obj)
    zw = _ZipWriter(fh, archive)
    zw.record("data.pkl", buf.getbuffer())
    zw.record(".format_version", b"1")
    zw.record(".storage_alignment", str(_ALIGN).encode())
    if byteorder_record:
        zw.record("byteorder", sys.byteorder.encode())
    for key, root, _ in storages.order:
        zw.record(f"data/{key}", _flat_bytes(root))
    zw.record("version", b"3\n")
    zw.record(".data/serialization_id", _serialization_id().encode())
    zw.finish()


def _umask_mode():
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


# NOTE [ Save temp files ]: an atomic save writes ``.<name>.ember-tmp-<pid>-<random>`` next
# to the target and renames it over the target.  Every exception (KeyboardInterrupt too)
# removes it; a save killed outright (SIGKILL, power loss) cannot, so each save first removes
# the temp files of earlier saves to the same name whose pid is no longer alive.  Only names
# of exactly this form are touched, so other programs' files never are.
_TEMP_RE = r"\.{}\.ember-tmp-(\d+)-[0-9a-f]{{16}}"


def _make_temp(folder, base):
    while True:
        tmp = os.path.join(folder, f".{base}.ember-tmp-{os.getpid()}-{os.urandom(8).hex()}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), tmp
        except FileExistsError:  # 64 random bits collided: draw again
            continue


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):  # someone else's, or not a pid
        return pid > 0
    return True


def _remove_stale_temps(folder, base):
    """Delete temp files of crashed saves to ``folder/base`` (NOTE [ Save temp files ])."""
    pattern = re.compile(_TEMP_RE.format(re.escape(base)))
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        m = pattern.fullmatch(name)
        if m is None or _pid_alive(int(m.group(1))):
            continue
        try:
            os.unlink(os.path.join(folder, name))
        except OSError:  # gone already, or not ours to remove
            pass


def save(obj, f, pickle_module=None, pickle_protocol=2, _use_new_zipfile_serialization=True,
         _disable_byteorder_record=False) -> None:
    """Save ``obj`` in PyTorch's zip checkpoint format (``torch.save``).

    ``f`` is a path (written atomically: a temporary file in the same folder is flushed,
    fsynced and renamed over the target, so a crash never leaves a truncated checkpoint) or
    a writable binary file object.
    """
    if pickle_module is not None and pickle_module is not pickle:
        raise ValueError("ember.save pickles with the standard pickle module only")
    if not _use_new_zipfile_serialization:
        raise RuntimeError("ember.save writes only the zip format (the legacy torch format "
                           "is not supported)")
    if not isinstance(pickle_protocol, int) or not 2 <= pickle_protocol <= pickle.HIGHEST_PROTOCOL:
        raise ValueError(f"pickle_protocol must be an int in [2, {pickle.HIGHEST_PROTOCOL}], "
                         f"got {pickle_protocol!r}")
    byteorder = not _disable_byteorder_record
    if not isinstance(f, (str, os.PathLike)):
        if not hasattr(f, "write"):
            raise TypeError(f"f must be a path or a writable binary file object, got "
                            f"{type(f).__name__}")
        _write_archive(obj, f, "archive", pickle_protocol, byteorder)
        if hasattr(f, "flush"):
            f.flush()
        return
    path = os.fspath(f)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise RuntimeError(f"Parent directory {folder} does not exist.")
    if os.path.isdir(path):
        raise IsADirectoryError(f"[Errno 21] Is a directory: '{path}'")
    base = os.path.basename(path)
    archive = os.path.splitext(base)[0] or "archive"
    _remove_stale_temps(folder, base)
    fd, tmp = _make_temp(folder, base)
    try:
        with os.fdopen(fd, "wb") as fh:
            _write_archive(obj, fh, archive, pickle_protocol, byteorder)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            mode = _umask_mode()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable
        try:
            dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)


# ================================================================================================
# loading
# ================================================================================================
def _wo_message(message):
    """torch's "Weights only load failed" wrapping of an allow-list error."""
    if "was not an allowed global by default" in message:
        return ("Weights only load failed. This file can still be loaded, to do so you have two "
                "options, do those steps only if you trust the source of the checkpoint. "
                f"\n\t(1) {UNSAFE_MESSAGE}\n\t(2) Alternatively, to load with "
                "`weights_only=True` please check the recommended steps in the following error "
                "message.\n\tWeightsUnpickler error: " + message)
    return f"Weights only load failed. {UNSAFE_MESSAGE}\n\nWeightsUnpickler error: {message}"


# ================================================================================================
# the archive reader
# ================================================================================================
# NOTE [ Load budget ]: every byte a load materialises from the archive (data.pkl and each
# storage's numel x itemsize; only those bytes are read or inflated) is charged to a budget:
# ``load(max_bytes=...)``, else the environment variable EMBER_LOAD_MAX_BYTES, else 4x the
# file's size plus 64x the compressed size of its deflated records (torch writes only stored
# records).  Records may not overlap, so stored data can never exceed the file; the budget
# bounds what a deflated "zip bomb" can inflate to.
LOAD_MAX_BYTES_ENV = "EMBER_LOAD_MAX_BYTES"
_STORED_FACTOR = 4
_DEFLATED_FACTOR = 64
_CHUNK = 1 << 20


class _Budget:
    """Bytes a load may still materialise (NOTE [ Load budget ])."""

    def __init__(self, limit, how):
        self.limit, self.left, self.how = limit, limit, how

    def take(self, n, what):
        if n > self.left:
            raise RuntimeError(
                f"loading {what} needs {n} bytes but only {self.left} of the load budget of "
                f"{self.limit} bytes ({self.how}) are left; pass ember.load(..., "
                f"max_bytes=N) or set {LOAD_MAX_BYTES_ENV} if you trust this file")
        self.left -= n


def _budget(archive, file_size, max_bytes):
    if max_bytes is None:
        env = os.environ.get(LOAD_MAX_BYTES_ENV)
        if env is not None:
            try:
                max_bytes = int(env)
            except ValueError:
                raise ValueError(f"{LOAD_MAX_BYTES_ENV} must be an integer number of bytes, "
                                 f"got {env!r}") from None
            return _Budget(max_bytes, f"from {LOAD_MAX_BYTES_ENV}")
        deflated = sum(i.compress_size for i in archive.zf.infolist()
                       if i.compress_type == zipfile.ZIP_DEFLATED)
        limit = _STORED_FACTOR * file_size + _DEFLATED_FACTOR * deflated
        return _Budget(limit, f"the default: {_STORED_FACTOR}x the file's {file_size} bytes "
                              f"+ {_DEFLATED_FACTOR}x its {deflated} deflated bytes")
    if type(max_bytes) is not int:
        raise TypeError(f"max_bytes must be an int or None, got {type(max_bytes).__name__}")
    if max_bytes < 0:
        raise ValueError(f"max_bytes must be non-negative, got {max_bytes}")
    return _Budget(max_bytes, "max_bytes")


class _Archive:
    """A torch zip checkpoint opened for reading, with its record names validated."""

    def __init__(self, fh, mm=None):
        self.fh = fh
        self.mm = mm
        self.budget = _Budget(float("inf"), "unlimited")
        try:
            self.zf = zipfile.ZipFile(fh)
            infos = self.zf.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
                struct.error, NotImplementedError) as e:
            raise RuntimeError(
                "PytorchStreamReader failed reading zip archive: failed finding central "
                f"directory ({e}). The checkpoint is truncated or corrupted.") from None
        if not infos:
            raise RuntimeError("PytorchStreamReader failed reading zip archive: the archive "
                               "has no records")
        prefix = infos[0].filename.split("/", 1)[0]
        for info in infos:
            name = info.filename
            parts = name.split("/")
            if (name.startswith("/") or "\\" in name or "\x00" in name or ":" in parts[0]
                    or any(p in ("", ".", "..") for p in parts) or len(parts) < 2
                    or parts[0] != prefix):
                raise RuntimeError(f"invalid record name {name!r} in the checkpoint archive "
                                   "(absolute path, path traversal or a second archive root)")
        self.prefix = prefix
        self.names = {i.filename for i in infos}
        self._check_layout(infos)

    def _check_layout(self, infos):
        """Refuse compression methods torch cannot read and records sharing bytes."""
        spans = []
        for info in infos:
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise RuntimeError(
                    f"PytorchStreamReader failed reading record {info.filename}: unsupported "
                    f"compression method {info.compress_type} (only stored and deflated "
                    "records are read)")
            # the local header is at least 30 bytes plus the name
            spans.append((info.header_offset,
                          info.header_offset + 30 + len(info.orig_filename.encode()) +
                          info.compress_size, info.filename))
        spans.sort()
        for (_, end, a), (start, _, b) in zip(spans, spans[1:]):
            if start < end:
                raise RuntimeError(f"records {a} and {b} overlap in the checkpoint archive "
                                   "(a malformed or hostile zip file)")

    def has(self, name):
        return f"{self.prefix}/{name}" in self.names

    def read(self, name):
        full = f"{self.prefix}/{name}"
        if full not in self.names:
            raise RuntimeError(f"PytorchStreamReader failed locating file {name}: file not "
                               "found")
        info = self.zf.getinfo(full)
        self.budget.take(info.file_size, f"record {name}")
        try:
            if info.compress_type == zipfile.ZIP_STORED:
                return self.zf.read(full)
            buf = self._inflate(info, name, info.file_size)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error,
                NotImplementedError) as e:
            raise RuntimeError(f"PytorchStreamReader failed reading record {name}: {e}") \
                from None
        return bytes(buf)

    def _inflate(self, info, name, nbytes):
        """Inflate deflated record ``name`` into a fresh uint8 array of exactly ``nbytes``
        (its declared size), never producing more than that, and check its CRC."""
        if info.file_size != nbytes:
            raise RuntimeError(f"deflated record {name} declares {info.file_size} bytes but "
                               f"the pickle needs {nbytes}")
        start = self._data_offset(info, info.compress_size)
        out = np.empty(nbytes, np.uint8)
        view = memoryview(out)
        d = zlib.decompressobj(-zlib.MAX_WBITS)
        self.fh.seek(start)
        left_in, pos, crc = info.compress_size, 0, 0
        while True:
            chunk = d.unconsumed_tail
            if not chunk and left_in and not d.eof:
                chunk = self.fh.read(min(_CHUNK, left_in))
                if not chunk:
                    break
                left_in -= len(chunk)
            if not chunk or d.eof:
                break
            got = d.decompress(chunk, nbytes - pos + 1)  # one byte more shows an excess
            if pos + len(got) > nbytes:
                raise RuntimeError(f"deflated record {name} inflates to more than the "
                                   f"{nbytes} bytes it declares")
            view[pos:pos + len(got)] = got
            crc = zlib.crc32(got, crc)
            pos += len(got)
        if pos != nbytes or not d.eof:
            raise RuntimeError(f"deflated record {name} inflates to {pos} bytes, not the "
                               f"{nbytes} it declares (truncated or corrupted)")
        if crc != info.CRC:
            raise RuntimeError(f"record {name} is corrupted (CRC-32 mismatch)")
        return out

    def read_storage(self, name, nbytes):
        """A writable uint8 array with record ``name`` (at least ``nbytes`` long)."""
        full = f"{self.prefix}/{name}"
        if full not in self.names:
            raise RuntimeError(f"PytorchStreamReader failed locating file {name}: file not "
                               "found (the checkpoint is missing a storage record)")
        info = self.zf.getinfo(full)
        if info.file_size < nbytes:
            raise RuntimeError(f"storage record {name} holds {info.file_size} bytes but the "
                               f"pickle declares a storage of {nbytes} bytes")
        self.budget.take(nbytes, f"storage record {name}")
        if info.compress_type != zipfile.ZIP_STORED:
            if self.mm is not None:
                raise RuntimeError(f"mmap needs uncompressed storage records, but {name} is "
                                   "compressed")
            return self._inflate(info, name, nbytes)
        start = self._data_offset(info, info.file_size)
        if self.mm is not None:
            return np.frombuffer(self.mm, np.uint8, count=nbytes, offset=start)
        # read only the bytes the storage needs; the rest of the record only feeds the CRC
        buf = np.empty(nbytes, np.uint8)
        self.fh.seek(start)
        got = self.fh.readinto(memoryview(buf)) if nbytes else 0
        if got != nbytes:
            raise RuntimeError(f"storage record {name} is truncated ({got} of "
                               f"{info.file_size} bytes)")
        crc = zlib.crc32(buf)
        left = info.file_size - nbytes
        while left:
            chunk = self.fh.read(min(_CHUNK, left))
            if not chunk:
                raise RuntimeError(f"storage record {name} is truncated")
            crc = zlib.crc32(chunk, crc)
            left -= len(chunk)
        if crc != info.CRC:
            raise RuntimeError(f"storage record {name} is corrupted (CRC-32 mismatch)")
        return buf

    def _data_offset(self, info, size):
        self.fh.seek(info.header_offset)
        hdr = self.fh.read(30)
        if len(hdr) != 30 or hdr[:4] != b"PK\x03\x04":
            raise RuntimeError(f"record {info.filename} has a bad local header")
        nl, el = struct.unpack("<HH", hdr[26:30])
        start = info.header_offset + 30 + nl + el
        end = self.fh.seek(0, 2)
        if start + size > end:
            raise RuntimeError(f"record {info.filename} extends past the end of the file")
        return start


class _StorageLoader:
    """``persistent_load`` of one ``load``: record bytes per key, shared by every view."""

    def __init__(self, archive, byteorder, map_location):
        self.archive = archive
        self.swap = byteorder != sys.byteorder
        self.map_location = map_location
        self.loaded = {}

    def __call__(self, storage_type, key, location, numel):
        st = self.loaded.get(key)
        if st is not None:  # as torch: a key read once is reused whatever a later id says
            return st
        dt = storage_type.dtype
        item = dt.np.itemsize  # bfloat16 raises here without ml_dtypes
        raw = self.archive.read_storage(f"data/{key}", numel * item)[:numel * item]
        if self.swap and item > 1:
            raw = raw.view(f"u{item}").byteswap().view(np.uint8)
        st = _Storage(raw, dt, location)
        ml = self.map_location
        target = location
        if isinstance(ml, dict):
            target = ml.get(location, location)
        elif isinstance(ml, (str, bytes)):
            target = ml.decode() if isinstance(ml, bytes) else ml
        elif isinstance(ml, _device) or type(ml).__name__ == "device":
            target = str(ml)
        elif callable(ml):
            res = ml(st, location)
            if res is not None:
                if type(res) is not _Storage:
                    err = TypeError("map_location callable must return a storage or None "
                                    f"(the one it was given), got {type(res).__name__}")
                    err._ember_user_error = True
                    raise err
                st, target = res, "cpu"  # the storage as read: in host memory
        # the tensors rebuilt on this storage are made on st.location's device (_utils)
        st.location = _restore_location(target, dt)
        self.loaded[key] = st
        return st


def _restore_location(location: str, dt) -> str:
    """The device a storage tagged ``location`` loads to, with PyTorch's errors when no
    backend serves it ('cpu', or a device type registered in ``_backend``)."""
    try:
        dev = _device(location)
    except RuntimeError:
        dev = None
    if dev is not None and dev.type == "cpu":
        return "cpu"
    if dev is not None and dev.type in _backend._XP_BY_TYPE:
        return str(dev)
    if dev is not None and dev.type in ("cuda", "mps", "xpu", "hpu", "mtia"):
        name = dev.type.upper()
        raise RuntimeError(f"Attempting to deserialize object on a {name} device but "
                           f"torch.{dev.type}.is_available() is False. If you are running on a "
                           "CPU-only machine, please use torch.load with "
                           "map_location=torch.device('cpu') to map your storages to the CPU.")
    raise RuntimeError(f"don't know how to restore data location of torch.storage."
                       f"TypedStorage (tagged with {location})")


def _full_unpickler_class(pickle_module):
    base = pickle_module.Unpickler

    class _FullUnpickler(base):
        """``weights_only=False``: any global, but torch's map to ember's rebuilders."""

        def __init__(self, file, persistent_load, **kwargs):
            super().__init__(file, **kwargs)
            self._pl = persistent_load

        def persistent_load(self, pid):
            try:
                parts = _check_pid(pid)
            except pickle.UnpicklingError as e:
                raise RuntimeError(str(e)) from None
            return self._pl(*parts)

        def find_class(self, module, name):
            module, name = _py3_name(module, name)
            full = f"{module}.{name}"
            obj = _ALLOWED.get(full)
            if obj is not None and (module.startswith("torch") or module == "collections"):
                return obj
            if full == "torch.ScriptObject":  # quantized RNN weights (ao/nn/quantized/dynamic)
                from .ao.nn.quantized.dynamic import _ScriptObject
                return _ScriptObject
            if module == "torch" or module.startswith("torch."):
                raise pickle.UnpicklingError(f"{full} is a PyTorch object with no ember "
                                             "equivalent")
            return super().find_class(module, name)

    return _FullUnpickler


# ================================================================================================
# load
# ================================================================================================
def _not_zip_error(head, f):
    what = f"'{os.fspath(f)}'" if isinstance(f, (str, os.PathLike)) else "the file"
    if not head:
        return RuntimeError(f"cannot load {what}: it is empty")
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return RuntimeError(f"cannot load {what}: it is in PyTorch's legacy (pre-1.6, non-zip) "
                            "format, which ember does not read; re-save it with a recent "
                            "torch.save")
    return RuntimeError(f"cannot load {what}: it is not a checkpoint (expected a zip archive "
                        f"written by torch.save or ember.save, but it starts with {head[:8]!r})")


def _check_map_location(map_location):
    if map_location is None or isinstance(map_location, (str, bytes, _device)):
        if isinstance(map_location, (str, bytes)):
            _device(map_location.decode() if isinstance(map_location, bytes) else map_location)
        return
    if isinstance(map_location, dict) or callable(map_location):
        return
    if type(map_location).__name__ == "device":  # a torch.device: its str names a device
        _device(str(map_location))
        return
    raise TypeError(f"map_location must be None, a str, a device, a dict or a callable, got "
                    f"{type(map_location).__name__}")


def _weights_only_default(weights_only, pickle_module) -> bool:
    """PyTorch's choice: True unless a pickle module is given; the environment can force it."""
    not_set = weights_only is None
    if not_set:
        weights_only = pickle_module is None
    yes = ("1", "y", "yes", "true")
    force = os.getenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "0").lower() in yes
    force_no = os.getenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "0").lower() in yes
    if force and force_no:
        raise RuntimeError("Only one of `TORCH_FORCE_WEIGHTS_ONLY_LOAD` or "
                           "`TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD` should be set, but both were set.")
    if force:
        return True
    if force_no and not_set:
        warnings.warn("Environment variable TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD detected, since "
                      "the`weights_only` argument was not explicitly passed to `torch.load`, "
                      "forcing weights_only=False.", UserWarning, stacklevel=3)
        return False
    return weights_only


def load(f, map_location=None, pickle_module=None, *, weights_only=None, mmap=False,
         max_bytes=None, **pickle_load_args):
    """Load an object saved by ``torch.save`` or ``ember.save`` (``torch.load``).

    ``weights_only=True`` only rebuilds tensors, containers, numbers and strings (plus what
    ``add_safe_globals`` allows); ``weights_only=False`` unpickles anything and must only be
    used on trusted files.  ``mmap=True`` maps storages from the file lazily (copy-on-write).
    ``map_location`` (a device, a str, a dict of locations or a callable) picks where each
    storage goes, as PyTorch's; cpu and registered backends' devices are the ones there are.
    ``max_bytes`` (ember only) caps the bytes read or inflated from the archive; by default
    ``EMBER_LOAD_MAX_BYTES`` or 4x the file size (NOTE [ Load budget ]).
    ``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` / ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` act as in PyTorch.
    """
    weights_only = _weights_only_default(weights_only, pickle_module)
    if weights_only:
        if pickle_module is not None:
            raise RuntimeError("Can not safely load weights when explicit pickle_module is "
                               "specified")
        if pickle_load_args:
            warnings.warn("pickle_load_args only works if `weights_only=False`.", stacklevel=2)
    else:
        # The issue asks for PyTorch's trust warning here; torch 2.13 stays silent when the
        # caller passes weights_only=False explicitly (it warned in 2.4-2.5), so this is the
        # one place ember is louder than torch: a full unpickle can run any code.
        warnings.warn(FULL_PICKLE_WARNING, UserWarning, stacklevel=2)
        if pickle_module is None:
            pickle_module = pickle
    _check_map_location(map_location)
    encoding = pickle_load_args.setdefault("encoding", "utf-8")
    is_path = isinstance(f, (str, os.PathLike))
    if mmap and not is_path:
        raise ValueError("f must be a file path in order to use the mmap argument")
    fh = open(f, "rb") if is_path else f
    mm = None
    try:
        if not is_path:
            if not hasattr(fh, "read"):
                raise TypeError(f"f must be a path or a readable binary file object, got "
                                f"{type(f).__name__}")
            if not (hasattr(fh, "seek") and (not hasattr(fh, "seekable") or fh.seekable())):
                fh = io.BytesIO(fh.read())
            if not hasattr(fh, "readinto"):
                fh = io.BytesIO(fh.read())
        start = fh.tell()
        head = fh.read(8)
        fh.seek(start)
        if head[:4] != b"PK\x03\x04":
            if mmap:
                raise RuntimeError(
                    "mmap can only be used with files saved with `torch.save(" +
                    (f"{f}, " if isinstance(f, str) else "") +
                    "_use_new_zipfile_serialization=True), please torch.save your checkpoint "
                    "with this option in order to use mmap.")
            raise _not_zip_error(head, f)
        if mmap:
            mm = _mmap.mmap(fh.fileno(), 0, access=_mmap.ACCESS_COPY)
        archive = _Archive(fh, mm)
        archive.budget = _budget(archive, fh.seek(0, 2) - start, max_bytes)
        if archive.has("constants.pkl") or archive.has("ember_jit.pkl"):
            # a jit archive: handed to jit.load as torch.load hands it to torch.jit.load
            warnings.warn("'torch.load' received a zip file that looks like a TorchScript "
                          "archive dispatching to 'torch.jit.load' (call 'torch.jit.load' "
                          "directly to silence this warning)", UserWarning, stacklevel=2)
            if weights_only:
                raise RuntimeError("Cannot use ``weights_only=True`` with TorchScript archives "
                                   "passed to ``torch.load``. " + UNSAFE_MESSAGE)
            from .jit import load as jit_load
            fh.seek(start)
            return jit_load(fh, map_location=map_location)
        byteorder = "little"
        if archive.has("byteorder"):
            byteorder = archive.read("byteorder").decode("ascii", "replace")
            if byteorder not in ("little", "big"):
                raise ValueError("Unknown endianness type: " + byteorder)
        loader = _StorageLoader(archive, byteorder, map_location)
        data = io.BytesIO(archive.read("data.pkl"))
        if weights_only:
            try:
                return _WeightsOnlyUnpickler(data, loader, encoding).load()
            except pickle.UnpicklingError as e:
                raise pickle.UnpicklingError(_wo_message(str(e))) from None
        up = _full_unpickler_class(pickle_module)(data, loader, **pickle_load_args)
        return up.load()
    finally:
        if is_path:
            fh.close()
