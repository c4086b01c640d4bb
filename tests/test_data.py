"""ember.utils.data in the main process: datasets, samplers, collation and the DataLoader,
checked against torch.utils.data."""
import collections

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
import torch.utils.data as tud

import ember
import ember.utils.data as eud

Point = collections.namedtuple("Point", ["x", "y"])


def same(e, t, path="batch"):
    """Assert the ember structure ``e`` equals torch's ``t``: types, dtypes and values."""
    if isinstance(t, torch.Tensor):
        assert isinstance(e, ember.Tensor), f"{path}: {type(e)}"
        assert e.dtype.name == str(t.dtype).split(".")[1], f"{path}: {e.dtype} vs {t.dtype}"
        assert tuple(e.shape) == tuple(t.shape), f"{path}: {e.shape} vs {t.shape}"
        np.testing.assert_array_equal(e.numpy(), t.numpy(), err_msg=path)
    elif isinstance(t, dict):
        assert type(e) is type(t) and list(e) == list(t), f"{path}: {e} vs {t}"
        for k in t:
            same(e[k], t[k], f"{path}[{k!r}]")
    elif isinstance(t, (list, tuple)):
        assert type(e) is type(t) and len(e) == len(t), f"{path}: {type(e)} vs {type(t)}"
        for i, (a, b) in enumerate(zip(e, t)):
            same(a, b, f"{path}[{i}]")
    elif isinstance(t, np.ndarray):
        assert type(e) is np.ndarray and e.dtype == t.dtype, path
        np.testing.assert_array_equal(e, t, err_msg=path)
    else:
        assert type(e) is type(t) and e == t, f"{path}: {e!r} vs {t!r}"


class Mixed:
    """A map-style dataset whose samples hold every kind of value default_collate handles."""

    def __init__(self, mod, n=11):
        self.mod, self.n = mod, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {
            "arr": np.arange(3, dtype=np.float32) + i,
            "t": self.mod.tensor([i, i + 0.5]),
            "name": f"s{i}",
            "raw": b"x" * (i % 3 + 1),
            "f": i / 2,
            "k": i,
            "b": i % 2 == 0,
            "np_i32": np.int32(i),
            "np_f16": np.float16(i),
            "np_b": np.bool_(i % 3 == 0),
            "pt": Point(i, np.array([i, -i], dtype=np.int16)),
            "tup": (i, "a"),
            "lst": [i, 1.5 * i],
        }


# ---- collate -----------------------------------------------------------------------------
def test_default_collate_matches_torch_on_every_kind():
    same(eud.default_collate([Mixed(ember)[i] for i in range(4)]),
         tud.default_collate([Mixed(torch)[i] for i in range(4)]))


@pytest.mark.parametrize("batch", [
    [1, 2, 3], [1.5, 2.0], [True, False], ["a", "b"], [b"a", b"b"],
    [np.float32(1), np.float32(2)], [np.int8(1), np.int8(-2)], [np.float64(1.5)],
    [np.array(1.5, dtype=np.float32), np.array(2.5, dtype=np.float32)],
    [np.zeros((2, 3), dtype=np.int32), np.ones((2, 3), dtype=np.int32)],
    [np.zeros(2, dtype=np.int64), np.ones(2, dtype=np.float32)],  # mixed dtypes promote
    [(1, 2.0), (3, 4.0)], [[1, 2], [3, 4]], [{"a": 1, "b": [1.0, 2.0]}] * 2,
    [Point(1, 2.0), Point(3, 4.0)],
])
def test_default_collate_cases(batch):
    same(eud.default_collate(batch), tud.default_collate(batch))


def test_default_collate_tensors_and_numpy_mixed():
    arrs = [np.arange(4, dtype=np.float64).reshape(2, 2) * i for i in range(3)]
    same(eud.default_collate([ember.from_numpy(a) for a in arrs]),
         tud.default_collate([torch.from_numpy(a) for a in arrs]))


def test_default_convert_matches_torch():
    for sample in [np.arange(3), np.float32(2), 3, "s", (np.arange(2), 1), [np.ones(2), "x"],
                   {"a": np.zeros(2), "b": Point(np.array(1), 2)}, np.array(["a", "b"])]:
        same(eud.default_convert(sample), tud.default_convert(sample))


