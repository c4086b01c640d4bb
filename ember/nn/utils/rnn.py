"""``nn.utils.rnn``: PackedSequence, pad/pack helpers (as ``torch/nn/utils/rnn.py``).

A packed sequence stores the rows of every time step one after the other: step ``t`` has
``batch_sizes[t]`` rows, the sequences sorted by decreasing length.  Packing and padding are
one ``index_select`` each (differentiable), with the row index built from the lengths.
"""
from __future__ import annotations

from collections import namedtuple

from ... import _creation, _dtype
from ..._tensor import Tensor

__all__ = ["PackedSequence", "invert_permutation", "pack_padded_sequence",
           "pad_packed_sequence", "pad_sequence", "unpad_sequence", "pack_sequence",
           "unpack_sequence"]


class PackedSequence_(namedtuple("PackedSequence_",
                                 ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])):
    __slots__ = ()


def _bind(optional, fn):
    return None if optional is None else fn(optional)


def _as(dtype: str):
    """The method ``self.to(dtype=ember.<dtype>)`` (``double``, ``float``, ...)."""
    dt = getattr(_dtype, dtype)

    def convert(self):
        return self.to(dtype=dt)
    return convert


class PackedSequence(PackedSequence_):
    """Data and list of ``batch_sizes`` of a packed sequence (built by the pack functions,
    never by hand); ``sorted_indices``/``unsorted_indices`` map between the original batch
    order and the length-sorted one."""

    __slots__ = ()

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        if batch_sizes is not None:
            return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)
        if not (isinstance(data, (list, tuple)) and len(data) == 2):
            raise AssertionError("Expected data to be a (data, batch_sizes) pair")
        return super().__new__(cls, data[0], data[1], sorted_indices, unsorted_indices)

    def pin_memory(self):
        return self

    def to(self, *args, **kwargs):
        """``data.to(...)``; the index tensors follow the data's device (never its dtype)."""
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        kw = {k: v for k, v in kwargs.items() if k not in ("device", "dtype")}
        sorted_indices = _bind(self.sorted_indices, lambda t: t.to(data.device, **kw))
        unsorted_indices = _bind(self.unsorted_indices, lambda t: t.to(data.device, **kw))
        return type(self)(data, self.batch_sizes, sorted_indices, unsorted_indices)

    def cuda(self, *args, **kwargs):
        return self.to(*args, device="cuda", **kwargs)

    def cpu(self, *args, **kwargs):
        return self.to(*args, device="cpu", **kwargs)

    double = _as("float64")
    float = _as("float32")
    half = _as("float16")
    long = _as("int64")
    int = _as("int32")
    short = _as("int16")
    char = _as("int8")
    byte = _as("uint8")

    @property
    def is_cuda(self) -> bool:
        return self.data.is_cuda

    def is_pinned(self) -> bool:
        return False


def invert_permutation(permutation):
    """The inverse of an index permutation (None stays None)."""
    if permutation is None:
        return None
    from ...ops.reduce import argsort
    return argsort(permutation)


def _lengths_list(lengths) -> list:
    if isinstance(lengths, Tensor):
        if lengths.dim() != 1:
            raise RuntimeError(f"'lengths' argument should be a 1D CPU int64 tensor, but got "
                               f"{lengths.dim()}D cpu Long tensor")
        return [int(v) for v in lengths.tolist()]
    return [int(v) for v in lengths]


