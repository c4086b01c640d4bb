"""``ember._logging`` (PyTorch's ``torch._logging``): ``set_logs`` turns ``ember.compile``'s
logs on and off from a program, as ``EMBER_LOGS``/``TORCH_LOGS`` do from the environment.

Design: ember's compiler logs five things (``graph``, ``code``, ``recompiles``, ``breaks``,
``guards``; ``dynamic`` too), each a flag ``ember._dynamo.eval_frame._log_on`` reads.
``set_logs`` takes PyTorch's keywords, maps each artifact it knows to one of those flags and
accepts the others (component levels, artifacts of parts ember does not have); once called,
its choice replaces the environment variable's, as PyTorch's does."""
from __future__ import annotations

__all__ = ["set_logs"]

# PyTorch's artifact keyword -> the flag of ember's compiler it turns on
_ARTIFACTS = {"graph": "graph", "graph_code": "graph", "graph_code_verbose": "graph",
              "aot_graphs": "graph", "aot_joint_graph": "graph", "output_code": "code",
              "kernel_code": "code", "graph_breaks": "breaks", "recompiles": "recompiles",
              "recompiles_verbose": "recompiles", "guards": "guards"}
# component levels (logging.DEBUG, INFO ...) ember has a log for: on at INFO and below
_LEVELS = {"dynamic": "dynamic"}
# the other keywords of PyTorch 2.13's set_logs: accepted, nothing of ember's to turn on
_OTHERS = frozenset((
    "all", "dynamo", "aot", "autograd", "inductor", "distributed", "c10d", "ddp", "fsdp",
    "dtensor", "onnx", "bytecode", "ddp_graphs", "side_effects", "graph_sizes", "trace_source",
    "trace_call", "trace_bytecode", "schedule", "perf_hints", "pre_grad_graphs",
    "post_grad_graphs", "ir_pre_fusion", "ir_post_fusion", "onnx_diagnostics", "fusion",
    "overlap", "export", "modules", "cudagraphs", "sym_node", "compiled_autograd",
    "compiled_autograd_verbose", "cudagraph_static_inputs", "benchmarking", "autotuning",
    "incremental", "graph_region_expansion", "inductor_metrics", "hierarchical_compile",
    "compute_dependencies", "caching"))


def set_logs(**kwargs) -> None:
    """Turn the compiler's logs on or off (``torch._logging.set_logs``): ``graph=True`` prints
    each captured graph, ``output_code=True`` the generated code, ``recompiles=True`` each
    recompile and its reason, ``graph_breaks=True`` each break, ``guards=True`` the guard
    function; a call replaces the previous one's choice (``set_logs()`` turns all off)."""
    from .._dynamo import eval_frame
    on = set()
    for name, value in kwargs.items():
        if name in _ARTIFACTS:
            if not isinstance(value, bool):  # PyTorch: artifacts are flags, not levels
                raise ValueError(f"Expected bool to enable artifact {name}, received {value}")
            if value:
                on.add(_ARTIFACTS[name])
        elif name in _LEVELS:
            if value is not None and value <= 20:  # logging.INFO
                on.add(_LEVELS[name])
        elif name not in _OTHERS:
            raise TypeError(f"set_logs() got an unexpected keyword argument '{name}'")
    eval_frame._logs_set[0] = frozenset(on)
