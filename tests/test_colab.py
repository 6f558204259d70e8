"""Open in Colab: the badges, the first code cell's install lines, and the install itself, simulated.

peftcourse/colab.py names the repository once; tools/launch_cells.py writes the badges and the Colab lines
into the notebooks and README.md. Here: the script on copies of the notebooks (idempotent, keeps every
output), the lines off Colab (nothing visible: same outputs as without them, in a real kernel), and on a
simulated Colab (a fake `google.colab` module) that clones a local copy of this repository (a file:// URL,
no network), installs the pinned packages (already here: pip runs with no index) and the package from the
clone into a fresh virtual environment, checks the SmolLM2 model, and works from the clone's notebooks.
"""
import copy
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import launch_cells  # noqa: E402  (tools/launch_cells.py)

colab = launch_cells.colab
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


# ---------------------------------------------------------------- one repository name

def test_urls_are_built_from_the_one_repository_constant():
    assert colab.binder_url("notebooks/05_lora.ipynb") == \
        f"https://mybinder.org/v2/gh/{colab.REPOSITORY}/{colab.BRANCH}?urlpath=lab/tree/notebooks/05_lora.ipynb"
    assert colab.colab_url("notebooks/05_lora.ipynb") == \
        f"https://colab.research.google.com/github/{colab.REPOSITORY}/blob/{colab.BRANCH}/notebooks/05_lora.ipynb"
    assert re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", colab.REPOSITORY)
    with pytest.raises(ValueError, match="notebooks only"):
        colab.colab_url("docs/teaching.md")
    with pytest.raises(ValueError, match="inside the repository"):
        colab.binder_url("../secrets.txt")
    with pytest.raises(ValueError, match="double quotes"):
        colab.cell_lines(url='https://example.org/x" ; rm -rf ~')


def test_readme_binder_and_docs_name_no_other_repository():
    """Every Binder/Colab link in the README, docs and binder/ opens REPOSITORY at BRANCH."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "binder").iterdir())]
    wrong = []
    for path in files:
        text = path.read_text(errors="replace")
        for m in re.finditer(r"mybinder\.org/v2/gh/([^/\s)]+/[^/\s)]+)/([^?\s)/]+)|"
                             r"colab\.research\.google\.com/github/([^/\s)]+/[^/\s)]+)/blob/([^/\s)]+)", text):
            repo, branch = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
            if (repo, branch) != (colab.REPOSITORY, colab.BRANCH):
                wrong.append(f"{path.relative_to(ROOT)}: {m.group(0)}")
    assert not wrong, f"links to another repository or branch than peftcourse/colab.py's: {wrong}"
    assert colab.badges_markdown("notebooks/00_start_here.ipynb") in (ROOT / "README.md").read_text(), \
        "README.md has no Binder + Colab badge line: run python tools/launch_cells.py README.md"


def test_every_notebook_has_the_badges_and_the_colab_lines():
    stale = [p.name for p in NOTEBOOKS if launch_cells.process(p, check=True)]
    assert not stale, (f"notebooks without the current badges / Colab lines: {stale}; run "
                       "python tools/launch_cells.py notebooks/*.ipynb README.md, then re-execute them")


# ---------------------------------------------------------------- the insertion script on copies

@pytest.fixture
def copies(tmp_path):
    for p in NOTEBOOKS:
        shutil.copy(p, tmp_path / p.name)
    return tmp_path


def test_the_script_adds_badges_and_lines_keeps_outputs_and_is_idempotent(copies, monkeypatch):
    paths = sorted(copies.glob("*.ipynb"))
    before = {p.name: json.loads(p.read_text()) for p in paths}
    assert launch_cells.main([str(p) for p in paths]) == 0
    once = {p.name: p.read_bytes() for p in paths}
    assert launch_cells.main([str(p) for p in paths]) == 0
    assert {p.name: p.read_bytes() for p in paths} == once, "a second run changed the notebooks"
    assert launch_cells.main(["--check", *map(str, paths)]) == 0
    for p in paths:
        old, new = before[p.name], json.loads(once[p.name])
        first_md = next(i for i, c in enumerate(new["cells"]) if c["cell_type"] == "markdown")
        first_code = new["cells"].index(code_cells(new)[0])
        md = "".join(new["cells"][first_md]["source"]).split("\n")
        assert md[0] == "".join(old["cells"][first_md]["source"]).split("\n")[0], "the title moved"
        assert md[2] == colab.badges_markdown(f"notebooks/{p.name}"), f"{p.name}: badge line {md[:3]}"
        code = "".join(new["cells"][first_code]["source"])
        own = "\n".join(launch_cells.without_colab_lines("".join(old["cells"][first_code]["source"]).split("\n")))
        assert code == "\n".join(colab.cell_lines()) + "\n" + own, f"{p.name}: the cell's own code changed"
        for i, (a, b) in enumerate(zip(old["cells"], new["cells"])):
            if i in (first_md, first_code):
                a, b = dict(a, source=None), dict(b, source=None)
            assert a == b, f"{p.name}: cell {i} changed beyond the badges and the Colab lines"
        assert len(old["cells"]) == len(new["cells"]) and old["metadata"] == new["metadata"]
    # another repository: a run replaces the lines and badges, it does not add a second set
    monkeypatch.setattr(colab, "REPOSITORY", "another-university/peft-course")
    launch_cells.main([str(paths[0])])
    nb = json.loads(paths[0].read_text())
    sources = "".join("".join(c["source"]) for c in nb["cells"])
    assert sources.count("google.colab") == 1
    assert "github.com/peftcourse/peftcourse" not in sources and "gh/peftcourse/peftcourse" not in sources
    assert "another-university/peft-course" in "".join(code_cells(nb)[0]["source"])
    assert "mybinder.org/v2/gh/another-university/peft-course/" in "".join(nb["cells"][0]["source"])


def test_the_script_refuses_what_it_cannot_place(tmp_path):
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["no title here"]},
                    {"cell_type": "code", "metadata": {}, "source": ["x = 1"], "outputs": [], "execution_count": 1}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    with pytest.raises(ValueError, match="no '# title' line"):
        launch_cells.update_notebook(copy.deepcopy(nb), "notebooks/x.ipynb")
    nb["cells"][0]["source"] = ["# Title"]
    nb["cells"][1]["source"] = ["x = 1\n", 'if "google.colab" in sys.modules:\n', "    pass"]
    with pytest.raises(ValueError, match="other than at its top"):
        launch_cells.update_notebook(copy.deepcopy(nb), "notebooks/x.ipynb")
    with pytest.raises(ValueError, match="no list of cells"):
        launch_cells.update_notebook({"cells": None}, "notebooks/x.ipynb")
    with pytest.raises(ValueError, match=r"give notebooks \(\.ipynb\) or README\.md"):
        (tmp_path / "notes.txt").write_text("x")
        launch_cells.process(tmp_path / "notes.txt")


# ---------------------------------------------------------------- off Colab: nothing visible

def run_cells(sources, cwd):
    """Run cells in a real kernel (fast mode); returns each cell's outputs, without metadata."""
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return [[{k: v for k, v in o.items() if k != "metadata"} for o in c.outputs] for c in nb.cells]