def test_collate_size_mismatch_errors_name_the_sizes():
    with pytest.raises(RuntimeError, match=r"equal size, but got \[3\] at entry 0 and \[4\] "
                                           r"at entry 1"):
        eud.default_collate([ember.zeros(3), ember.zeros(4)])
    with pytest.raises(RuntimeError, match=r"but got \[2, 2\] at entry 0 and \[2, 3\] at entry 2"):
        eud.default_collate([np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 3))])
    with pytest.raises(RuntimeError, match=r"each element in list of batch should be of equal "
                                           r"size \(got sizes \[2, 1\]\)"):
        eud.default_collate([[1, 2], [1]])


def test_collate_rejects_unsupported_types():
    with pytest.raises(TypeError, match="batch must contain tensors, numpy arrays, numbers, "
                                        "dicts or lists; found <class 'object'>"):
        eud.default_collate([object(), object()])
    with pytest.raises(TypeError, match="found <U1"):
        eud.default_collate([np.array(["a"]), np.array(["b"])])


# ---- datasets ----------------------------------------------------------------------------
class Squares(eud.Dataset):
    def __init__(self, n, offset=0):
        self.n, self.offset = n, offset

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return (i + self.offset) ** 2


class Stream(eud.IterableDataset):
    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def __iter__(self):
        return iter(range(self.lo, self.hi))

    def __len__(self):
        return self.hi - self.lo


def test_dataset_add_concatenates():
    cat = Squares(3) + Squares(2, offset=10)
    assert isinstance(cat, eud.ConcatDataset)
    assert len(cat) == 5 and cat.cumulative_sizes == [3, 5]
    assert [cat[i] for i in range(5)] == [0, 1, 4, 100, 121]
    assert cat[-1] == 121 and cat[-5] == 0
    with pytest.raises(ValueError, match="absolute value of index should not exceed dataset "
                                         "length"):
        cat[-6]
    with pytest.raises(AssertionError, match="datasets should not be an empty iterable"):
        eud.ConcatDataset([])
    with pytest.raises(AssertionError, match="ConcatDataset does not support IterableDataset"):
        eud.ConcatDataset([Stream(0, 2)])
    with pytest.raises(NotImplementedError, match="should implement __getitem__"):
        eud.Dataset()[0]


def test_iterable_add_chains():
    chain = Stream(0, 3) + Stream(10, 12)
    assert isinstance(chain, eud.ChainDataset)
    assert list(chain) == [0, 1, 2, 10, 11] and len(chain) == 5
    with pytest.raises(AssertionError, match="ChainDataset only supports IterableDataset"):
        list(eud.ChainDataset([Squares(2)]))


def test_tensor_dataset():
    x = ember.arange(12.).reshape(6, 2)
    y = ember.arange(6)
    ds = eud.TensorDataset(x, y)
    assert len(ds) == 6
    a, b = ds[4]
    assert a.tolist() == [8.0, 9.0] and b.item() == 4
    batch = ds.__getitems__([5, 0, 5])
    assert len(batch) == 3
    assert [s[1].item() for s in batch] == [5, 0, 5]
    assert batch[0][0].tolist() == [10.0, 11.0]
    with pytest.raises(AssertionError, match="Size mismatch between tensors"):
        eud.TensorDataset(x, ember.arange(5))
    with pytest.raises(IndexError, match="index 6 is out of bounds for dimension 0 with size 6"):
        ds.__getitems__([1, 6])


