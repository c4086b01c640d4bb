"""How much of the PyTorch API that real code uses does ember have? (fetches nothing)

``python tools/api_coverage.py FOLDER [FOLDER ...] [--top N] [--json]`` reads every ``.py``
file under the folders, extracts with Python's ``ast``:

* every reference to a ``torch`` name, with import aliases resolved: ``import torch.nn as
  nn``, ``from torch import nn``, ``import torch.nn.functional as F``, ``from torch.optim
  import Adam`` (the name imported counts once per import, and once per use after it);
  an attribute chain counts once, as its longest resolvable dotted path
  (``F.relu`` -> ``torch.nn.functional.relu``);
* every call ``<expr>.name(...)`` whose ``name`` is a method of ``torch.Tensor`` (read from
  an installed PyTorch when there is one, else ember's own ``Tensor``) and is not also a
  method of a builtin type (``split``, ``index``, ``copy``: ambiguous, skipped),

(``--exclude torch.jit`` leaves a namespace out of the count, for APIs tracked elsewhere),
then resolves each ``torch.X.Y`` on ember's module tree (``ember.X.Y``, importing
subpackages as needed) and each method with ``hasattr(ember.Tensor, name)``, and prints the
usage-weighted share that ember has and the missing names ranked by count.
"""
from __future__ import annotations

import argparse
import ast
import collections
import importlib
import json
import os
import sys

_BUILTIN_METHODS = set()
for _t in (str, bytes, list, dict, set, tuple, int, float, complex, frozenset):
    _BUILTIN_METHODS.update(n for n in dir(_t) if not n.startswith("_"))


def tensor_method_names() -> tuple[set, str]:
    """Names that count as tensor-method calls, and where the list came from."""
    try:  # the reference list of methods; ember itself never imports torch
        import torch
        names, source = set(dir(torch.Tensor)), "torch.Tensor"
    except ImportError:
        import ember
        names, source = set(dir(ember.Tensor)), "ember.Tensor (torch not installed)"
    return {n for n in names if not n.startswith("__")} - _BUILTIN_METHODS, source


