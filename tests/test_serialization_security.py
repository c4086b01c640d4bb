"""Hostile checkpoints: ember.load(weights_only=True) must refuse them without running anything.

Every payload sits inside an otherwise valid torch zip archive; each test checks the error
names the problem and that the sentinel file the payload tries to create never appears.
"""
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import zipfile
import zlib

import numpy as np
import pytest
import torch

import ember
import ember.serialization as ser

LOAD_ERRORS = (pickle.UnpicklingError, RuntimeError)


# ---- a tiny pickle assembler ------------------------------------------------------------------
def u(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def i(n):
    if -2 ** 31 <= n < 2 ** 31:
        return b"J" + struct.pack("<i", n)
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def g(module, name):
    return b"c" + f"{module}\n{name}\n".encode()


def tup(*items):
    return b"(" + b"".join(items) + b"t"


def proto2(body):
    return b"\x80\x02" + body + b"."


def tensor_pkl(numel=4, offset=0, size=(4,), stride=(1,), key="0", storage="FloatStorage",
               pid=None):
    pid = pid if pid is not None else tup(u("storage"), g("torch", storage), u(key), u("cpu"),
                                          i(numel))
    return (g("torch._utils", "_rebuild_tensor_v2") +
            tup(pid + b"Q", i(offset), tup(*map(i, size)), tup(*map(i, stride)), b"\x89",
                g("collections", "OrderedDict") + b")R") + b"R")


def write_ckpt(path, pkl, records=None, byteorder=b"little", archive="archive"):
    with open(path, "wb") as fh:
        zw = ser._ZipWriter(fh, archive)
        zw.record("data.pkl", pkl)
        zw.record("byteorder", byteorder)
        for name, data in (records or {}).items():
            zw.record(name, data)
        zw.record("version", b"3\n")
        zw.finish()
    return path


FLOATS = {"data/0": np.arange(4, dtype=np.float32).tobytes()}


@pytest.fixture
def sentinel(tmp_path):
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "a hostile checkpoint executed code"


def refuse(tmp_path, pkl, match, records=None, **kw):
    path = write_ckpt(tmp_path / "evil.pt", pkl, records, **kw)
    with pytest.raises(LOAD_ERRORS, match=match):
        ember.load(path)
    return path


# ---- payloads that call or import ---------------------------------------------------------------
class _System:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


class _Eval:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (eval, (f"open({str(self.target)!r}, 'w').close()",))


class _Popen:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (subprocess.Popen, (["touch", str(self.target)],))


def test_payloads_are_live_with_plain_pickle(tmp_path):
    """Control: the payloads really do run under an unrestricted unpickler."""
    for cls in (_System, _Eval):
        target = tmp_path / cls.__name__
        pickle.loads(pickle.dumps(cls(target), protocol=2))
        assert target.exists()


def test_os_system_through_reduce(tmp_path, sentinel):
    pkl = pickle.dumps({"w": _System(sentinel)}, protocol=2)
    assert b"posix\nsystem" in pkl or b"os\nsystem" in pkl
    refuse(tmp_path, pkl, r"GLOBAL (posix|os)\.system whose module (posix|os) is blocked")


def test_global_builtins_eval(tmp_path, sentinel):
    pkl = pickle.dumps(_Eval(sentinel), protocol=2)
    assert g("__builtin__", "eval") in pkl  # protocol 2 writes Python 2 names
    refuse(tmp_path, pkl, r"builtins\.eval")


def test_subprocess_popen(tmp_path, sentinel):
    pkl = pickle.dumps([_Popen(sentinel)], protocol=2)
    refuse(tmp_path, pkl, r"subprocess\.Popen")


def test_stack_global_of_posix_system(tmp_path, sentinel):
    pkl = proto2(u("posix") + u("system") + b"\x93" + tup(u(f"touch {sentinel}")) + b"R")
    refuse(tmp_path, pkl, r"posix\.system whose module posix is blocked")
    pkl4 = pickle.dumps(_System(sentinel), protocol=4)  # what protocol 4 really writes
    assert b"\x93" in pkl4
    refuse(tmp_path, pkl4, r"system whose module (posix|os) is blocked")


def test_nested_reduce_of_allowed_class_with_forbidden_argument(tmp_path, sentinel):
    class Nested:
        def __reduce__(self):
            from collections import OrderedDict
            return (OrderedDict, ([("k", _System(sentinel))],))

    refuse(tmp_path, pickle.dumps(Nested(), protocol=2), r"(posix|os)\.system")
    # an allowed callable fed a forbidden global as its argument
    pkl = proto2(g("collections", "OrderedDict") + tup(g("builtins", "getattr")) + b"R")
    refuse(tmp_path, pkl, r"GLOBAL builtins\.getattr was not an allowed global")
    # an allowed name that may not be called (torch.Tensor(10**12) would allocate)
    refuse(tmp_path, proto2(g("torch", "Tensor") + tup(i(10 ** 12)) + b"R"),
           "Trying to call reduce for unrecognized function")
    # a rebuild function given a non-tensor where a tensor belongs
    pkl = proto2(g("torch._utils", "_rebuild_parameter") + tup(b"}", b"\x88", b"}") + b"R")
    refuse(tmp_path, pkl, "Parameter data must be a tensor")


def test_codecs_encode_only_encodes_latin1(tmp_path, sentinel):
    pkl = proto2(g("_codecs", "encode") + tup(u("abc"), u("rot13")) + b"R")
    refuse(tmp_path, pkl, "only allowed to encode a str to latin1")
    ok = proto2(g("_codecs", "encode") + tup(u("\xff"), u("latin1")) + b"R")
    assert ember.load(write_ckpt(tmp_path / "ok.pt", ok)) == b"\xff"


def test_build_on_unexpected_objects(tmp_path, sentinel):
    refuse(tmp_path, proto2(b"]}b"), "Can only build OrderedDict, Counter or types allowlisted")
    # BUILD with a non-dict state on an OrderedDict
    pkl = proto2(g("collections", "OrderedDict") + b")R" + tup(i(1)) + b"b")
    refuse(tmp_path, pkl, "BUILD state of an OrderedDict must be a dict")
    # tensor state may not reach ember's private attributes (e.g. its hook tables)
    good_args = tup(b"(" + tup(u("storage"), g("torch", "FloatStorage"), u("0"), u("cpu"),
                               i(4)) + b"Q" + i(0) + tup(i(4)) + tup(i(1)) + b"\x89" +
                    g("collections", "OrderedDict") + b")R" + b"t")
    pkl = proto2(g("torch._tensor", "_rebuild_from_type_v2") +
                 b"(" + g("torch._utils", "_rebuild_tensor_v2") + g("torch", "Tensor") +
                 good_args[1:-1] + b"}" + u("_hooks") + b"}s" + b"tR")
    refuse(tmp_path, pkl, "refusing to set attribute '_hooks' on a tensor", records=FLOATS)


def test_newobj_inst_obj_and_ext_opcodes(tmp_path, sentinel):
    refuse(tmp_path, proto2(g("torch", "Tensor") + b")\x81"),
           "Can only create new object for nn.Parameter or classes allowlisted")
    inst = b"\x80\x02(" + u(f"touch {sentinel}") + b"iposix\nsystem\n."
    refuse(tmp_path, inst, r"Unsupported operand 105 \(INST\)")
    obj = b"\x80\x02(" + g("collections", "OrderedDict") + b"o."
    refuse(tmp_path, obj, r"Unsupported operand 111 \(OBJ\)")
    refuse(tmp_path, b"\x80\x02\x82\x01.", r"\(EXT1\)")
    refuse(tmp_path, b"\x80\x02" + b"P0\n.", r"\(PERSID\)")


def test_persistent_ids_of_unexpected_form(tmp_path, sentinel):
    refuse(tmp_path, proto2(u("os") + b"Q"), "persistent_load id must be a tuple")
    refuse(tmp_path, proto2(tup(u("module"), u("os"), u("0"), u("cpu"), i(1)) + b"Q"),
           "Only persistent_load of storage is allowed")
    refuse(tmp_path, proto2(tup(u("storage"), g("collections", "OrderedDict"), u("0"),
                                u("cpu"), i(1)) + b"Q"),
           "storage type must be a torch storage class")
    refuse(tmp_path, proto2(tensor_pkl(key="../../etc/passwd")), "invalid storage key",
           records=FLOATS)
    refuse(tmp_path, proto2(tensor_pkl(numel=-1)), "invalid storage size", records=FLOATS)


def test_oversized_storage_and_offsets_past_the_end(tmp_path, sentinel):
    refuse(tmp_path, proto2(tensor_pkl(numel=10 ** 15)),
           r"holds 16 bytes but the pickle declares a storage of 4000000000000000 bytes",
           records=FLOATS)
    refuse(tmp_path, proto2(tensor_pkl(offset=1000)), "out of bounds for storage of size 16",
           records=FLOATS)
    refuse(tmp_path, proto2(tensor_pkl(size=(3, 3), stride=(3, 1))),
           r"sizes \[3, 3\], strides \[3, 1\].*out of bounds", records=FLOATS)
    refuse(tmp_path, proto2(tensor_pkl(size=(2,), stride=(-1,))),
           "stride must be non-negative", records=FLOATS)
    refuse(tmp_path, proto2(tensor_pkl(size=(2, 2), stride=(1,))),
           "mismatch in length of strides and shape", records=FLOATS)
    assert ember.load(write_ckpt(tmp_path / "ok.pt", proto2(tensor_pkl()),
                                 FLOATS)).tolist() == [0, 1, 2, 3]


def test_path_traversal_member_names(tmp_path, sentinel):
    refuse(tmp_path, proto2(b"N"), r"invalid record name 'archive/../../evil'",
           records={"../../evil": b"x"})
    refuse(tmp_path, proto2(b"N"), r"invalid record name '\.\./data.pkl'", archive="..")
    refuse(tmp_path, proto2(b"N"), r"invalid record name '/abs/data.pkl'", archive="/abs")
    assert not (tmp_path.parent / "evil").exists()


def test_truncated_zip(tmp_path, sentinel):
    good = write_ckpt(tmp_path / "good.pt", proto2(tensor_pkl()), FLOATS).read_bytes()
    for cut in (len(good) // 2, len(good) - 10, 40):
        (tmp_path / "cut.pt").write_bytes(good[:cut])
        with pytest.raises(RuntimeError, match="failed finding central directory"):
            ember.load(tmp_path / "cut.pt")


def test_storage_record_missing(tmp_path, sentinel):
    refuse(tmp_path, proto2(tensor_pkl(key="7")),
           "failed locating file data/7: file not found", records=FLOATS)


def test_corrupted_storage_bytes_fail_the_crc(tmp_path, sentinel):
    path = write_ckpt(tmp_path / "c.pt", proto2(tensor_pkl()), FLOATS)
    raw = bytearray(path.read_bytes())
    at = raw.index(np.arange(4, dtype=np.float32).tobytes())
    raw[at + 5] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(RuntimeError, match="CRC-32 mismatch"):
        ember.load(path)


def test_big_byte_order_is_swapped_not_trusted(tmp_path, sentinel):
    be = {"data/0": np.arange(4, dtype=">f4").tobytes()}
    path = write_ckpt(tmp_path / "be.pt", proto2(tensor_pkl()), be, byteorder=b"big")
    assert ember.load(path).tolist() == [0.0, 1.0, 2.0, 3.0]
    path = write_ckpt(tmp_path / "bad.pt", proto2(tensor_pkl()), FLOATS, byteorder=b"sideways")
    with pytest.raises(ValueError, match="Unknown endianness type: sideways"):  # as torch
        ember.load(path)


def test_malformed_pickle_streams(tmp_path, sentinel):
    refuse(tmp_path, b"\x80\x02h\x05.", "corrupt or unsupported pickle data: KeyError")
    refuse(tmp_path, b"\x80\x02X\xff\xff\xff\x7fab", "pickle data was truncated")
    refuse(tmp_path, b"\x80\x02(K\x01.", "malformed stack")
    refuse(tmp_path, b"\x80\x02K\x01e.", "could not find MARK")
    refuse(tmp_path, b"\x80\x02K\x00K\x01K\x02s.", "Can only SETITEM for dict")
    refuse(tmp_path, b"\x80\x02K\x01K\x02a.", "Can only append to lists")


def test_user_allow_list_cannot_unblock_os(tmp_path, sentinel):
    pkl = pickle.dumps(_System(sentinel), protocol=2)
    with ember.serialization.safe_globals([os.system, (os.system, "posix.system")]):
        refuse(tmp_path, pkl, "is blocked")


def test_no_torch_or_payload_import_in_weights_only_mode(tmp_path):
    """A file naming a module that is not imported yet must not import it."""
    pkl = proto2(g("antigravity", "fly"))
    path = write_ckpt(tmp_path / "imp.pt", pkl)
    code = ("import sys, pickle, ember\n"
            "try:\n"
            f"    ember.load({str(path)!r})\n"
            "except pickle.UnpicklingError as e:\n"
            "    assert 'antigravity.fly was not an allowed global' in str(e), e\n"
            "assert 'antigravity' not in sys.modules and 'torch' not in sys.modules\n")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(ember.__file__)))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_torch_itself_refuses_what_ember_refuses(tmp_path):
    """Sanity check of the harness: torch's weights-only loader rejects the same file."""
    path = write_ckpt(tmp_path / "evil.pt", pickle.dumps(_Eval(tmp_path / "x"), protocol=2))
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    ok = write_ckpt(tmp_path / "ok.pt", proto2(tensor_pkl()), FLOATS)
    assert torch.load(ok, weights_only=True).tolist() == [0, 1, 2, 3]


