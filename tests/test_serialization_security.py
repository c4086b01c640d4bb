"""Hostile checkpoints: ember.load(weights_only=True) must refuse them without running anything.

Every payload sits inside an otherwise valid torch zip archive; each test checks the error
names the problem and that the sentinel file the payload tries to create never appears.
"""
import os
import pickle
import struct
import subprocess
import sys

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
