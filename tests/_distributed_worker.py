"""One rank of tests/test_distributed.py's job: runs every check, writes rank<N>.json.

Launched as ``python -m ember.distributed.run --nproc-per-node 2 tests/_distributed_worker.py
OUT_DIR``; each check compares ember.distributed's result with a NumPy reference computed
locally from what every rank is known to hold, and records (passed, message).
"""
import json
import os
import sys
import traceback

import numpy as np

import ember
import ember.distributed as dist
import ember.nn as nn
import ember.nn.functional as F

RESULTS = {}


def check(name, got, expected, rtol=0.0, atol=0.0):
    got = np.asarray(got.detach().numpy() if isinstance(got, ember.Tensor) else got)
    expected = np.asarray(expected)
    if expected.dtype.kind in "fciub":
        ok = got.shape == expected.shape and got.dtype == expected.dtype and np.allclose(
            got, expected, rtol=rtol, atol=atol)
    else:
        ok = np.array_equal(got, expected)
    RESULTS[name] = [bool(ok), "" if ok else f"got {got!r} expected {expected!r}"]


def run(name, fn):
    try:
        fn()
    except Exception:
        RESULTS[name] = [False, traceback.format_exc()]


def value(rank, dtype, shape=(3, 4)):
    """What rank ``rank`` holds: distinct per rank, exact in every dtype."""
    return (np.arange(np.prod(shape)).reshape(shape) + 10 * rank + 1).astype(dtype)


def noncontig(a):
    """An ember tensor with ``a``'s values that is a strided (transposed) view."""
    return ember.tensor(np.ascontiguousarray(a.T)).t()


