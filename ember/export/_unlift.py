"""``ExportedProgram.module()``: the lifted graph as a module again (``torch.export._unlift``)."""
from __future__ import annotations

from ..fx.graph_module import _assign
from ..nn import Module
from .exported_program import _lifted_values

__all__ = ["ExportedModule"]


class ExportedModule(Module):
    """Holds the program's parameters and buffers under their names and runs its graph;
    inputs are checked against the exported shapes first, as PyTorch's guards do."""

    def __init__(self, ep):
        super().__init__()
        from ..jit._program import Program
        self.__dict__["_ep"] = ep
        self.__dict__["_program"] = Program(ep.graph_module.graph)
        non_persistent = set(ep.graph_signature.non_persistent_buffers)
        for name, t in ep.state_dict.items():
            _assign(t, self, name)
        for name in non_persistent:
            _assign(ep.constants[name], self, name)
            *path, last = name.split(".")
            owner = self.get_submodule(".".join(path)) if path else self
            owner._non_persistent_buffers_set.add(last)
        for spec in ep.graph_signature.input_specs:  # lifted constants: plain attributes
            if spec.kind.name == "CONSTANT_TENSOR":
                object.__setattr__(self, spec.target, ep.constants[spec.target])

    def forward(self, *args, **kwargs):
        from ..fx.experimental.proxy_tensor import flatten, unflatten
        ep = self._ep
        leaves, spec = flatten(tuple(args) + tuple(kwargs[k] for k in ep._kwarg_names
                                                   if k in kwargs))
        if spec != ep._in_spec or set(kwargs) - set(ep._kwarg_names):
            raise TypeError(f"the exported program takes inputs shaped as its example "
                            f"({ep._in_types}); got {len(args)} positional and "
                            f"{sorted(kwargs)} keyword argument(s)")
        _guard(ep, leaves)
        inputs = _lifted_values(ep, self) + leaves
        out = self._program.run(ep.graph_module, inputs)
        return unflatten(list(out), ep._out_spec)


def _guard(ep, leaves) -> None:
    """PyTorch's input guards: rank, static sizes, and each Dim's range."""
    for (name, shape, _), dyn, t in zip(ep._input_meta, ep._dynamic, leaves):
        if shape is None:  # a non-tensor input: baked into the graph as its example value
            continue
        if t.dim() != len(shape):
            raise AssertionError(f"Guard failed: {name}.dim() == {len(shape)}")
        for i, (n, want) in enumerate(zip(t.shape, shape)):
            d = dyn.get(i)
            if d is None:
                if n != want:
                    raise AssertionError(f"Guard failed: {name}.size()[{i}] == {want}")
            elif n > d.max:
                raise AssertionError(f"Guard failed: {name}.size()[{i}] <= {d.max}")
            elif n < d.min:
                raise AssertionError(f"Guard failed: {name}.size()[{i}] >= {d.min}")
