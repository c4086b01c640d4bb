"""``ember docs``: build the book (docs/, mkdocs.yml) and serve it on localhost.

The book lives in a checkout of ember, not in the installed package: run this from the
repository root (or pass ``--root``).  Building needs the ``docs`` extra.
"""
from __future__ import annotations

import os
import subprocess
import sys

from . import CLIError


def add_parser(sub) -> None:
    p = sub.add_parser("docs", help="build the book and serve it on localhost",
                       description="Build the book with MkDocs (every page's code runs) "
                                   "and serve the site on http://HOST:PORT.")
    p.add_argument("--root", default=".", help="the checkout holding mkdocs.yml (default .)")
    p.add_argument("--port", type=int, default=8000, help="port to serve on (default 8000)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--build-only", action="store_true", help="build site/ and exit")


def run(args) -> int:
    root = os.path.abspath(args.root)
    if not os.path.exists(os.path.join(root, "mkdocs.yml")):
        raise CLIError(f"no mkdocs.yml in {root}: run `ember docs` from a checkout of ember "
                       "(the book is not part of the installed package), or pass --root")
    if not 0 < args.port < 65536:
        raise CLIError(f"--port must be in 1..65535, got {args.port}")
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        raise CLIError("building the book needs the docs extra: pip install -e '.[docs]'")
    site = os.path.join(root, "site")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
                           "-d", site], cwd=root, env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))
    if proc.returncode:
        raise CLIError("mkdocs build failed (see above)", code=1)
    print(f"built {site}")
    if args.build_only:
        return 0
    import functools
    import http.server
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=site)
    with http.server.ThreadingHTTPServer((args.host, args.port), handler) as server:
        print(f"serving the book on http://{args.host}:{args.port}/ (Ctrl-C stops)")
        server.serve_forever()
    return 0
