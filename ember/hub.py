"""``ember.hub``: load models from a folder's ``hubconf.py`` and weights from URLs (``torch.hub``).

Nothing is fetched unless a function that downloads is called. ``load_state_dict_from_url``
caches each file under ``<hub dir>/checkpoints`` (``get_dir()``: ``set_dir``'s folder, else
``$TORCH_HOME/hub`` with ``$TORCH_HOME`` defaulting to ``$XDG_CACHE_HOME/torch``, as
PyTorch) and downloads it only when it is not there. Repositories are read from local folders
(``source="local"``); fetching a GitHub repository is not implemented.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
import warnings
from urllib.parse import urlparse  # noqa: F401  (torch.hub exposes it; timm imports it here)

__all__ = ["list", "help", "load", "get_dir", "set_dir", "load_state_dict_from_url",
           "download_url_to_file"]

ENV_TORCH_HOME = "TORCH_HOME"
ENV_XDG_CACHE_HOME = "XDG_CACHE_HOME"
DEFAULT_CACHE_DIR = "~/.cache"
MODULE_HUBCONF = "hubconf.py"
VAR_DEPENDENCY = "dependencies"
READ_DATA_CHUNK = 128 * 1024
# a file name "<name>-<sha256 prefix>.<ext>" carries the prefix of its hash
HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")

_hub_dir = None


def _get_torch_home() -> str:
    default = os.path.join(os.getenv(ENV_XDG_CACHE_HOME, DEFAULT_CACHE_DIR), "torch")
    return os.path.expanduser(os.getenv(ENV_TORCH_HOME, default))


def get_dir() -> str:
    """The hub cache folder: ``set_dir``'s, else ``$TORCH_HOME/hub``."""
    if os.getenv("TORCH_HUB"):
        warnings.warn("TORCH_HUB is deprecated, please use env TORCH_HOME instead", stacklevel=2)
    if _hub_dir is not None:
        return _hub_dir
    return os.path.join(_get_torch_home(), "hub")


def set_dir(d) -> None:
    """Use folder ``d`` as the hub cache from now on."""
    global _hub_dir
    _hub_dir = os.path.expanduser(d)


@contextlib.contextmanager
def _on_sys_path(path: str):
    sys.path.insert(0, path)
    try:
        yield
    finally:
        sys.path.remove(path)


def _import_hubconf(repo_dir: str):
    path = os.path.join(repo_dir, MODULE_HUBCONF)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"[Errno 2] No such file or directory: '{path}'")
    spec = importlib.util.spec_from_file_location("hubconf", path)
    module = importlib.util.module_from_spec(spec)
    with _on_sys_path(repo_dir):
        spec.loader.exec_module(module)
    missing = [d for d in getattr(module, VAR_DEPENDENCY, None) or []
               if importlib.util.find_spec(d) is None]
    if missing:
        raise RuntimeError(f"Missing dependencies: {', '.join(missing)}")
    return module


def _repo_dir(github: str, source: str) -> str:
    source = source.lower()
    if source not in ("github", "local"):
        raise ValueError(f'Unknown source: "{source}". Allowed values: "github" | "local".')
    if source == "local" or os.path.isdir(github):
        return github
    raise RuntimeError(f"ember does not implement torch.hub downloads of GitHub repositories "
                       f"yet: clone {github!r} and pass its folder with source='local'")


def _entry(module, model):
    if not isinstance(model, str):
        raise ValueError("Invalid input: model should be a string of function name")
    fn = getattr(module, model, None)
    if fn is None or not callable(fn):
        raise RuntimeError(f"Cannot find callable {model} in hubconf")
    return fn


def list(github, force_reload=False, skip_validation=False, trust_repo="check",
         verbose=True):
    """The entry points (public callables) of the repository's ``hubconf.py``; ``github`` may
    be a local folder."""
    module = _import_hubconf(_repo_dir(github, "github"))
    return [f for f in dir(module) if callable(getattr(module, f)) and not f.startswith("_")]


def help(github, model, force_reload=False, skip_validation=False, trust_repo="check"):
    """The docstring of entry point ``model`` of the repository's ``hubconf.py``."""
    return _entry(_import_hubconf(_repo_dir(github, "github")), model).__doc__


def load(repo_or_dir, model, *args, source="github", trust_repo="check", force_reload=False,
         verbose=True, skip_validation=False, **kwargs):
    """``hubconf.model(*args, **kwargs)`` from ``repo_or_dir`` (a folder with ``source='local'``,
    or any existing folder)."""
    repo_dir = _repo_dir(repo_or_dir, source)
    with _on_sys_path(repo_dir):
        return _entry(_import_hubconf(repo_dir), model)(*args, **kwargs)


def _progress_bar(total, enabled: bool):
    if enabled:
        try:
            from tqdm import tqdm
            return tqdm(total=total, disable=False, unit="B", unit_scale=True,
                        unit_divisor=1024)
        except ImportError:
            pass
    return None


def download_url_to_file(url: str, dst: str, hash_prefix=None, progress: bool = True) -> None:
    """Download ``url`` to ``dst`` (written to a temporary file in the same folder, then moved),
    checking its SHA-256 starts with ``hash_prefix`` when given."""
    # imported here: urllib.request pulls in http.client and ssl, too slow for `import ember`
    import hashlib
    import shutil
    import uuid
    from urllib.request import Request, urlopen
    request = Request(url, headers={"User-Agent": "torch.hub"})
    with urlopen(request) as response:
        meta = response.info()
        length = meta.get("Content-Length") if hasattr(meta, "get") else None
        total = int(length) if length is not None else None
        dst = os.path.expanduser(dst)
        folder = os.path.dirname(os.path.abspath(dst))
        tmp = os.path.join(folder, f".{os.path.basename(dst)}.{uuid.uuid4().hex}.partial")
        sha = hashlib.sha256() if hash_prefix is not None else None
        bar = _progress_bar(total, progress)
        try:
            with open(tmp, "wb") as f:
                while True:
                    chunk = response.read(READ_DATA_CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                    if sha is not None:
                        sha.update(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            if sha is not None:
                digest = sha.hexdigest()
                if digest[:len(hash_prefix)] != hash_prefix:
                    raise RuntimeError(f'invalid hash value (expected "{hash_prefix}", '
                                       f'got "{digest}")')
            shutil.move(tmp, dst)
        finally:
            if bar is not None:
                bar.close()
            if os.path.exists(tmp):
                os.remove(tmp)


def load_state_dict_from_url(url: str, model_dir=None, map_location=None, progress: bool = True,
                             check_hash: bool = False, file_name=None,
                             weights_only: bool = False):
    """``ember.load`` of ``url``'s file, downloaded into ``model_dir`` (default
    ``<hub dir>/checkpoints``) only when not already cached there."""
    from .serialization import load as _load
    if model_dir is None:
        model_dir = os.path.join(get_dir(), "checkpoints")
    os.makedirs(model_dir, exist_ok=True)
    filename = file_name or os.path.basename(urlparse(url).path)
    cached = os.path.join(model_dir, filename)
    if not os.path.exists(cached):
        sys.stderr.write(f'Downloading: "{url}" to {cached}\n')
        hash_prefix = None
        if check_hash:
            match = HASH_REGEX.search(filename)
            hash_prefix = match.group(1) if match else None
        download_url_to_file(url, cached, hash_prefix, progress=progress)
    return _load(cached, map_location=map_location, weights_only=weights_only)