# ================================================================================================
# bounded memory and work (issue 16): each hostile file is loaded in a child process under
# RLIMIT_AS and a per-case time budget, so a regression fails instead of exhausting the machine
# ================================================================================================
GIB = 1 << 30
HEADROOM = 512 << 20   # address space the child may add after importing ember
CASE_SECONDS = 10      # per-case wall-clock budget (a hang is a failure, not a stuck suite)


def raw_zip(path, entries, aliases=0):
    """A zip written by hand: ``entries`` are ``(name, data, method, crc, usize)`` with
    ``data`` exactly as stored in the file; ``aliases`` extra central-directory entries point
    at the first record's bytes."""
    out, central = bytearray(), []
    for name, data, method, crc, usize in entries:
        full = f"archive/{name}".encode()
        central.append((full, len(out), method, crc, len(data), usize))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc, len(data),
                           usize, len(full), 0) + full + data
    first = central[0]
    central += [(f"archive/data/a{k}".encode(),) + first[1:] for k in range(aliases)]
    cd = len(out)
    for full, off, method, crc, csize, usize in central:
        out += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, crc, csize,
                           usize, len(full), 0, 0, 0, 0, 0, off) + full
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central),
                       len(out) - cd, cd, 0)
    path.write_bytes(bytes(out))
    return path


