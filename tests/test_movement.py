"""Shape/movement ops against PyTorch: forward, gradients, view semantics and errors."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
from opcheck import check, rand, gradcheck, assert_close

A = rand(3, 4, seed=1)
B = rand(2, 3, 4, seed=2)
V = rand(6, seed=3)
S = rand(seed=4)  # 0-d

# (id, fn(m, *xs), inputs); fn runs with m=ember and m=torch
FORWARD_GRAD = [
    ("reshape", lambda m, x: x.reshape(4, 3), [A]),
    ("reshape_neg1", lambda m, x: m.reshape(x, (-1, 2)), [B]),
    ("reshape_noncontig", lambda m, x: x.transpose(0, 1).reshape(-1), [A]),
    ("reshape_0d", lambda m, x: x.reshape(1, 1), [S]),
    ("reshape_to_0d", lambda m, x: x.reshape(()), [np.array([2.5])]),
    ("view", lambda m, x: x.view(2, 6), [A]),
    ("view_list", lambda m, x: x.view([12]), [A]),
    ("view_as", lambda m, x, y: x.view_as(y), [A, rand(12, seed=5)]),
    ("reshape_as", lambda m, x, y: x.t().reshape_as(y), [A, rand(2, 6, seed=5)]),
    ("flatten", lambda m, x: x.flatten(), [B]),
    ("flatten_1", lambda m, x: x.flatten(1), [B]),
    ("flatten_0_1", lambda m, x: m.flatten(x, 0, 1), [B]),
    ("flatten_neg", lambda m, x: x.flatten(-2, -1), [B]),
    ("flatten_same", lambda m, x: x.flatten(1, 1) * 2, [B]),
    ("flatten_0d", lambda m, x: x.flatten(), [S]),
    ("flatten_noncontig", lambda m, x: x.transpose(0, 2).flatten(), [B]),
    ("ravel", lambda m, x: x[:, ::2].ravel(), [A]),
    ("unflatten", lambda m, x: x.unflatten(1, (2, 2)), [A]),
    ("unflatten_neg", lambda m, x: m.unflatten(x, -1, (2, -1)), [B]),
    ("squeeze_all", lambda m, x: x.squeeze(), [rand(1, 3, 1, 2)]),
    ("squeeze_dim", lambda m, x: x.squeeze(2), [rand(1, 3, 1, 2)]),
    ("squeeze_dim_not1", lambda m, x: x.squeeze(1), [rand(1, 3, 1, 2)]),
    ("squeeze_tuple", lambda m, x: x.squeeze((0, 2, 3)), [rand(1, 3, 1, 2)]),
    ("squeeze_0d", lambda m, x: x.squeeze(0), [S]),
    ("unsqueeze", lambda m, x: x.unsqueeze(1), [A]),
    ("unsqueeze_neg", lambda m, x: m.unsqueeze(x, -1), [A]),
    ("unsqueeze_0d", lambda m, x: x.unsqueeze(0), [S]),
    ("transpose", lambda m, x: x.transpose(0, 2), [B]),
    ("swapaxes", lambda m, x: m.swapaxes(x, 0, 1), [B]),
    ("swapdims", lambda m, x: x.swapdims(-1, 0), [B]),
    ("t", lambda m, x: x.t(), [A]),
    ("t_1d", lambda m, x: x.t(), [V]),
    ("T", lambda m, x: x.T, [A]),
    ("mT", lambda m, x: x.mT, [B]),
    ("mH", lambda m, x: x.mH, [B]),
    ("adjoint", lambda m, x: m.adjoint(x), [A]),
    ("permute", lambda m, x: x.permute(2, 0, 1), [B]),
    ("permute_tuple", lambda m, x: m.permute(x, (1, 2, 0)), [B]),
    ("movedim", lambda m, x: x.movedim(0, 2), [B]),
    ("movedim_tuple", lambda m, x: m.movedim(x, (0, 1), (2, 0)), [B]),
    ("moveaxis", lambda m, x: m.moveaxis(x, -1, 0), [B]),
    ("expand", lambda m, x: x.expand(2, 3, 4), [rand(3, 1)]),
    ("expand_neg1", lambda m, x: x.expand(-1, 5), [rand(3, 1)]),
    ("expand_as", lambda m, x, y: x.expand_as(y), [rand(4), B]),
    ("broadcast_to", lambda m, x: m.broadcast_to(x, (2, 3, 4)), [rand(1, 4)]),
    ("broadcast_tensors", lambda m, x, y: m.broadcast_tensors(x, y), [rand(3, 1), rand(1, 4)]),
    ("repeat", lambda m, x: x.repeat(2, 3), [A]),
    ("repeat_lead", lambda m, x: x.repeat(2, 1, 2), [A]),
    ("repeat_zero", lambda m, x: x.repeat(0, 2), [A]),
    ("repeat_0d", lambda m, x: x.repeat(2, 3), [S]),
    ("repeat_noncontig", lambda m, x: x.t().repeat(1, 2), [A]),
    ("tile", lambda m, x: x.tile((2,)), [A]),
    ("tile_more", lambda m, x: m.tile(x, (2, 1, 3)), [A]),
    ("repeat_interleave", lambda m, x: x.repeat_interleave(2), [A]),
    ("repeat_interleave_dim", lambda m, x: m.repeat_interleave(x, 3, dim=1), [A]),
    ("repeat_interleave_0d", lambda m, x: x.repeat_interleave(3), [S]),
    ("repeat_interleave_tensor", lambda m, x: x.repeat_interleave(
        m.tensor([1, 0, 3]), dim=0), [A]),
    ("repeat_interleave_1elt", lambda m, x: x.repeat_interleave(m.tensor([2]), dim=1), [A]),
    ("flip", lambda m, x: x.flip(0), [B]),
    ("flip_many", lambda m, x: m.flip(x, (0, 2)), [B]),
    ("flip_kw", lambda m, x: m.flip(x, dims=[-1]), [B]),
    ("flip_0d", lambda m, x: x.flip(0), [S]),
    ("fliplr", lambda m, x: x.fliplr(), [A]),
    ("flipud", lambda m, x: m.flipud(x), [A]),
    ("roll", lambda m, x: x.roll(1, 0), [B]),
    ("roll_neg", lambda m, x: m.roll(x, -5, 2), [B]),
    ("roll_multi", lambda m, x: x.roll((1, -2), (0, 2)), [B]),
    ("roll_flat", lambda m, x: x.roll(3), [B]),
    ("roll_noncontig", lambda m, x: x.t().roll(2), [A]),
    ("rot90", lambda m, x: x.rot90(), [A]),
    ("rot90_k", lambda m, x: m.rot90(x, 3, (1, 2)), [B]),
    ("rot90_neg", lambda m, x: m.rot90(x, -1, [0, 1]), [A]),
    ("rot90_2", lambda m, x: x.rot90(2), [A]),
    ("rot90_0", lambda m, x: x.rot90(0), [A]),
    ("cat", lambda m, x, y: m.cat([x, y]), [A, rand(2, 4)]),
    ("cat_dim1", lambda m, x, y: m.cat((x, y, x), 1), [A, rand(3, 2)]),
    ("cat_neg_dim", lambda m, x, y: m.cat([x, y], dim=-1), [B, rand(2, 3, 1)]),
    ("concat", lambda m, x, y: m.concat([x, y]), [A, A]),
    ("concatenate", lambda m, x, y: m.concatenate([x, y], 1), [A, A]),
    ("cat_single", lambda m, x: m.cat([x]), [A]),
    ("cat_skip_empty", lambda m, x, e: m.cat([e, x, e]), [A, np.zeros(0)]),
    ("cat_all_empty", lambda m, e: m.cat([e, e]), [np.zeros(0)]),
    ("cat_2d_empty", lambda m, x, e: m.cat([x, e]), [A, np.zeros((0, 4))]),
    ("cat_noncontig", lambda m, x: m.cat([x.t(), x.t()], 1), [A]),
    ("cat_promote_int", lambda m, x: m.cat([x, m.ones(2, 4, dtype=m.int64)]), [A]),
    ("cat_promote_f64", lambda m, x: m.cat([x.float(), x.double()]), [A]),
    ("stack", lambda m, x, y: m.stack([x, y]), [A, rand(3, 4)]),
    ("stack_dim", lambda m, x, y: m.stack((x, y), 2), [A, rand(3, 4)]),
    ("stack_neg", lambda m, x, y: m.stack([x, y], -1), [A, rand(3, 4)]),
    ("stack_0d", lambda m, x, y: m.stack([x, y]), [S, rand(seed=9)]),
    ("stack_promote", lambda m, x: m.stack([x, m.zeros(3, 4, dtype=m.int32)]), [A]),
    ("hstack", lambda m, x, y: m.hstack([x, y]), [A, rand(3, 2)]),
    ("hstack_1d", lambda m, x, y: m.hstack([x, y]), [V, rand(2)]),
    ("vstack", lambda m, x, y: m.vstack([x, y]), [rand(4), A]),
    ("row_stack", lambda m, x, y: m.row_stack([x, y]), [rand(4), A]),
    ("dstack", lambda m, x, y: m.dstack([x, y]), [A, A]),
    ("dstack_1d", lambda m, x, y: m.dstack([x, y]), [V, V]),
    ("column_stack", lambda m, x, y: m.column_stack([x, y]), [rand(3), A]),
    ("atleast_1d", lambda m, x: m.atleast_1d(x), [S]),
    ("atleast_2d", lambda m, x: m.atleast_2d(x), [V]),
    ("atleast_3d", lambda m, x, y: m.atleast_3d(x, y), [V, A]),
    ("split_int", lambda m, x: x.split(2), [rand(5, 3)]),
    ("split_list", lambda m, x: m.split(x, [1, 3], dim=1), [A]),
    ("split_big", lambda m, x: x.split(10), [A]),
    ("split_zero_len", lambda m, x: x.split([0, 3, 0]), [A]),
    ("split_partial_use", lambda m, x: x.split(2, 1)[1] * 3, [A]),
    ("tensor_split_n", lambda m, x: x.tensor_split(3), [rand(7, 2)]),
    ("tensor_split_idx", lambda m, x: m.tensor_split(x, [1, 5, -1], dim=1), [rand(2, 7)]),
    ("tensor_split_more", lambda m, x: x.tensor_split(4), [A]),
    ("chunk", lambda m, x: x.chunk(2), [rand(5, 3)]),
    ("chunk_dim", lambda m, x: m.chunk(x, 3, dim=1), [A]),
    ("chunk_more", lambda m, x: x.chunk(5), [A]),
    ("unbind", lambda m, x: x.unbind(), [A]),
    ("unbind_dim", lambda m, x: m.unbind(x, 2), [B]),
    ("unbind_partial_use", lambda m, x: x.unbind(1)[2] * 2, [A]),
    ("iter", lambda m, x: tuple(x), [A]),
    ("narrow", lambda m, x: x.narrow(1, 1, 2), [A]),
    ("narrow_neg", lambda m, x: m.narrow(x, -1, -2, 2), [B]),
    ("narrow_tensor_start", lambda m, x: x.narrow(0, m.tensor(1), 2), [A]),
    ("select", lambda m, x: x.select(1, -1), [B]),
    ("tril", lambda m, x: x.tril(), [A]),
    ("tril_k", lambda m, x: m.tril(x, 1), [A]),
    ("tril_neg_k", lambda m, x: x.tril(diagonal=-1), [B]),
    ("triu", lambda m, x: x.triu(), [A]),
    ("triu_k", lambda m, x: m.triu(x, -1), [B]),
    ("tril_int", lambda m, x: (x * 10).long().tril(), [A]),
    ("diagonal", lambda m, x: x.diagonal(), [A]),
    ("diagonal_off", lambda m, x: m.diagonal(x, 1), [A]),
    ("diagonal_neg_off", lambda m, x: x.diagonal(-2), [A]),
    ("diagonal_dims", lambda m, x: x.diagonal(0, 0, 2), [B]),
    ("diagonal_dims_neg", lambda m, x: m.diagonal(x, offset=1, dim1=-1, dim2=0), [B]),
    ("diagonal_far", lambda m, x: x.diagonal(5), [A]),
    ("diag_1d", lambda m, x: m.diag(x), [V]),
    ("diag_1d_off", lambda m, x: x.diag(2), [V]),
    ("diag_1d_neg", lambda m, x: x.diag(-1), [V]),
    ("diag_2d", lambda m, x: m.diag(x), [A]),
    ("diag_2d_off", lambda m, x: x.diag(-1), [A]),
    ("diag_embed", lambda m, x: m.diag_embed(x), [A]),
    ("diag_embed_off", lambda m, x: x.diag_embed(1), [A]),
    ("diag_embed_dims", lambda m, x: m.diag_embed(x, -1, 0, 2), [A]),
    ("diag_embed_3d", lambda m, x: x.diag_embed(0, 1, 3), [B]),
    ("diagflat", lambda m, x: m.diagflat(x), [A]),
    ("diagflat_off", lambda m, x: x.diagflat(-1), [V]),
    ("chain_views", lambda m, x: x.transpose(0, 1)[1:, None].expand(3, 2, 3).flatten(), [A]),
]


@pytest.mark.parametrize("name,fn,inputs", FORWARD_GRAD, ids=[c[0] for c in FORWARD_GRAD])
def test_forward_and_grad(name, fn, inputs):
    check(fn, None, *inputs)


GRAD_FN_NAMES = [
    (lambda x: x.reshape(12), "ViewBackward0"),
    (lambda x: x.t().reshape(12), "UnsafeViewBackward0"),
    (lambda x: x.flatten(), "ViewBackward0"),
    (lambda x: x[:, :1].squeeze(), "SqueezeBackward0"),
    (lambda x: x[:, :1].squeeze(1), "SqueezeBackward1"),
    (lambda x: x[:, :1].squeeze((1,)), "SqueezeBackward2"),
    (lambda x: x.unsqueeze(0), "UnsqueezeBackward0"),
    (lambda x: x.transpose(0, 1), "TransposeBackward0"),
    (lambda x: x.t(), "TBackward0"),
    (lambda x: x.T, "PermuteBackward0"),
    (lambda x: x.movedim(0, 1), "PermuteBackward0"),
    (lambda x: x.expand(2, 3, 4), "ExpandBackward0"),
    (lambda x: x.repeat(2, 1), "RepeatBackward0"),
    (lambda x: x.repeat_interleave(2), "ViewBackward0"),
    (lambda x: x.flip(0), "FlipBackward0"),
    (lambda x: x.roll(1), "RollBackward0"),
    (lambda x: x.rot90(), "Rot90Backward0"),
    (lambda x: ember_or_torch(x).cat([x, x]), "CatBackward0"),
    (lambda x: ember_or_torch(x).stack([x, x]), "StackBackward0"),
    (lambda x: x.split(2)[0], "SplitBackward0"),
    (lambda x: x.split([1, 2])[0], "SplitWithSizesBackward0"),
    (lambda x: x.chunk(2)[0], "SplitBackward0"),
    (lambda x: x.tensor_split(2)[0], "SliceBackward0"),
    (lambda x: x.unbind()[0], "UnbindBackward0"),
    (lambda x: x.narrow(1, 0, 2), "SliceBackward0"),
    (lambda x: x.select(1, 0), "SelectBackward0"),
    (lambda x: x.tril(), "TrilBackward0"),
    (lambda x: x.triu(), "TriuBackward0"),
    (lambda x: x.diagonal(), "DiagonalBackward0"),
    (lambda x: x.diag(), "DiagonalBackward0_copy"),
    (lambda x: x[0].diag(), "DiagEmbedBackward0"),
    (lambda x: x.diag_embed(), "DiagEmbedBackward0"),
]


def ember_or_torch(x):
    return ember if isinstance(x, ember.Tensor) else torch


@pytest.mark.parametrize("fn,name", GRAD_FN_NAMES, ids=[n for _, n in GRAD_FN_NAMES])
def test_grad_fn_names(fn, name):
    xt = torch.randn(3, 4, requires_grad=True)
    xe = ember.randn(3, 4, requires_grad=True)
    assert fn(xt).grad_fn.name() == name
    assert fn(xe).grad_fn.name() == name


def test_flatten_same_dims_returns_input():
    x = ember.randn(2, 3)
    assert x.flatten(1, 1) is x


# ---- views share memory ----------------------------------------------------------------------
VIEWS = [
    ("view", lambda x: x.view(12)),
    ("reshape", lambda x: x.reshape(2, 6)),
    ("flatten", lambda x: x.flatten()),
    ("unflatten", lambda x: x.unflatten(1, (2, 2))),
    ("transpose", lambda x: x.transpose(0, 1)),
    ("t", lambda x: x.t()),
    ("T", lambda x: x.T),
    ("permute", lambda x: x.permute(1, 0)),
    ("movedim", lambda x: x.movedim(0, 1)),
    ("squeeze", lambda x: x.unsqueeze(0).squeeze()),
    ("unsqueeze", lambda x: x.unsqueeze(1)),
    ("narrow", lambda x: x.narrow(1, 1, 2)),
    ("select", lambda x: x.select(0, 1)),
    ("diagonal", lambda x: x.diagonal()),
    ("unbind", lambda x: x.unbind(1)[2]),
    ("split", lambda x: x.split(2)[1]),
    ("chunk", lambda x: x.chunk(2, 1)[1]),
    ("tensor_split", lambda x: x.tensor_split(2, 1)[1]),
    ("atleast_3d", lambda x: ember.atleast_3d(x) if isinstance(x, ember.Tensor)
     else torch.atleast_3d(x)),
]


@pytest.mark.parametrize("name,fn", VIEWS, ids=[v[0] for v in VIEWS])
def test_views_share_memory(name, fn):
    x = ember.arange(12.).reshape(3, 4)
    xt = torch.arange(12.).reshape(3, 4)
    v, vt = fn(x), fn(xt)
    assert v._base is not None and vt._base is not None
    v.mul_(-1)          # through the view
    vt.mul_(-1)
    assert_close(x, xt)
    assert x._version == v._version
    x.add_(1)           # through the base
    xt.add_(1)
    assert_close(v, vt)
    assert x._version == v._version == 2


COPIES = [
    ("reshape_noncontig", lambda x: x.t().reshape(12)),
    ("flatten_noncontig", lambda x: x.t().flatten()),
    ("flip", lambda x: x.flip(0)),
    ("roll", lambda x: x.roll(1)),
    ("repeat", lambda x: x.repeat(1, 1)),
    ("rot90", lambda x: x.rot90()),
    ("cat", lambda x: ember.cat([x])),
    ("stack", lambda x: ember.stack([x])),
    ("tril", lambda x: x.tril()),
    ("diag", lambda x: x.diag()),
]


@pytest.mark.parametrize("name,fn", COPIES, ids=[c[0] for c in COPIES])
def test_copies_do_not_alias(name, fn):
    x = ember.arange(12.).reshape(3, 4)
    y = fn(x)
    assert y._base is None
    y.mul_(0)
    assert x.sum().item() == 66


def test_inplace_through_view_of_nonleaf_gradient():
    for m in (ember, torch):
        x = m.tensor([[1., 2., 3.], [4., 5., 6.]], requires_grad=True)
        y = x * 2
        y.diagonal().mul_(10)
        y.t()[0].add_(1)          # column 0 of y through a transpose view
        y.sum().backward()
        if m is ember:
            ge = x.grad.numpy().copy()
        else:
            assert np.allclose(ge, x.grad.numpy())


def test_multi_view_outputs_backward_partial():
    # only some outputs of split/unbind are used: the others get zero gradient
    check(lambda m, x: x.unbind(0)[1] * x.split(1, 1)[2].sum(), None, A)


def test_cat_backward_is_one_split():
    x = ember.randn(2, 3, requires_grad=True)
    y = ember.randn(4, 3, requires_grad=True)
    out = ember.cat([x, y])
    seen = []
    out.grad_fn.register_hook(lambda gi, go: seen.append(len(gi)))
    out.sum().backward()
    assert seen == [4] and x.grad.shape == (2, 3) and y.grad.shape == (4, 3)


def test_double_backward_through_movement():
    assert gradcheck(lambda x: (x.t().reshape(-1)[1:].roll(2) ** 1).flip(0).sum(), A)
    for fn in (lambda m, x: x.diagonal().exp().sum(), lambda m, x: m.cat([x, x * 2], 1).exp(),
               lambda m, x: x.repeat(2, 1).exp(), lambda m, x: x.unbind()[1].exp()):
        xs = [m.tensor(A, requires_grad=True) for m in (ember, torch)]
        res = []
        for m, x in zip((ember, torch), xs):
            y = fn(m, x).sum()
            g, = m.autograd.grad(y, x, create_graph=True)
            g2, = m.autograd.grad((g * g).sum(), x)
            res.append(g2.detach().numpy())
        np.testing.assert_allclose(res[0], res[1], rtol=1e-10)


def test_dtypes_preserved():
    for dt in ("int64", "bool", "int32"):
        a = np.arange(6).reshape(2, 3).astype(dt)
        check(lambda m, x: (x.t(), x.flip(0), x.roll(1), m.cat([x, x]), x.repeat(2, 1),
                            x.unsqueeze(0), x.reshape(-1), x.diagonal(), x.tril()), None, a)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.data())
def test_hypothesis_shapes(shape, data):
    x = np.random.default_rng(0).standard_normal(shape)
    nd = len(shape)
    d0 = data.draw(st.integers(-nd, nd - 1))
    d1 = data.draw(st.integers(-nd, nd - 1))
    reps = tuple(data.draw(st.lists(st.integers(0, 3), min_size=nd, max_size=nd + 1)))
    shift = data.draw(st.integers(-5, 5))
    check(lambda m, t: (t.transpose(d0, d1), t.flip(d0), t.roll(shift, d1), t.repeat(*reps),
                        m.cat([t, t], d0), m.stack([t, t], d1), t.unsqueeze(d0).squeeze(d0),
                        t.movedim(d0, d1), t.flatten(min(d0 % nd, d1 % nd), max(d0 % nd, d1 % nd)),
                        t.chunk(2, d0)[0], t.narrow(d1, 0, 1)), None, x, dtypes=("float64",))


# ---- bad input --------------------------------------------------------------------------------
BAD = [
    ("view_bad_size", lambda m, x: x.view(5, 3)),
    ("view_noncontig", lambda m, x: x.t().view(12)),
    ("view_two_neg", lambda m, x: x.view(-1, -1)),
    ("reshape_bad", lambda m, x: x.reshape(5, -1)),
    ("flatten_bad", lambda m, x: x.flatten(1, 0)),
    ("flatten_oob", lambda m, x: x.flatten(0, 2)),
    ("unflatten_bad", lambda m, x: x.unflatten(1, (3, 2))),
    ("squeeze_oob", lambda m, x: x.squeeze(2)),
    ("squeeze_dup", lambda m, x: x.squeeze((0, 0))),
    ("unsqueeze_oob", lambda m, x: x.unsqueeze(3)),
    ("unsqueeze_oob_neg", lambda m, x: x.unsqueeze(-4)),
    ("transpose_oob", lambda m, x: x.transpose(0, 2)),
    ("t_3d", lambda m, x: x.unsqueeze(0).t()),
    ("mT_1d", lambda m, x: x[0].mT),
    ("permute_len", lambda m, x: x.permute(0)),
    ("permute_dup", lambda m, x: x.permute(0, 0)),
    ("movedim_len", lambda m, x: x.movedim((0, 1), (0,))),
    ("movedim_dup", lambda m, x: x.movedim((0, 0), (0, 1))),
    ("expand_bad", lambda m, x: x.expand(3, 5)),
    ("expand_few", lambda m, x: x.expand(4)),
    ("broadcast_tensors_bad", lambda m, x: m.broadcast_tensors(x, m.zeros(5))),
    ("repeat_few", lambda m, x: x.repeat(2)),
    ("repeat_neg", lambda m, x: x.repeat(-1, 2)),
    ("tile_neg", lambda m, x: x.tile((1, -2))),
    ("repeat_interleave_neg", lambda m, x: x.repeat_interleave(-1)),
    ("repeat_interleave_neg_t", lambda m, x: x.repeat_interleave(m.tensor([1, -1, 1]), 0)),
    ("repeat_interleave_len", lambda m, x: x.repeat_interleave(m.tensor([1, 1]), 0)),
    ("repeat_interleave_float", lambda m, x: x.repeat_interleave(m.tensor([1., 1., 1.]), 0)),
    ("flip_dup", lambda m, x: x.flip(0, 0)),
    ("flip_oob", lambda m, x: x.flip(2)),
    ("fliplr_1d", lambda m, x: x[0].fliplr()),
    ("flipud_0d", lambda m, x: x[0, 0].flipud()),
    ("roll_mismatch", lambda m, x: x.roll((1, 2), (0,))),
    ("roll_nodims_tuple", lambda m, x: x.roll((1, 2))),
    ("rot90_same", lambda m, x: x.rot90(1, (0, 0))),
    ("rot90_3dims", lambda m, x: x.rot90(1, (0, 1, 1))),
    ("rot90_1d", lambda m, x: x[0].rot90()),
    ("cat_sizes", lambda m, x: m.cat([x, m.zeros(3, 5)])),
    ("cat_ndim", lambda m, x: m.cat([x, m.zeros(3)])),
    ("cat_empty_list", lambda m, x: m.cat([])),
    ("cat_0d", lambda m, x: m.cat([x[0, 0], x[0, 1]])),
    ("cat_dim_oob", lambda m, x: m.cat([x, x], 2)),
    ("cat_non_tensor", lambda m, x: m.cat([x, 1])),
    ("cat_tensor_arg", lambda m, x: m.cat(x)),
    ("stack_shapes", lambda m, x: m.stack([x, m.zeros(3, 5)])),
    ("stack_empty", lambda m, x: m.stack([])),
    ("stack_dim_oob", lambda m, x: m.stack([x, x], 3)),
    ("split_sum", lambda m, x: x.split([1, 1])),
    ("split_zero", lambda m, x: x.split(0)),
    ("split_neg", lambda m, x: x.split(-1)),
    ("split_neg_list", lambda m, x: x.split([4, -1])),
    ("chunk_zero", lambda m, x: x.chunk(0)),
    ("tensor_split_zero", lambda m, x: x.tensor_split(0)),
    ("unbind_0d", lambda m, x: x[0, 0].unbind()),
    ("unbind_oob", lambda m, x: x.unbind(2)),
    ("narrow_past_end", lambda m, x: x.narrow(1, 3, 2)),
    ("narrow_neg_len", lambda m, x: x.narrow(1, 0, -1)),
    ("narrow_start_oob", lambda m, x: x.narrow(1, 9, 0)),
    ("select_oob", lambda m, x: x.select(1, 5)),
    ("select_0d", lambda m, x: x[0, 0].select(0, 0)),
    ("tril_1d", lambda m, x: x[0].tril()),
    ("triu_1d", lambda m, x: x[0].triu()),
    ("diagonal_same", lambda m, x: x.diagonal(0, 0, 0)),
    ("diagonal_1d", lambda m, x: x[0].diagonal()),
    ("diag_3d", lambda m, x: x.unsqueeze(0).diag()),
    ("diag_0d", lambda m, x: x[0, 0].diag()),
    ("diag_embed_same", lambda m, x: x.diag_embed(0, 0, 0)),
    ("diag_embed_0d", lambda m, x: x[0, 0].diag_embed()),
]


@pytest.mark.parametrize("name,fn", BAD, ids=[b[0] for b in BAD])
def test_bad_input_raises_like_torch(name, fn):
    xe, xt = ember.randn(3, 4), torch.randn(3, 4)
    with pytest.raises(Exception) as et:
        fn(torch, xt)
    with pytest.raises(Exception) as ee:
        fn(ember, xe)
    assert type(ee.value) is type(et.value), (ee.value, et.value)


@pytest.mark.parametrize("fn", [
    lambda m, x: m.cat([x, m.zeros(3, 5)]),
    lambda m, x: m.stack([x, m.zeros(3, 5)]),
    lambda m, x: x.split([1, 1]),
    lambda m, x: x.view(5, 3),
    lambda m, x: x.t().view(12),
    lambda m, x: x.narrow(1, 3, 2),
    lambda m, x: x.expand(3, 5),
])
def test_error_messages_match_torch(fn):
    with pytest.raises(Exception) as et:
        fn(torch, torch.zeros(3, 4))
    with pytest.raises(Exception) as ee:
        fn(ember, ember.zeros(3, 4))
    assert str(ee.value) == str(et.value)