class _Collector(ast.NodeVisitor):
    """Collects torch references and tensor-method calls of one module."""

    def __init__(self, methods: set):
        self.methods = methods
        self.aliases = {}  # local name -> dotted torch path
        self.refs = collections.Counter()
        self.calls = collections.Counter()

    # -- imports ------------------------------------------------------------------------------
    def visit_Import(self, node):
        for a in node.names:
            if a.name == "torch" or a.name.startswith("torch."):
                if a.asname:
                    self.aliases[a.asname] = a.name
                else:  # `import torch.nn` binds `torch`
                    self.aliases["torch"] = "torch"
                if a.name != "torch":
                    self.refs[a.name] += 1

    def visit_ImportFrom(self, node):
        mod = node.module or ""
        if node.level == 0 and (mod == "torch" or mod.startswith("torch.")):
            for a in node.names:
                if a.name == "*":
                    continue
                path = f"{mod}.{a.name}"
                self.aliases[a.asname or a.name] = path
                self.refs[path] += 1

    # -- references ---------------------------------------------------------------------------
    def _chain(self, node):
        """``a.b.c`` -> ['a', 'b', 'c'] when it is a pure name chain, else None."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name):
            parts.append(node.id)
            return parts[::-1]
        return None

    def visit_Attribute(self, node):
        chain = self._chain(node)
        if chain is not None and chain[0] in self.aliases:
            self.refs[".".join([self.aliases[chain[0]], *chain[1:]])] += 1
            return  # the inner links of the chain are part of this reference
        self.generic_visit(node)

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load) and node.id in self.aliases:
            path = self.aliases[node.id]
            if path != "torch" and "." in path and not self._is_module_alias(path):
                self.refs[path] += 1

    def _is_module_alias(self, path: str) -> bool:
        # `nn` or `F` alone name a module, not an API; their attributes are counted instead
        return path in _MODULE_PATHS

    def visit_Call(self, node):
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr in self.methods:
            chain = self._chain(f)
            rooted = chain is not None and chain[0] in self.aliases
            if not rooted and not (isinstance(f.value, ast.Name) and f.value.id == "self"):
                self.calls[f.attr] += 1
        self.generic_visit(node)


# torch module paths that are namespaces (a bare `nn` use is not an API reference)
_MODULE_PATHS = {"torch.nn", "torch.nn.functional", "torch.optim", "torch.utils",
                 "torch.utils.data", "torch.distributions", "torch.autograd", "torch.linalg",
                 "torch.fft", "torch.special", "torch.nn.init", "torch.optim.lr_scheduler",
                 "torch.multiprocessing", "torch.distributed", "torch.cuda", "torch.jit",
                 "torch.func", "torch.testing", "torch.hub", "torch.amp", "torch.backends"}


def scan(folders, methods):
    """(refs, calls, files, unparsable) over every .py file under ``folders``."""
    refs, calls = collections.Counter(), collections.Counter()
    files = bad = 0
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if not name.endswith(".py"):
                    continue
                path = os.path.join(dirpath, name)
                try:
                    with open(path, encoding="utf-8", errors="replace") as f:
                        tree = ast.parse(f.read(), filename=path)
                except (SyntaxError, ValueError):
                    bad += 1
                    continue
                files += 1
                c = _Collector(methods)
                c.visit(tree)
                refs.update(c.refs)
                calls.update(c.calls)
    return refs, calls, files, bad


class _Resolver:
    """Whether ``torch.X.Y`` exists as ``ember.X.Y`` (attributes or importable submodules)."""

    def __init__(self):
        self.ember = importlib.import_module("ember")
        self.cache = {}

    def has(self, path: str) -> bool:
        if path not in self.cache:
            self.cache[path] = self._resolve(path.split(".")[1:])
        return self.cache[path]

    def _resolve(self, parts) -> bool:
        obj, dotted = self.ember, "ember"
        for p in parts:
            dotted += "." + p
            if hasattr(obj, p):
                obj = getattr(obj, p)
                continue
            try:
                obj = importlib.import_module(dotted)
            except ImportError:
                return False
            except Exception:  # a broken module counts as missing, not as a crash
                return False
        return True

    def has_method(self, name: str) -> bool:
        return hasattr(self.ember.Tensor, name)


def report(refs, calls, resolver):
    """Counts present/missing, weighted by use, and the missing names ranked."""
    missing = collections.Counter()
    have = total = 0
    for path, n in refs.items():
        total += n
        if resolver.has(path):
            have += n
        else:
            missing[path] += n
    m_have = m_total = 0
    for name, n in calls.items():
        m_total += n
        if resolver.has_method(name):
            m_have += n
        else:
            missing["Tensor." + name] += n
    return {"references": total, "references_present": have,
            "method_calls": m_total, "method_calls_present": m_have,
            "share": (have + m_have) / max(1, total + m_total),
            "distinct_names": len(refs) + len(calls), "missing": missing.most_common()}


def _without(counter, prefixes, label):
    """``counter`` less the names (shown as ``label + name``) equal to or under a prefix."""
    def excluded(name):
        full = label + name
        return any(full == p or full.startswith(p + ".") for p in prefixes)
    return collections.Counter({k: n for k, n in counter.items() if not excluded(k)})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folders", nargs="+", help="folders of PyTorch source files")
    p.add_argument("--top", type=int, default=40, help="missing names to list (default 40)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.add_argument("--exclude", action="append", default=[], metavar="PREFIX",
                   help="leave names under PREFIX (torch.jit, Tensor.foo) out; repeatable")
    args = p.parse_args(argv)
    for f in args.folders:
        if not os.path.isdir(f):
            p.error(f"not a folder: {f}")
    methods, source = tensor_method_names()
    refs, calls, files, bad = scan(args.folders, methods)
    refs = _without(refs, args.exclude, "")
    calls = _without(calls, args.exclude, "Tensor.")
    result = report(refs, calls, _Resolver())
    result.update(files=files, unparsable=bad, method_list=source, excluded=args.exclude)
    if args.json:
        print(json.dumps(result))
        return 0
    total = result["references"] + result["method_calls"]
    print(f"{files} files ({bad} unparsable), {total} uses of "
          f"{result['distinct_names']} distinct names "
          f"({result['references']} torch.* references, {result['method_calls']} tensor-method "
          f"calls; methods listed from {source})")
    if args.exclude:
        print(f"excluded: {', '.join(args.exclude)}")
    print(f"ember has {100 * result['share']:.2f}% of the uses "
          f"(references {result['references_present']}/{result['references']}, "
          f"methods {result['method_calls_present']}/{result['method_calls']})")
    if result["missing"]:
        print(f"missing, by uses ({len(result['missing'])} names):")
        for name, n in result["missing"][:args.top]:
            print(f"{n:8d}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