def zeros_bomb(n_mib):
    """A raw deflate stream of ``n_mib`` MiB of zeros (about 1 KB per MiB) and its CRC."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    mib = bytes(1 << 20)
    seg = c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH)  # self-contained: repeatable
    crc = 0
    for _ in range(n_mib):
        crc = zlib.crc32(mib, crc)
    return seg * n_mib + c.flush(), crc


def stored(name, data):
    return (name, data, 0, zlib.crc32(data), len(data))


def deflated(name, data):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (name, c.compress(data) + c.flush(), 8, zlib.crc32(data), len(data))


def colliding_dict(n, opcode=b"u"):
    """A dict of ``n`` int keys that all hash to 0 (multiples of 2**61 - 1)."""
    keys = b"".join(i(k * (2 ** 61 - 1)) + b"N" for k in range(1, n + 1))
    return proto2(b"}(" + keys + opcode) if opcode == b"u" else proto2(b"(" + keys + b"d")


def deep_list_bottom_up(n):
    return proto2(b"]" * n + b"a" * (n - 1))


def deep_list_top_down(n):
    """Nesting built through the memo with a stack that never grows: the root stays on the
    stack; each step gets the last list, makes a child, memoizes it, appends it, pops."""
    steps = (b"h" + bytes([(k - 1) % 2]) + b"]q" + bytes([k % 2]) + b"a0" for k in range(1, n))
    return proto2(b"]q\x00" + b"".join(steps))


def repeated_copies(n, size=1 << 20):
    """One ``size``-byte bytes object turned into ``n`` bytearrays (n x size bytes)."""
    body = b"]" + b"B" + struct.pack("<I", size) + bytes(size) + b"q\x00" + b"0"
    body += g("builtins", "bytearray") + b"q\x01" + b"0"
    body += b"(" + b"h\x01h\x00\x85R" * n + b"e"
    return proto2(body)


def hostile_cases(d):
    """name -> (path, load kwargs, expected exception type name, message regex)."""
    t16 = np.arange(4, dtype=np.float32).tobytes()
    bomb, bomb_crc = zeros_bomb(1024)  # 1 GiB of zeros in about 1 MB
    pkl = proto2(tensor_pkl())
    cases = {}

    def case(name, entries, match, kw=None, err="RuntimeError", aliases=0):
        cases[name] = (str(raw_zip(d / f"{name}.pt", entries, aliases)), kw or {}, err, match)

    big_numel = GIB // 4
    case("deflated_storage_bigger_than_pickle_needs",
         [stored("data.pkl", pkl), ("data/0", bomb, 8, bomb_crc, GIB)],
         "declares 1073741824 bytes but the pickle needs 16")
    case("deflated_storage_the_pickle_declares_huge",
         [stored("data.pkl", proto2(tensor_pkl(numel=big_numel, size=(big_numel,)))),
          ("data/0", bomb, 8, bomb_crc, GIB)],
         r"needs 1073741824 bytes but only \d+ of the load budget")
    case("deflated_storage_lies_about_its_size",
         [stored("data.pkl", pkl), ("data/0", bomb, 8, zlib.crc32(t16), 16)],
         "inflates to more than the 16 bytes it declares")
    case("deflated_data_pkl_bomb",
         [("data.pkl", bomb, 8, bomb_crc, GIB), stored("data/0", t16)],
         r"record data.pkl needs 1073741824 bytes but only \d+ of the load budget")
    case("deflated_data_pkl_lies_about_its_size",
         [("data.pkl", bomb, 8, zlib.crc32(pkl), len(pkl)), stored("data/0", t16)],
         "inflates to more than")
    case("central_directory_aliases_of_one_record",
         [stored("data/0", bytes(32 << 20)), stored("data.pkl", pkl)],
         "overlap in the checkpoint archive", aliases=128)
    case("max_bytes_below_what_the_file_needs",
         [stored("data.pkl", pkl), stored("data/0", t16)],
         r"storage record data/0 needs 16 bytes but only 0 of the load budget of \d+ bytes "
         r"\(max_bytes\)", kw={"max_bytes": len(pkl)})
    case("deflated_records_within_budget_load",
         [deflated("data.pkl", pkl), deflated("data/0", t16)], None)
    for name, body, match in (
            ("colliding_keys_setitems", colliding_dict(100_000), "share the hash 0"),
            ("colliding_keys_dict", colliding_dict(100_000, b"d"), "share the hash 0"),
            ("deep_list_bottom_up", deep_list_bottom_up(10 ** 6), "nested more than 1000 deep"),
            ("deep_list_top_down", deep_list_top_down(10 ** 6), "nested more than 1000 deep"),
            ("repeated_bytearray_copies", repeated_copies(4000), "units of work"),
            ("memoized_mark", proto2(b"]" + b"(q\x00" + b"h\x00a"), "corrupt or unsupported"),
            ("size_of_a_str", proto2(g("torch", "Size") + tup(u("abc")) + b"R"),
             r"torch.Size\(\) takes an iterable of 'int' \(item 0 is 'str'\)")):
        cases[name] = (str(write_ckpt(d / f"{name}.pt", body)), {}, "UnpicklingError", match)
    cases["device_index_overflow"] = (
        str(write_ckpt(d / "dev.pt", proto2(g("torch", "device") +
                                            tup(u("cuda:99999999999999999999")) + b"R"))),
        {}, "RuntimeError", "Could not parse device index '99999999999999999999'")
    for method, label in ((zipfile.ZIP_LZMA, "lzma"), (zipfile.ZIP_BZIP2, "bzip2")):
        path = d / f"{label}.pt"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("archive/data.pkl", proto2(b"N"), compress_type=method)
        cases[f"data_pkl_{label}"] = (str(path), {}, "RuntimeError",
                                      f"unsupported compression method {method}")
    return cases


_CHILD = r"""
import json, pickle, resource, signal, sys, time
import ember
base = int(open('/proc/self/status').read().split('VmSize:')[1].split()[0]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (base + HEADROOM, base + HEADROOM))

