"""docs/teaching.md's lecturer guide to the content stays true: a subsection per notebook, every verdict it names
is the one in data/results/, every exercise id it names exists."""
import re
from pathlib import Path

import pytest

from peftcourse import exercises
from peftcourse import experiments as E

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs" / "teaching.md").read_text()
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
HEADING = "## Per notebook: what to say, what students ask, answer keys, errata"
VERDICTS = ("reproduced", "partly", "not reproduced")


def content():
    assert HEADING in GUIDE, f"docs/teaching.md lost its section {HEADING!r}"
    return GUIDE.split(HEADING, 1)[1].split("\n## ", 1)[0]


def subsections():
    parts = re.split(r"^### (\d\d) · ", content(), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_its_subsection(path):
    text = subsections().get(path.name[:2])
    assert text, f"docs/teaching.md has no '### {path.name[:2]} · ...' subsection for {path.name}"
    for part in ("*Talking points:*", "*Students ask:*", "*Verdicts:*", "*Answer key"):
        assert part in text, f"the subsection of {path.name} has no {part}"
    assert re.search(r"\*Errat(a|um):\*", text), f"the subsection of {path.name} names no errata (write 'none found')"


def cited_verdicts():
    pattern = r"`([a-z0-9_]+)` \((" + "|".join(sorted(VERDICTS, key=len, reverse=True)) + r")\)"
    return re.findall(pattern, content())


def test_the_guide_names_verdicts():
    assert len(cited_verdicts()) >= 20


@pytest.mark.parametrize("name, verdict", cited_verdicts())
def test_a_cited_verdict_is_the_result_on_disk(name, verdict):
    assert (ROOT / "data" / "results" / f"{name}.json").exists(), f"docs/teaching.md cites {name!r}, which has no result"
    assert E.load_result(name)["verdict"] == verdict, (
        f"docs/teaching.md says {name} is {verdict!r}; data/results/{name}.json says {E.load_result(name)['verdict']!r}")


def test_every_cited_exercise_exists():
    cited = set(re.findall(r"`(\d\d-[a-z0-9-]+)`", content()))
    known = set(exercises.all_exercises())
    assert cited, "the guide names no exercise"
    assert not cited - known, f"docs/teaching.md names exercises that do not exist: {sorted(cited - known)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_exercise_of_a_notebook_is_named_in_its_subsection(path):
    text = subsections().get(path.name[:2], "")
    ids = [i for i in exercises.all_exercises() if i.startswith(path.name[:2] + "-")]
    missing = [i for i in ids if f"`{i}`" not in text]
    assert not missing, f"the answer keys of {path.name} in docs/teaching.md miss {missing}"
