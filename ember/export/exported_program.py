"""``ExportedProgram``: a graph with parameters and buffers lifted to inputs, and the tensors
to feed them (``torch.export.ExportedProgram``)."""
from __future__ import annotations

import copy

from ..nn import Module
from .graph_signature import InputKind

__all__ = ["ExportedProgram"]


class ExportedProgram:
    """``graph_module`` takes (parameters, buffers, lifted constants, user inputs) as its
    placeholders in ``graph_signature`` order; ``module()`` binds the first three back."""

    def __init__(self, graph_module, graph_signature, state_dict, constants, range_constraints,
                 example_inputs, in_spec, out_spec, input_meta, dynamic):
        self._graph_module = graph_module
        self._graph_signature = graph_signature
        self._state_dict = state_dict
        self._constants = constants
        self._range_constraints = range_constraints
        self._example_inputs = example_inputs
        self._in_spec = in_spec      # flatten spec of (args + kwargs values)
        self._out_spec = out_spec
        self._input_meta = input_meta  # per user input: (name, shape, dtype)
        self._dynamic = dynamic        # per user input: {dim: Dim}
        self.verifiers = ()

    graph_module = property(lambda self: self._graph_module)
    graph_signature = property(lambda self: self._graph_signature)
    state_dict = property(lambda self: self._state_dict)
    constants = property(lambda self: self._constants)
    range_constraints = property(lambda self: self._range_constraints)
    example_inputs = property(lambda self: self._example_inputs)
    module_call_graph = property(lambda self: [])
    dialect = "ATEN"

    @property
    def graph(self):
        return self._graph_module.graph

    @property
    def tensor_constants(self) -> dict:
        return self._constants

    def parameters(self):
        for name in self._graph_signature.parameters:
            yield self._state_dict[name]

    def named_parameters(self):
        for name in self._graph_signature.parameters:
            yield name, self._state_dict[name]

    def buffers(self):
        for _, b in self.named_buffers():
            yield b

    def named_buffers(self):
        for name in self._graph_signature.buffers:
            yield name, self._state_dict.get(name, self._constants.get(name))

    def __deepcopy__(self, memo):
        import copy as _copy
        new = _copy.copy(self)  # the graph is shared; the tensors are copied
        new._state_dict = _copy.deepcopy(self._state_dict, memo)
        new._constants = _copy.deepcopy(self._constants, memo)
        return new

    def __call__(self, *args, **kwargs):
        raise RuntimeError("Unable to call ExportedProgram directly. You should use "
                           "`exported_program.module()` instead.")

    def module(self) -> Module:
        """A module running the graph with this program's parameters and buffers, checking
        inputs against the exported shapes (``ExportedProgram.module``)."""
        from ._unlift import ExportedModule
        return ExportedModule(self)

    def run_decompositions(self, decomp_table=None, decompose_custom_triton_ops=False):
        """A copy of the program: ember's graph is already made of its core ops (each op an
        ``autograd.Function``), so there is nothing further to decompose."""
        new = copy.copy(self)
        from ..fx.graph import Graph
        from ..fx.graph_module import GraphModule
        g = Graph()
        out = g.graph_copy(self._graph_module.graph, {})
        g.output(out)
        consts = {n.target: getattr(self._graph_module, n.target) for n in g.nodes
                  if n.op == "get_attr"}
        new._graph_module = GraphModule(consts, g)
        return new

    def validate(self) -> None:
        self._graph_module.graph.lint()

    def __str__(self):
        code = self._graph_module.print_readable(print_output=False)
        code = "\n".join("    " + line for line in code.splitlines())
        sig = "\n".join("    " + line for line in str(self._graph_signature).splitlines())
        return (f"ExportedProgram:\n{code}\nGraph signature: {sig}\n"
                f"Range constraints: {self._range_constraints}\n")

    __repr__ = __str__


def _lifted_values(ep: ExportedProgram, owner) -> list:
    """The tensors for the lifted placeholders, read live from ``owner`` by target name."""
    out = []
    for spec in ep.graph_signature.input_specs:
        if spec.kind == InputKind.USER_INPUT:
            continue
        obj = owner
        for part in spec.target.split("."):
            obj = getattr(obj, part)
        out.append(obj)
    return out

