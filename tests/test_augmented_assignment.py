"""``t op= other`` as PyTorch (review rv2 C2): an operand its in-place dunders refuse (an
ndarray, a str, a list, None) makes them return NotImplemented, so Python falls back to
``t op other``: an ndarray gives NumPy's promotion in a NEW tensor and leaves ``t`` as it was;
anything else raises Python's "unsupported operand type(s)" TypeError.  Numbers and tensors
are written in place."""
import operator

import numpy as np
import pytest
import torch

import ember

OPS = {"+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv}
OPERANDS = {
    "ndarray_f64": lambda: np.array([1.0, 2.0, 4.0]),
    "ndarray_f32": lambda: np.array([1.0, 2.0, 4.0], dtype=np.float32),
    "ndarray_0d": lambda: np.array(2.0),
    "ndarray_int": lambda: np.array([1, 2, 4]),
    "int": lambda: 2,
    "float": lambda: 2.5,
    "np_float64": lambda: np.float64(2.5),
}
BAD = {"str": "a", "list": [1, 2, 3], "none": None, "tuple": (1, 2, 3)}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("operand", OPERANDS)
@pytest.mark.parametrize("op", OPS)
def test_augmented_assignment_matches_torch(op, operand, dtype):
    out = {}
    for mod in (torch, ember):
        t = mod.tensor([1.0, 3.0, 5.0], dtype=getattr(mod, dtype))
        before = t
        r = OPS[op](t, OPERANDS[operand]())
        out[mod.__name__] = (r is before, str(r.dtype).split(".")[-1], r.tolist(),
                             before.tolist())
    assert out["ember"] == out["torch"]


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("op", OPS)
def test_refused_operand_raises_pythons_type_error(op, bad):
    msgs = []
    for mod in (torch, ember):
        t = mod.tensor([1.0, 3.0, 5.0])
        with pytest.raises(TypeError) as e:
            OPS[op](t, BAD[bad])
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1]
