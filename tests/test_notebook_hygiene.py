"""The committed notebooks are what students read first: they must carry a full, clean, in-order run."""
import json
import pathlib
import re

import pytest

NOTEBOOKS = sorted(pathlib.Path(__file__).resolve().parent.parent.joinpath("notebooks").glob("*.ipynb"))


def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def text(cell):
    return "".join(cell["source"])


def outputs_text(cell):
    parts = []
    for o in cell.get("outputs", []):
        parts.append("".join(o.get("text", "")))
        parts.append("".join(o.get("data", {}).get("text/plain", "")))
    return "".join(parts)


def test_the_course_has_its_first_notebooks():
    names = [p.name for p in NOTEBOOKS]
    assert "00_start_here.ipynb" in names and "01_finetuning_approaches.ipynb" in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_is_a_clean_full_run(path):
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), "name notebooks NN_topic.ipynb"
    nb = json.loads(path.read_text())
    cells = code_cells(nb)
    unrun = [i for i, c in enumerate(cells) if c.get("execution_count") is None]
    assert not unrun, f"code cells {unrun} were never executed: commit the outputs of a full run"
    errors = [i for i, c in enumerate(cells) for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, f"code cells {errors} stored an error"
    counts = [c["execution_count"] for c in cells]
    assert counts == sorted(counts) and len(set(counts)) == len(counts), \
        f"execution counts {counts} are out of order: restart the kernel and run all"
    assert any(text(c).lstrip().startswith("# NBVAL_CHECK_OUTPUT") for c in cells), \
        "no cell is marked # NBVAL_CHECK_OUTPUT, so CI compares nothing"
    banner = [outputs_text(c) for c in cells if "setup(" in text(c)]
    assert banner and "budget: full" in banner[0], \
        "the committed outputs must come from a full run (setup() printed a fast-mode banner)"
    for c in nb["cells"]:
        assert "TODO" not in text(c), "a TODO is left in the notebook"
