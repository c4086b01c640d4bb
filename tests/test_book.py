"""The book (docs/): every page's code runs and prints what the page shows
(tools/book.py, NOTE [ Pages that run ]), the site builds with ``mkdocs build --strict``,
and in a real headless Chromium its pages load without console errors, with their figures
and maths rendered."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import book  # noqa: E402

PAGES = book.pages()


def test_there_is_a_page_per_seed_question():
    assert len([p for p in PAGES if os.sep + "questions" + os.sep in p]) >= 1


RAN = set()  # pages whose figures this session drew into docs/figures


@pytest.mark.parametrize("page", PAGES, ids=[os.path.relpath(p, book.DOCS) for p in PAGES])
def test_page_runs_and_prints_what_it_shows(page):
    book.run_page(page)  # into docs/figures, where the site build below finds the figures
    RAN.add(page)


def test_output_blocks_are_checked(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("```python\nprint(1 + 1)\n```\n\n```output\n3\n```\n")
    with pytest.raises(book.PageError, match="printed\n2"):
        book.run_page(str(page), str(tmp_path))
    page.write_text("```python\nprint('a'); print(0.123); print('z')\n```\n"
                    "```output\na\n...\nz\n```\n```python skip\nraise SystemExit\n```\n")
    assert book.run_page(str(page), str(tmp_path)) == ["a\n0.123\nz\n"]


def test_a_raising_block_names_its_line(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("text\n\n```python\nx = 1\n```\n\n```python\n1 / 0\n```\n")
    with pytest.raises(book.PageError, match=r"p\.md:7: the block raised ZeroDivisionError"):
        book.run_page(str(page), str(tmp_path))


def test_maths_becomes_mathml_outside_code():
    md = "A $x^2$ and\n$$\\frac{a}{b}$$\n`$not$` and\n```python\ny = '$z$'\n```\n"
    html = book.to_mathml(md)
    assert html.count("<math") == 2 and 'display="block"' in html
    assert "`$not$`" in html and "y = '$z$'" in html


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs", reason="the docs extra (mkdocs) is not installed")
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    if RAN >= set(PAGES):  # every page just ran: the build need not run them again
        env["EMBER_BOOK_SKIP_RUN"] = "1"
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
                           "-d", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_site_builds_strict_with_every_page(site):
    for page in PAGES:
        rel = os.path.relpath(page, book.DOCS)[:-3]
        if os.path.basename(rel) == "index":  # a folder's index.md is the folder's page
            rel = os.path.dirname(rel)
        html = os.path.join(rel, "index.html")
        assert (site / html).exists(), html
    # the API reference is generated from the docstrings: every nn layer has its heading
    assert (site / "api" / "nn" / "index.html").read_text().count("doc-heading") >= 100


def _chromium():
    """Debian's Chromium and its driver, installed here if missing (root, apt) - the
    docs test set-up the issue asks for."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.skip("Chromium is not installed and apt-get cannot run as non-root here")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True,
                       timeout=600)
        proc = subprocess.run(["apt-get", "install", "-y", "-qq", "chromium",
                               "chromium-driver"], env=env, capture_output=True, text=True,
                              timeout=900)
        if proc.returncode:
            pytest.skip(f"apt-get could not install Chromium: {proc.stderr[-500:]}")
    webdriver = pytest.importorskip("selenium.webdriver")
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1200,900"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    return webdriver.Chrome(options=opts, service=service)


@pytest.fixture(scope="module")
def served(site):
    """The built site over HTTP on a free localhost port (as ``ember docs`` serves it)."""
    import functools
    import http.server
    import threading
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


SCREENSHOT_PAGES = ["", "questions/00-forward-propagation/", "api/nn/"]


@pytest.mark.parametrize("path", SCREENSHOT_PAGES)
def test_page_in_chromium(served, path, tmp_path):
    driver = _chromium()
    try:
        driver.get(f"{served}/{path}")
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.src, i.complete && "
            "i.naturalWidth > 0]);")
        assert all(ok for _, ok in images), images
        maths = driver.execute_script(
            "return Array.from(document.querySelectorAll('math')).map("
            "m => m.getBoundingClientRect().width);")
        assert all(w > 0 for w in maths), maths
        if path.startswith("questions"):
            assert images and len(maths) >= 5  # the page's figure and its formulas
        shot = tmp_path / "page.png"
        assert driver.save_screenshot(str(shot))
        from PIL import Image
        img = Image.open(shot).convert("L")
        assert img.size[0] >= 1000
        lo, hi = img.getextrema()
        assert hi - lo > 100  # not a blank page: text and figures drew
    finally:
        driver.quit()
