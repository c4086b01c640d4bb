"""The ``weights_only=True`` unpickler: an allow-list and its own opcode loop.

Designed after ``torch/_weights_only_unpickler.py``.  ``Unpickler.load`` interprets the
pickle opcode by opcode (the C ``load`` is never used), so every import (GLOBAL,
STACK_GLOBAL), call (REDUCE), instantiation (NEWOBJ), state (BUILD) and persistent id goes
through a check: globals must be in the default allow-list (``_ALLOWED``: containers,
torch's tensor/parameter rebuilders from ``ember._utils``, dtypes, storage types) or added
by the user (``add_safe_globals``, stored here in ``_safe``); anything else raises
``pickle.UnpicklingError`` before it can import or call anything.  ``ember.serialization``
re-exports the public functions and runs this unpickler inside ``ember.load``.

NOTE [ Bounded work per file ]: a small hostile pickle must not keep a loader busy or make it
allocate far more than the file holds.  Each load gets a work allowance of
``_WORK_PER_BYTE`` units per pickle byte (plus ``_WORK_MIN``): every opcode costs one unit
and every call that copies a container or a buffer (``Size(tuple)``, ``set(list)``,
``bytearray(bytes)``, ``OrderedDict(pairs)``, a BUILD state) costs its length, so repeating
a copy of a big object is refused.  Dict and set keys other than str/bytes (whose hashes are
salted) may not share a hash more than ``_MAX_SAME_HASH`` times in one container, which
refuses the colliding-keys attack (100k int keys of one hash take minutes to insert).
Containers may nest at most ``_MAX_DEPTH`` deep (ember's and torch's picklers recurse, so
real checkpoints stay far below it).  MARK lives on a separate stack, as in torch's
unpickler, so it can never be memoized or stored into a container.
"""
from __future__ import annotations

import _compat_pickle
import codecs
import pickle
import re
import struct
from collections import Counter, OrderedDict

from . import _dtype
from ._backend import device as _device
from ._tensor import Size, Tensor, _make
from ._utils import (_REBUILDERS, _STORAGE_TYPES, _StorageType, _rebuild_parameter,
                     _rebuild_parameter_with_state, _rebuild_tensor, _rebuild_tensor_v2,
                     _rebuild_tensor_v3, _set_public_state, _rebuild_qtensor)
from .nn.parameter import Parameter

__all__ = ["Unpickler", "add_safe_globals", "get_safe_globals", "clear_safe_globals",
           "safe_globals"]


# ================================================================================================
# allow-list
# ================================================================================================
def _rebuild_from_type_v2(func, new_type, args, state):
    """``torch._tensor._rebuild_from_type_v2`` for ember Tensor/Parameter (or an allow-listed
    Tensor subclass)."""
    if not any(func is r for r in _REBUILDERS):
        raise pickle.UnpicklingError(f"_rebuild_from_type_v2 got an unexpected rebuild "
                                     f"function {func!r}")
    if not isinstance(args, tuple):
        raise pickle.UnpicklingError("_rebuild_from_type_v2 arguments must be a tuple")
    if not (isinstance(new_type, type) and issubclass(new_type, Tensor)):
        raise pickle.UnpicklingError(f"_rebuild_from_type_v2 got a non-tensor type {new_type!r}")
    if new_type is not Tensor and new_type is not Parameter and \
            new_type not in _user_globals().values():
        raise pickle.UnpicklingError(f"tensor subclass {new_type!r} is not allow-listed; use "
                                     "ember.serialization.add_safe_globals")
    ret = func(*args)
    if type(ret) is not new_type:
        if new_type is Parameter:
            ret = Parameter(ret, ret.requires_grad)
        else:
            ret = _make(ret._data, ret._requires_grad, cls=new_type)
    return _set_public_state(ret, state)