def alarm(*_):
    raise TimeoutError('over the time budget')

signal.signal(signal.SIGALRM, alarm)
out = {}
for name, (path, kw, _, _) in json.loads(sys.argv[1]).items():
    t0 = time.perf_counter()
    signal.alarm(CASE_SECONDS)
    try:
        ember.load(path, **kw)
        res = [None, '']
    except BaseException as e:  # MemoryError and TimeoutError are the regressions
        res = [type(e).__name__, str(e)]
    signal.alarm(0)
    out[name] = res + [time.perf_counter() - t0]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def hostile_results(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    cases = hostile_cases(d)
    code = _CHILD.replace("HEADROOM", str(HEADROOM)).replace("CASE_SECONDS", str(CASE_SECONDS))
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(ember.__file__)))
    env.pop(ser.LOAD_MAX_BYTES_ENV, None)
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(cases)], env=env, timeout=240,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cases, json.loads(proc.stdout.splitlines()[-1])


HOSTILE = ["deflated_storage_bigger_than_pickle_needs", "deflated_storage_the_pickle_declares_huge",
           "deflated_storage_lies_about_its_size", "deflated_data_pkl_bomb",
           "deflated_data_pkl_lies_about_its_size", "central_directory_aliases_of_one_record",
           "max_bytes_below_what_the_file_needs", "deflated_records_within_budget_load",
           "colliding_keys_setitems", "colliding_keys_dict", "deep_list_bottom_up",
           "deep_list_top_down", "repeated_bytearray_copies", "memoized_mark", "size_of_a_str",
           "device_index_overflow", "data_pkl_lzma", "data_pkl_bzip2"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_file_is_refused_within_budget(hostile_results, name):
    cases, results = hostile_results
    _, _, err, match = cases[name]
    got, msg, seconds = results[name]
    assert seconds < CASE_SECONDS, (name, seconds)
    if match is None:
        assert got is None, msg
    else:
        assert got == err, (got, msg)
        assert re.search(match, msg), msg


@pytest.mark.parametrize("name,body", [
    ("memoized_mark", proto2(b"]" + b"(q\x00" + b"h\x00a")),
    ("size_of_a_str", proto2(g("torch", "Size") + tup(u("abc")) + b"R")),
    ("colliding_keys", colliding_dict(200)),
])
def test_torch_refuses_these_too(tmp_path, name, body):
    """torch lets the IndexError/TypeError out raw; ember wraps every malformed-pickle error
    in UnpicklingError (its "corrupt or unsupported pickle data")."""
    path = write_ckpt(tmp_path / f"{name}.pt", body)
    if name == "colliding_keys":  # torch loads it (slowly at 100k keys); ember refuses
        assert len(torch.load(path, weights_only=True)) == 200
    else:
        with pytest.raises((IndexError, TypeError)):
            torch.load(path, weights_only=True)
    with pytest.raises(pickle.UnpicklingError):
        ember.load(path)


def test_torch_refuses_compressed_data_pkl_and_the_device_index(tmp_path):
    path = tmp_path / "lzma.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", proto2(b"N"), compress_type=zipfile.ZIP_LZMA)
    with pytest.raises(RuntimeError):
        torch.load(path, weights_only=True)
    with pytest.raises(RuntimeError, match="unsupported compression method 14"):
        ember.load(path)
    with pytest.raises(RuntimeError, match="Could not parse device index"):
        torch.device("cuda:99999999999999999999")
    with pytest.raises(RuntimeError, match="Could not parse device index"):
        ember.device("cuda:99999999999999999999")
    with pytest.raises(TypeError, match=r"item 0 is 'str'"):
        ember.Size("abc")


