"""docs/teaching.md stays true to the notebooks: every notebook has a row, its timing matches the slide metadata."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs" / "teaching.md").read_text()
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def row(number):
    rows = [line for line in GUIDE.splitlines() if line.startswith(f"| {number} |")]
    assert len(rows) == 1, f"docs/teaching.md needs exactly one table row for notebook {number}, found {len(rows)}"
    return rows[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_a_row_linking_to_it(path):
    assert f"(../notebooks/{path.name})" in row(path.name[:2])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_lecture_timing_matches_the_notebook_metadata(path):
    lecture = json.loads(path.read_text())["metadata"].get("lecture")
    cells = row(path.name[:2]).split("|")[3].strip()
    if lecture is None:
        assert cells == "see its slides", "a timing without slide metadata behind it"
        return
    assert lecture["minutes"] <= 20, f"{path.name}: a lecture path of {lecture['minutes']} min is over 20"
    assert cells == f"{lecture['minutes']:g} min, {lecture['slides']} slides", (
        f"{path.name}: the guide says {cells!r}; the notebook's metadata.lecture says "
        f"{lecture['minutes']:g} min, {lecture['slides']} slides (update its row in docs/teaching.md)")


def test_the_guide_never_advises_fast_mode_for_class():
    for line in GUIDE.splitlines():
        if "PEFTCOURSE_FAST=1" in line:
            assert re.search(r"\bnot\b", line), f"fast mode recommended: {line!r}"
