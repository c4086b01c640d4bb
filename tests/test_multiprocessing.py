"""ember.multiprocessing: shared-memory tensors, queues, spawn, Hogwild."""
import multiprocessing as std_mp

import pytest
import torch.multiprocessing as tmp

import ember
import ember.multiprocessing as mp
from tests import _mp_workers as W


def test_reexports_as_torch():
    assert set(tmp.__all__) <= set(mp.__all__) | {"reducer"}
    assert mp.Process is std_mp.Process and mp.get_context is std_mp.get_context
    assert mp.get_all_sharing_strategies() == tmp.get_all_sharing_strategies()
    assert mp.get_sharing_strategy() == tmp.get_sharing_strategy() == "file_descriptor"
    for m in (mp, tmp):
        with pytest.raises(AssertionError, match="invalid sharing strategy 'x'"):
            m.set_sharing_strategy("x")


def test_share_memory_in_place_and_is_shared():
    t = ember.arange(6.0).reshape(2, 3)
    assert not t.is_shared()
    assert t.share_memory_() is t and t.is_shared()
    assert t.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    before = t._data
    t.share_memory_()  # already shared: nothing moves
    assert t._data is before
    assert t[1].is_shared()  # a view of shared memory is shared
    m = ember.nn.Linear(3, 2)
    assert m.share_memory() is m and all(p.is_shared() for p in m.parameters())
    assert not (t + 1).is_shared()


def test_queue_passes_shared_memory_both_ways():
    ctx = mp.get_context("fork")
    q_in, q_out = ctx.Queue(), ctx.Queue()
    t = ember.ones(1000)
    p = ctx.Process(target=W.echo_double, args=(q_in, q_out))
    p.start()
    q_in.put(t)
    assert q_out.get(timeout=60) == 2000.0
    p.join(60)
    assert t.is_shared() and t.sum().item() == 2000.0  # the child's write is ours


def test_spawn_hogwild_workers_update_one_copy():
    shared = ember.zeros(3).share_memory_()
    lock = std_mp.get_context("spawn").Lock()
    mp.spawn(W.add_rank, args=(shared, lock), nprocs=2)
    assert shared.tolist() == [30.0, 30.0, 30.0]  # 10 * (1 + 2)


def test_hogwild_sgd_on_shared_model_lowers_loss():
    ember.manual_seed(0)
    model = ember.nn.Linear(4, 1)
    model.share_memory()
    x = ember.randn(64, 4)
    loss0 = ember.nn.functional.mse_loss(model(x), x.sum(1, keepdim=True)).item()
    w0 = model.weight.detach().clone()
    mp.start_processes(W.sgd_worker, args=(model, 20), nprocs=2, start_method="fork")
    loss1 = ember.nn.functional.mse_loss(model(x), x.sum(1, keepdim=True)).item()
    assert not ember.equal(model.weight, w0) and loss1 < loss0 / 4


def test_spawn_forwards_child_exception():
    with pytest.raises(mp.ProcessRaisedException, match="ValueError: boom from 1") as info:
        mp.spawn(W.raise_in_child, nprocs=2)
    assert info.value.error_index == 1
    with pytest.raises(mp.ProcessExitedException, match="terminated with exit code 3") as info:
        mp.start_processes(W.exit_in_child, args=(3,), nprocs=1, start_method="fork")
    assert info.value.exit_code == 3


def test_spawn_join_false_returns_context_and_warns_for_other_methods():
    ctx = mp.start_processes(W.exit_in_child, args=(0,), nprocs=2, join=False,
                             start_method="fork")
    assert len(ctx.pids()) == 2
    while not ctx.join():
        pass
    with pytest.warns(FutureWarning, match="only supports start_method=spawn"):
        mp.spawn(W.exit_in_child, args=(0,), nprocs=1, start_method="fork")


def test_non_leaf_requiring_grad_refused_as_torch():
    from multiprocessing.reduction import ForkingPickler
    x = ember.ones(2, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="Cowardly refusing to serialize non-leaf tensor"):
        ForkingPickler.dumps(x)


def test_adam_updates_stay_in_shared_memory():
    model = ember.nn.Sequential(ember.nn.Linear(4, 3), ember.nn.Linear(3, 1))
    model.share_memory()
    before = [p.detach().clone() for p in model.parameters()]
    mp.start_processes(W.adam_worker, args=(model, 3), nprocs=1, start_method="fork")
    assert all(p.is_shared() for p in model.parameters())
    assert all(not ember.equal(p, b) for p, b in zip(model.parameters(), before))


def test_a_view_put_on_a_queue_keeps_its_base():
    from multiprocessing.reduction import ForkingPickler
    base = ember.arange(6.0)
    view = base[2:4]
    got = ForkingPickler.loads(ForkingPickler.dumps(view))
    assert got.tolist() == [2.0, 3.0] and got.is_shared()
    base.add_(1)  # the sender's view still follows its base
    assert view.tolist() == [3.0, 4.0] and not base.is_shared()
