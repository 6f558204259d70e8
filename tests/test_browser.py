"""A lecturer's and a student's first minutes, in a real browser: JupyterLab in Chromium (Playwright).

Open a notebook fresh (committed outputs must show before anything runs), run it in fast mode, move a
widget and see its result change, then open the notebook as a RISE slideshow. Uses the system's
chromium (Debian package `chromium`; `.ci/run` installs it) - Playwright never downloads a browser here.
"""
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOK = "00_start_here.ipynb"   # quick in fast mode; has a committed figure and a slider widget
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -r requirements.txt)")
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"no Chromium at {CHROMIUM}: install the Debian package `chromium` (.ci/run does)",
                allow_module_level=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 with token auth, serving a temp copy of the notebook, kernels in fast mode."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, root / NOTEBOOK)
    port, token = free_port(), uuid.uuid4().hex
    # render every cell (no windowing), so the test can read cells far down the notebook
    settings = root / ".lab-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    env = {**os.environ, "PEFTCOURSE_FAST": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "JUPYTER_CONFIG_DIR": str(root / ".jupyter-config"),
           "JUPYTER_RUNTIME_DIR": str(root / ".jupyter-runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(root / ".lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(root / ".lab-workspaces")}
    env.pop("MPLBACKEND", None)   # the kernel must draw inline, as for a student
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly", "--allow-root"]   # nothing reaches the network; CI runs as root
    log = open(root / "lab.log", "w")
    server = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                    json.load(r)
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"JupyterLab did not start:\n{(root / 'lab.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield {"url": url, "token": token, "root": root}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def page(lab):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(60_000)
        # a fresh workspace: nothing restored from an earlier session
        pg.goto(f"{lab['url']}/lab/workspaces/test/tree/{NOTEBOOK}?reset&token={lab['token']}")
        pg.wait_for_selector(".jp-NotebookPanel .jp-Cell")
        yield pg
        browser.close()


def cell_of(page, text):
    """The notebook cell whose source contains text."""
    return page.locator(".jp-NotebookPanel:visible .jp-Cell").filter(
        has=page.locator(".jp-InputArea", has_text=text)).first


def run_all(page):
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()
    # every code cell gets a number; none stays queued ("[*]") or unrun ("[ ]")
    try:
        page.wait_for_function("""() => {
            const p = [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt')]
                .map(e => e.textContent.trim());
            return p.length > 0 && p.every(t => /^\\[\\d+\\]:$/.test(t));
        }""", timeout=150_000)
    except sync_api.TimeoutError:
        prompts = page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt").all_inner_texts()
        raise AssertionError(f"Run All did not finish in 150 s; the cells' prompts: {prompts}") from None


def test_committed_outputs_show_before_anything_runs(page):
    # untrusted and unexecuted, as after a clone: the committed figure and the widget's plain result show
    figure = page.locator(".jp-OutputArea-output img").first
    figure.wait_for(state="attached")
    figure.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete", arg=figure.element_handle())
    assert figure.evaluate("img => img.naturalWidth") > 100, "the committed PNG figure did not render"
    widget_cell = cell_of(page, "interact(params_full_vs_low_rank")
    assert "d=1024, r=8" in widget_cell.locator(".jp-Cell-outputArea").inner_text(), \
        "the widget cell shows no plain default result before the kernel runs"
    prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
    assert any(re.search(r"\[\d+\]", t) for t in prompts), "the committed execution counts are missing"


def test_run_in_fast_mode_and_move_a_widget(page):
    run_all(page)
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    assert errors.count() == 0, f"stderr after Run All: {errors.all_inner_texts()}"
    banner = cell_of(page, "pc.setup(").locator(".jp-Cell-outputArea").inner_text()
    assert "budget: FAST" in banner, f"the server's PEFTCOURSE_FAST=1 did not reach the kernel: {banner[:300]}"
    cell = cell_of(page, "interact(params_full_vs_low_rank")
    handle = cell.locator(".widget-slider", has_text="rank r").locator(".noUi-handle")
    handle.wait_for()
    before = cell.locator(".jp-Cell-outputArea").inner_text()
    assert "r=8" in before
    handle.focus()
    for _ in range(4):
        handle.press("ArrowRight")
    page.wait_for_function("""el => el.innerText.includes('r=12')""",
                           arg=cell.locator(".jp-Cell-outputArea").element_handle(), timeout=30_000)
    after = cell.locator(".jp-Cell-outputArea").inner_text()
    assert "rank-12 factors 24,576" in after and "r=8:" not in after, \
        f"moving the rank slider to 12 did not replace the default result: {after}"


def test_the_notebook_opens_as_a_rise_slideshow(page, lab):
    page.locator(".jp-NotebookPanel:visible .jp-Notebook").click()
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^View$")).click()
    page.locator('.lm-Menu-item[data-command="RISE:preview"]').click()
    frame = page.frame_locator("iframe[src*='rise']")
    frame.locator(".reveal .slides > section.present").first.wait_for(timeout=60_000)
    slides = frame.locator(".reveal .slides > section")
    nb = json.loads((lab["root"] / NOTEBOOK).read_text())
    expected = sum(c["metadata"]["slideshow"]["slide_type"] == "slide" for c in nb["cells"])
    assert slides.count() == expected, f"{slides.count()} slides in the deck, the notebook's metadata makes {expected}"
    assert "Start here" in slides.first.text_content(), "the deck does not open with the notebook's title slide"
