"""A lecturer's and a student's first minutes, in a real browser: JupyterLab in Chromium (Playwright).

Open a notebook fresh (committed outputs must show before anything runs), run it in fast mode, move a
widget and see its result change in place, save the notebook, shut its kernel down and reopen it (the
chosen result, figure included, must still be readable), then open the notebook as a RISE slideshow
with text sized for a projector. Uses the system's chromium (Debian package `chromium`; `.ci/run`
installs it) - Playwright never downloads a browser here.
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
FIGURE_WIDGET = "widget_figure.ipynb"   # written by the lab fixture: a slider whose result is text and a figure
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


def write_figure_widget_notebook(path):
    import nbformat
    source = """import ipywidgets as widgets
import matplotlib.pyplot as plt
from peftcourse.widgets import interact

def line(slope=1):
    print(f"slope {slope}: y = {slope} x")
    fig, ax = plt.subplots(figsize=(4, 2.5))
    ax.plot([0, 1], [0, slope])
    ax.set(ylim=(0, 5), title=f"slope {slope}")
    plt.show()

interact(line, slope=widgets.IntSlider(value=1, min=1, max=5, description="slope"))"""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 with token auth, serving a temp copy of the notebook, kernels in fast mode."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, root / NOTEBOOK)
    shutil.copy(ROOT / "notebooks" / "rise.css", root / "rise.css")   # the slides' styling, as next to the notebooks
    write_figure_widget_notebook(root / FIGURE_WIDGET)
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
           "--LabApp.extension_manager=readonly", "--allow-root",   # nothing reaches the network; CI runs as root
           "--LabApp.expose_app_in_browser=True"]   # window.jupyterapp: commands run without racing a menu
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


def open_notebook(page, lab, name, workspace):
    page.goto(f"{lab['url']}/lab/workspaces/{workspace}/tree/{name}?reset&token={lab['token']}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell")


def command(page, name, wait=True):
    """Run a JupyterLab command (what a menu item does) on the current notebook.

    On a loaded machine a menu click can land before the menu is ready and do nothing; the command cannot.
    wait=False returns at once (Run All's promise ends only when every cell has run).
    """
    page.locator(".jp-NotebookPanel:visible .jp-Notebook").click()   # make the notebook the current widget
    script = "name => window.jupyterapp.commands.execute(name)" if wait else \
        "name => { window.jupyterapp.commands.execute(name); }"
    page.evaluate(script, name)


def save_shut_down_and_reopen(page, lab, name, workspace):
    """File > Save, Kernel > Shut Down Kernel, then open the notebook again (a fresh kernel, no widget models)."""
    command(page, "docmanager:save")
    page.wait_for_function("() => !document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-mod-dirty')")
    command(page, "kernelmenu:shutdown")
    page.locator(".jp-NotebookPanel:visible .jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
        state="detached", timeout=30_000)
    open_notebook(page, lab, name, workspace)


def saved_outputs(lab, name, text):
    """The outputs the file on disk holds for the code cell whose source contains text."""
    nb = json.loads((lab["root"] / name).read_text())
    [cell] = [c for c in nb["cells"] if c["cell_type"] == "code" and text in "".join(c["source"])]
    return cell["outputs"]


def cell_of(page, text):
    """The notebook cell whose source contains text."""
    return page.locator(".jp-NotebookPanel:visible .jp-Cell").filter(
        has=page.locator(".jp-InputArea", has_text=text)).first


def run_all(page):
    """Clear every output (the committed execution counts would look like a finished run), then Run All."""
    # on a busy machine the kernel starts slowly: wait for it
    page.locator(".jp-NotebookPanel:visible .jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=120_000)
    command(page, "notebook:clear-all-cell-outputs")
    started = """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')]
        .some(e => e.textContent.trim() !== '[ ]:')"""
    for _ in range(3):   # an idle indicator can show before the kernel's session is ready: then nothing runs
        command(page, "notebook:run-all-cells", wait=False)
        try:
            page.wait_for_function(started, timeout=30_000)
            break
        except sync_api.TimeoutError:
            continue
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


def test_a_moved_widget_survives_save_and_reopen(page, lab):
    """Autosave means a student's notebook is saved with a control moved; reopened, the result must still read."""
    cell = cell_of(page, "interact(params_full_vs_low_rank")
    assert "rank-12 factors 24,576" in cell.locator(".jp-Cell-outputArea").inner_text(), "run the move test first"
    save_shut_down_and_reopen(page, lab, NOTEBOOK, "test")
    texts = ["".join(o.get("data", {}).get("text/plain", "")) for o in saved_outputs(lab, NOTEBOOK, "interact(params_full")]
    assert any("d=1024, r=12: full 1,048,576 parameters, rank-12 factors 24,576" in t for t in texts), \
        f"the saved file does not hold the chosen result as plain text: {texts}"
    area = cell_of(page, "interact(params_full_vs_low_rank").locator(".jp-Cell-outputArea")
    area.wait_for()
    assert "rank-12 factors 24,576" in area.inner_text(), \
        f"after save and reopen the widget cell shows no readable result: {area.inner_text()!r}"


def test_a_widget_figure_stays_above_its_controls_and_survives_save_and_reopen(page, lab):
    pg = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        pg.set_default_timeout(60_000)
        open_notebook(pg, lab, FIGURE_WIDGET, "figure")
        run_all(pg)
        area = pg.locator(".jp-NotebookPanel:visible .jp-Cell-outputArea").first
        slider = area.locator(".widget-slider", has_text="slope").locator(".noUi-handle")
        slider.wait_for()
        figure = area.locator("img").first
        figure.wait_for()
        before = figure.get_attribute("src")
        assert figure.bounding_box()["y"] < slider.bounding_box()["y"], "the default figure is not above the controls"
        slider.focus()
        slider.press("ArrowRight")
        slider.press("ArrowRight")
        pg.wait_for_function("el => el.innerText.includes('slope 3: y = 3 x')", arg=area.element_handle(), timeout=30_000)
        pg.wait_for_function("([img, src]) => img.getAttribute('src') !== src", arg=[figure.element_handle(), before])
        assert area.locator("img").count() == 1, "the moved control added a second figure instead of replacing the first"
        assert figure.bounding_box()["y"] < slider.bounding_box()["y"], "the figure jumped below the controls on the first move"
        assert "slope 1" not in area.inner_text()
        save_shut_down_and_reopen(pg, lab, FIGURE_WIDGET, "figure")
        kinds = [sorted(o.get("data", {})) for o in saved_outputs(lab, FIGURE_WIDGET, "interact(line")]
        texts = ["".join(o.get("data", {}).get("text/plain", "")) for o in saved_outputs(lab, FIGURE_WIDGET, "interact(line")]
        assert ["image/png", "text/plain"] in kinds and "slope 3: y = 3 x\n" in texts, \
            f"the saved file does not hold the chosen result as text and PNG: {kinds} {texts}"
        area = pg.locator(".jp-NotebookPanel:visible .jp-Cell-outputArea").first
        figure = area.locator("img").first
        figure.wait_for()
        pg.wait_for_function("img => img.complete && img.naturalWidth > 100", arg=figure.element_handle())
        assert "slope 3: y = 3 x" in area.inner_text(), f"reopened, the result is gone: {area.inner_text()!r}"
    finally:
        pg.close()


def test_the_title_slide_is_readable_from_the_back_of_a_room(page, lab):
    """notebooks/rise.css: body text on the title slide at 1280 x 800 (JupyterLab's own size is 14 px)."""
    pg = page.context.browser.new_page(viewport={"width": 1280, "height": 800})
    try:
        pg.goto(f"{lab['url']}/rise/{NOTEBOOK}?token={lab['token']}")
        body = pg.locator(".reveal .slides > section.present").first.locator(".jp-RenderedHTMLCommon p").first
        body.wait_for(timeout=60_000)
        size = float(body.evaluate("p => getComputedStyle(p).fontSize").removesuffix("px"))
        assert size >= 20, f"title-slide body text is {size:g} px at 1280 x 800: too small for a projector"
        heading = pg.locator(".reveal .slides > section.present h1").first
        assert heading.bounding_box()["width"] < 1280, "the title no longer fits the slide"
    finally:
        pg.close()


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
