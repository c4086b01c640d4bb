"""``functional_call`` (a module called with other tensors in place of its own) and
``stack_module_state`` (many same-shaped modules' state stacked for ``vmap``)."""
from __future__ import annotations

from contextlib import contextmanager

__all__ = ["functional_call", "stack_module_state"]


def _merge(dicts) -> dict:
    if isinstance(dicts, dict):
        return dicts
    if isinstance(dicts, (tuple, list)):
        if not all(isinstance(d, dict) for d in dicts):
            raise ValueError("Expected all elements of parameter_and_buffer_dicts to be "
                             "dictionaries")
        seen: dict = {}
        for d in dicts:
            for k in d:
                seen[k] = seen.get(k, 0) + 1
        repeated = [k for k, n in seen.items() if n > 1]
        if repeated:
            raise ValueError(f"{repeated} appeared in multiple dictionaries; behavior of "
                             "functional call is ambiguous")
        return {k: v for d in dicts for k, v in d.items()}
    raise ValueError("Expected parameter_and_buffer_dicts to be a dict, or a list/tuple of "
                     f"dicts, but got {type(dicts)}")


def _untie(module, given: dict) -> dict:
    """Extend ``given`` to every name of a tied tensor (one value for all its names)."""
    names: dict = {}
    for name, t in list(module.named_parameters(remove_duplicate=False)) + \
            list(module.named_buffers(remove_duplicate=False)):
        names.setdefault(id(t), set()).add(name)
    tied = {n: group for group in names.values() if len(group) > 1 for n in group}
    out = dict(given)
    for name in given:
        if name not in tied:
            continue
        group = tied[name]
        values = {id(given[n]) for n in group if n in given}
        if len(values) > 1:
            raise ValueError(f"functional_call got multiple values for keys {sorted(group)}, "
                             "which are tied. Consider using tie_weights=False")
        for n in group:
            out[n] = given[name]
    return out


def _owner(module, name: str):
    """``(submodule, attribute)`` for a dotted name."""
    prefix, _, attr = name.rpartition(".")
    return (module.get_submodule(prefix) if prefix else module), attr


def _swap(mod, attr: str, value):
    """Put ``value`` where ``mod.attr`` lives (parameter, buffer or plain attribute); return
    a function that puts the old value back."""
    for table in (mod._parameters, mod._buffers):
        if attr in table:
            old = table[attr]
            table[attr] = value

            def restore(table=table, old=old):
                table[attr] = old
            return restore
    missing = object()
    old = mod.__dict__.get(attr, missing)
    object.__setattr__(mod, attr, value)

    def restore_attr():
        if old is missing:
            mod.__dict__.pop(attr, None)
        else:
            object.__setattr__(mod, attr, old)
    return restore_attr


@contextmanager
def _reparametrize(module, values: dict, tie_weights: bool, strict: bool):
    if tie_weights:
        values = _untie(module, values)
    if strict:
        own = [n for n, _ in module.named_parameters(remove_duplicate=False)]
        own += [n for n, _ in module.named_buffers(remove_duplicate=False)]
        missing = [n for n in own if n not in values]
        unexpected = [n for n in values if n not in set(own)]
        msgs = []
        if unexpected:
            msgs.append(f"Unexpected key(s): {', '.join(map(repr, unexpected))}.")
        if missing:
            msgs.append(f"Missing key(s): {', '.join(map(repr, missing))}.")
        if msgs:
            raise RuntimeError(f"Error(s) in reparametrizing for {module._get_name()}:\n\t"
                               + "\n\t".join(msgs))
    restores = []
    try:
        for name, value in values.items():
            mod, attr = _owner(module, name)
            restores.append(_swap(mod, attr, value))
        yield
    finally:
        for restore in reversed(restores):
            restore()


def functional_call(module, parameter_and_buffer_dicts, args=None, kwargs=None, *,
                    tie_weights=True, strict=False):
    """``module(*args, **kwargs)`` with the given tensors standing in for its parameters and
    buffers, restored afterwards even if the call raises (``torch.func.functional_call``)."""
    values = _merge(parameter_and_buffer_dicts)
    if kwargs is None:
        kwargs = {}
    if args is None:
        args = ()
    elif not isinstance(args, tuple):
        args = (args,)
    with _reparametrize(module, values, tie_weights, strict):
        return module(*args, **kwargs)


def _stacked_leaf(tensors, name: str):
    from .. import stack
    needs = [t.requires_grad for t in tensors]
    if any(needs) and not all(needs):
        raise RuntimeError(f"Expected {name} from each model to have the same .requires_grad")
    out = stack(tensors)
    return out.detach().requires_grad_() if all(needs) else out


def stack_module_state(models) -> tuple[dict, dict]:
    """``(params, buffers)``: each name's tensors from every model stacked on a new dim 0
    (``torch.func.stack_module_state``); stacked parameters are new leaves."""
    models = list(models)
    if len(models) == 0:
        raise RuntimeError("stack_module_state: Expected at least one model, got 0.")
    if not (all(m.training for m in models) or all(not m.training for m in models)):
        raise RuntimeError("stack_module_state: Expected all models to have the same "
                           "training/eval mode.")
    if not all(type(m) is type(models[0]) for m in models):
        raise RuntimeError("stack_module_state: Expected all models to be of the same class.")
    all_params = [dict(m.named_parameters()) for m in models]
    params = {k: _stacked_leaf([p[k] for p in all_params], k) for k in all_params[0]}
    all_bufs = [dict(m.named_buffers()) for m in models]
    buffers = {k: _stacked_leaf([b[k] for b in all_bufs], k) for k in all_bufs[0]}
    return params, buffers
