"""The per-dtype names ops print (``dtype.scalar_name``, ``c_name``, ``legacy_name``,
``finite_max``) against torch, and the messages that read them."""
import re

import pytest
import torch

import ember

NAMES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32",
         "float64"]
FLOATS = ["float16", "bfloat16", "float32", "float64"]


def torch_error(fn):
    with pytest.raises(Exception) as info:
        fn()
    return info.type, str(info.value)


def ember_error(fn, exc_type):
    with pytest.raises(exc_type) as info:
        fn()
    return str(info.value)


@pytest.mark.parametrize("name", NAMES)
def test_legacy_and_scalar_names_match_torch(name):
    e, t = getattr(ember, name), getattr(torch, name)
    legacy = torch.empty(0, dtype=t).type()  # "torch.FloatTensor"
    assert "torch." + e.legacy_name == legacy
    assert e.scalar_name + "Tensor" == e.legacy_name
    assert e.scalar_name + "Storage" in dir(torch)  # torch.FloatStorage & co.


@pytest.mark.parametrize("name", NAMES)
def test_c_name_matches_torch_messages(name):
    # lerp names both dtypes by their C++ type: "expected dtype float ... got dtype <c_name>"
    t = getattr(torch, name)
    base = torch.ones(2, dtype=torch.float64 if name == "float32" else torch.float32)
    exc, msg = torch_error(lambda: torch.lerp(base, torch.ones(2, dtype=t), 0.5))
    got = re.search(r"got dtype (.+)$", msg).group(1)
    assert getattr(ember, name).c_name == got


@pytest.mark.parametrize("name", NAMES)
def test_finite_max_matches_finfo(name):
    e = getattr(ember, name)
    if name in FLOATS:
        assert e.finite_max == float(torch.finfo(getattr(torch, name)).max)
    else:
        assert e.finite_max is None


@pytest.mark.parametrize("other", ["float16", "int64", "float64"])
def test_lerp_dtype_mismatch_message_matches_torch(other):
    def run(m):
        m.lerp(m.ones(2), m.ones(2, dtype=getattr(m, other)), 0.5)
    exc, msg = torch_error(lambda: run(torch))
    assert ember_error(lambda: run(ember), exc) == msg


@pytest.mark.parametrize("xd,bd", [("int16", "int32"), ("int64", "int16"), ("uint8", "int8")])
def test_conv_bias_type_message_matches_torch(xd, bd):
    def run(m):
        x = m.ones(1, 1, 3, dtype=getattr(m, xd))
        w = m.ones(1, 1, 1, dtype=getattr(m, xd))
        m.nn.functional.conv1d(x, w, m.ones(1, dtype=getattr(m, bd)))
    exc, msg = torch_error(lambda: run(torch))
    assert ember_error(lambda: run(ember), exc) == msg


@pytest.mark.parametrize("name,lambd", [("float32", 3.5e38), ("float16", 1e5),
                                         ("float64", -1.0), ("bfloat16", 3.4e38)])
def test_softshrink_range_message_matches_torch(name, lambd):
    def run(m):
        m.nn.functional.softshrink(m.ones(2, dtype=getattr(m, name)), lambd)
    exc, msg = torch_error(lambda: run(torch))
    assert ember_error(lambda: run(ember), exc) == msg


def test_softshrink_accepts_lambda_up_to_the_exact_float32_max():
    lambd = 3.402823e38  # above the rounded 3.40282e+38 the message prints
    expected = torch.nn.functional.softshrink(torch.ones(2), lambd)
    got = ember.nn.functional.softshrink(ember.ones(2), lambd)
    assert got.tolist() == expected.tolist()