def test_tensor_dataset_batched_fetch_equals_per_sample_stacking():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((37, 5), dtype=np.float32), rng.integers(0, 9, 37)
    ds = eud.TensorDataset(ember.from_numpy(x), ember.from_numpy(y))
    tds = tud.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    gen_e, gen_t = ember.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    idx = list(ember.randperm(37, generator=gen_e).tolist())
    bs = [idx[i:i + 8] for i in range(0, 37, 8)]
    for e, t in zip(eud.DataLoader(ds, batch_sampler=bs), tud.DataLoader(tds, batch_sampler=bs)):
        same(e, t)
    # A custom collate function sees ordinary per-sample tuples.
    seen = eud.DataLoader(ds, batch_size=4, collate_fn=lambda b: b)
    first = next(iter(seen))
    assert type(first) is list and all(type(s) is tuple for s in first)
    assert len(first) == 4 and first[2][1].item() == y[2]
    np.testing.assert_array_equal(first[3][0].numpy(), x[3])
    # Gradients flow through the gathered batch as through stacked samples.
    w = ember.from_numpy(x.copy()).requires_grad_()
    (xb,) = next(iter(eud.DataLoader(eud.TensorDataset(w), batch_size=4)))
    xb.sum().backward()
    assert w.grad.numpy()[:4].tolist() == [[1.0] * 5] * 4 and w.grad.numpy()[4:].sum() == 0


def test_stack_dataset():
    a, b = Squares(4), eud.TensorDataset(ember.arange(4))
    st = eud.StackDataset(a, b)
    assert len(st) == 4 and st[2][0] == 4 and st[2][1][0].item() == 2
    items = st.__getitems__([3, 1])
    assert items[0][0] == 9 and items[1][1][0].item() == 1
    sd = eud.StackDataset(sq=a, t=b)
    assert sd[1]["sq"] == 1
    assert [d["sq"] for d in sd.__getitems__([0, 2])] == [0, 4]
    same(eud.default_collate(sd.__getitems__([0, 2])),
         tud.default_collate(tud.StackDataset(sq=a, t=tud.TensorDataset(
             torch.arange(4))).__getitems__([0, 2])))
    with pytest.raises(ValueError, match="Size mismatch between datasets"):
        eud.StackDataset(a, Squares(3))
    with pytest.raises(ValueError, match="At least one dataset should be passed"):
        eud.StackDataset()
    with pytest.raises(ValueError, match="but both types are given"):
        eud.StackDataset(a, k=a)


def test_subset_and_its_batched_fetch():
    base = eud.TensorDataset(ember.arange(10) * 10)
    sub = eud.Subset(base, [9, 2, 4])
    assert len(sub) == 3 and sub[0][0].item() == 90
    assert [s[0].item() for s in sub.__getitems__([2, 0])] == [40, 90]
    assert [b[0].tolist() for b in eud.DataLoader(sub, batch_size=2)] == [[90, 20], [40]]

    class Bad(eud.Subset):
        def __getitem__(self, i):
            return 0

    with pytest.raises(NotImplementedError, match="Bad overrides __getitem__ but not "
                                                  "__getitems__"):
        Bad(base, [0])


def test_random_split_lengths_and_fractions():
    ds = Squares(10)
    parts = eud.random_split(ds, [3, 7], generator=ember.Generator().manual_seed(1))
    assert [len(p) for p in parts] == [3, 7]
    assert sorted(parts[0].indices + parts[1].indices) == list(range(10))
    again = eud.random_split(ds, [3, 7], generator=ember.Generator().manual_seed(1))
    assert again[0].indices == parts[0].indices
    for fr in ([0.3, 0.7], [0.25, 0.25, 0.5], [1 / 3] * 3, [0.05, 0.95]):
        e = eud.random_split(ds, fr, generator=ember.Generator().manual_seed(0))
        t = tud.random_split(range(10), fr, generator=torch.Generator().manual_seed(0))
        assert [len(p) for p in e] == [len(p) for p in t]
    with pytest.raises(ValueError, match="Sum of input lengths does not equal the length of the "
                                         "input dataset!"):
        eud.random_split(ds, [3, 8])
    with pytest.raises(ValueError, match="Fraction at index 1 is not between 0 and 1"):
        eud.random_split(ds, [0.5, 1.5, -1.0])
    with pytest.warns(UserWarning, match="Length of split at index 0 is 0"):
        eud.random_split(ds, [0.0, 1.0])


