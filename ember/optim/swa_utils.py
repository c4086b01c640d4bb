"""Weight averaging (``torch.optim.swa_utils``): ``AveragedModel`` keeps a running SWA or EMA
copy of a model's parameters; ``update_bn`` recomputes batch-norm statistics for it; ``SWALR``
anneals the learning rate to a constant SWA rate.

``AveragedModel(model)`` holds a deep copy of ``model`` and a ``n_averaged`` count buffer.
``update_parameters(model)`` copies ``model``'s parameters on its first call and then folds
them into the copy: by default the equal-weight average ``W += (W_model - W) / (n + 1)``
(SWA), or ``avg_fn(W, W_model, n)`` per tensor, or ``multi_avg_fn(Ws, W_models, n)`` on the
lists (``get_ema_multi_avg_fn(decay)``: ``W = decay W + (1 - decay) W_model`` as one foreach
lerp).  Buffers follow the model's unless ``use_buffers`` averages them too.  Whether this is
the first call is read from the ``n_averaged`` buffer (``bool(n_averaged == 0)``), as PyTorch
does: inside a compiled function that is data-dependent control flow, a graph break (PyTorch
2.13's dynamo breaks there too).
"""
from __future__ import annotations

import itertools
import math
import warnings
from copy import deepcopy

from .. import _creation
from .. import _dtype
from .._tensor import Tensor
from ..autograd.grad_mode import no_grad
from ..nn.modules.module import Module
from .lr_scheduler import LRScheduler, _format_param

__all__ = ["AveragedModel", "update_bn", "SWALR", "get_ema_multi_avg_fn",
           "get_swa_multi_avg_fn", "get_ema_avg_fn", "get_swa_avg_fn"]


def _check_decay(decay) -> None:
    if decay < 0.0 or decay > 1.0:
        raise ValueError(f"Invalid decay value {decay} provided. Please provide a value in "
                         "[0,1] range.")


def _floating(t: Tensor) -> bool:
    return t.dtype.is_floating_point or t.dtype.is_complex


def get_ema_multi_avg_fn(decay=0.999):
    """``W = decay * W + (1 - decay) * W_model`` over lists of tensors (one foreach lerp by
    ``1 - decay`` for floating tensors)."""
    _check_decay(decay)

    def ema_update(ema_param_list, current_param_list, _):
        import ember
        with no_grad():
            if _floating(ema_param_list[0]):
                ember._foreach_lerp_(ema_param_list, current_param_list, 1 - decay)
                return
            for p_ema, p_model in zip(ema_param_list, current_param_list):
                p_ema.copy_(p_ema * decay + p_model * (1 - decay))
    return ema_update


def get_swa_multi_avg_fn():
    """The running equal-weight average over lists: ``W += (W_model - W) / (n + 1)`` (a lerp
    by ``1 / (n + 1)`` for floating tensors)."""
    def swa_update(averaged_param_list, current_param_list, num_averaged):
        import ember
        with no_grad():
            if _floating(averaged_param_list[0]):
                ember._foreach_lerp_(averaged_param_list, current_param_list,
                                     float(1 / (num_averaged + 1)))
                return
            diffs = ember._foreach_sub(current_param_list, averaged_param_list)
            if isinstance(num_averaged, Tensor):
                ember._foreach_addcdiv_(averaged_param_list, diffs,
                                        [num_averaged + 1] * len(averaged_param_list))
            else:
                ember._foreach_add_(averaged_param_list, diffs, alpha=1.0 / (num_averaged + 1))
    return swa_update


def get_ema_avg_fn(decay=0.999):
    """``decay * W + (1 - decay) * W_model`` for one tensor."""
    _check_decay(decay)

    def ema_update(ema_param, current_param, num_averaged):
        with no_grad():
            return decay * ema_param + (1 - decay) * current_param
    return ema_update


def get_swa_avg_fn():
    """``W + (W_model - W) / (n + 1)`` for one tensor."""
    def swa_update(averaged_param, current_param, num_averaged):
        with no_grad():
            return averaged_param + (current_param - averaged_param) / (num_averaged + 1)
    return swa_update