def collectives(rank, world):
    for dt in ("float32", "float64", "int64"):
        alls = [value(r, dt) for r in range(world)]
        for label, make in (("contig", ember.tensor), ("strided", noncontig)):
            key = f"{dt}_{label}"
            for opname, ref in (("SUM", np.sum), ("PRODUCT", np.prod), ("MIN", np.min),
                                ("MAX", np.max)):
                t = make(alls[rank])
                dist.all_reduce(t, op=getattr(dist.ReduceOp, opname))
                check(f"all_reduce_{opname}_{key}", t,
                      ref(np.stack(alls), axis=0).astype(dt))
            t = make(alls[rank])
            dist.all_reduce(t, op=dist.ReduceOp.AVG)
            avg = np.stack(alls).sum(0)
            avg = avg / world if dt != "int64" else avg // world
            check(f"all_reduce_AVG_{key}", t, avg.astype(dt), rtol=1e-6)
            t = make(alls[rank])
            work = dist.all_reduce(t, async_op=True)
            work.wait()
            check(f"all_reduce_async_{key}", t, np.stack(alls).sum(0).astype(dt))
            check(f"all_reduce_async_done_{key}", work.is_completed(), True)
            t = make(alls[rank])
            dist.broadcast(t, src=1)
            check(f"broadcast_{key}", t, alls[1])
            outs = [make(np.zeros((3, 4), dt)) for _ in range(world)]
            dist.all_gather(outs, make(alls[rank]))
            for r in range(world):
                check(f"all_gather_{r}_{key}", outs[r], alls[r])
            t = make(alls[rank])
            dist.reduce(t, dst=0)
            check(f"reduce_{key}", t, np.stack(alls).sum(0).astype(dt) if rank == 0
                  else alls[rank])
        big = ember.zeros(world * 3, 4, dtype=getattr(ember, dt))
        dist.all_gather_into_tensor(big, noncontig(value(rank, dt)))
        check(f"all_gather_into_tensor_{dt}", big, np.concatenate(
            [value(r, dt) for r in range(world)]))
        stacked = ember.zeros(world, 3, 4, dtype=getattr(ember, dt))
        dist.all_gather_into_tensor(stacked, ember.tensor(value(rank, dt)))
        check(f"all_gather_into_tensor_stack_{dt}", stacked,
              np.stack([value(r, dt) for r in range(world)]))
        # rank r contributes value(r*world + i) as its i-th input
        ins = [noncontig(value(rank * world + i, dt)) for i in range(world)]
        out = noncontig(np.zeros((3, 4), dt))
        dist.reduce_scatter(out, ins)
        check(f"reduce_scatter_{dt}", out,
              sum(value(r * world + rank, dt) for r in range(world)).astype(dt))
        full = ember.tensor(np.concatenate([value(rank * world + i, dt) for i in range(world)]))
        out = ember.zeros(3, 4, dtype=getattr(ember, dt))
        dist.reduce_scatter_tensor(out, full)
        check(f"reduce_scatter_tensor_{dt}", out,
              sum(value(r * world + rank, dt) for r in range(world)).astype(dt))
        glist = [ember.zeros(3, 4, dtype=getattr(ember, dt)) for _ in range(world)]
        dist.gather(noncontig(value(rank, dt)), glist if rank == 1 else None, dst=1)
        if rank == 1:
            for r in range(world):
                check(f"gather_{r}_{dt}", glist[r], value(r, dt))
        out = ember.zeros(3, 4, dtype=getattr(ember, dt))
        slist = [noncontig(value(100 + r, dt)) for r in range(world)] if rank == 0 else None
        dist.scatter(out, slist, src=0)
        check(f"scatter_{dt}", out, value(100 + rank, dt))
        inp = ember.tensor(np.concatenate([value(rank * world + i, dt, (2, 3))
                                           for i in range(world)]))
        out = ember.zeros(2 * world, 3, dtype=getattr(ember, dt))
        dist.all_to_all_single(out, inp)
        check(f"all_to_all_single_{dt}", out, np.concatenate(
            [value(r * world + rank, dt, (2, 3)) for r in range(world)]))
        outs = [ember.zeros(2, 3, dtype=getattr(ember, dt)) for _ in range(world)]
        dist.all_to_all(outs, [ember.tensor(value(rank * world + i, dt, (2, 3)))
                               for i in range(world)])
        for r in range(world):
            check(f"all_to_all_{r}_{dt}", outs[r], value(r * world + rank, dt, (2, 3)))
    # bool and bfloat16 go through a widened buffer
    b = ember.tensor([rank == 0, False, True])
    dist.all_reduce(b)
    check("all_reduce_bool", b, np.array([True, False, True]))
    h = ember.tensor([1.5, 2.0], dtype=ember.bfloat16) * (rank + 1)
    dist.all_reduce(h)
    check("all_reduce_bfloat16", h.float(), np.array([4.5, 6.0], np.float32))
    s = ember.tensor(float(rank + 1))
    dist.all_reduce(s)
    check("all_reduce_0d", s, np.array(3.0, np.float32))


