"""An ``ember.fx`` graph as TensorBoard's ``GraphDef`` (what ``add_graph`` writes).

One ``NodeDef`` per fx node: placeholders and the output become ``IO Node``s, a submodule's
call is named by its qualified name (so TensorBoard groups ``layer1/conv1`` under
``layer1``), and each node lists the nodes it reads as inputs.  With an example input, the
output shape of every node (from ``fx.passes.shape_prop``) is attached as ``_output_shapes``.
"""
from __future__ import annotations


def _target_name(node) -> str:
    t = node.target
    if isinstance(t, str):
        return t
    return getattr(t, "__qualname__", None) or getattr(t, "__name__", None) or repr(t)


def graph_def(gm, example_inputs=None):
    """``(GraphDef, RunMetadata)`` of the fx ``GraphModule`` ``gm``."""
    from tensorboard.compat.proto.graph_pb2 import GraphDef
    from tensorboard.compat.proto.node_def_pb2 import NodeDef
    from tensorboard.compat.proto.attr_value_pb2 import AttrValue
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboard.compat.proto.versions_pb2 import VersionDef
    from tensorboard.compat.proto.config_pb2 import RunMetadata
    from tensorboard.compat.proto.step_stats_pb2 import StepStats, DeviceStepStats
    if example_inputs is not None:
        from ember.fx.passes.shape_prop import ShapeProp
        ShapeProp(gm).propagate(*example_inputs)
    names = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            names[node] = node.target.replace(".", "/") + "/" + node.name
        elif node.op in ("placeholder", "output"):
            names[node] = ("input/" if node.op == "placeholder" else "output/") + node.name
        else:
            names[node] = node.name
    defs = []
    for node in gm.graph.nodes:
        if node.op == "placeholder" or node.op == "output":
            op = "IO Node"
        elif node.op == "call_module":
            op = type(gm.get_submodule(node.target)).__name__
        else:
            op = _target_name(node)
        attr = {"_fx_op": AttrValue(s=node.op.encode()),
                "target": AttrValue(s=_target_name(node).encode())}
        meta = node.meta.get("tensor_meta") if hasattr(node, "meta") else None
        if meta is not None and hasattr(meta, "shape"):
            shape = TensorShapeProto(dim=[TensorShapeProto.Dim(size=int(d))
                                          for d in meta.shape])
            attr["_output_shapes"] = AttrValue(list=AttrValue.ListValue(shape=[shape]))
        defs.append(NodeDef(name=names[node], op=op,
                            input=[names[i] for i in node.all_input_nodes], attr=attr))
    stats = RunMetadata(step_stats=StepStats(dev_stats=[DeviceStepStats(device="/device:CPU:0")]))
    return GraphDef(node=defs, versions=VersionDef(producer=22)), stats
