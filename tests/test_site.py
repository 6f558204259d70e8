"""The course website: Jupyter Book 2 builds it (myst.yml, book/theme), a real browser reads it.

The build runs `jupyter book build --html` on a copy of the site's sources (README, docs, the committed
notebooks; nothing is executed) and fails on any error or on a warning about outputs. The browser test
serves the result on 127.0.0.1 and opens every page in Debian's chromium (Playwright downloads no browser;
.ci/run installs both chromium and Node.js): every figure of every notebook is there and loaded, with alt
text; every formula is drawn as MathML; every internal link and #anchor leads somewhere; each page has its
Binder and Colab buttons; the search box finds a section. The renderer's own rules are tested without a
build. Skips, with the reason, where Node.js, Jupyter Book or chromium is missing.
"""
import functools
import html.parser
import http.server
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import threading
import urllib.parse
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book" / "theme"))
import render  # noqa: E402  (book/theme/render.py)

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SOURCES = ["myst.yml", "README.md", "docs", "notebooks", "book", "peftcourse/colab.py"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# ---------------------------------------------------------------- the renderer's rules (no build needed)

def block(kind, *children, data=None):
    return {"type": "block", "kind": kind, "children": list(children), "data": data or {}}


def para(text):
    return {"type": "paragraph", "children": [{"type": "text", "value": text}]}


def figure_output(key, alt=None):
    meta = {"image/png": {"alt": alt}} if alt else {}
    return {"type": "outputs", "children": [{"type": "output", "key": key, "jupyter_data": {
        "output_type": "display_data", "metadata": meta,
        "data": {"image/png": {"content_type": "image/png", "path": f"/{key}.png"}}}}]}


def test_alt_text_is_the_takeaway_else_the_introduction_else_the_section_or_an_explicit_one():
    takeaway = {"type": "paragraph", "children": [
        {"type": "strong", "children": [{"type": "text", "value": "Takeaway:"}]},
        {"type": "text", "value": " rank 1 is enough here. The rest is noise."}]}
    page = {"location": "/notebooks/x.ipynb", "mdast": {"type": "root", "children": [
        block("notebook-content", {"type": "heading", "depth": 2, "children": [{"type": "text", "value": "2 · Ranks"}]}),
        block("notebook-content", para("The rank sweep below trains LoRA at every rank from 1 to 64.")),
        block("notebook-code", {"type": "code", "value": "plot()"}, figure_output("a")),
        block("notebook-content", takeaway),
        block("notebook-code", {"type": "code", "value": "plot()"}, figure_output("b")),
        block("notebook-content", {"type": "paragraph", "children": [
            {"type": "text", "value": "The sweep with "}, {"type": "inlineMath", "value": "\\alpha = 2r"},
            {"type": "text", "value": ":"}]}),
        block("notebook-code", {"type": "code", "value": "plot()"}, figure_output("c")),
        block("notebook-code", {"type": "code", "value": "plot()"}, figure_output("d", alt="Loss falls with steps.")),
    ]}}
    alts = render.figure_alt_texts(page)
    assert alts["a"] == "Figure. Takeaway: rank 1 is enough here. The rest is noise."
    assert alts["b"] == "Figure in the section “2 · Ranks”"     # the takeaway above it belongs to figure a
    assert alts["c"] == "Figure: The sweep with α = 2r:"
    assert alts["d"] == "Loss falls with steps."


def test_a_figure_with_no_text_around_it_stops_the_build():
    page = {"location": "/notebooks/x.ipynb", "mdast": {"type": "root", "children": [
        block("notebook-code", {"type": "code", "value": "plot()"}, figure_output("a"))]}}
    with pytest.raises(render.RenderError, match="no alt text"):
        render.figure_alt_texts(page)


def test_math_source_in_alt_text_reads_as_text():
    assert render.tex_text(r"\mathbf{V} = \mathbf{W}_0 + s\,\mathbf{BA}") == "V = W_0 + s BA"
    assert render.tex_text(r"\alpha/r \le 2") == "α/r ≤ 2"


def test_an_unknown_node_type_stops_the_build_by_name():
    site = type("S", (), {"slugs": {"index"}, "problems": [], "file_of": lambda self, s: f"{s}.html"})()
    page = render.Page(site, "index", {"location": "/README.md", "kind": "Article",
                                       "mdast": {"type": "root", "children": []}})
    with pytest.raises(render.RenderError, match="'sparkle'"):
        page.render({"type": "root", "children": [{"type": "sparkle"}]})
    with pytest.raises(render.RenderError, match="leads to no page"):
        page.href("/no-such-page")
    assert page.href("/index", "intro") == "index.html#intro"


# ---------------------------------------------------------------- the build

def jupyter_book_missing():
    try:
        import jupyter_book  # noqa: F401
    except ImportError:
        return "Jupyter Book 2 is not installed (pip install -r requirements.txt)"
    if not shutil.which("node"):
        return "Node.js is not installed (Jupyter Book 2 runs on it; .ci/run installs Debian's nodejs)"
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Build the site from a copy of its sources; returns (html folder, site content folder, build log)."""
    reason = jupyter_book_missing()
    if reason:
        pytest.skip(reason)
    src = tmp_path_factory.mktemp("book")
    for name in SOURCES:
        source, target = ROOT / name, src / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("_build", "__pycache__", ".ipynb_checkpoints"))
        else:
            shutil.copy(source, target)
    # the template's render command runs `python3`: the interpreter running the tests comes first
    env = {**os.environ, "PATH": os.pathsep.join([str(pathlib.Path(sys.executable).parent), os.environ["PATH"]])}
    env.pop("BASE_URL", None)
    proc = subprocess.run([sys.executable, "-m", "jupyter_book", "build", "--html"], cwd=src, env=env,
                          capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"jupyter book build --html failed:\n{log[-4000:]}"
    return src / "_build" / "html", src / "_build" / "site", log


def test_the_build_reports_no_error_and_no_missing_output(site):
    _, _, log = site
    errors = [line for line in log.splitlines() if "⛔" in line]
    assert not errors, "the build reported errors:\n" + "\n".join(errors)
    outputs = [line for line in log.splitlines() if "⚠" in line and re.search(r"output|execut", line, re.I)]
    assert not outputs, "the build warned about outputs:\n" + "\n".join(outputs)


def test_every_notebook_and_guide_has_its_page(site):
    out, content, _ = site
    locations = {json.loads(p.read_text())["location"]: p.stem for p in content.glob("content/*.json")}
    wanted = {"/README.md", "/docs/teaching.md", "/docs/evidence.md", "/docs/smollm2.md"} | \
             {f"/notebooks/{p.name}" for p in NOTEBOOKS}
    assert wanted <= set(locations), f"pages missing from the site: {sorted(wanted - set(locations))}"
    for location, slug in locations.items():
        assert (out / ("index.html" if location == "/README.md" else f"{slug}.html")).is_file(), location


# ---------------------------------------------------------------- in the browser

class Ids(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k == "id" and v:
                self.ids.add(v)


@pytest.fixture(scope="module")
def server(site):
    out, _, _ = site
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(out))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -r requirements.txt)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM}: install the Debian package `chromium` (.ci/run does)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def pages(site):
    """[(file name, location, content JSON)] of every page of the built site."""
    out, content, _ = site
    found = []
    for p in sorted(content.glob("content/*.json")):
        c = json.loads(p.read_text())
        found.append(("index.html" if c["location"] == "/README.md" else f"{p.stem}.html", c["location"], c))
    return found


def count(node, types):
    return (node.get("type") in types) + sum(count(c, types) for c in node.get("children", []))


READ_PAGE = """() => {
  const imgs = [...document.querySelectorAll('article img')].map(i => ({
      src: i.getAttribute('src'), alt: i.alt, ok: i.complete && i.naturalWidth > 0,
      figure: !!i.closest('figure.output')}));
  const maths = [...document.querySelectorAll('article math')].map(m => {
      const r = m.getBoundingClientRect(); return r.width > 0 && r.height > 0; });
  const links = [...document.querySelectorAll('a[href]')].map(a => a.href);
  const launch = [...document.querySelectorAll('nav.launch a')].map(a => [a.textContent, a.href]);
  return {imgs, maths, links, launch, mathErrors: document.querySelectorAll('.math-error').length};
}"""


def test_every_page_shows_its_figures_math_links_and_launch_buttons(site, server, browser):
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    failed, console = [], []
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    links, ids = {}, {}
    for name, location, content in pages(site):
        page.goto(f"{server}/{name}", wait_until="load")
        # load every lazy image: scroll each into view, then wait until all have finished
        page.evaluate("() => document.querySelectorAll('article img').forEach(i => { i.loading = 'eager'; })")
        page.wait_for_function("() => [...document.querySelectorAll('article img')].every(i => i.complete)",
                               timeout=30_000)
        got = page.evaluate(READ_PAGE)
        figures = [i for i in got["imgs"] if i["figure"]]
        expected = sum(any(m.startswith("image/") for m in mimes) for mimes in _outputs(content["mdast"]))
        assert len(figures) == expected, f"{name}: {len(figures)} figures shown, {expected} image outputs in {location}"
        if location.startswith("/notebooks/"):
            assert figures, f"{name}: a notebook page without a single figure"
        broken = [i["src"] for i in got["imgs"] if not i["ok"]]
        assert not broken, f"{name}: images that did not load: {broken}"
        no_alt = [i["src"] for i in got["imgs"] if len(i["alt"].strip()) < 12]
        assert not no_alt, f"{name}: images without a real alt text: {no_alt}"
        formulas = count(content["mdast"], {"math", "inlineMath"})
        assert len(got["maths"]) == formulas, f"{name}: {len(got['maths'])} formulas drawn of {formulas}"
        assert all(got["maths"]), f"{name}: {got['maths'].count(False)} formulas take no space (not rendered)"
        assert got["mathErrors"] == 0, f"{name}: formulas that KaTeX could not typeset"
        path = location.lstrip("/")
        launch = dict(got["launch"])
        assert launch.get("Launch on Binder") == render.colab.binder_url(path), f"{name}: Binder button {launch}"
        colab = [href for label, href in got["launch"] if "Colab" in label]
        assert colab and colab[0] == render.colab.colab_url(
            path if path.endswith(".ipynb") else "notebooks/00_start_here.ipynb"), f"{name}: Colab button {launch}"
        links[name] = got["links"]
        parser = Ids()
        parser.feed(page.content())
        ids[name] = parser.ids
    page.close()
    local = [u for u in failed if u.startswith(server)]
    assert not local, f"requests that failed: {local[:10]}"
    assert not console, f"errors in the browser console: {console[:5]}"
    # every internal link: the page exists and so does its #anchor
    bad = []
    for name, hrefs in links.items():
        for href in hrefs:
            if not href.startswith(server):
                continue
            parsed = urllib.parse.urlsplit(href)
            target = parsed.path.lstrip("/") or "index.html"
            if target.endswith(".html"):
                if target not in ids:
                    bad.append(f"{name} -> {href} (no such page)")
                elif parsed.fragment and urllib.parse.unquote(parsed.fragment) not in ids[target]:
                    bad.append(f"{name} -> {href} (no such anchor)")
            else:
                try:
                    urllib.request.urlopen(href, timeout=10).close()
                except OSError as e:
                    bad.append(f"{name} -> {href} ({e})")
    assert not bad, "broken internal links:\n" + "\n".join(bad[:20])


def _outputs(node):
    """The mime types of every output node under `node`."""
    if node.get("type") == "output":
        yield list(((node.get("jupyter_data") or {}).get("data") or {}))
    for c in node.get("children", []):
        yield from _outputs(c)


def test_the_search_box_finds_a_section(server, browser):
    page = browser.new_page()
    page.goto(f"{server}/index.html")
    page.fill("#search-box", "double quantization")
    page.wait_for_selector("#search-results li")
    hits = page.locator("#search-results li a").evaluate_all("as => as.map(a => a.getAttribute('href'))")
    assert any(h.startswith("quantization-nf4.html") for h in hits), f"no hit on the NF4 notebook: {hits[:10]}"
    page.locator("#search-results li a", has_text=re.compile("double quant", re.I)).first.click()
    page.wait_for_load_state()
    assert page.url.split("/")[-1].startswith("quantization-nf4.html"), page.url
    page.close()