def point_to_point(rank, world):
    peer = 1 - rank
    if rank == 0:
        dist.send(noncontig(value(7, "float32")), dst=1)
        t = ember.zeros(3, 4)
        sender = dist.recv(t)  # any source
        check("recv_any_sender", sender, 1)
        check("recv_any", t, value(8, "float32"))
    else:
        t = ember.zeros(3, 4)
        sender = dist.recv(t, src=0)
        check("recv_sender", sender, 0)
        check("send_recv", t, value(7, "float32"))
        dist.send(ember.tensor(value(8, "float32")), dst=0)
    out = ember.zeros(3, 4, dtype=ember.int64)
    reqs = [dist.isend(ember.tensor(value(rank, "int64")), dst=peer, tag=5),
            dist.irecv(out, src=peer, tag=5)]
    for w in reqs:
        w.wait()
    check("isend_irecv", out, value(peer, "int64"))
    # Work.wait(timeout): nothing sent yet, so it times out; the later send completes it
    from datetime import timedelta
    if rank == 0:
        late = ember.zeros(2)
        work = dist.irecv(late, src=1, tag=9)
        try:
            work.wait(timeout=timedelta(milliseconds=100))
            check("wait_timeout", "no error", "RuntimeError")
        except RuntimeError as e:
            check("wait_timeout", "timed out" in str(e), True)
        check("wait_timeout_pending", work.is_completed(), False)
        dist.barrier()
        work.wait()
        check("wait_after_timeout", late, np.array([4.0, 2.0], np.float32))
    else:
        dist.barrier()
        dist.send(ember.tensor([4.0, 2.0]), dst=0, tag=9)
    objs = [None] * world
    dist.all_gather_object(objs, {"rank": rank, "name": f"r{rank}"})
    check("all_gather_object", [o["rank"] for o in objs], np.arange(world))
    lst = [rank, "x", {"k": rank}] if rank == 1 else [None, None, None]
    dist.broadcast_object_list(lst, src=1)
    check("broadcast_object_list", [lst[0], lst[2]["k"]], np.array([1, 1]))
    dist.barrier()
    dist.barrier(async_op=True).wait()
    solo = dist.new_group([1])
    if rank == 1:
        check("new_group_rank", dist.get_rank(solo), 0)
        check("new_group_size", dist.get_world_size(solo), 1)
        t = ember.tensor([5.0])
        dist.all_reduce(t, group=solo)
        check("new_group_all_reduce", t, np.array([5.0], np.float32))
    else:
        check("new_group_non_member", solo == dist.GroupMember.NON_GROUP_MEMBER, True)
        check("new_group_non_member_rank", dist.get_rank(solo), -1)
    both = dist.new_group([1, 0])
    t = ember.tensor([float(rank)])
    dist.broadcast(t, src=1, group=both)
    check("new_group_broadcast", t, np.array([1.0], np.float32))
    dist.destroy_process_group(both)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


