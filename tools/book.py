"""The book's machinery: run every page's code, check its printed output, draw its figures.

NOTE [ Pages that run ]
A page in ``docs/`` is Markdown.  Its fenced ``python`` blocks run top to bottom in one
namespace per page (so a later block may use an earlier one's names), with the working
directory set to ``docs/figures/``, where a block saves the figures the page shows
(``plt.savefig("activations.png")``, shown as ``![...](../figures/activations.png)`` from
a page in ``docs/questions/``).  A fenced ``output`` block right after a python block is
what that block must print: compared line by line after stripping trailing spaces; a line
``...`` matches any run of lines, and ``...`` inside a line any text on that line (for
timings and values a page cannot fix).
``python skip`` marks a block that is shown but not run (a shell session, say); use it
only where running is impossible, and say why on the page.

Three consumers share ``run_page``: ``tests/test_book.py`` (every page on every commit),
the MkDocs hook below (``mkdocs.yml``'s ``hooks:``), which runs the pages before the
build so the figures exist and renders ``$...$`` / ``$$...$$`` maths to MathML (no
JavaScript, so it shows offline), and ``ember docs``.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
FIGURES = os.path.join(DOCS, "figures")

_FENCE = re.compile(r"^```([\w-]*)[ \t]*([\w-]*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


@dataclass
class Block:
    """One runnable python block of a page, and the output it must print (or None)."""

    code: str
    line: int
    expected: str | None = None


def blocks(text: str) -> list[Block]:
    """The page's python blocks, each with the ``output`` block that follows it, if any."""
    found: list[Block] = []
    last_end = None
    for m in _FENCE.finditer(text):
        lang, flag, body = m.group(1), m.group(2), m.group(3)
        line = text.count("\n", 0, m.start()) + 1
        if lang == "python" and flag != "skip":
            found.append(Block(body, line))
        elif lang == "output" and found and last_end is not None and \
                not text[last_end:m.start()].strip():
            found[-1].expected = body
        last_end = m.end() if lang == "python" and flag != "skip" else None
    return found


def _matches(expected: str, got: str) -> bool:
    """Line-by-line comparison where an ``...`` line stands for any lines."""
    want = [ln.rstrip() for ln in expected.strip("\n").splitlines()]
    have = [ln.rstrip() for ln in got.strip("\n").splitlines()]
    pattern = "\n".join(".*?" if ln == "..." else re.escape(ln).replace(r"\.\.\.", "[^\n]*?")
                         for ln in want)
    return re.fullmatch(pattern, "\n".join(have), re.S) is not None


class PageError(AssertionError):
    """A page's block raised, or printed something other than its ``output`` block."""


def run_page(path: str, workdir: str = FIGURES) -> list[str]:
    """Run ``path``'s python blocks in ``workdir``; their printed outputs, in order."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = os.path.abspath(path)
    if ROOT not in sys.path:  # the checkout's ember, as the tests use
        sys.path.insert(0, ROOT)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    os.makedirs(workdir, exist_ok=True)
    namespace = {"__name__": "__main__"}
    outputs = []
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        for b in blocks(text):
            buf = io.StringIO()
            where = f"{os.path.relpath(path, ROOT)}:{b.line}"
            try:
                with contextlib.redirect_stdout(buf):
                    exec(compile(b.code, where, "exec"), namespace)
            except Exception as err:
                raise PageError(f"{where}: the block raised {type(err).__name__}: {err}") \
                    from err
            finally:
                plt.close("all")
            got = buf.getvalue()
            if b.expected is not None and not _matches(b.expected, got):
                raise PageError(f"{where}: printed\n{got}\nbut the page shows\n{b.expected}")
            outputs.append(got)
    finally:
        os.chdir(cwd)
    return outputs


def pages() -> list[str]:
    """Every Markdown page of the book, sorted."""
    out = []
    for d, _, names in os.walk(DOCS):
        out += [os.path.join(d, n) for n in names if n.endswith(".md")]
    return sorted(out)


# ---- the MkDocs hook -----------------------------------------------------------------

_DISPLAY = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE = re.compile(r"(?<![\\$\w])\$(?!\s)([^$\n]+?)(?<!\s)\$(?![\w$])")


def to_mathml(markdown: str) -> str:
    """``$$...$$`` and ``$...$`` outside code, rendered to MathML (latex2mathml)."""
    from latex2mathml.converter import convert
    parts = re.split(r"(^```.*?^```[ \t]*$|`[^`\n]+`)", markdown, flags=re.M | re.S)
    for i in range(0, len(parts), 2):  # even parts are prose, odd ones code
        text = _DISPLAY.sub(lambda m: "\n\n" + convert(m.group(1).strip(), display="block")
                            + "\n\n", parts[i])
        parts[i] = _INLINE.sub(lambda m: convert(m.group(1)), text)
    return "".join(parts)


def on_pre_build(config, **kwargs) -> None:
    """Run every page before MkDocs collects files, so the figures they draw exist
    (``EMBER_BOOK_SKIP_RUN=1``: the caller has just run them all into docs/figures)."""
    if os.environ.get("EMBER_BOOK_SKIP_RUN") == "1":
        return
    for path in pages():
        run_page(path)


def on_page_markdown(markdown, page=None, config=None, files=None, **kwargs) -> str:
    return to_mathml(markdown)
