"""``Join``: training with uneven inputs across ranks (``torch.distributed.algorithms.join``).

NOTE [ Join ]: each rank runs its own number of iterations inside ``with Join([ddp_model]):``.
While a rank still has data, every forward of its first ``Joinable`` all-reduces a 1 (the
number of ranks not yet joined). A rank that has run out leaves the ``with`` body and, in
``__exit__``, loops: it all-reduces a 0 (the same collective) and, while the sum says some
rank is still training, runs every joinable's ``JoinHook.main_hook`` once, which issues the
collectives one iteration of the others issues (DDP: one all-reduce of zeros per gradient
bucket), so their collectives always find a partner. When the sum is 0 every rank has
joined; each hook's ``post_hook(is_last_joiner)`` then runs (DDP: every rank takes the
parameters of a rank that joined last, which trained on all of its data).
"""
from __future__ import annotations

import warnings

from ... import _creation
from .. import distributed_c10d as c10d

__all__ = ["Join", "Joinable", "JoinHook"]


class JoinHook:
    """What a joined rank runs for one joinable: ``main_hook`` once per iteration the others
    still run, ``post_hook`` once when every rank has joined."""

    def main_hook(self) -> None:
        """Shadow the collectives of one training iteration."""

    def post_hook(self, is_last_joiner: bool) -> None:
        """Clean up once every rank has joined."""


class Joinable:
    """A class whose collectives ``Join`` can shadow: it gives a ``join_hook``, a
    ``join_device`` and a ``join_process_group``, and calls ``Join.notify_join_context(self)``
    once per iteration before its own collectives."""

    def __init__(self) -> None:
        self._join_config = _JoinConfig.construct_disabled_join_config()

    def join_hook(self, **kwargs) -> JoinHook:
        raise NotImplementedError

    @property
    def join_device(self):
        raise NotImplementedError

    @property
    def join_process_group(self):
        raise NotImplementedError


class _JoinConfig:
    def __init__(self, enable: bool, throw_on_early_termination: bool,
                 is_first_joinable: bool) -> None:
        self.enable = enable
        self.throw_on_early_termination = throw_on_early_termination
        self.is_first_joinable = is_first_joinable

    @staticmethod
    def construct_disabled_join_config():
        return _JoinConfig(False, False, False)


class Join:
    """Context manager letting ranks with fewer inputs shadow the collectives of the others
    (NOTE [ Join ]); ``kwargs`` go to every joinable's ``join_hook``."""

    def __init__(self, joinables, enable: bool = True, throw_on_early_termination: bool = False,
                 **kwargs) -> None:
        if len(joinables) == 0:
            raise ValueError("The join context manager requires at least one joinable")
        self._joinables = list(joinables)
        self._join_hooks = [j.join_hook(**kwargs) for j in self._joinables]
        self._enable = enable
        self._throw_on_early_termination = throw_on_early_termination
        self._set_joinable_configs()
        self._extract_dist_info()

    def _set_joinable_configs(self) -> None:
        assert len(self._joinables) > 0
        is_first = True
        for joinable in self._joinables:
            joinable._join_config = _JoinConfig(self._enable, self._throw_on_early_termination,
                                                is_first)
            is_first = False

    def _extract_dist_info(self) -> None:
        groups = {id(j.join_process_group) for j in self._joinables}
        if len(groups) > 1:
            raise ValueError("Using join context manager with multiple process groups")
        self._process_group = self._joinables[0].join_process_group
        self._rank = c10d.get_rank(self._process_group)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        if not self._enable or exc_type is not None:
            return None  # an exception propagates: no shadowing for a failed rank
        all_joined = False
        is_last_joiner = True
        i = 0
        while not all_joined:
            if i > 1000:  # PyTorch's warning threshold
                warnings.warn(f"Detected uneven input skew of greater than 1000. This means "
                              f"that rank {self._rank} has at least 1000 fewer inputs than "
                              f"other currently-active ranks. This level of skew could lead "
                              f"to performance degradation during training.")
                i = -10 ** 9
            if self._get_num_nonjoined_procs() == 0:
                all_joined = True
            else:
                if self._throw_on_early_termination:
                    self._notify_procs_to_terminate()
                for hook in self._join_hooks:
                    hook.main_hook()
                is_last_joiner = False
                i += 1
        for hook in self._join_hooks:
            hook.post_hook(is_last_joiner)
        # every rank leaves together: later iterations need no join collectives
        for joinable in self._joinables:
            joinable._join_config = _JoinConfig.construct_disabled_join_config()
        return None

    def _get_num_nonjoined_procs(self) -> int:
        """This rank has joined: it adds 0 to the count of ranks still training."""
        count = _creation.zeros(1)
        c10d.all_reduce(count, group=self._process_group)
        return int(count.item())

    def _notify_procs_to_terminate(self):
        ones = _creation.ones(1)
        c10d.all_reduce(ones, group=self._process_group)
        raise RuntimeError(f"Rank {self._rank} exhausted all inputs.")

    @staticmethod
    def notify_join_context(joinable: Joinable):
        """Called by a joinable before its per-iteration collectives: the first joinable
        all-reduces a 1 (matched by joined ranks' 0); returns the count of ranks training."""
        config = joinable._join_config
        if not config.is_first_joinable or not config.enable:
            return None
        group = joinable.join_process_group
        count = _creation.ones(1)
        c10d.all_reduce(count, group=group)
        if config.throw_on_early_termination:
            flag = _creation.zeros(1)
            c10d.all_reduce(flag, group=group)
            if flag.item():
                raise RuntimeError("Detected at least one rank that exhausted inputs. "
                                   "Throwing across all ranks.")
        return count