_BLOCKED_MODULES = ("sys", "os", "posix", "nt", "subprocess", "builtins.eval", "builtins.exec")
_blocked_prefixes = tuple(m + "." for m in _BLOCKED_MODULES)


def _latin1_encode(obj, encoding="utf-8", errors="strict"):
    """``_codecs.encode`` as protocol-2 pickles use it for bytes (latin-1 only)."""
    if type(obj) is not str or encoding not in ("latin1", "latin-1", "iso-8859-1") or \
            errors != "strict":
        raise pickle.UnpicklingError(f"_codecs.encode is only allowed to encode a str to "
                                     f"latin1, got {type(obj).__name__} and {encoding!r}")
    return codecs.encode(obj, encoding)


def _safe_bytearray(*args):
    if len(args) > 1 or (args and type(args[0]) not in (bytes, bytearray)):
        raise pickle.UnpicklingError("bytearray may only be rebuilt from bytes")
    return bytearray(*args)


_ALLOWED = {
    "collections.OrderedDict": OrderedDict,
    "collections.Counter": Counter,
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
    "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter_with_state,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
    "torch.nn.parameter.Parameter": Parameter,
    "torch.Tensor": Tensor,
    "torch.Size": Size,
    "torch.device": _device,
    "_codecs.encode": _latin1_encode,
    "builtins.bytearray": _safe_bytearray,
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "builtins.complex": complex,
}
_ALLOWED.update({f"torch.{d.name}": d for d in _dtype.ALL + _dtype.QUANTIZED})
# quantized tensors (issue 19): the rebuilder, and the schemes as names it resolves
_ALLOWED.update({"torch._utils._rebuild_qtensor": _rebuild_qtensor,
                 "torch.per_tensor_affine": "per_tensor_affine",
                 "torch.per_channel_affine": "per_channel_affine"})
_ALLOWED.update({f"torch.{n}": st for n, st in _STORAGE_TYPES.items()})
_ALLOWED.update({f"torch.storage.{n}": _STORAGE_TYPES[n] for n in ("UntypedStorage",)})
# the defaults that may be called (REDUCE) or instantiated (NEWOBJ); torch.Tensor and the
# dtypes/storage types may only be named
_CALLABLE = {id(f): f for f in (OrderedDict, Counter, _rebuild_tensor, _rebuild_tensor_v2,
                                _rebuild_tensor_v3, _rebuild_parameter,
                                _rebuild_parameter_with_state, _rebuild_from_type_v2, Parameter,
                                Size, _device, _latin1_encode, _safe_bytearray, set, frozenset,
                                complex, _rebuild_qtensor)}
_NEW_ALLOWED = {id(c): c for c in (OrderedDict, Counter, Size, set, frozenset)}
# Python 2 names, which protocol-2 pickles written by Python 3 still use (torch maps them with
# the same ``_compat_pickle`` tables), plus torch's own renamed module
_PY2_MODULES = dict(_compat_pickle.IMPORT_MAPPING, **{"torch.tensor": "torch._tensor"})
_PY2_NAMES = _compat_pickle.NAME_MAPPING


def _py3_name(module, name):
    if (module, name) in _PY2_NAMES:
        return _PY2_NAMES[(module, name)]
    return _PY2_MODULES.get(module, module), name


_safe = set()


def add_safe_globals(safe_globals) -> None:
    """Allow classes/functions in ``weights_only`` loading (``torch.serialization``'s).

    Entries are objects (named ``module.qualname``) or ``(object, "full.name")`` pairs.
    Names from ``os``, ``sys``, ``posix``, ``nt`` and ``subprocess`` stay blocked.
    """
    global _safe
    items = list(safe_globals)
    for f in items:
        if isinstance(f, tuple):
            if len(f) != 2:
                raise ValueError("Expected tuple of length 2 (global, str of callable full "
                                 f"path), but got tuple of length: {len(f)}")
            if type(f[1]) is not str:
                raise TypeError("Expected second item in tuple to be str of callable full "
                                f"path, but got: {type(f[1])}")
    _safe = _safe | set(items)


