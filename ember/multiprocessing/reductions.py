"""How an ember Tensor crosses a process boundary (PyTorch's
``torch.multiprocessing.reductions``): its data is moved to shared memory, if it is not
there already, and the receiving process maps the same memory from a duplicated fd."""
from __future__ import annotations

from multiprocessing.reduction import ForkingPickler, DupFd

from .. import _shared
from .._tensor import Tensor, _make
from ..nn.parameter import Parameter


def rebuild_tensor(cls, fd_holder, size, offset, shape, dtype, strides, requires_grad):
    """The receiving end: a tensor of class ``cls`` on the sender's shared memory."""
    arr = _shared.attach(fd_holder.detach(), size, offset, shape, dtype, strides)
    if cls is Parameter:
        return Parameter(_make(arr), requires_grad)
    t = _make(arr, cls=cls)
    t._requires_grad = requires_grad
    return t


def reduce_tensor(t: Tensor):
    """What ForkingPickler sends for ``t``: a duplicate of its shared-memory fd and the
    array's place in that memory (gradients and history stay behind, as in PyTorch)."""
    if t._requires_grad and t._grad_fn is not None:
        raise RuntimeError("Cowardly refusing to serialize non-leaf tensor which requires_grad, "
                           "since autograd does not support crossing process boundaries.  If "
                           "you just want to transfer the data, call detach() on the tensor "
                           "before serializing (e.g., putting it on the queue).")
    if type(t._data) is not _shared.np.ndarray:  # sparse storage: pickled by value
        return t.__reduce_ex__(5)
    if t._base is not None and not t.is_shared():
        # a view: moving its data alone would cut it from its base, so the receiver gets a
        # shared copy (PyTorch moves the whole storage; ember's views have no storage object)
        t = _make(t._data.copy())
    _shared.share_memory_(t)
    a = t._data
    fd, size, offset = _shared.shared_info(a)
    return (rebuild_tensor, (type(t), DupFd(fd), size, offset, a.shape, a.dtype, a.strides,
                             t._requires_grad))


def init_reductions() -> None:
    """Make ForkingPickler (queues, pipes, spawned processes' arguments) use
    ``reduce_tensor`` for ember tensors and parameters."""
    for cls in (Tensor, Parameter):
        ForkingPickler.register(cls, reduce_tensor)
