"""One worker of tests/test_distributed.py's RPC job (2 ranks under embrun): rank 0 is the
parameter server "ps", rank 1 the trainer; every check is recorded as (passed, message)."""
import json
import os
import sys
import traceback

import numpy as np

import ember
import ember.distributed.autograd as dist_autograd
import ember.distributed.rpc as rpc
import ember.nn as nn
import ember.nn.functional as F
from ember.distributed.optim import DistributedOptimizer

RESULTS = {}


def check(name, ok, msg=""):
    RESULTS[name] = [bool(ok), "" if ok else str(msg)]


def add(a, b):
    return a + b


def fail(text):
    raise ValueError(text)


def sleep_then(x, seconds):
    import time
    time.sleep(seconds)
    return x


def whoami():
    return rpc.get_worker_info().name


class ParameterServer:
    """Holds the model's second layer; the trainer's forward goes through it by RPC."""

    def __init__(self):
        ember.manual_seed(0)
        self.fc = nn.Linear(8, 3)

    def forward(self, h):
        return self.fc(h)

    def param_rrefs(self):
        return [rpc.RRef(p) for p in self.fc.parameters()]

    def weights(self):
        return [p.detach().clone() for p in self.fc.parameters()]


HELD = []  # on "ps": RRefs a user sent it


def owned_refs():
    """On the owner: {rref id: count} of the values it keeps for RRefs."""
    from ember.distributed.rpc import api
    with api._RREF_LOCK:
        return {rid: slot.refs for rid, slot in api._OWNED.items()}


def make_rref(value):
    return rpc.RRef(value)  # the owner's own RRef dies on return; the caller's copy remains


def hold(rref):
    HELD.append(rref)
    return rref.is_owner()


def drop():
    HELD.clear()


def _eventually(pred, seconds=20.0):
    """Whether ``pred()`` holds within ``seconds`` (a user's delete reaches the owner by a
    message, after the del)."""
    import time
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


def rref_counting(rank):
    """NOTE [ RRef reference counting ]: "ps" keeps a value exactly while an RRef to it lives."""
    if rank != 1:
        return

    def count(rid):
        return rpc.rpc_sync("ps", owned_refs).get(rid)

    def freed(rid):
        return _eventually(lambda: count(rid) is None)

    # remote(): the owner drops the value once the caller's only RRef is deleted
    r = rpc.remote("ps", list, args=([1, 2],))
    rid = r._rid
    check("rref_count_remote_held", r.to_here() == [1, 2] and count(rid) == 1, count(rid))
    del r
    check("rref_count_remote_freed", freed(rid))
    # an RRef the owner made and returned: its own is gone, the caller's keeps the value
    r = rpc.rpc_sync("ps", make_rref, args=([3],))
    rid = r._rid
    check("rref_count_returned_held", r.to_here() == [3] and count(rid) == 1, count(rid))
    del r
    check("rref_count_returned_freed", freed(rid))
    # sent back to its owner, a copy is an owner RRef that keeps the value after the user's
    r = rpc.remote("ps", list, args=([4],))
    rid = r._rid
    check("rref_count_copy_at_owner", rpc.rpc_sync("ps", hold, args=(r,)) is True)
    check("rref_count_copy_counted", count(rid) == 2, count(rid))
    del r
    check("rref_count_copy_keeps", _eventually(lambda: count(rid) == 1), count(rid))
    rpc.rpc_sync("ps", drop)
    check("rref_count_copy_freed", freed(rid))
    # proxies name the value by id: no count left over, and the remote() result is freed
    r = rpc.remote("ps", list, args=([5, 6],))
    rid = r._rid
    n = r.remote().__len__()
    nrid = n._rid
    ok = (r.rpc_sync().count(5) == 1 and r.rpc_async().index(6).wait() == 1
          and n.to_here() == 2)
    del n
    check("rref_count_proxy_calls", ok and count(rid) == 1, count(rid))
    check("rref_count_proxy_result_freed", freed(nrid))
    del r
    check("rref_count_proxy_freed", freed(rid))
    # a user's RRef copied within the user (kept in a list) is still one RRef object
    r = rpc.remote("ps", list, args=([7],))
    rid = r._rid
    keep = [r]
    del r
    check("rref_count_alias_held", count(rid) == 1 and keep[0].to_here() == [7], count(rid))
    keep.clear()
    check("rref_count_alias_freed", freed(rid))