def get_safe_globals() -> list:
    """The user's allow-list additions."""
    return list(_safe)


def clear_safe_globals() -> None:
    """Forget every ``add_safe_globals`` addition."""
    global _safe
    _safe = set()


class safe_globals:
    """Context manager that allow-lists ``safe_globals`` inside its block only."""

    def __init__(self, safe_globals):
        self.safe_globals = list(safe_globals)

    def __enter__(self):
        add_safe_globals(self.safe_globals)

    def __exit__(self, *exc):
        global _safe
        _safe = _safe - set(self.safe_globals)


def _user_globals() -> dict:
    out = {}
    for f in _safe:
        if isinstance(f, tuple):
            out[f[1]] = f[0]
        else:
            out[f"{getattr(f, '__module__', '')}.{getattr(f, '__qualname__', '')}"] = f
    return out


def _is_blocked(full):
    return full in _BLOCKED_MODULES or full.startswith(_blocked_prefixes)


def _lookup_global(module, name):
    if type(module) is not str or type(name) is not str:
        raise pickle.UnpicklingError("GLOBAL module and name must be strings")
    module, name = _py3_name(module, name)
    full = f"{module}.{name}"
    if _is_blocked(full):
        raise pickle.UnpicklingError(f"Trying to load unsupported GLOBAL {full} whose module "
                                     f"{module} is blocked.")
    obj = _ALLOWED.get(full)
    if obj is not None:
        return obj
    user = _user_globals()
    if full in user:
        return user[full]
    if re.fullmatch(r"torch\.(complex\w*|uint(16|32|64)|float8\w*|quint\w*|qint\w*|"
                    r"Complex\w*Storage|\w+Storage)", full):
        raise pickle.UnpicklingError(f"{full} has no ember equivalent (ember supports "
                                     "bool, uint8, int8/16/32/64, float16/32/64, bfloat16 and "
                                     "complex64/128)")
    raise pickle.UnpicklingError(
        f"Unsupported global: GLOBAL {full} was not an allowed global by default. Please use "
        f"`ember.serialization.add_safe_globals([{full}])` or the "
        f"`ember.serialization.safe_globals([{full}])` context manager to allowlist this "
        "global if you trust this class/function.")


_KEY_RE = re.compile(r"[A-Za-z0-9_\-]+")


def _check_pid(pid):
    """Validate ``('storage', storage_type, key, location, numel)``; return its parts."""
    if type(pid) is not tuple or len(pid) != 5:
        raise pickle.UnpicklingError(
            f"persistent_load id must be a tuple ('storage', storage_type, key, location, "
            f"numel), but got {type(pid).__name__} {_short(pid)}")
    tag, st, key, location, numel = pid
    if isinstance(tag, bytes):
        tag = tag.decode("ascii", "replace")
    if tag != "storage":
        raise pickle.UnpicklingError(f"Only persistent_load of storage is allowed, but got "
                                     f"{_short(tag)}")
    if type(st) is not _StorageType:
        raise pickle.UnpicklingError(f"persistent id storage type must be a torch storage "
                                     f"class, got {_short(st)}")
    if isinstance(key, bytes):
        key = key.decode("ascii", "replace")
    if type(key) is not str or not _KEY_RE.fullmatch(key):
        raise pickle.UnpicklingError(f"invalid storage key {_short(key)} in persistent id")
    if isinstance(location, bytes):
        location = location.decode("ascii", "replace")
    if type(location) is not str:
        raise pickle.UnpicklingError(f"invalid storage location {_short(location)}")
    if type(numel) is not int or numel < 0:
        raise pickle.UnpicklingError(f"invalid storage size {_short(numel)} in persistent id")
    return st, key, location, numel


def _short(x):
    r = repr(x)
    return r if len(r) <= 80 else r[:77] + "..."


