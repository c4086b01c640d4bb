"""``nn`` layers: batch normalisation (``BatchNorm1d/2d/3d``) and their shared base."""
from __future__ import annotations

from ... import _creation
from ..._dtype import int64
from ...autograd.grad_mode import no_grad
from ...autograd.function import _version_counter
from .. import functional as F
from .. import init
from ..parameter import Parameter, UninitializedParameter, UninitializedBuffer
from .lazy import LazyModuleMixin
from .module import Module

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LazyBatchNorm1d", "LazyBatchNorm2d",
           "LazyBatchNorm3d", "SyncBatchNorm"]


class _NormBase(Module):
    """Parameters, running-stat buffers and repr shared by batch and instance norm."""

    _version = 2  # version 2 added ``num_batches_tracked``

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None, *,
                 bias: bool = True) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = Parameter(_creation.empty(num_features, dtype=dtype, device=device))
            if bias:
                self.bias = Parameter(_creation.empty(num_features, dtype=dtype, device=device))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean",
                                 _creation.zeros(num_features, dtype=dtype, device=device))
            self.register_buffer("running_var",
                                 _creation.ones(num_features, dtype=dtype, device=device))
            self.register_buffer("num_batches_tracked",
                                 _creation.tensor(0, dtype=int64, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches seen."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """Reset the running stats; weight 1 and bias 0."""
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def _check_input_dim(self, input):
        raise NotImplementedError

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs, *args, **kwargs):
        version = local_metadata.get("version", None)
        if (version is None or version < 2) and self.track_running_stats:
            # checkpoints older than version 2 have no ``num_batches_tracked``: start it at 0
            key = prefix + "num_batches_tracked"
            if key not in state_dict:
                state_dict[key] = (self.num_batches_tracked if self.num_batches_tracked
                                   is not None else _creation.tensor(0, dtype=int64))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs, *args, **kwargs)


class _BatchNorm(_NormBase):
    """Batch norm over dim 1: batch statistics in training, running statistics in eval."""

    def _update_factor(self) -> float:
        """Count one more training batch; the running stats' update factor (the momentum,
        or 1/batches for a cumulative moving average when it is None)."""
        momentum = self.momentum
        factor = 0.0 if momentum is None else momentum
        if self.training and self.track_running_stats:
            count = self.num_batches_tracked
            if count is not None:
                # ``count.add_(1)`` without the in-place machinery (an int counter has no graph)
                count._data += 1
                _version_counter(count)[0] += 1
                if momentum is None:  # cumulative moving average
                    factor = 1.0 / float(count._data)
        return factor

    def forward(self, input):
        self._check_input_dim(input)
        factor = self._update_factor()
        training = self.training
        # batch statistics in training, and in eval when no running stats are kept
        use_batch = training or (self.running_mean is None and self.running_var is None)
        track = not training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if track else None,
                            self.running_var if track else None, self.weight, self.bias,
                            use_batch, factor, self.eps)


def _sync_batch_norm(x, weight, bias, running_mean, running_var, eps, factor, group):
    """Batch norm with mean and variance over every rank's batch: two differentiable
    all-reduces (sums and count, then squared deviations from the global mean)."""
    from ...distributed.nn.functional import all_reduce
    from ...ops.movement import cat
    c = x.shape[1]
    dims = [0] + list(range(2, x.dim()))
    shape = [1, c] + [1] * (x.dim() - 2)
    local = _creation.full((1,), x.numel() // c, dtype=x.dtype)
    sums = all_reduce(cat([x.sum(dims), local]), group=group)
    n = float(sums[c].item())
    if n <= 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input "
                         f"size {int(n)}")
    mean = sums[:c] / n
    xc = x - mean.reshape(shape)
    var = all_reduce((xc * xc).sum(dims), group=group) / n
    y = xc * (var + eps).rsqrt().reshape(shape)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    if running_mean is not None:
        with no_grad():
            running_mean.mul_(1 - factor).add_(mean.detach() * factor)
            running_var.mul_(1 - factor).add_(var.detach() * (factor * n / (n - 1)))
    return y


class BatchNorm1d(_BatchNorm):
    """Batch norm of (N, C) or (N, C, L) input."""

    def _check_input_dim(self, input):
        if input.dim() != 2 and input.dim() != 3:
            raise ValueError(f"expected 2D or 3D input (got {input.dim()}D input)")


class BatchNorm2d(_BatchNorm):
    """Batch norm of (N, C, H, W) input."""

    def _check_input_dim(self, input):
        if input.dim() != 4:
            raise ValueError(f"expected 4D input (got {input.dim()}D input)")


class BatchNorm3d(_BatchNorm):
    """Batch norm of (N, C, D, H, W) input."""

    def _check_input_dim(self, input):
        if input.dim() != 5:
            raise ValueError(f"expected 5D input (got {input.dim()}D input)")


class _LazyNormBase(LazyModuleMixin, _NormBase):
    """A norm layer whose ``num_features`` is read from ``input.shape[1]`` on first use."""

    cls_to_become = None

    def __init__(self, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 device=None, dtype=None) -> None:
        super().__init__(0, eps, momentum, False, False, device, dtype)
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = UninitializedParameter()
            self.bias = UninitializedParameter()
        if track_running_stats:
            self.running_mean = UninitializedBuffer()
            self.running_var = UninitializedBuffer()
            self.num_batches_tracked = _creation.tensor(0, dtype=int64, device=device)
        self._lazy_setup(dtype)

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params() and self.num_features != 0:
            super().reset_parameters()

    def initialize_parameters(self, input) -> None:
        """Shapes from ``input.shape[1]`` (PyTorch reads dim 1 for every input rank)."""
        if self.has_uninitialized_params():
            with no_grad():
                self.num_features = input.shape[1]
                n, dt = (self.num_features,), self._lazy_dtype
                if self.affine:
                    self.weight.materialize(n, dtype=dt)
                    self.bias.materialize(n, dtype=dt)
                if self.track_running_stats:
                    self.running_mean.materialize(n, dtype=dt)
                    self.running_var.materialize(n, dtype=dt)
                self.reset_parameters()


class LazyBatchNorm1d(_LazyNormBase, _BatchNorm):
    """``BatchNorm1d`` with ``num_features`` inferred from the first input."""

    cls_to_become = BatchNorm1d
    _check_input_dim = BatchNorm1d._check_input_dim


class LazyBatchNorm2d(_LazyNormBase, _BatchNorm):
    """``BatchNorm2d`` with ``num_features`` inferred from the first input."""

    cls_to_become = BatchNorm2d
    _check_input_dim = BatchNorm2d._check_input_dim


class LazyBatchNorm3d(_LazyNormBase, _BatchNorm):
    """``BatchNorm3d`` with ``num_features`` inferred from the first input."""

    cls_to_become = BatchNorm3d
    _check_input_dim = BatchNorm3d._check_input_dim


class SyncBatchNorm(_BatchNorm):
    """Batch norm over dim 1 of any input of 2 or more dims, its statistics computed over the
    whole batch of every rank of ``process_group`` in training (``torch.nn.SyncBatchNorm``);
    outside a process group of 2 or more ranks, and in eval, it is ``_BatchNorm``.

    Unlike PyTorch's, which needs a GPU for the synchronised path, it runs on the cpu: the
    sums behind the mean and the variance go through ``ember.distributed.nn.functional
    .all_reduce``, whose backward all-reduces their gradients, so the input's gradient is that
    of every rank's loss, as PyTorch's ``sync_batch_norm`` backward computes it."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = True,
                 track_running_stats: bool = True, process_group=None, device=None,
                 dtype=None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.process_group = process_group

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def _check_non_zero_input_channels(self, input):
        if input.size(1) == 0:
            raise ValueError("SyncBatchNorm number of input channels should be non-zero")

    def forward(self, input):
        self._check_input_dim(input)
        self._check_non_zero_input_channels(input)
        group = self._sync_group() if self.training else None
        if group is None:
            return super().forward(input)
        factor = self._update_factor()
        track = self.track_running_stats
        return _sync_batch_norm(input, self.weight, self.bias,
                                self.running_mean if track else None,
                                self.running_var if track else None, self.eps, factor, group)

    def _sync_group(self):
        """The process group to synchronise over, or None (no group, or a single rank)."""
        import sys
        if "ember.distributed" not in sys.modules:  # never initialised: stay import-light
            return None
        from ... import distributed as dist
        if not dist.is_initialized():
            return None
        group = self.process_group if self.process_group is not None else dist.group.WORLD
        return group if dist.get_world_size(group) > 1 else None

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """``module`` with every batch-norm layer in it replaced by a ``SyncBatchNorm`` that
        shares its parameters and running statistics."""
        out = module
        if isinstance(module, _BatchNorm):
            out = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                module.track_running_stats, process_group)
            if module.affine:
                with no_grad():
                    out.weight = module.weight
                    out.bias = module.bias
            out.running_mean = module.running_mean
            out.running_var = module.running_var
            out.num_batches_tracked = module.num_batches_tracked
            out.training = module.training
            if hasattr(module, "qconfig"):
                out.qconfig = module.qconfig
        for name, child in module.named_children():
            out.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return out