def api_checks(rank):
    other = "trainer" if rank == 0 else "ps"
    check("rpc_sync_add", ember.equal(rpc.rpc_sync(other, add, args=(ember.ones(2), 3)),
                                      ember.full((2,), 4.0)))
    fut = rpc.rpc_async(other, add, args=(2, 5))
    check("rpc_async_future", fut.wait() == 7 and fut.done())
    check("rpc_kwargs", rpc.rpc_sync(other, add, kwargs={"a": "x", "b": "y"}) == "xy")
    check("rpc_runs_remotely", rpc.rpc_sync(other, whoami) == other)
    try:
        rpc.rpc_sync(other, fail, args=("remote boom",))
        check("rpc_remote_exception", False, "no error")
    except ValueError as e:
        check("rpc_remote_exception", "remote boom" in str(e), e)
    info = rpc.get_worker_info(other)
    check("worker_info", info.name == other and info.id == 1 - rank
          and rpc.get_worker_info().id == rank, info)
    rref = rpc.remote(other, add, args=(ember.ones(3), 1))
    check("remote_to_here", ember.equal(rref.to_here(), ember.full((3,), 2.0)))
    check("remote_owner", rref.owner() == info and rref.owner_name() == other
          and not rref.is_owner())
    try:
        rref.local_value()
        check("local_value_not_owner", False, "no error")
    except RuntimeError as e:
        check("local_value_not_owner", "owner" in str(e), e)
    mine = rpc.RRef([1, 2])
    check("local_rref", mine.is_owner() and mine.local_value() == [1, 2]
          and mine.to_here() == [1, 2])
    lst = rpc.remote(other, list, args=([3, 1, 2],))
    check("rref_proxy_sync", lst.rpc_sync().count(1) == 1)
    check("rref_proxy_async", lst.rpc_async().index(2).wait() == 2)
    check("rref_proxy_remote", lst.remote().__len__().to_here() == 3)
    try:
        rpc.rpc_sync(other, sleep_then, args=(1, 2.0), timeout=0.2)
        check("rpc_timeout", False, "no error")
    except RuntimeError as e:
        check("rpc_timeout", "RPC ran for more than set timeout (0.2 seconds)" in str(e), e)
    check("rpc_after_timeout", rpc.rpc_sync(other, sleep_then, args=(5, 0.0)) == 5)


def parameter_server(rank):
    """The trainer's first layer is local, the second lives on "ps": 5 steps of distributed
    autograd + DistributedOptimizer(SGD) equal 5 local steps of the same two-layer model."""
    if rank != 1:
        return
    gen = np.random.default_rng(0)
    ps = rpc.remote("ps", ParameterServer)
    ember.manual_seed(1)
    fc1 = nn.Linear(4, 8)
    ember.manual_seed(0)
    ref2 = nn.Linear(8, 3)  # the same weights as the server's
    ref1 = nn.Linear(4, 8)
    ref1.load_state_dict(fc1.state_dict())
    params = [rpc.RRef(p) for p in fc1.parameters()] + ps.rpc_sync().param_rrefs()
    opt = DistributedOptimizer(ember.optim.SGD, params, lr=0.1, momentum=0.9)
    ref_opt = ember.optim.SGD(list(ref1.parameters()) + list(ref2.parameters()), lr=0.1,
                              momentum=0.9)
    for step in range(5):
        x = ember.tensor(gen.standard_normal((6, 4)).astype(np.float32))
        y = ember.tensor(gen.standard_normal((6, 3)).astype(np.float32))
        with dist_autograd.context() as cid:
            out = ps.rpc_sync().forward(F.relu(fc1(x)))
            loss = F.mse_loss(out, y)
            dist_autograd.backward(cid, [loss])
            grads = dist_autograd.get_gradients(cid)
            if step == 0:
                check("dist_grads_local_only", set(map(id, grads)) == set(
                    map(id, fc1.parameters())) and fc1.weight.grad is None, list(grads))
            opt.step(cid)
        ref_opt.zero_grad()
        F.mse_loss(ref2(F.relu(ref1(x))), y).backward()
        ref_opt.step()
        if step == 0:
            check("dist_grad_fc1", np.allclose(grads[fc1.weight].numpy(),
                                               ref1.weight.grad.numpy(), rtol=1e-5, atol=1e-7))
    for name, got, want in zip(("fc1.weight", "fc1.bias"), fc1.parameters(), ref1.parameters()):
        check(f"ps_{name}", np.allclose(got.detach().numpy(), want.detach().numpy(),
                                        rtol=1e-5, atol=1e-7))
    served = ps.rpc_sync().weights()
    for name, got, want in zip(("fc2.weight", "fc2.bias"), served, ref2.parameters()):
        check(f"ps_{name}", np.allclose(got.numpy(), want.detach().numpy(), rtol=1e-5,
                                        atol=1e-7))
    try:
        dist_autograd.get_gradients(cid)
        check("context_released", False, "no error")
    except RuntimeError as e:
        check("context_released", "Could not find autograd context" in str(e), e)


def main():
    out_dir = sys.argv[1]
    rank = int(os.environ["RANK"])
    opts = rpc.TensorPipeRpcBackendOptions(num_worker_threads=4, rpc_timeout=60)
    rpc.init_rpc("ps" if rank == 0 else "trainer", rank=rank, world_size=2,
                 rpc_backend_options=opts)
    for name, fn in (("api", api_checks), ("parameter_server", parameter_server),
                     ("rref_counting", rref_counting)):
        try:
            fn(rank)
        except Exception:
            RESULTS[name] = [False, traceback.format_exc()]
    rpc.shutdown()
    with open(os.path.join(out_dir, f"rpc{rank}.json"), "w") as f:
        json.dump(RESULTS, f)


if __name__ == "__main__":
    main()