# ================================================================================================
# the opcode loop
# ================================================================================================
_OP = {name: op[0] for name, op in vars(pickle).items()
       if name.isupper() and isinstance(op, bytes) and len(op) == 1}
# each opcode as a module constant: the dispatch below compares against them
_ADDITEMS = _OP["ADDITEMS"]
_APPEND = _OP["APPEND"]
_APPENDS = _OP["APPENDS"]
_BINBYTES = _OP["BINBYTES"]
_BINBYTES8 = _OP["BINBYTES8"]
_BINFLOAT = _OP["BINFLOAT"]
_BINGET = _OP["BINGET"]
_BININT = _OP["BININT"]
_BININT1 = _OP["BININT1"]
_BININT2 = _OP["BININT2"]
_BINPERSID = _OP["BINPERSID"]
_BINPUT = _OP["BINPUT"]
_BINSTRING = _OP["BINSTRING"]
_BINUNICODE = _OP["BINUNICODE"]
_BINUNICODE8 = _OP["BINUNICODE8"]
_BUILD = _OP["BUILD"]
_BYTEARRAY8 = _OP["BYTEARRAY8"]
_DICT = _OP["DICT"]
_DUP = _OP["DUP"]
_EMPTY_DICT = _OP["EMPTY_DICT"]
_EMPTY_LIST = _OP["EMPTY_LIST"]
_EMPTY_SET = _OP["EMPTY_SET"]
_EMPTY_TUPLE = _OP["EMPTY_TUPLE"]
_FRAME = _OP["FRAME"]
_FROZENSET = _OP["FROZENSET"]
_GLOBAL = _OP["GLOBAL"]
_LIST = _OP["LIST"]
_LONG1 = _OP["LONG1"]
_LONG4 = _OP["LONG4"]
_LONG_BINGET = _OP["LONG_BINGET"]
_LONG_BINPUT = _OP["LONG_BINPUT"]
_MARK = _OP["MARK"]
_MEMOIZE = _OP["MEMOIZE"]
_NEWFALSE = _OP["NEWFALSE"]
_NEWOBJ = _OP["NEWOBJ"]
_NEWTRUE = _OP["NEWTRUE"]
_NONE = _OP["NONE"]
_POP = _OP["POP"]
_POP_MARK = _OP["POP_MARK"]
_PROTO = _OP["PROTO"]
_REDUCE = _OP["REDUCE"]
_SETITEM = _OP["SETITEM"]
_SETITEMS = _OP["SETITEMS"]
_SHORT_BINBYTES = _OP["SHORT_BINBYTES"]
_SHORT_BINSTRING = _OP["SHORT_BINSTRING"]
_SHORT_BINUNICODE = _OP["SHORT_BINUNICODE"]
_STACK_GLOBAL = _OP["STACK_GLOBAL"]
_STOP = _OP["STOP"]
_TUPLE = _OP["TUPLE"]
_TUPLE1 = _OP["TUPLE1"]
_TUPLE2 = _OP["TUPLE2"]
_TUPLE3 = _OP["TUPLE3"]
_WORK_PER_BYTE = 64
_WORK_MIN = 1 << 20
_MAX_SAME_HASH = 64
_MAX_DEPTH = 1000
_SALTED = (str, bytes)  # their hashes are randomised per process: no chosen collisions
_CONTAINERS = (list, tuple, dict, OrderedDict, Counter, set, frozenset)
_CONTAINER_TYPES = frozenset(_CONTAINERS)