# ---- samplers ----------------------------------------------------------------------------
def test_sequential_and_batch_sampler_match_torch():
    assert list(eud.SequentialSampler(range(5))) == [0, 1, 2, 3, 4]
    for n, bs, dl in [(10, 3, False), (10, 3, True), (9, 3, True), (2, 5, False), (2, 5, True)]:
        e = eud.BatchSampler(eud.SequentialSampler(range(n)), bs, dl)
        t = tud.BatchSampler(tud.SequentialSampler(range(n)), bs, dl)
        assert list(e) == list(t) and len(e) == len(t)
    with pytest.raises(ValueError, match="batch_size should be a positive integer value, but "
                                         "got batch_size=0"):
        eud.BatchSampler(range(3), 0, False)
    with pytest.raises(ValueError, match="batch_size=True"):
        eud.BatchSampler(range(3), True, False)
    with pytest.raises(ValueError, match="drop_last should be a boolean value, but got "
                                         "drop_last=1"):
        eud.BatchSampler(range(3), 2, 1)


def test_random_sampler():
    ds = range(20)
    g = ember.Generator().manual_seed(5)
    a = list(eud.RandomSampler(ds, generator=g))
    b = list(eud.RandomSampler(ds, generator=g))
    assert sorted(a) == list(range(20)) and sorted(b) == list(range(20)) and a != b
    assert a == list(eud.RandomSampler(ds, generator=ember.Generator().manual_seed(5)))
    ember.manual_seed(7)
    c = list(eud.RandomSampler(ds))
    ember.manual_seed(7)
    assert list(eud.RandomSampler(ds)) == c  # no generator: seeded from ember's default one
    r = list(eud.RandomSampler(ds, replacement=True, num_samples=70, generator=g))
    assert len(r) == 70 and all(0 <= i < 20 for i in r)
    assert len(eud.RandomSampler(ds, replacement=True, num_samples=70)) == 70
    longer = list(eud.RandomSampler(range(4), num_samples=10, generator=g))
    assert len(longer) == 10 and sorted(longer[:8]) == [0, 0, 1, 1, 2, 2, 3, 3]
    with pytest.raises(TypeError, match="replacement should be a boolean value, but got "
                                        "replacement=1"):
        eud.RandomSampler(ds, replacement=1)
    with pytest.raises(ValueError, match="num_samples should be a positive integer value, but "
                                         "got num_samples=0"):
        eud.RandomSampler(ds, num_samples=0)


def test_subset_and_weighted_random_samplers():
    g = ember.Generator().manual_seed(0)
    s = list(eud.SubsetRandomSampler([4, 8, 15, 16], generator=g))
    assert sorted(s) == [4, 8, 15, 16] and len(eud.SubsetRandomSampler([1, 2])) == 2
    w = list(eud.WeightedRandomSampler([0.0, 1.0, 0.0, 3.0], 50, generator=g))
    assert len(w) == 50 and set(w) <= {1, 3} and w.count(3) > w.count(1)
    nr = list(eud.WeightedRandomSampler([1.0, 2.0, 3.0, 4.0], 4, replacement=False, generator=g))
    assert sorted(nr) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="num_samples should be a positive integer value, but "
                                         "got num_samples=-1"):
        eud.WeightedRandomSampler([1.0], -1)
    with pytest.raises(ValueError, match="replacement should be a boolean value, but got "
                                         "replacement=0"):
        eud.WeightedRandomSampler([1.0], 1, replacement=0)
    with pytest.raises(ValueError, match=r"weights should be a 1d sequence but given weights "
                                         r"have shape \(2, 1\)"):
        eud.WeightedRandomSampler([[1.0], [2.0]], 1)


@pytest.mark.parametrize("n,replicas,drop_last", [(10, 3, False), (10, 3, True), (9, 3, False),
                                                  (2, 5, False), (11, 4, True), (3, 8, False)])
def test_distributed_sampler_unshuffled_matches_torch(n, replicas, drop_last):
    for rank in range(replicas):
        e = eud.DistributedSampler(range(n), replicas, rank, shuffle=False, drop_last=drop_last)
        t = tud.DistributedSampler(range(n), replicas, rank, shuffle=False, drop_last=drop_last)
        assert list(e) == list(t) and len(e) == len(t)
        assert e.total_size == t.total_size and e.num_samples == t.num_samples


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), replicas=st.integers(1, 9), drop_last=st.booleans(),
       bs=st.integers(1, 7))