def test_budget_from_the_environment_and_max_bytes(tmp_path, monkeypatch):
    path = write_ckpt(tmp_path / "ok.pt", proto2(tensor_pkl()), FLOATS)
    assert ember.load(path, max_bytes=10 ** 6).tolist() == [0, 1, 2, 3]
    monkeypatch.setenv(ser.LOAD_MAX_BYTES_ENV, "20")
    with pytest.raises(RuntimeError, match=r"budget of 20 bytes \(from EMBER_LOAD_MAX_BYTES\)"):
        ember.load(path)
    assert ember.load(path, max_bytes=10 ** 6).tolist() == [0, 1, 2, 3]  # the argument wins
    monkeypatch.setenv(ser.LOAD_MAX_BYTES_ENV, "lots")
    with pytest.raises(ValueError, match="EMBER_LOAD_MAX_BYTES must be an integer"):
        ember.load(path)
    monkeypatch.delenv(ser.LOAD_MAX_BYTES_ENV)
    with pytest.raises(TypeError, match="max_bytes must be an int or None"):
        ember.load(path, max_bytes=1.5)
    with pytest.raises(ValueError, match="max_bytes must be non-negative"):
        ember.load(path, max_bytes=-1)


def test_a_real_checkpoint_loads_under_the_default_budget(tmp_path):
    """What torch.save writes (a few storages, a nested state dict) is far inside the limits."""
    sd = {"layer": {f"w{k}": torch.randn(64, 64) for k in range(8)},
          "nested": [[[list(range(100))]]], "ints": {k: k for k in range(5000)}}
    torch.save(sd, tmp_path / "real.pt")
    out = ember.load(tmp_path / "real.pt")
    assert out["ints"][4999] == 4999 and out["nested"][0][0][0][99] == 99
    np.testing.assert_array_equal(out["layer"]["w3"].numpy(), sd["layer"]["w3"].numpy())


