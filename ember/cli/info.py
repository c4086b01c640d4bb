"""``ember info``: versions, array backend, BLAS, threads and the optional extras installed."""
from __future__ import annotations

import os
import platform
import sys

__all__ = ["run", "EXTRAS"]

# optional packages ember uses when present (threadpoolctl: the BLAS thread count below)
EXTRAS = ("ml_dtypes", "tqdm", "matplotlib", "safetensors", "onnx", "onnxruntime", "mpi4py",
          "threadpoolctl")


def _version(dist: str):
    """The installed version of distribution ``dist`` (without importing it), or None."""
    from importlib import metadata
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _blas() -> str:
    """NumPy's BLAS as its build recorded it (name and version), informational."""
    import numpy as np
    try:
        deps = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # NumPy < 1.25 has no dict mode; the info is a nicety
        return "unknown"
    name, version = deps.get("name", "unknown"), deps.get("version")
    return f"{name} {version}" if version else name


def _blas_threads() -> str:
    """BLAS threads: threadpoolctl's live answer if installed, else the env var that sets it."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
            if os.environ.get(var):
                return f"{os.environ[var]} (from {var})"
        return "library default (install threadpoolctl to see the count)"
    counts = sorted({str(p["num_threads"]) for p in threadpool_info()
                     if p.get("user_api") == "blas"})
    return ", ".join(counts) if counts else "unknown"


def run(args=None, stdout=None) -> int:
    """Print the ``ember info`` report; the exit code."""
    import numpy as np
    from .. import __version__
    out = stdout if stdout is not None else sys.stdout
    rows = [("ember", __version__),
            ("python", f"{platform.python_version()} ({platform.python_implementation()}, "
                       f"{platform.system()} {platform.machine()})"),
            ("array backend", f"numpy {np.__version__}"),
            ("BLAS", _blas()),
            ("CPUs", str(os.cpu_count())),
            ("BLAS threads", _blas_threads())]
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}", file=out)
    print("optional extras:", file=out)
    w = max(len(k) for k in EXTRAS)
    for name in EXTRAS:
        print(f"  {name:<{w}}  {_version(name) or 'not installed'}", file=out)
    return 0
