"""Seconds-fast checks of the core path: run with ``pytest tests/test_smoke.py``."""
import numpy as np

import ember
from opcheck import check, rand, gradcheck


def test_chain_matches_torch():
    check(lambda m, x, w: ((x @ w).exp() * 2 - x.sum() / 3).sum(), None, rand(3, 4), rand(4, 5))


def test_broadcast_add_mul():
    check(lambda m, a, b: a * b + a - b / (b * b + 1), None, rand(2, 3, 4), rand(3, 1))


def test_gradcheck_core():
    assert gradcheck(lambda a, b: (a @ b).exp().mean(), rand(2, 3), rand(3, 2))


def test_size_repr():
    assert repr(ember.zeros(32, 1).shape) == "ember.Size([32, 1])"