@pytest.mark.parametrize("builder", ["set", "frozenset", "Counter", "OrderedDict",
                                     "additems", "frozenset_op"])
def test_colliding_keys_through_every_container_builder(tmp_path, builder):
    keys = [i(k * (2 ** 61 - 1)) for k in range(1, 101)]
    if builder in ("set", "frozenset"):
        body = g("builtins", builder) + b"(" + b"(" + b"".join(keys) + b"l" + b"tR"
    elif builder == "Counter":
        body = g("collections", "Counter") + b"(" + b"(" + b"".join(keys) + b"l" + b"tR"
    elif builder == "OrderedDict":
        pairs = b"".join(tup(k, b"N") for k in keys)
        body = g("collections", "OrderedDict") + b"(" + b"(" + pairs + b"l" + b"tR"
    elif builder == "additems":
        body = b"\x8f(" + b"".join(keys) + b"\x90"
    else:
        body = b"(" + b"".join(keys) + b"\x91"
    path = write_ckpt(tmp_path / "c.pt", b"\x80\x04" + body + b".")
    with pytest.raises(pickle.UnpicklingError, match="share the hash 0"):
        ember.load(path)
    # the same containers with ordinary keys load
    ok = write_ckpt(tmp_path / "ok.pt", b"\x80\x04\x8f(" + b"".join(map(i, range(100))) +
                    b"\x90.")
    assert ember.load(ok) == set(range(100))