def test_off_colab_the_lines_change_nothing_a_student_sees(monkeypatch):
    monkeypatch.setenv("PEFTCOURSE_FAST", "1")
    nb = json.loads(NOTEBOOKS[0].read_text())
    own = launch_cells.without_colab_lines("".join(code_cells(nb)[0]["source"]).split("\n"))
    probe = "import os; print(os.getcwd(), [p for p in sys.path if 'content' in p], 'google.colab' in sys.modules)"
    plain, = run_cells(["\n".join(own)], ROOT / "notebooks")
    with_lines, state = run_cells(["\n".join(colab.cell_lines() + own), probe], ROOT / "notebooks")
    assert plain and with_lines == plain, "the Colab lines changed the cell's outputs off Colab"
    assert state[0]["text"].strip() == f"{ROOT / 'notebooks'} [] False", state
    assert not os.path.exists(colab.COLAB_DIR), f"{colab.COLAB_DIR} was created off Colab"


# ---------------------------------------------------------------- on a simulated Colab

def test_on_colab_the_lines_install_the_course_from_a_clone(tmp_path):
    smollm2 = os.environ.get("PEFTCOURSE_SMOLLM2_DIR") or str(ROOT / "data" / "models" / "smollm2-135m-instruct")
    if not os.path.isfile(os.path.join(smollm2, "manifest.json")):
        pytest.skip("SmolLM2 is not converted here: run python -m peftcourse.models fetch-smollm2 (.ci/run does)")
    # the "GitHub" repository: a bare clone of this one at its committed HEAD, on a branch of its own
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(ROOT), str(origin)], check=True)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    subprocess.run(["git", "--git-dir", str(origin), "update-ref", "refs/heads/course", head], check=True)
    target = tmp_path / "content" / "peftcourse"
    lines = colab.cell_lines(url=f"file://{origin}", branch="course", target=str(target))
    # a fresh environment that sees this machine's packages (the pinned versions), as Colab has its own;
    # no pip of its own (the venv's bundled pip and setuptools would shadow the machine's newer ones)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    cell = "\n".join(lines)
    script = textwrap.dedent(f"""
        import importlib.util, json, os, sys, time, types
        sys.modules["google.colab"] = types.ModuleType("google.colab")   # what Colab's kernel has imported
        start = time.time()
        exec(compile({cell!r}, "first-cell", "exec"))
        first = time.time() - start
        start = time.time()
        exec(compile({cell!r}, "first-cell", "exec"))                  # run again: nothing to do
        again = time.time() - start
        print(json.dumps({{"cwd": os.getcwd(), "path0": sys.path[0], "first": first, "again": again,
                          "peftcourse": importlib.util.find_spec("peftcourse").origin}}))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update({"PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PEFTCOURSE_SMOLLM2_DIR": smollm2,
                "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    proc = subprocess.run([str(python), "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"the Colab lines failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "SmolLM2 is already converted and checked" in proc.stdout, proc.stdout[-2000:]
    # the clone is the pinned commit, importable, and the notebook works from its notebooks folder
    cloned = subprocess.run(["git", "-C", str(target), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert cloned == head
    assert result["cwd"] == str(target / "notebooks") and result["path0"] == str(target)
    assert result["peftcourse"] == str(target / "peftcourse" / "__init__.py")
    assert result["again"] < 0.5, f"running the cell again took {result['again']:.1f} s: it should do nothing"
    # the package is installed into the environment from the clone (editable: the data files stay found)
    show = subprocess.run([str(python), "-m", "pip", "show", "peftcourse"], capture_output=True, text=True,
                          env=env, check=True).stdout
    assert f"Editable project location: {target}" in show, show
    # exactly the pins of requirements.txt were asked for, and they are what the environment has
    pins = colab.pinned_requirements(str(target))
    from importlib.metadata import version
    assert [p.split("==")[1] for p in pins] == [version(p.split("==")[0]) for p in pins]


def test_install_refuses_a_folder_that_is_not_the_course(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a course checkout"):
        colab.install(str(tmp_path), run=lambda *a, **k: None)
    (tmp_path / "requirements.txt").write_text("torch==2.13.0\n")
    with pytest.raises(ValueError, match="pins no version of"):
        colab.pinned_requirements(str(tmp_path))
