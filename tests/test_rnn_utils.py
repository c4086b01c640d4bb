"""``nn.utils.rnn`` (pad / pack helpers, PackedSequence) against PyTorch's."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.utils.rnn as trnn

import ember
import ember.nn.utils.rnn as ernn
from opcheck import assert_close


def _seqs(lengths, feat=(3,), seed=0):
    rng = np.random.default_rng(seed)
    arrs = [rng.standard_normal((n,) + feat) for n in lengths]
    return ([torch.from_numpy(a.copy()).requires_grad_() for a in arrs],
            [ember.from_numpy(a.copy()).requires_grad_() for a in arrs])


def _backward_same(rt, re_, seed=1):
    g = np.random.default_rng(seed).standard_normal(tuple(rt.shape))
    rt.backward(torch.from_numpy(g))
    re_.backward(ember.from_numpy(g.copy()))


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("feat", [(), (3,), (2, 2)])
def test_pad_sequence(batch_first, side, feat):
    st, se = _seqs([2, 5, 3], feat)
    rt = trnn.pad_sequence(st, batch_first=batch_first, padding_value=-1.5, padding_side=side)
    re_ = ernn.pad_sequence(se, batch_first=batch_first, padding_value=-1.5, padding_side=side)
    assert_close(re_, rt)
    _backward_same(rt, re_)
    for a, b in zip(se, st):
        assert_close(a.grad, b.grad)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("enforce_sorted", [True, False])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_pack_padded_and_pad_packed(batch_first, enforce_sorted, as_tensor):
    lengths = [6, 4, 4, 1] if enforce_sorted else [4, 6, 1, 3]
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 7, 3) if batch_first else (7, 4, 3))
    xt = torch.from_numpy(x.copy()).requires_grad_()
    xe = ember.from_numpy(x.copy()).requires_grad_()
    lt = torch.tensor(lengths) if as_tensor else lengths
    le = ember.tensor(lengths) if as_tensor else lengths
    pt = trnn.pack_padded_sequence(xt, lt, batch_first, enforce_sorted)
    pe = ernn.pack_padded_sequence(xe, le, batch_first, enforce_sorted)
    assert isinstance(pe, ernn.PackedSequence) and isinstance(pe, tuple)
    assert_close(pe.data, pt.data)
    for a, b in zip(pe[1:], pt[1:]):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.tolist() == b.tolist()
    for total in (None, 9):
        ut, lt2 = trnn.pad_packed_sequence(pt, batch_first, padding_value=0.5,
                                           total_length=total)
        ue, le2 = ernn.pad_packed_sequence(pe, batch_first, padding_value=0.5,
                                           total_length=total)
        assert_close(ue, ut)
        assert le2.tolist() == lt2.tolist() == lengths
    _backward_same(ut, ue)
    assert_close(xe.grad, xt.grad)


def test_pack_and_unpack_sequence():
    for enforce_sorted, lengths in ((True, [5, 3, 3, 1]), (False, [2, 5, 1, 4])):
        st, se = _seqs(lengths)
        pt = trnn.pack_sequence(st, enforce_sorted=enforce_sorted)
        pe = ernn.pack_sequence(se, enforce_sorted=enforce_sorted)
        assert_close(pe.data, pt.data)
        assert pe.batch_sizes.tolist() == pt.batch_sizes.tolist()
        ut, ue = trnn.unpack_sequence(pt), ernn.unpack_sequence(pe)
        assert_close(ue, ut)
        for a, b in zip(ue, se):
            np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    padded = ernn.pad_sequence(se, batch_first=False)
    back = ernn.unpad_sequence(padded, ember.tensor(lengths))
    assert_close(back, trnn.unpad_sequence(trnn.pad_sequence(st), torch.tensor(lengths)))


def test_packed_sequence_type():
    pe = ernn.pack_sequence([ember.randn(3, 2), ember.randn(1, 2)])
    assert pe._fields == ("data", "batch_sizes", "sorted_indices", "unsorted_indices")
    data, bs, si, ui = pe
    assert bs.tolist() == [2, 1, 1] and si is None and ui is None
    d = pe.double()
    assert d.data.dtype == ember.float64 and type(d) is ernn.PackedSequence
    assert pe.to(ember.float32) is pe
    assert pe.to(dtype=ember.float64).data.dtype == ember.float64
    assert not pe.is_cuda
    pu = ernn.pack_sequence([ember.randn(1, 2), ember.randn(3, 2)], enforce_sorted=False)
    assert pu.sorted_indices.tolist() == [1, 0] and pu.unsorted_indices.tolist() == [1, 0]
    pd = pu.double()
    assert pd.sorted_indices.tolist() == [1, 0] and pd.sorted_indices.dtype == ember.int64
    pp = ernn.PackedSequence(pe.data, pe.batch_sizes)
    assert pp.batch_sizes is pe.batch_sizes
    assert ernn.invert_permutation(ember.tensor([2, 0, 1])).tolist() == [1, 2, 0]


def test_bad_lengths():
    x = ember.randn(4, 3, 2)
    with pytest.raises(RuntimeError, match=r"`lengths` array must be sorted in decreasing order "
                                           r"when `enforce_sorted` is True. You can pass "
                                           r"`enforce_sorted=False`"):
        ernn.pack_padded_sequence(x, [2, 3, 1])
    with pytest.raises(RuntimeError, match="Length of all samples has to be greater than 0, "
                                           "but found an element in 'lengths' that is <= 0"):
        ernn.pack_padded_sequence(x, [3, 2, 0])
    with pytest.raises(RuntimeError, match="Length of all samples has to be greater than 0"):
        ernn.pack_padded_sequence(x, [0, 3, 2], enforce_sorted=False)
    with pytest.raises(RuntimeError, match=r"Expected `len\(lengths\)` to be equal to "
                                           r"batch_size, but got 2 \(batch_size=3\)"):
        ernn.pack_padded_sequence(x, [3, 2])
    with pytest.raises(RuntimeError, match="'lengths' argument should be a 1D CPU int64 "
                                           "tensor, but got 2D"):
        ernn.pack_padded_sequence(x, ember.tensor([[3, 2, 1]]))
    with pytest.raises(ValueError, match="Expected total_length to be at least the length of "
                                         "the longest sequence in input, but got "
                                         "total_length=2 and max sequence length being 3"):
        ernn.pad_packed_sequence(ernn.pack_padded_sequence(x, [3, 2, 1]), total_length=2)
    with pytest.raises(RuntimeError, match="Expected padding_side to be one of left or right, "
                                           "but got middle."):
        ernn.pad_sequence([ember.ones(2)], padding_side="middle")