# ---- ember.jit.load: hostile archives (a traced module's graph is data, never code) -----------
JIT_MARKER = {"ember_jit": b"ember.jit 1\n"}


def _jit_data(graph=None, values=None, tree=None):
    """A well-formed ember.jit data.pkl body of plain data, with parts to make hostile."""
    return {"format": "ember.jit", "version": 1, "kind": "traced",
            "module": tree or {"name": "M", "training": False, "parameters": {},
                               "buffers": {}, "non_persistent": [], "children": {}},
            "graph": graph or [["placeholder", "x"],
                               ["call", "relu", "ember.ops.elementwise:Relu",
                                ["tuple", [["node", "x"]]], ["dict", []], True],
                               ["output", ["node", "relu"]]],
            "constants": {}, "values": values or {}, "in_spec": ["tuple", [None]]}


def jit_refuse(tmp_path, pkl, match, records=JIT_MARKER):
    # ember's payload is the ember_jit.pkl record (data.pkl is TorchScript's, never read)
    path = write_ckpt(tmp_path / "evil_jit.pt", pkl, dict(records, **{"ember_jit.pkl": pkl}))
    with pytest.raises(LOAD_ERRORS, match=match):
        with pytest.warns(DeprecationWarning):
            ember.jit.load(str(path))


def test_jit_control_archive_loads_and_runs(tmp_path):
    """Control: the plain-data archive the hostile ones are made from is accepted."""
    pkl = pickle.dumps(_jit_data(), protocol=2)
    path = write_ckpt(tmp_path / "ok.pt", pkl, dict(JIT_MARKER, **{"ember_jit.pkl": pkl}))
    with pytest.warns(DeprecationWarning):
        m = ember.jit.load(str(path))
    assert m(ember.tensor([-1.0, 2.0])).tolist() == [0.0, 2.0]


def test_jit_load_of_a_file_that_is_not_an_archive(tmp_path, sentinel):
    path = tmp_path / "x.pt"
    path.write_bytes(pickle.dumps(_System(sentinel), protocol=2))  # a bare pickle payload
    with pytest.raises(RuntimeError, match="not an ember.jit archive"):
        ember.jit.load(str(path))


def test_jit_load_pickle_global_outside_the_allow_list(tmp_path, sentinel):
    data = _jit_data()
    data["module"]["name"] = _System(sentinel)
    jit_refuse(tmp_path, pickle.dumps(data, protocol=2),
               r"GLOBAL (posix|os)\.system whose module (posix|os) is blocked")


def test_jit_load_checkpoint_without_the_marker_is_not_unpickled(tmp_path, sentinel):
    pkl = pickle.dumps({"w": _System(sentinel)}, protocol=2)
    jit_refuse(tmp_path, pkl, "not an ember.jit archive", records={})