class Branchy(nn.Module):
    """``b`` is used only when asked; ``never`` is used by no rank."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 2)
        self.b = nn.Linear(4, 2)
        self.never = nn.Linear(4, 2)

    def forward(self, x, use_b):
        y = self.a(x)
        return y + self.b(x) if use_b else y


def ddp(rank, world):
    from ember.nn.parallel import DistributedDataParallel as DDP
    gen = np.random.default_rng(0)
    X = gen.standard_normal((64, 6)).astype(np.float32)
    Y = gen.integers(0, 3, 64)
    for opt_name in ("sgd", "adam"):
        ember.manual_seed(rank)  # different on each rank: DDP must broadcast rank 0's
        model = MLP()
        net = DDP(model, bucket_cap_mb=0.0002)  # ~210 bytes: two buckets once rebuilt
        ref = MLP()
        ref.load_state_dict(model.state_dict())
        # as PyTorch: one bucket until the first backward has shown the gradients' order
        check(f"ddp_buckets_{opt_name}_initial", len(net._buckets), 1)
        make = ((lambda ps: ember.optim.SGD(ps, lr=0.1, momentum=0.9)) if opt_name == "sgd"
                else (lambda ps: ember.optim.Adam(ps, lr=1e-2)))
        opt, ref_opt = make(net.parameters()), make(ref.parameters())
        half = 64 // world
        xs = ember.tensor(X[rank * half:(rank + 1) * half])
        ys = ember.tensor(Y[rank * half:(rank + 1) * half])
        for step in range(20):
            opt.zero_grad()
            if step == 3:
                net(xs)  # a forward with no backward (e.g. for logging) is allowed
            F.cross_entropy(net(xs), ys).backward()
            opt.step()
            ref_opt.zero_grad()
            F.cross_entropy(ref(ember.tensor(X)), ember.tensor(Y)).backward()
            ref_opt.step()
        for (k, p), q in zip(model.state_dict().items(), ref.state_dict().values()):
            check(f"ddp_equiv_{opt_name}_{k}", p, q.numpy(), rtol=1e-5, atol=1e-6)
        # rebuilt in gradient-ready order (fc2 then fc1) by PyTorch's rule: a bucket closes
        # at >= 210 bytes, so fc2's bias (12 B), weight (192 B) and fc1's bias (64 B) share one
        check(f"ddp_buckets_{opt_name}_rebuilt", str([b.indices for b in net._buckets]),
              "[[3, 2, 1], [0]]")
        check(f"ddp_buckets_{opt_name}_logged", net._get_ddp_logging_data()[
            "has_rebuilt_buckets"], 1)
    # PyTorch's DDP_SET_LAST_BUCKET_CAP=1: the rebuilt buckets are filled from the last
    # gradient back (fc1.weight, 384 B, alone; then fc1.bias + fc2.weight), so what is
    # left over (fc2.bias) is the first bucket
    os.environ["DDP_SET_LAST_BUCKET_CAP"] = "1"
    try:
        net = DDP(MLP(), bucket_cap_mb=0.0002)
        for _ in range(2):
            F.cross_entropy(net(xs), ys).backward()
    finally:
        del os.environ["DDP_SET_LAST_BUCKET_CAP"]
    check("ddp_buckets_last_cap", str([b.indices for b in net._buckets]), "[[3], [1, 2], [0]]")
    # progress tests (NOTE [ DDP progress ]) move data only: the gradients are bit-identical
    # with none of them
    import ember.nn.parallel.distributed as ddp_module
    grads, default_tests = {}, ddp_module._TESTS_PER_POKE
    for tests in (default_tests, 0):
        ddp_module._TESTS_PER_POKE = tests
        ember.manual_seed(0)
        model = MLP()
        net = DDP(model, bucket_cap_mb=1e-5)  # one parameter per bucket once rebuilt
        for _ in range(3):
            model.zero_grad()
            F.cross_entropy(net(xs), ys).backward()
        grads[tests] = [p.grad.numpy().copy() for p in model.parameters()]
    ddp_module._TESTS_PER_POKE = default_tests
    check("ddp_pokes_same_buckets", len(net._buckets), 4)
    check("ddp_pokes_same_grads", all(np.array_equal(a, b) for a, b in zip(*grads.values())),
          True)
    # overlap: each bucket's all-reduce starts while backward still owes the later grads
    ember.manual_seed(0)
    model = MLP()
    net = DDP(model, bucket_cap_mb=1e-5)
    F.cross_entropy(net(xs), ys).backward()  # records the order; the next forward rebuilds
    model.zero_grad()
    missing, all_reduce = [], ddp_module._all_reduce

    def spy(t, *args, **kwargs):
        missing.append(sum(p.grad is None for p in model.parameters()))
        return all_reduce(t, *args, **kwargs)

    ddp_module._all_reduce = spy
    try:
        F.cross_entropy(net(xs), ys).backward()
    finally:
        ddp_module._all_reduce = all_reduce
    check("ddp_overlap_launches", missing, np.array([3, 2, 1, 0]))
    sd = net.state_dict()
    check("ddp_state_dict_prefix", sorted(sd), sorted("module." + k for k in model.state_dict()))
    check("ddp_module_attr", net.module is model, True)

    # no_sync: two local micro-batches then a synced one == the sum over the global batch
    ember.manual_seed(0)
    model = MLP()
    net = DDP(model)
    ref = MLP()
    ref.load_state_dict(model.state_dict())
    parts = [X[i * 8:(i + 1) * 8] for i in range(6)]
    tgts = [Y[i * 8:(i + 1) * 8] for i in range(6)]
    mine = [3 * rank, 3 * rank + 1, 3 * rank + 2]
    with net.no_sync():
        for i in mine[:2]:
            F.cross_entropy(net(ember.tensor(parts[i])), ember.tensor(tgts[i])).backward()
    local = model.fc1.weight.grad.numpy().copy()
    F.cross_entropy(net(ember.tensor(parts[mine[2]])), ember.tensor(tgts[mine[2]])).backward()
    for i in range(6):
        F.cross_entropy(ref(ember.tensor(parts[i])), ember.tensor(tgts[i])).backward()
    check("ddp_no_sync_local_differs", not np.allclose(local, ref.fc1.weight.grad.numpy() / 2),
          True)
    for (k, p), q in zip(model.named_parameters(), ref.parameters()):
        check(f"ddp_no_sync_{k}", p.grad, (q.grad / world).numpy(), rtol=1e-5, atol=1e-6)

    # find_unused_parameters: b is used on rank 0 only, never by nobody
    ember.manual_seed(0)
    model = Branchy()
    net = DDP(model, find_unused_parameters=True)
    x = ember.tensor(value(rank, "float32", (5, 4)) / 10)
    net(x, use_b=(rank == 0)).sum().backward()
    xb = ember.tensor(value(0, "float32", (5, 4)) / 10)
    check("ddp_unused_b", model.b.weight.grad,
          (ember.ones(5, 2).t() @ xb).numpy() / world, rtol=1e-6)
    xa = ember.tensor(np.concatenate([value(r, "float32", (5, 4)) for r in range(world)]) / 10)
    check("ddp_unused_a", model.a.weight.grad,
          (ember.ones(5 * world, 2).t() @ xa).numpy() / world, rtol=1e-5)
    check("ddp_unused_never", model.never.weight.grad is None, True)
    # and the error PyTorch gives when unused parameters are not declared
    model = Branchy()
    net = DDP(model)
    net(x, use_b=True).sum().backward()
    try:
        net(x, use_b=True)
        check("ddp_unused_error", "no error", "RuntimeError")
    except RuntimeError as e:
        check("ddp_unused_error", "Expected to have finished reduction" in str(e), True)

    # the sampler picks rank and world size from the process group
    from ember.utils.data.distributed import DistributedSampler
    s = DistributedSampler(range(10), shuffle=False)
    check("sampler_from_group", list(s), np.arange(rank, 10, world))


class CNN(nn.Module):
    """conv -> batch norm -> relu -> max-pool -> linear, on 1x8x8 images (no conv bias: its
    true gradient under batch norm is 0, and Adam would amplify the rounding noise)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        return self.fc(F.max_pool2d(F.relu(self.bn(self.conv(x))), 2).flatten(1))


class LSTMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(5, 8, batch_first=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


def _optimizer(name, params):
    if name == "sgd":
        return ember.optim.SGD(params, lr=0.05, momentum=0.9)
    return ember.optim.Adam(params, lr=1e-2)


def ddp_models(rank, world):
    """2 ranks x 32 == 1 process x 64 after 20 SGD-momentum and 20 Adam steps.

    With plain BatchNorm each rank normalises its own half, so the 1-process reference
    averages the losses of the two halves run separately; with SyncBatchNorm the statistics
    are the whole batch's and the reference is the ordinary batch of 64."""
    from ember.nn.parallel import DistributedDataParallel as DDP
    gen = np.random.default_rng(1)
    half = 64 // world
    data = {"cnn": gen.standard_normal((64, 1, 8, 8)).astype(np.float32),
            "lstm": gen.standard_normal((64, 6, 5)).astype(np.float32)}
    Y = ember.tensor(gen.integers(0, 3, 64))
    for kind, make, sync in (("cnn_bn", CNN, False), ("cnn_syncbn", CNN, True),
                             ("lstm", LSTMNet, False)):
        X = ember.tensor(data["lstm" if kind == "lstm" else "cnn"])
        for opt_name in ("sgd", "adam"):
            ember.manual_seed(10 + rank)  # differs per rank: DDP broadcasts rank 0's
            model = make()
            ref = make()
            ref.load_state_dict(model.state_dict())
            if sync:
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
                check(f"ddp_model_{kind}_converted", type(model.bn).__name__, "SyncBatchNorm")
            net = DDP(model)
            ref.load_state_dict(model.state_dict())  # rank 0's weights after the broadcast
            opt, ref_opt = _optimizer(opt_name, net.parameters()), _optimizer(
                opt_name, ref.parameters())
            mine = slice(rank * half, (rank + 1) * half)
            for _ in range(20):
                opt.zero_grad()
                F.cross_entropy(net(X[mine]), Y[mine]).backward()
                opt.step()
                ref_opt.zero_grad()
                if kind == "cnn_bn":
                    parts = [slice(r * half, (r + 1) * half) for r in range(world)]
                    loss = sum(F.cross_entropy(ref(X[p]), Y[p]) for p in parts) / world
                else:
                    loss = F.cross_entropy(ref(X), Y)
                loss.backward()
                ref_opt.step()
            got = model.state_dict()
            for k, q in ref.state_dict().items():
                if kind == "cnn_bn" and k.startswith("bn.") and not k.endswith(("weight", "bias")):
                    continue  # each rank's running statistics are its own half's
                check(f"ddp_model_{kind}_{opt_name}_{k}", got[k], q.numpy(), rtol=1e-5,
                      atol=1e-6)


def sync_batchnorm(rank, world):
    """SyncBatchNorm on a rank's half == BatchNorm on the whole batch: outputs, the input's
    gradient (of every rank's loss), the affine gradients and the running statistics."""
    gen = np.random.default_rng(2)
    X = gen.standard_normal((8, 3, 5)).astype(np.float64) * 2 + 1
    G = gen.standard_normal((8, 3, 5))
    half = 8 // world
    mine = slice(rank * half, (rank + 1) * half)
    sbn = nn.SyncBatchNorm(3, momentum=0.3).double()
    bn = nn.BatchNorm1d(3, momentum=0.3).double()
    with ember.no_grad():
        for m in (sbn, bn):
            m.weight.copy_(ember.tensor([1.0, 2.0, -0.5]))
            m.bias.copy_(ember.tensor([0.1, 0.0, 0.3]))
    x = ember.tensor(X[mine], requires_grad=True)
    y = sbn(x)
    (y * ember.tensor(G[mine])).sum().backward()
    xr = ember.tensor(X, requires_grad=True)
    yr = bn(xr)
    (yr * ember.tensor(G)).sum().backward()
    check("sync_bn_out", y, yr.detach().numpy()[mine], rtol=1e-12, atol=1e-12)
    check("sync_bn_grad_input", x.grad, xr.grad.numpy()[mine], rtol=1e-10, atol=1e-12)
    # affine gradients are each rank's own (DDP averages them): they sum to the reference's
    for name in ("weight", "bias"):
        g = getattr(sbn, name).grad.clone()
        dist.all_reduce(g)
        check(f"sync_bn_grad_{name}", g, getattr(bn, name).grad.numpy(), rtol=1e-10)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        check(f"sync_bn_{name}", getattr(sbn, name), getattr(bn, name).numpy(), rtol=1e-12)
    sbn.eval()
    check("sync_bn_eval", sbn(x), bn.eval()(xr).detach().numpy()[mine], rtol=1e-12)


def differentiable_collectives(rank, world):
    """ember.distributed.nn.functional: values, and gradients of sum_r (c_r * out_r)."""
    from ember.distributed.nn import functional as DF
    x = ember.tensor(value(rank, "float64", (2, 3)), requires_grad=True)
    (DF.all_reduce(x) * (rank + 1)).sum().backward()
    check("dnn_all_reduce_grad", x.grad, np.full((2, 3), sum(range(1, world + 1)), np.float64))
    x = ember.tensor(value(rank, "float64", (2, 3)), requires_grad=True)
    outs = DF.all_gather(x)
    for r in range(world):
        check(f"dnn_all_gather_{r}", outs[r], value(r, "float64", (2, 3)))
    # rank q's loss weights gathered slot r by (q + 1) * (r + 1): x_r's gradient sums over q
    sum((o * ((rank + 1) * (r + 1))).sum() for r, o in enumerate(outs)).backward()
    check("dnn_all_gather_grad", x.grad,
          np.full((2, 3), (rank + 1) * sum(range(1, world + 1)), np.float64))
    x = ember.tensor(value(rank, "float64", (2, 3)), requires_grad=True)
    y = DF.broadcast(x, src=1)
    check("dnn_broadcast", y, value(1, "float64", (2, 3)))
    (y * (rank + 1)).sum().backward()
    check("dnn_broadcast_grad", x.grad, np.full((2, 3), sum(range(1, world + 1)) if rank == 1
                                                 else 0.0, np.float64))


def join(rank, world):
    """Uneven inputs: rank r has 5 - 2r batches; ranks that ran out shadow the all-reduces.

    Reference: one process steps with the mean gradient over the ranks still training,
    divided by the initial world size (or by the ranks still training)."""
    from ember.nn.parallel import DistributedDataParallel as DDP
    gen = np.random.default_rng(3)
    counts = [5 - 2 * r for r in range(world)]
    batches = [[(gen.standard_normal((4, 6)).astype(np.float32), gen.integers(0, 3, 4))
                for _ in range(counts[r])] for r in range(world)]
    for divide in (True, False):
        ember.manual_seed(0)
        model = MLP()
        model.register_buffer("seen", ember.zeros(1))
        net = DDP(model)
        ref = MLP()
        ref.load_state_dict(model.state_dict(), strict=False)
        opt = ember.optim.SGD(net.parameters(), lr=0.1)
        ref_opt = ember.optim.SGD(ref.parameters(), lr=0.1)
        with net.join(divide_by_initial_world_size=divide):
            for x, y in batches[rank]:
                opt.zero_grad()
                F.cross_entropy(net(ember.tensor(x)), ember.tensor(y)).backward()
                opt.step()
                model.seen += 1
        for step in range(max(counts)):
            active = [r for r in range(world) if step < counts[r]]
            ref_opt.zero_grad()
            loss = sum(F.cross_entropy(ref(ember.tensor(batches[r][step][0])),
                                       ember.tensor(batches[r][step][1])) for r in active)
            (loss / (world if divide else len(active))).backward()
            ref_opt.step()
        tag = "initial" if divide else "active"
        for (k, p), q in zip(model.named_parameters(), ref.parameters()):
            check(f"join_{tag}_{k}", p, q.detach().numpy(), rtol=1e-5, atol=1e-6)
        # the final model (buffers too) is the last joiner's: rank 0 ran 5 iterations
        check(f"join_{tag}_buffers_from_last_joiner", model.seen, np.array([5.0], np.float32))
        # after the join every rank trains in step again, without join collectives
        F.cross_entropy(net(ember.tensor(batches[0][0][0])),
                        ember.tensor(batches[0][0][1])).backward()
        check(f"join_{tag}_after", net._join_config.enable, False)
    # with unused-parameter detection the joined ranks also shadow the "used" counts
    ember.manual_seed(0)
    model = Branchy()
    net = DDP(model, find_unused_parameters=True)
    opt = ember.optim.SGD(net.parameters(), lr=0.1)
    with net.join():
        for step in range(counts[rank]):
            opt.zero_grad()
            x = ember.tensor(value(rank + step, "float32", (5, 4)) / 10)
            net(x, use_b=(step % 2 == 0)).sum().backward()
            opt.step()
    flat = ember.cat([p.detach().reshape(-1) for p in model.parameters()])
    every = [ember.zeros_like(flat) for _ in range(world)]
    dist.all_gather(every, flat)
    check("join_unused_same_model", all(ember.equal(e, every[0]) for e in every), True)
    check("join_unused_never_untouched", model.never.weight.grad is None, True)
    # throw_on_early_termination: every rank raises once one has run out
    net = DDP(MLP())
    try:
        with net.join(throw_on_early_termination=True):
            for x, y in batches[rank]:
                F.cross_entropy(net(ember.tensor(x)), ember.tensor(y)).backward()
        check("join_throw", "no error", "RuntimeError")
    except RuntimeError as e:
        want = "exhausted all inputs" if rank == world - 1 else "Detected at least one rank"
        RESULTS["join_throw"] = [want in str(e), str(e)]
    t = ember.ones(1)
    dist.all_reduce(t)
    check("join_throw_then_ok", t, np.array([float(world)], np.float32))


def expect_error(name, fn, kind, text):
    try:
        fn()
        check(name, "no error", kind.__name__)
    except kind as e:
        RESULTS[name] = [text in str(e), str(e)]


def mismatches(rank, world):
    """Tensors or models that differ across ranks: a clear error on every rank, no hang."""
    from ember.nn.parallel import DistributedDataParallel as DDP
    shape = "rank 0: float32 [3]"
    expect_error("mismatch_all_reduce_shape", lambda: dist.all_reduce(ember.ones(3 + rank)),
                 RuntimeError, shape)
    expect_error("mismatch_all_reduce_dtype", lambda: dist.all_reduce(
        ember.ones(3, dtype=ember.float64 if rank else ember.float32)), RuntimeError,
        "rank 1: float64 [3]")
    expect_error("mismatch_all_reduce_op", lambda: dist.all_reduce(
        ember.ones(3), op=dist.ReduceOp.MAX if rank else dist.ReduceOp.SUM), RuntimeError,
        "(op=MAX)")
    expect_error("mismatch_broadcast", lambda: dist.broadcast(ember.ones(3 + rank), 0),
                 RuntimeError, shape)
    expect_error("mismatch_all_gather", lambda: dist.all_gather(
        [ember.ones(3 + rank) for _ in range(world)], ember.ones(3 + rank)), RuntimeError,
        shape)
    expect_error("mismatch_ddp_model", lambda: DDP(nn.Linear(3 + rank, 2)), RuntimeError,
                 "appears not to match sizes of the same param")
    # the job goes on: the next collective is still matched
    t = ember.ones(2)
    dist.all_reduce(t)
    check("mismatch_then_ok", t, np.full(2, float(world), np.float32))


def main():
    out_dir = sys.argv[1]
    env = {k: os.environ.get(k) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                          "MASTER_PORT", "LOCAL_WORLD_SIZE")}
    dist.init_process_group(backend="gloo", init_method="env://")
    rank, world = dist.get_rank(), dist.get_world_size()
    RESULTS["env"] = [env["RANK"] == str(rank) and env["WORLD_SIZE"] == str(world)
                      and env["LOCAL_RANK"] == str(rank) and env["MASTER_ADDR"] is not None
                      and env["MASTER_PORT"] == "29511" and env["LOCAL_WORLD_SIZE"] == "2",
                      repr(env)]
    check("is_initialized", dist.is_initialized(), True)
    check("backend", dist.get_backend(), "gloo")
    try:
        dist.init_process_group("mpi")
        check("double_init", "no error", "ValueError")
    except ValueError as e:
        check("double_init", "twice" in str(e), True)
    run("collectives", lambda: collectives(rank, world))
    run("point_to_point", lambda: point_to_point(rank, world))
    run("ddp", lambda: ddp(rank, world))
    run("mismatches", lambda: mismatches(rank, world))
    run("ddp_models", lambda: ddp_models(rank, world))
    run("sync_batchnorm", lambda: sync_batchnorm(rank, world))
    run("join", lambda: join(rank, world))
    run("differentiable_collectives", lambda: differentiable_collectives(rank, world))
    dist.barrier()
    dist.destroy_process_group()
    check("destroyed", dist.is_initialized(), False)
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(RESULTS, f)


if __name__ == "__main__":
    main()
