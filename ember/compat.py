"""Run PyTorch programs on ember unchanged: ``torch`` imports resolve to ``ember``.

Design
------
``install()`` puts one meta-path finder at the front of ``sys.meta_path``. It answers for
``torch`` and every ``torch.X.Y`` (and ``torchvision[.X]``, mapped to ``ember.vision[.X]``)
with a loader that imports the ember module of the same path and hands back *that object*,
so ``sys.modules["torch.nn"] is ember.nn`` and ``isinstance``/identity hold across both names.
The finder never declines a ``torch`` name, so a real PyTorch that happens to be installed is
never reached: a module ember lacks raises ``ModuleNotFoundError("ember does not implement
torch.X yet")``. Real ``torch`` modules already imported are taken out of ``sys.modules``
while the alias is active and put back by ``uninstall()``.

A missing *attribute* of an aliased module (``torch.foo``) raises ``AttributeError`` with the
same wording; ``from torch import foo`` raises ``ImportError`` with it. Both come from a
module-level ``__getattr__`` that ``install()`` puts on ember's modules and ``uninstall()``
removes, so plain ``import ember`` behaves as before.

Child processes: the spawn and forkserver start methods start a fresh interpreter that
unpickles the parent's "preparation data" and then re-imports the main script (which imports
``torch``). While installed, that data carries one extra entry whose unpickling runs
``install()`` in the child first; and the forkserver is told not to preload ``__main__`` (it
would import the script before any child could install the alias). ``fork`` children inherit
the finder with the rest of the interpreter.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types

__all__ = ["install", "uninstall", "is_installed"]

# alias prefix -> ember prefix
_PREFIXES = (("torchvision", "ember.vision"), ("torch", "ember"),
             ("torchao", "ember.ao"))  # torchao.quantization.quantize_ (issue 19)

_state = {"finder": None, "stashed": {}, "hooked": {}, "mp": None}


def _target_of(fullname: str):
    """The ember module name for an aliased name (``torch.nn`` -> ``ember.nn``), else None."""
    for alias, target in _PREFIXES:
        if fullname == alias or fullname.startswith(alias + "."):
            return target + fullname[len(alias):]
    return None


def _alias_of(ember_name: str) -> str:
    """The name a user reaches an ember module by under the alias (``ember.nn`` -> ``torch.nn``)."""
    for alias, target in _PREFIXES:
        if ember_name == target or ember_name.startswith(target + "."):
            return alias + ember_name[len(target):]
    return ember_name


def _not_implemented(name: str) -> str:
    return f"ember does not implement {name} yet"


class _AliasLoader(importlib.abc.Loader):
    """Hands back the already-imported ember module instead of creating one."""

    def __init__(self, target: str):
        self.target = target
        self._spec = None

    def create_module(self, spec):
        try:
            module = importlib.import_module(self.target)
        except ModuleNotFoundError as err:
            # only when the module itself is missing, not a missing import inside it
            if err.name is not None and (self.target == err.name
                                         or self.target.startswith(err.name + ".")):
                raise ModuleNotFoundError(_not_implemented(spec.name), name=spec.name) from None
            raise
        # the import system overwrites __spec__ with the alias's spec; keep ember's own
        self._spec = module.__spec__
        _hook(module)
        return module

    def exec_module(self, module):
        module.__spec__ = self._spec


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Finds ``torch``/``torchvision`` names first, so a real install is never reached."""

    def find_spec(self, fullname, path=None, target=None):
        ember_name = _target_of(fullname)
        if ember_name is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(ember_name))


# ---- missing attributes ---------------------------------------------------------------------

def _import_from_opcode():
    import dis
    return dis.opmap.get("IMPORT_FROM")


_IMPORT_FROM = None


def _called_from_import_from(frame) -> bool:
    """Whether ``frame`` is executing ``from module import name`` (so ImportError is right)."""
    try:
        return frame.f_code.co_code[frame.f_lasti] == _IMPORT_FROM
    except (AttributeError, IndexError):
        return False


