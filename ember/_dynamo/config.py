"""Knobs of ``ember.compile`` (PyTorch's ``torch._dynamo.config``)."""

# Compiled entries kept per compiled function (one per distinct set of guards); past it the
# function runs eagerly with a warning.  ``recompile_limit`` is the newer name of the same
# limit: the smaller of the two applies.
cache_size_limit = 8
recompile_limit = 8
# Entries of one code object over all its compiled functions (closures of one lambda, the
# compiled instances of one module class), as PyTorch's: past it, new guards run eagerly.
accumulated_cache_size_limit = 256
accumulated_recompile_limit = 256
# Ignored (accepted for scripts that set them): ember never raises on a graph break unless
# ``fullgraph=True``.
suppress_errors = False
verbose = False
# Whether compiled code ignores module forward/backward hooks added or removed after it was
# captured (NOTE [ Hook guard ] in eval_frame.py).  PyTorch's default is True, which it
# documents as unsafe (the hooks first compiled keep running); ember's is False, so a hook
# change recompiles and the numbers are eager's.
skip_nnmodule_hook_guards = False
# Sizes a dynamic graph keeps generated code for (NOTE [ Dynamic compiled graphs ]); past it
# the oldest size's code is dropped (made again, from the graph, if that size comes back).
dynamic_instance_limit = 64


def patcher(module):
    """``module.patch`` of a config module (PyTorch's ``config.patch``): ``patch("name", v)``,
    ``patch({"name": v})`` or ``patch(name=v)`` (dotted names reach a namespace class:
    ``"triton.cudagraphs"``), as a context manager or a decorator that puts the old values
    back."""
    import contextlib

    class _Patch(contextlib.ContextDecorator):
        def __init__(self, changes):
            self.changes, self.saved = changes, []

        def __enter__(self):
            for name, value in self.changes.items():
                *path, last = name.split(".")
                owner = module
                for part in path:
                    owner = getattr(owner, part)
                self.saved.append((owner, last, getattr(owner, last)))
                setattr(owner, last, value)
            return self

        def __exit__(self, *exc):
            while self.saved:
                owner, last, value = self.saved.pop()
                setattr(owner, last, value)
            return False

    def patch(arg1=None, arg2=None, **kwargs):
        if isinstance(arg1, str):
            changes = {arg1: arg2}
        elif isinstance(arg1, dict):
            changes = dict(arg1)
        elif arg1 is None:
            changes = {}
        else:
            raise TypeError(f"patch() expects a name or a dict, not {type(arg1).__name__}")
        changes.update(kwargs)
        return _Patch(changes)
    return patch


# scripts that set other knobs of PyTorch's dynamo config (optimize_ddp, capture_scalar_outputs
# ...) set plain attributes here, which nothing reads
patch = patcher(__import__("sys").modules[__name__])