def _batch_sizes(lengths: list) -> list:
    """``batch_sizes[t]``: how many of the (decreasing) ``lengths`` exceed ``t``."""
    out = []
    k = len(lengths)
    for t in range(lengths[0] if lengths else 0):
        while k and lengths[k - 1] <= t:
            k -= 1
        out.append(k)
    return out


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """Pack a padded ``(T, B, *)`` (or ``(B, T, *)``) batch of sequences of ``lengths``.

    With ``enforce_sorted=False`` the batch is sorted by decreasing length first and the
    permutation is kept in ``sorted_indices``.
    """
    lens = _lengths_list(lengths)
    sorted_indices = None
    batch_dim = 0 if batch_first else 1
    if not enforce_sorted:
        order = sorted(range(len(lens)), key=lambda b: -lens[b])  # stable, as torch's CPU sort
        lens = [lens[b] for b in order]
        sorted_indices = _creation.tensor(order)
        input = input.index_select(batch_dim, sorted_indices)
    B = input.shape[batch_dim]
    if len(lens) != B:
        raise RuntimeError(f"Expected `len(lengths)` to be equal to batch_size, but got "
                           f"{len(lens)} (batch_size={B})")
    if any(a < b for a, b in zip(lens, lens[1:])):
        raise RuntimeError(
            "`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. "
            "You can pass `enforce_sorted=False` to pack_padded_sequence and/or pack_sequence "
            "to sidestep this requirement if you do not need ONNX exportability.")
    if not lens or lens[-1] <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an "
                           "element in 'lengths' that is <= 0")
    T = input.shape[1 - batch_dim]
    if lens[0] > T:
        raise RuntimeError(f"Expected the longest sequence length {lens[0]} to be at most the "
                           f"padded length {T}")
    bs = _batch_sizes(lens)
    if batch_first:  # row (b, t) of the flattened (B*T, *) input
        idx = [b * T + t for t in range(len(bs)) for b in range(bs[t])]
    else:
        idx = [t * B + b for t in range(len(bs)) for b in range(bs[t])]
    flat = input.reshape((B * T,) + tuple(input.shape[2:]))
    data = flat.index_select(0, _creation.tensor(idx))
    return PackedSequence(data, _creation.tensor(bs), sorted_indices, None)


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """Undo ``pack_padded_sequence``: ``(padded, lengths)`` in the original batch order."""
    from ...ops.movement import cat
    bs = [int(v) for v in sequence.batch_sizes.tolist()]
    T = len(bs)
    if total_length is not None:
        if total_length < T:
            raise ValueError(f"Expected total_length to be at least the length of the longest "
                             f"sequence in input, but got total_length={total_length} and max "
                             f"sequence length being {T}")
        T = total_length
    data = sequence.data
    B = bs[0]
    N = data.shape[0]
    rest = tuple(data.shape[1:])
    pad = _creation.full((1,) + rest, padding_value, dtype=data.dtype)
    src = cat([data, pad])
    idx = []
    off = 0
    for t in range(T):
        n = bs[t] if t < len(bs) else 0
        idx.extend(range(off, off + n))
        idx.extend([N] * (B - n))
        off += n
    padded = src.index_select(0, _creation.tensor(idx)).reshape((T, B) + rest)
    if batch_first:
        padded = padded.transpose(0, 1)
    lengths = [sum(1 for n in bs if n > b) for b in range(B)]
    lengths = _creation.tensor(lengths)
    if sequence.unsorted_indices is not None:
        batch_dim = 0 if batch_first else 1
        return (padded.index_select(batch_dim, sequence.unsorted_indices),
                lengths[sequence.unsorted_indices])
    return padded, lengths


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack variable-length sequences ``(L_i, *)`` into ``(L, B, *)`` (``(B, L, *)`` with
    ``batch_first``), padded with ``padding_value`` on ``padding_side``."""
    from ...ops.movement import cat, stack
    if padding_side not in ("left", "right"):
        raise RuntimeError(f"Expected padding_side to be one of left or right, but got "
                           f"{padding_side}.")
    if isinstance(sequences, Tensor):
        sequences = sequences.unbind(0)
    sequences = list(sequences)
    if not sequences:
        raise RuntimeError("received an empty list of sequences")
    L = max(s.shape[0] for s in sequences)
    rows = []
    for s in sequences:
        k = L - s.shape[0]
        if k:
            fill = _creation.full((k,) + tuple(s.shape[1:]), padding_value, dtype=s.dtype)
            s = cat([s, fill]) if padding_side == "right" else cat([fill, s])
        rows.append(s)
    return stack(rows, 0 if batch_first else 1)


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    """The list of sequences ``padded[:lengths[b], b]`` (``pad_sequence``'s inverse).

    (PyTorch transposes a time-major input in place here; ember leaves it alone.)
    """
    if not batch_first:
        padded_sequences = padded_sequences.transpose(0, 1)
    lens = _lengths_list(lengths)
    return [padded_sequences[b, :n] for b, n in enumerate(lens)]


def pack_sequence(sequences, enforce_sorted=True):
    """Pack a list of variable-length sequences ``(L_i, *)``."""
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths,
                                enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences):
    """The list of sequences of a PackedSequence, in the original order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