@pytest.mark.parametrize("graph,match", [
    # an op named by a module outside ember's Function classes
    ([["placeholder", "x"], ["call", "s", "os:system", ["tuple", [["node", "x"]]],
                             ["dict", []], True], ["output", ["node", "s"]]],
     "an op ember does not have"),
    # a helper object of a class outside ember.ops, and a dunder field
    ([["placeholder", "x"], ["call", "r", "ember.ops.elementwise:Relu",
                             ["tuple", [["object", "subprocess:Popen", ["dict", []]]]],
                             ["dict", []], True], ["output", ["node", "r"]]],
     "unknown op helper"),
    ([["placeholder", "x"], ["call", "r", "ember.ops.elementwise:Relu",
                             ["tuple", [["namedtuple", "os:terminal_size", ["list", []]]]],
                             ["dict", []], True], ["output", ["node", "r"]]],
     "unknown namedtuple"),
    # size arithmetic (symbolic sizes) on anything but a graph value and an int: "ab" * 10**12
    ([["placeholder", "x"], ["call", "m", "operator:mul", ["tuple", ["ab", 10 ** 12]],
                             ["dict", []], True], ["output", ["node", "x"]]],
     "malformed size node"),
    # a namedtuple built by the graph, of a class outside ember
    ([["placeholder", "x"], ["call", "t", "namedtuple:os:terminal_size",
                             ["tuple", [1, 2]], ["dict", []], True], ["output", ["node", "x"]]],
     "unknown namedtuple"),
    # a node name that would be code if anything generated source from it
    ([["placeholder", "x; import os"], ["output", ["node", "x; import os"]]],
     "is not a valid name"),
    # get_attr reaching past the archive's own tensors
    ([["get_attr", "a", "__class__.__init__"], ["output", ["node", "a"]]], "get_attr"),
    ([["placeholder", "x"]], "no output"),
])
def test_jit_load_malformed_graphs_are_refused(tmp_path, sentinel, graph, match):
    jit_refuse(tmp_path, pickle.dumps(_jit_data(graph=graph), protocol=2), match)


def test_jit_load_refuses_torchscript_archives(tmp_path):
    path = tmp_path / "ts.pt"
    torch.jit.save(torch.jit.trace(torch.nn.Linear(2, 2), torch.ones(1, 2)), str(path))
    with pytest.raises(RuntimeError, match="TorchScript archive written by PyTorch"):
        with pytest.warns(DeprecationWarning):
            ember.jit.load(str(path))


# ---- ember.export.load: the same plain-data discipline ---------------------------------------
EXPORT_MARKER = {"ember_export": b"ember.export 1\n"}


def _export_data(**over):
    data = {"format": "ember.export", "version": 1,
            "graph": [["placeholder", "x"],
                      ["call", "relu", "ember.ops.elementwise:Relu", ["tuple", [["node", "x"]]],
                       ["dict", []], True],
                      ["output", ["tuple", [["node", "relu"]]]]],
            "values": {}, "input_specs": [["USER_INPUT", ["tensor", "x", None], None, None]],
            "output_specs": [["USER_OUTPUT", ["tensor", "relu", None], None]],
            "state_dict": {}, "constants": {}, "arrays": {}, "range_constraints": {},
            "in_spec": ["tuple", [None]], "out_spec": None,
            "input_meta": [["x", [2], "float32"]], "dynamic": [{}], "kwarg_names": [],
            "example_inputs": None, "n_args": 1}
    data.update(over)
    return data


def test_export_control_archive_loads_and_runs(tmp_path):
    path = write_ckpt(tmp_path / "ok.pt2", pickle.dumps(_export_data(), protocol=2),
                      EXPORT_MARKER)
    ep = ember.export.load(str(path))
    assert ep.module()(ember.tensor([-1.0, 2.0])).tolist() == [0.0, 2.0]


@pytest.mark.parametrize("over,match", [
    ({"input_specs": "not a list"}, "malformed graph signature"),
    ({"input_specs": [["EVAL", ["tensor", "x", None], None, None]]}, "signature row"),
    ({"graph": [["placeholder", "x"], ["call", "e", "builtins:eval", ["tuple", []],
                                       ["dict", []], True], ["output", ["node", "e"]]]},
     "an op ember does not have"),
    ({"state_dict": {"w": "not a tensor"}}, "not a named tensor"),
])
def test_export_load_malformed_archives_are_refused(tmp_path, sentinel, over, match):
    path = write_ckpt(tmp_path / "bad.pt2", pickle.dumps(_export_data(**over), protocol=2),
                      EXPORT_MARKER)
    with pytest.raises(LOAD_ERRORS, match=match):
        ember.export.load(str(path))


def test_export_load_pickle_global_outside_the_allow_list(tmp_path, sentinel):
    pkl = pickle.dumps(_export_data(values={"c": _System(sentinel)}), protocol=2)
    path = write_ckpt(tmp_path / "evil.pt2", pkl, EXPORT_MARKER)
    with pytest.raises(pickle.UnpicklingError, match=r"(posix|os)\.system"):
        ember.export.load(str(path))
    bare = tmp_path / "bare.pt2"
    bare.write_bytes(pkl)
    with pytest.raises(RuntimeError, match="not an ember.export archive"):
        ember.export.load(str(bare))