class AveragedModel(Module):
    """A running average (SWA by default, or ``avg_fn``/``multi_avg_fn``) of ``model``'s
    parameters in a deep copy of it (``torch.optim.swa_utils.AveragedModel``)."""

    def __init__(self, model: Module, device=None, avg_fn=None, multi_avg_fn=None,
                 use_buffers=False):
        super().__init__()
        if avg_fn is not None and multi_avg_fn is not None:
            raise AssertionError("Only one of avg_fn and multi_avg_fn should be provided")
        self.module = deepcopy(model)
        if device is not None:
            self.module = self.module.to(device)
        self.register_buffer("n_averaged", _creation.tensor(0, dtype=_dtype.int64,
                                                            device=device))
        self.avg_fn = avg_fn
        self.multi_avg_fn = multi_avg_fn
        self.use_buffers = use_buffers

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def update_parameters(self, model: Module) -> None:
        """Fold ``model``'s current parameters (and buffers with ``use_buffers``) into the
        average; the first call copies them."""
        if self.use_buffers:
            mine = list(itertools.chain(self.module.parameters(), self.module.buffers()))
            theirs = list(itertools.chain(model.parameters(), model.buffers()))
        else:
            mine, theirs = list(self.parameters()), list(model.parameters())
        averaged, current = [], []
        first = bool(self.n_averaged == 0)  # data-dependent: a compiled graph breaks here
        for p_avg, p_model in zip(mine, theirs):
            src = p_model.detach().to(p_avg.device)
            averaged.append(p_avg.detach())
            current.append(src)
            if first:
                p_avg.detach().copy_(src)
        if not first:
            n = self.n_averaged
            if self.multi_avg_fn is not None:
                for group in _by_dtype(averaged, current):
                    self.multi_avg_fn(group[0], group[1], n.to(group[0][0].device))
            elif self.avg_fn is None:  # on the cpu: the per-tensor SWA update, as PyTorch's
                swa = get_swa_avg_fn()
                for p_avg, src in zip(averaged, current):
                    p_avg.copy_(swa(p_avg, src, n.to(p_avg.device)))
            else:
                for p_avg, src in zip(averaged, current):
                    p_avg.detach().copy_(self.avg_fn(p_avg.detach(), src, n.to(p_avg.device)))
        if not self.use_buffers:  # buffers follow the model's (batch-norm statistics)
            for b_avg, b_model in zip(self.module.buffers(), model.buffers()):
                b_avg.detach().copy_(b_model.detach().to(b_avg.device))
        self.n_averaged += 1


def _by_dtype(averaged, current) -> list:
    """The two lists split into groups of one device and dtype, order kept within each."""
    groups = {}
    for a, c in zip(averaged, current):
        groups.setdefault((a.device.type, a.dtype), ([], []))
        groups[(a.device.type, a.dtype)][0].append(a)
        groups[(a.device.type, a.dtype)][1].append(c)
    return list(groups.values())


def update_bn(loader, model: Module, device=None) -> None:
    """Recompute the batch-norm running statistics of ``model`` with one pass over ``loader``
    (each batch a tensor, or a list/tuple whose first element is the input), as cumulative
    averages (momentum ``None``); the modules' momenta and training flag are restored."""
    from ..nn.modules.batchnorm import _BatchNorm
    momenta = {}
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            m.reset_running_stats()
            momenta[m] = m.momentum
    if not momenta:
        return
    was_training = model.training
    model.train()
    for m in momenta:
        m.momentum = None
    with no_grad():
        for batch in loader:
            if isinstance(batch, (list, tuple)):
                batch = batch[0]
            if device is not None:
                batch = batch.to(device)
            model(batch)
    for m, momentum in momenta.items():
        m.momentum = momentum
    model.train(was_training)


class SWALR(LRScheduler):
    """Anneal each group's ``lr`` to its ``swa_lr`` over ``anneal_epochs`` steps, by cosine
    (``(1 - cos(pi t)) / 2``) or linearly (``t``), then hold it
    (``torch.optim.swa_utils.SWALR``)."""

    def __init__(self, optimizer, swa_lr, anneal_epochs=10, anneal_strategy="cos",
                 last_epoch=-1):
        for lr, group in zip(_format_param("swa_lr", optimizer, swa_lr), optimizer.param_groups):
            group["swa_lr"] = lr
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError("anneal_strategy must be one of 'cos' or 'linear', instead got "
                             f"{anneal_strategy}")
        self._set_anneal_func(anneal_strategy)
        if not isinstance(anneal_epochs, int) or anneal_epochs < 0:
            raise ValueError(f"anneal_epochs must be equal or greater than 0, got "
                             f"{anneal_epochs}")
        self.anneal_epochs = anneal_epochs
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _linear_anneal(t):
        return t

    @staticmethod
    def _cosine_anneal(t):
        return (1 - math.cos(math.pi * t)) / 2

    @staticmethod
    def _get_initial_lr(lr, swa_lr, alpha):
        # the lr the annealing started from, recovered from this step's mix
        return swa_lr if alpha == 1 else (lr - alpha * swa_lr) / (1 - alpha)

    def _set_anneal_func(self, anneal_strategy) -> None:
        self._anneal_strategy = anneal_strategy
        self.anneal_func = self._cosine_anneal if anneal_strategy == "cos" else \
            self._linear_anneal

    def get_lr(self):
        """``swa_lr * alpha(t) + lr0 * (1 - alpha(t))`` at ``t = step / anneal_epochs``."""
        if not self._get_lr_called_within_step:
            warnings.warn("To get the last learning rate computed by the scheduler, please use "
                          "`get_last_lr()`.", UserWarning, stacklevel=2)
        step = self._step_count - 1
        if self.anneal_epochs == 0:
            step = max(1, step)
        width = max(1, self.anneal_epochs)
        groups = self.optimizer.param_groups
        prev = self.anneal_func(max(0, min(1, (step - 1) / width)))
        starts = [self._get_initial_lr(g["lr"], g["swa_lr"], prev) for g in groups]
        alpha = self.anneal_func(max(0, min(1, step / width)))
        return [g["swa_lr"] * alpha + lr * (1 - alpha) for g, lr in zip(groups, starts)]

    def state_dict(self):
        """Every attribute except the optimizer and the anneal function."""
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "anneal_func")}

    def load_state_dict(self, state_dict):
        self.__dict__.update(state_dict)
        self._set_anneal_func(self._anneal_strategy)