def test_samplers_match_torch_for_any_sizes(n, replicas, drop_last, bs):
    for rank in range(replicas):
        e = eud.DistributedSampler(range(n), replicas, rank, shuffle=False, drop_last=drop_last)
        t = tud.DistributedSampler(range(n), replicas, rank, shuffle=False, drop_last=drop_last)
        assert list(e) == list(t) and len(e) == len(t)
        e_b = eud.BatchSampler(e, bs, drop_last)
        assert list(e_b) == list(tud.BatchSampler(t, bs, drop_last)) and len(e_b) == len(
            tud.BatchSampler(t, bs, drop_last))


def test_distributed_sampler_shuffled_properties():
    n, replicas = 10, 4  # total 12: two indices are padding repeats of the permutation's head
    shards = [list(eud.DistributedSampler(range(n), replicas, r, seed=3))
              for r in range(replicas)]
    assert all(len(s) == 3 for s in shards)
    padded = [shards[i % replicas][i // replicas] for i in range(12)]
    assert sorted(padded[:10]) == list(range(10)) and padded[10:] == padded[:2]
    assert shards[0] == list(eud.DistributedSampler(range(n), replicas, 0, seed=3))
    s = eud.DistributedSampler(range(n), replicas, 1, seed=3)
    s.set_epoch(1)
    assert list(s) != shards[1] and s.epoch == 1
    assert list(eud.DistributedSampler(range(n), replicas, 1, seed=4)) != shards[1]
    dropped = [list(eud.DistributedSampler(range(n), replicas, r, seed=3, drop_last=True))
               for r in range(replicas)]
    flat = sorted(i for s in dropped for i in s)
    assert len(flat) == 8 and len(set(flat)) == 8
    with pytest.raises(ValueError, match=r"Invalid rank 4, rank should be in the interval "
                                         r"\[0, 3\]"):
        eud.DistributedSampler(range(n), 4, 4)
    # torch's own error before init_process_group: the sampler asks the default group
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        eud.DistributedSampler(range(n))


# ---- DataLoader (main process) -----------------------------------------------------------
@pytest.mark.parametrize("bs,drop_last", [(4, False), (4, True), (1, False), (11, True)])
def test_loader_batches_match_torch(bs, drop_last):
    e = list(eud.DataLoader(Mixed(ember), batch_size=bs, drop_last=drop_last))
    t = list(tud.DataLoader(Mixed(torch), batch_size=bs, drop_last=drop_last))
    assert len(e) == len(t) == len(eud.DataLoader(Mixed(ember), batch_size=bs,
                                                  drop_last=drop_last))
    same(e, t)


def test_loader_without_auto_batching_matches_torch():
    e = list(eud.DataLoader(Mixed(ember, 3), batch_size=None))
    t = list(tud.DataLoader(Mixed(torch, 3), batch_size=None))
    same(e, t)
    assert len(eud.DataLoader(Mixed(ember, 3), batch_size=None)) == 3


def test_loader_custom_batch_sampler_and_sampler():
    bs = [[3, 1], [0], [2, 2, 4]]
    same(list(eud.DataLoader(Mixed(ember), batch_sampler=bs)),
         list(tud.DataLoader(Mixed(torch), batch_sampler=bs)))
    assert len(eud.DataLoader(Mixed(ember), batch_sampler=bs)) == 3
    sampler = [5, 3, 1]
    same(list(eud.DataLoader(Mixed(ember), sampler=sampler, batch_size=2)),
         list(tud.DataLoader(Mixed(torch), sampler=sampler, batch_size=2)))


def test_loader_shuffle_is_a_seeded_permutation_per_epoch():
    ds = eud.TensorDataset(ember.arange(23))
    loader = eud.DataLoader(ds, batch_size=5, shuffle=True,
                            generator=ember.Generator().manual_seed(11))
    epochs = [[i for (b,) in loader for i in b.tolist()] for _ in range(2)]
    assert all(sorted(e) == list(range(23)) for e in epochs) and epochs[0] != epochs[1]
    again = eud.DataLoader(ds, batch_size=5, shuffle=True,
                           generator=ember.Generator().manual_seed(11))
    assert [i for (b,) in again for i in b.tolist()] == epochs[0]
    ember.manual_seed(2)
    a = [b.tolist() for (b,) in eud.DataLoader(ds, batch_size=5, shuffle=True)]
    ember.manual_seed(2)
    assert [b.tolist() for (b,) in eud.DataLoader(ds, batch_size=5, shuffle=True)] == a


def test_loader_iterable_dataset():
    e = list(eud.DataLoader(Stream(0, 7), batch_size=3))
    assert [b.tolist() for b in e] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [b.tolist() for b in eud.DataLoader(Stream(0, 7), batch_size=3, drop_last=True)] \
        == [[0, 1, 2], [3, 4, 5]]
    assert len(eud.DataLoader(Stream(0, 7), batch_size=3)) == 3
    assert len(eud.DataLoader(Stream(0, 7), batch_size=3, drop_last=True)) == 2
    assert list(eud.DataLoader(Stream(0, 3), batch_size=None)) == [0, 1, 2]


def test_loader_warns_when_iterable_yields_more_than_its_len():
    class Liar(Stream):
        def __len__(self):
            return 2

    loader = eud.DataLoader(Liar(0, 3), batch_size=None)
    assert len(loader) == 2
    with pytest.warns(UserWarning, match="was reported to be 2"):
        list(loader)


def test_loader_pin_memory_is_a_noop_with_torchs_warning():
    with pytest.warns(UserWarning, match="no accelerator is found"):
        out = list(eud.DataLoader(Squares(3), batch_size=2, pin_memory=True))
    assert [b.tolist() for b in out] == [[0, 1], [4]]


def test_loader_argument_errors_match_torch():
    ds = Squares(4)
    cases = [
        (dict(num_workers=-1), ValueError, "num_workers option should be non-negative"),
        (dict(timeout=-1), ValueError, "timeout option should be non-negative"),
        (dict(prefetch_factor=2), ValueError, "prefetch_factor option could only be specified "
                                              "in multiprocessing"),
        (dict(num_workers=1, prefetch_factor=-1), ValueError,
         "prefetch_factor option should be non-negative"),
        (dict(persistent_workers=True), ValueError,
         "persistent_workers option needs num_workers > 0"),
        (dict(sampler=[0, 1], shuffle=True), ValueError,
         "sampler option is mutually exclusive with shuffle"),
        (dict(batch_sampler=[[0]], batch_size=2), ValueError,
         "batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and "
         "drop_last"),
        (dict(batch_sampler=[[0]], drop_last=True), ValueError, "mutually exclusive"),
        (dict(batch_size=None, drop_last=True), ValueError,
         "batch_size=None option disables auto-batching and is mutually exclusive with "
         "drop_last"),
        (dict(multiprocessing_context="spawn"), ValueError,
         "multiprocessing_context can only be used with multi-process loading "
         r"\(num_workers > 0\), but got num_workers=0"),
        (dict(num_workers=1, multiprocessing_context="nope"), ValueError,
         "multiprocessing_context option should specify a valid start method in"),
        (dict(num_workers=1, multiprocessing_context=3), TypeError,
         "multiprocessing_context option should be a valid context object"),
    ]
    for kwargs, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            eud.DataLoader(ds, **kwargs)
        with pytest.raises(exc, match=msg):  # the oracle agrees
            tud.DataLoader(ds, **kwargs)
    for kwargs, msg in [(dict(shuffle=True), "expected unspecified shuffle option, but got "
                                             "shuffle=True"),
                        (dict(sampler=[0]), "expected unspecified sampler option"),
                        (dict(batch_sampler=[[0]]), "expected unspecified batch_sampler")]:
        with pytest.raises(ValueError, match=msg):
            eud.DataLoader(Stream(0, 2), **kwargs)
    loader = eud.DataLoader(ds, batch_size=2)
    with pytest.raises(ValueError, match="batch_size attribute should not be set after "
                                         "DataLoader is initialized"):
        loader.batch_size = 3
    with pytest.raises(NotImplementedError, match="cannot be pickled"):
        iter(loader).__getstate__()


def test_loader_warns_about_too_many_workers():
    with pytest.warns(UserWarning, match="This DataLoader will create 64 worker processes"):
        eud.DataLoader(Squares(2), num_workers=64)


def test_worker_info_is_none_in_main_process():
    assert eud.get_worker_info() is None