class Unpickler(pickle.Unpickler):
    """An allow-list unpickler: its own opcode loop (the C ``load`` is never used), so
    imports (GLOBAL/STACK_GLOBAL), calls (REDUCE), instantiation (NEWOBJ), state (BUILD) and
    persistent ids are all checked; every other opcode that can import or call (INST, OBJ,
    EXT*, NEWOBJ_EX, PERSID, buffers) is rejected."""

    def __init__(self, file, persistent_load, encoding="utf-8"):
        super().__init__(file)
        self._file = file
        self._encoding = encoding
        self._persistent_load = persistent_load

    def find_class(self, module, name):
        return _lookup_global(module, name)

    def _read(self, n):
        data = self._file.read(n)
        if len(data) != n:
            raise pickle.UnpicklingError("pickle data was truncated")
        return data

    def _readline(self):
        line = self._file.readline(4096)
        if not line.endswith(b"\n"):
            raise pickle.UnpicklingError("pickle data was truncated (GLOBAL line)")
        return line[:-1].decode("utf-8")

    def _pop_mark(self):
        """The items pushed since the last MARK; the stack below it becomes current."""
        if not self._metastack:
            raise pickle.UnpicklingError("could not find MARK")
        items = self._stack
        self._stack = self._metastack.pop()
        return items

    def _spend(self, units):
        self._work += units
        if self._work > self._work_cap:
            raise pickle.UnpicklingError(
                f"the pickle needs more than {self._work_cap} units of work (opcodes plus "
                f"copied items) for its {self._size} bytes, the limit of {_WORK_PER_BYTE} per "
                "byte; the file is refused as hostile")

    def _keys(self, container, keys):
        """Count hashes of the non-str keys going into ``container`` (collision attacks)."""
        seen = None
        for k in keys:
            if type(k) in _SALTED:
                continue
            if seen is None:
                seen = self._hashes.setdefault(id(container), (container, Counter()))[1]
            h = hash(k)
            seen[h] += 1
            if seen[h] > _MAX_SAME_HASH:
                raise pickle.UnpicklingError(
                    f"more than {_MAX_SAME_HASH} keys of one dict or set share the hash {h} "
                    "(a hash-collision attack); the file is refused")

    def _nest(self, parent, kids):
        """Track nesting as containers go into containers, to refuse a deep structure as it
        is built (``_check_depth`` at the end is the exact check; this one is early)."""
        height, depth = self._height, self._depth
        hp = height.get(id(parent))
        h0 = hmax = hp[1] if hp else 1
        dp = depth.get(id(parent))
        d = dp[1] + 1 if dp else 1
        for c in kids:
            if type(c) in _CONTAINER_TYPES:
                hc = height.get(id(c))
                if hc is not None and hc[1] + 1 > hmax:
                    hmax = hc[1] + 1
                elif hmax < 2:
                    hmax = 2
                dc = depth.get(id(c))
                if dc is None or dc[1] < d:
                    depth[id(c)] = (c, d)  # the object is kept so its id is not reused
        if hmax > h0:
            height[id(parent)] = (parent, hmax)
        if d - 1 + hmax > _MAX_DEPTH:
            raise pickle.UnpicklingError(
                f"containers nested more than {_MAX_DEPTH} deep; the file is refused")

    def load(self):
        self._height = {}
        self._depth = {}
        self._stack = []
        self._metastack = []
        self._memo = {}
        self._hashes = {}
        self._work = 0
        try:
            self._size = len(self._file.getbuffer())
        except AttributeError:
            self._size = 0
        self._work_cap = _WORK_PER_BYTE * self._size + _WORK_MIN
        try:
            out = self._load()
            _check_depth(out)
            return out
        except pickle.UnpicklingError:
            raise
        except Exception as e:
            if getattr(e, "_ember_user_error", False):
                raise
            if not isinstance(e, (IndexError, KeyError, struct.error, UnicodeDecodeError,
                                  TypeError, ValueError, AttributeError, MemoryError,
                                  OverflowError, RecursionError)):
                raise
            raise pickle.UnpicklingError(f"corrupt or unsupported pickle data: "
                                         f"{type(e).__name__}: {e}") from None

    def _load(self):  # noqa: C901 - one flat opcode switch, like pickle's own
        read, stack, memo = self._read, self._stack, self._memo
        read1 = self._file.read
        push = stack.append
        spend = self._spend
        while True:
            b = read1(1)
            if not b:
                raise pickle.UnpicklingError("pickle data was truncated")
            op = b[0]
            self._work += 1
            if self._work > self._work_cap:
                spend(0)
            if op == _BINPUT:
                memo[read(1)[0]] = stack[-1]
            elif op == _BINGET:
                push(memo[read(1)[0]])
            elif op == _MARK:
                self._metastack.append(stack)
                stack = self._stack = []
                push = stack.append
            elif op == _BINUNICODE:
                push(str(read(struct.unpack("<I", read(4))[0]), "utf-8", "surrogatepass"))
            elif op == _SHORT_BINUNICODE:
                push(str(read(read(1)[0]), "utf-8", "surrogatepass"))
            elif op == _BININT1:
                push(read(1)[0])
            elif op == _BININT2:
                push(struct.unpack("<H", read(2))[0])
            elif op == _BININT:
                push(struct.unpack("<i", read(4))[0])
            elif op == _TUPLE:
                items = self._pop_mark()
                stack = self._stack
                push = stack.append
                t = tuple(items)
                self._nest(t, t)
                push(t)
            elif op == _TUPLE1:
                t = stack[-1] = (stack[-1],)
                self._nest(t, t)
            elif op == _TUPLE2:
                t = (stack[-2], stack[-1])
                stack[-2:] = [t]
                self._nest(t, t)
            elif op == _TUPLE3:
                t = (stack[-3], stack[-2], stack[-1])
                stack[-3:] = [t]
                self._nest(t, t)
            elif op == _EMPTY_TUPLE:
                push(())
            elif op == _NEWFALSE:
                push(False)
            elif op == _NEWTRUE:
                push(True)
            elif op == _NONE:
                push(None)
            elif op == _BINPERSID:
                push(self._persistent_load(*_check_pid(stack.pop())))
            elif op == _GLOBAL:
                module = self._readline()
                name = self._readline()
                push(self.find_class(module, name))
            elif op == _STACK_GLOBAL:
                name = stack.pop()
                module = stack.pop()
                push(self.find_class(module, name))
            elif op == _REDUCE:
                args = stack.pop()
                func = stack[-1]
                if _CALLABLE.get(id(func)) is not func and \
                        not any(func is g for g in _user_globals().values()):
                    raise pickle.UnpicklingError(
                        f"Trying to call reduce for unrecognized function {_short(func)}")
                if type(args) is not tuple:
                    raise pickle.UnpicklingError("REDUCE arguments must be a tuple, got "
                                                 f"{type(args).__name__}")
                self._charge_call(func, args)
                stack[-1] = func(*args)
            elif op == _NEWOBJ:
                args = stack.pop()
                cls = stack.pop()
                if type(args) is not tuple:
                    raise pickle.UnpicklingError("NEWOBJ arguments must be a tuple")
                self._charge_call(cls, args)
                if cls is Parameter:
                    push(Parameter(*args))
                elif _NEW_ALLOWED.get(id(cls)) is cls or (
                        isinstance(cls, type) and
                        any(cls is g for g in _user_globals().values())):
                    push(cls.__new__(cls, *args))
                else:
                    raise pickle.UnpicklingError(
                        "Can only create new object for nn.Parameter or classes allowlisted "
                        f"via `add_safe_globals` but got {_short(cls)}")
            elif op == _BUILD:
                state = stack.pop()
                if hasattr(state, "__len__"):
                    spend(len(state))
                self._build(stack[-1], state)
            elif op == _EMPTY_DICT:
                push({})
            elif op == _EMPTY_LIST:
                push([])
            elif op == _EMPTY_SET:
                push(set())
            elif op == _APPEND:
                item = stack.pop()
                if type(stack[-1]) is not list:
                    raise pickle.UnpicklingError(f"Can only append to lists, but got "
                                                 f"{type(stack[-1]).__name__}")
                stack[-1].append(item)
                self._nest(stack[-1], (item,))
            elif op == _APPENDS:
                items = self._pop_mark()
                stack = self._stack
                push = stack.append
                if type(stack[-1]) is not list:
                    raise pickle.UnpicklingError(f"Can only extend lists, but got "
                                                 f"{type(stack[-1]).__name__}")
                stack[-1].extend(items)
                self._nest(stack[-1], items)
            elif op == _SETITEM:
                v = stack.pop()
                k = stack.pop()
                d = self._check_dict(stack[-1], "SETITEM")
                self._keys(d, (k,))
                d[k] = v
                self._nest(d, (k, v))
            elif op == _SETITEMS:
                items = self._pop_mark()
                stack = self._stack
                push = stack.append
                d = self._check_dict(stack[-1], "SETITEMS")
                if len(items) % 2:
                    raise pickle.UnpicklingError("SETITEMS needs key/value pairs")
                self._keys(d, items[::2])
                for i in range(0, len(items), 2):
                    d[items[i]] = items[i + 1]
                self._nest(d, items)
            elif op == _ADDITEMS:
                items = self._pop_mark()
                stack = self._stack
                push = stack.append
                if type(stack[-1]) is not set:
                    raise pickle.UnpicklingError("Can only add items to sets")
                self._keys(stack[-1], items)
                stack[-1].update(items)
                self._nest(stack[-1], items)
            elif op == _FROZENSET:
                items = self._pop_mark()
                stack = self._stack
                push = stack.append
                self._keys(items, items)
                fs = frozenset(items)
                self._nest(fs, items)
                push(fs)
            elif op == _LIST:
                items = self._pop_mark()
                stack = self._stack
                push = stack.append
                self._nest(items, items)
                push(items)
            elif op == _DICT:
                items = self._pop_mark()
                stack = self._stack
                push = stack.append
                self._keys(items, items[::2])
                d = {items[i]: items[i + 1] for i in range(0, len(items) - 1, 2)}
                self._nest(d, items)
                push(d)
            elif op == _BINFLOAT:
                push(struct.unpack(">d", read(8))[0])
            elif op == _LONG1:
                push(int.from_bytes(read(read(1)[0]), "little", signed=True))
            elif op == _LONG4:
                n = struct.unpack("<i", read(4))[0]
                if n < 0:
                    raise pickle.UnpicklingError("LONG pickle has negative byte count")
                push(int.from_bytes(read(n), "little", signed=True))
            elif op in (_SHORT_BINSTRING, _BINSTRING):
                n = read(1)[0] if op == _SHORT_BINSTRING else struct.unpack("<i", read(4))[0]
                if n < 0:
                    raise pickle.UnpicklingError("BINSTRING pickle has negative byte count")
                data = read(n)
                push(data if self._encoding == "bytes" else data.decode(self._encoding))
            elif op in (_SHORT_BINBYTES, _BINBYTES, _BINBYTES8):
                n = (read(1)[0] if op == _SHORT_BINBYTES else
                     struct.unpack("<I", read(4))[0] if op == _BINBYTES else
                     struct.unpack("<Q", read(8))[0])
                push(read(n))
            elif op == _BINUNICODE8:
                push(str(read(struct.unpack("<Q", read(8))[0]), "utf-8", "surrogatepass"))
            elif op == _BYTEARRAY8:
                push(bytearray(read(struct.unpack("<Q", read(8))[0])))
            elif op == _LONG_BINPUT:
                memo[struct.unpack("<I", read(4))[0]] = stack[-1]
            elif op == _LONG_BINGET:
                push(memo[struct.unpack("<I", read(4))[0]])
            elif op == _MEMOIZE:
                memo[len(memo)] = stack[-1]
            elif op == _POP:
                if stack:
                    stack.pop()
                else:  # as pickle: POP on an empty stack drops the last MARK
                    self._pop_mark()
                    stack = self._stack
                    push = stack.append
            elif op == _POP_MARK:
                self._pop_mark()
                stack = self._stack
                push = stack.append
            elif op == _DUP:
                push(stack[-1])
            elif op == _FRAME:
                read(8)
            elif op == _PROTO:
                proto = read(1)[0]
                if proto > pickle.HIGHEST_PROTOCOL:
                    raise pickle.UnpicklingError(f"unsupported pickle protocol: {proto}")
            elif op == _STOP:
                if len(stack) != 1 or self._metastack:
                    raise pickle.UnpicklingError("pickle data ended with a malformed stack")
                return stack.pop()
            else:
                name = next((k for k, v in _OP.items() if v == op), None)
                raise pickle.UnpicklingError(
                    f"Unsupported operand {op}" + (f" ({name})" if name else "") +
                    " in weights_only loading")

    def _charge_call(self, func, args):
        """Spend the items a call copies; check the keys of the sets and dicts it builds."""
        size = 0
        for a in args:
            if isinstance(a, (str, bytes, bytearray, tuple, list, dict, set, frozenset)):
                size += len(a)
        self._spend(size)
        if args and isinstance(args[0], (list, tuple)):
            if func is set or func is frozenset or func is Counter:
                self._keys(args, args[0])
            elif func is OrderedDict:
                self._keys(args, [p[0] for p in args[0] if type(p) is tuple and p])

    @staticmethod
    def _check_dict(d, opcode):
        if type(d) not in (dict, OrderedDict, Counter):
            raise pickle.UnpicklingError(
                f"Can only {opcode} for dict, collections.OrderedDict, collections.Counter, "
                f"but got {type(d).__name__}")
        return d

    @staticmethod
    def _build(inst, state):
        t = type(inst)
        if t is OrderedDict or t is Counter:
            if state is None:
                return
            if type(state) is not dict or any(type(k) is not str for k in state):
                raise pickle.UnpicklingError(f"BUILD state of an {t.__name__} must be a dict "
                                             "with str keys")
            inst.__dict__.update(state)
        elif any(t is g for g in _user_globals().values()):
            if hasattr(inst, "__setstate__"):
                inst.__setstate__(state)
                return
            slots = None
            if isinstance(state, tuple) and len(state) == 2:
                state, slots = state
            if state:
                inst.__dict__.update(state)
            if slots:
                for k, v in slots.items():
                    setattr(inst, k, v)
        else:
            raise pickle.UnpicklingError(
                "Can only build OrderedDict, Counter or types allowlisted via "
                f"`add_safe_globals`, but got {t.__name__}")


def _check_depth(obj):
    """Refuse containers nested deeper than ``_MAX_DEPTH`` (each container visited once)."""
    if not isinstance(obj, _CONTAINERS):
        return
    height = {}  # id -> levels of containers at and below it (0 while being visited)
    keep = []    # what ``height`` keys on stays alive during the walk
    todo = [(obj, False)]
    while todo:
        o, done = todo.pop()
        if done:
            kids = o.items() if isinstance(o, dict) else o
            h = 0
            for k in kids:
                for c in (k if isinstance(o, dict) else (k,)):
                    if isinstance(c, _CONTAINERS):
                        h = max(h, height.get(id(c), 0))
            height[id(o)] = h + 1
            if h + 1 > _MAX_DEPTH:
                raise pickle.UnpicklingError(
                    f"containers nested more than {_MAX_DEPTH} deep; the file is refused")
            continue
        if id(o) in height:
            continue
        height[id(o)] = 0
        keep.append(o)
        todo.append((o, True))
        kids = o.items() if isinstance(o, dict) else o
        for k in kids:
            for c in (k if isinstance(o, dict) else (k,)):
                if isinstance(c, _CONTAINERS) and id(c) not in height:
                    todo.append((c, False))