def _make_getattr(module: types.ModuleType, previous):
    alias = _alias_of(module.__name__)

    def __getattr__(name):
        if previous is not None:
            try:
                return previous(name)
            except AttributeError:
                pass
        message = _not_implemented(f"{alias}.{name}")
        if _called_from_import_from(sys._getframe(1)):
            raise ImportError(message, name=alias)
        raise AttributeError(message)

    __getattr__._ember_compat = True
    return __getattr__


def _hook(module) -> None:
    """Give an ember module the alias's ``__getattr__`` (once), remembering what it had."""
    name = getattr(module, "__name__", "")
    if name in _state["hooked"] or not isinstance(module, types.ModuleType):
        return
    previous = module.__dict__.get("__getattr__", None)
    _state["hooked"][name] = (module, previous)
    module.__getattr__ = _make_getattr(module, previous)


def _unhook_all() -> None:
    for module, previous in _state["hooked"].values():
        if previous is None:
            module.__dict__.pop("__getattr__", None)
        else:
            module.__getattr__ = previous
    _state["hooked"].clear()


# ---- child processes ------------------------------------------------------------------------

class _InstallInChild:
    """Unpickled first in a spawn/forkserver child: installs the alias there."""

    def __reduce__(self):
        return (install, ())


def _patch_multiprocessing() -> None:
    import multiprocessing.spawn as mp_spawn
    original = mp_spawn.get_preparation_data

    def get_preparation_data(name):
        data = original(name)
        # a dict key prepare() does not read; unpickling it (before the main module is
        # re-imported from its path) is what installs the alias in the child
        data["ember_compat"] = _InstallInChild()
        return data

    mp_spawn.get_preparation_data = get_preparation_data
    forkserver_preload = None
    try:
        from multiprocessing import forkserver
        server = forkserver._forkserver
        forkserver_preload = server._preload_modules
        # the server would import the script before a child could install the alias
        server._preload_modules = [m for m in forkserver_preload if m != "__main__"]
    except (ImportError, AttributeError):
        pass
    _state["mp"] = (original, forkserver_preload)


def _unpatch_multiprocessing() -> None:
    if _state["mp"] is None:
        return
    import multiprocessing.spawn as mp_spawn
    original, forkserver_preload = _state["mp"]
    mp_spawn.get_preparation_data = original
    if forkserver_preload is not None:
        from multiprocessing import forkserver
        forkserver._forkserver._preload_modules = forkserver_preload
    _state["mp"] = None


# ---- public ---------------------------------------------------------------------------------

def is_installed() -> bool:
    """Whether ``torch`` imports currently resolve to ember."""
    return _state["finder"] is not None


def install() -> None:
    """Make ``import torch`` (and ``torch.*``, ``torchvision``) give ember's modules."""
    global _IMPORT_FROM
    if is_installed():
        return
    _IMPORT_FROM = _import_from_opcode()
    import ember  # noqa: F401  (the alias target must exist before anything resolves to it)
    for name in ember._TORCH_LOADS:  # as ``import torch`` does; hooked with the rest below
        importlib.import_module("ember." + name)
    for name in list(sys.modules):
        if _target_of(name) is not None:
            _state["stashed"][name] = sys.modules.pop(name)
    for name, module in list(sys.modules.items()):
        if name == "ember" or name.startswith("ember."):
            _hook(module)
    finder = _AliasFinder()
    sys.meta_path.insert(0, finder)
    _state["finder"] = finder
    _patch_multiprocessing()


def uninstall() -> None:
    """Undo ``install()``: ``torch`` imports find the real PyTorch again (if installed)."""
    finder = _state["finder"]
    if finder is None:
        return
    if finder in sys.meta_path:
        sys.meta_path.remove(finder)
    _state["finder"] = None
    for name in list(sys.modules):
        if _target_of(name) is not None:
            del sys.modules[name]
    sys.modules.update(_state["stashed"])
    _state["stashed"].clear()
    _unhook_all()
    _unpatch_multiprocessing()
