"""The committed notebooks are what students read first: they must carry a full, clean, in-order run."""
import json
import math
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
    stderr = [i for i, c in enumerate(cells) for o in c.get("outputs", []) if o.get("name") == "stderr"]
    assert not stderr, f"code cells {stderr} stored stderr (a library message peftcourse/quiet.py should drop?)"
    counts = [c["execution_count"] for c in cells]
    assert counts == sorted(counts) and len(set(counts)) == len(counts), \
        f"execution counts {counts} are out of order: restart the kernel and run all"
    assert any("nbval-check-output" in c["metadata"].get("tags", []) for c in cells), \
        "no cell is tagged nbval-check-output, so CI compares nothing"
    marked = [i for i, c in enumerate(cells) if "NBVAL_" in text(c)]
    assert not marked, f"code cells {marked} carry an NBVAL_ comment: use nbval's cell tags, slides show the code"
    banner = [outputs_text(c) for c in cells if "setup(" in text(c)]
    assert banner and "budget: full" in banner[0], \
        "the committed outputs must come from a full run (setup() printed a fast-mode banner)"
    for c in nb["cells"]:
        assert "TODO" not in text(c), "a TODO is left in the notebook"


SLIDE_TYPES = {"slide", "subslide", "fragment", "-", "skip", "notes"}
MAX_LECTURE_MINUTES = 20
SPOKEN_WORDS_PER_MINUTE = 130   # a lecturer's pace: the class reads a slide's text about as fast as it is said
TIMING_RULE = ("0.5 min per slide or subslide + 0.5 min per code cell shown (run live or read from its committed "
               f"output) + the text shown at {SPOKEN_WORDS_PER_MINUTE} words per minute (speaker notes and lab cells "
               "do not count), rounded up to the half minute")


def shown(cell):
    """On the lecture path: every slide type but skip (lab only) and notes (the lecturer's, not the class's)."""
    return cell["metadata"]["slideshow"]["slide_type"] not in ("skip", "notes")


def slide_words(markdown):
    """Words a class reads on a markdown cell: image links and HTML tags left out, a link counts by its text,
    a formula by its symbols."""
    markdown = re.sub(r"<[^>]+>", " ", markdown)
    markdown = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", markdown)
    markdown = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    return len(re.findall(r"[\w$\\]\S*", markdown))


def lecture_estimate(nb):
    """The timing rule of the lecture path (TIMING_RULE): slides, code cells and the text they show."""
    cells = nb["cells"]
    slides = sum(c["metadata"]["slideshow"]["slide_type"] in ("slide", "subslide") for c in cells)
    code = sum(shown(c) and c["cell_type"] == "code" for c in cells)
    words = sum(slide_words(text(c)) for c in cells if shown(c) and c["cell_type"] == "markdown")
    minutes = math.ceil(2 * (0.5 * slides + 0.5 * code + words / SPOKEN_WORDS_PER_MINUTE)) / 2
    return {"slides": slides, "code_cells_shown": code, "words_shown": words, "minutes": minutes}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_a_slideshow_with_a_timed_lecture_path(path):
    nb = json.loads(path.read_text())
    missing = [i for i, c in enumerate(nb["cells"]) if "slide_type" not in c["metadata"].get("slideshow", {})]
    assert not missing, f"cells {missing} have no metadata.slideshow.slide_type (reveal.js would merge them into one slide)"
    bad = {i: c["metadata"]["slideshow"]["slide_type"] for i, c in enumerate(nb["cells"])
           if c["metadata"]["slideshow"]["slide_type"] not in SLIDE_TYPES}
    assert not bad, f"unknown slide types {bad}: use one of {sorted(SLIDE_TYPES)}"
    assert nb["cells"][0]["metadata"]["slideshow"]["slide_type"] == "slide", "the title cell opens the deck"
    recorded = nb["metadata"].get("lecture", {})
    est = lecture_estimate(nb)
    assert {k: recorded.get(k) for k in est} == est, (
        f"metadata.lecture {recorded} does not match the slide metadata {est}: "
        "run python tools/lecture_metadata.py (it writes the notebook's timing and its guide row)")
    minutes = est["minutes"]
    assert 5 <= minutes <= MAX_LECTURE_MINUTES, \
        f"the lecture path takes {minutes} min; it must fit one lecture (5-{MAX_LECTURE_MINUTES} min)"
    assert any(c["cell_type"] == "code" for c in nb["cells"] if shown(c)) or path.name.startswith("00"), \
        "the lecture path shows no code cell: show at least the key result"


def test_the_timing_counts_text_and_ignores_notes_and_lab_cells():
    def cell(kind, slide_type, source):
        return {"cell_type": kind, "metadata": {"slideshow": {"slide_type": slide_type}}, "source": source}
    text_260 = " ".join(["word"] * 260)
    nb = {"cells": [cell("markdown", "slide", "# Title"), cell("code", "-", "x = 1"),
                    cell("markdown", "subslide", text_260), cell("markdown", "notes", text_260),
                    cell("markdown", "skip", text_260), cell("code", "skip", "y = 2"),
                    cell("markdown", "fragment", "![a figure](fig.png) <b>[the paper](https://x.org/a b)</b> $W_0$")]}
    est = lecture_estimate(nb)
    assert est == {"slides": 2, "code_cells_shown": 1, "words_shown": 1 + 260 + 3, "minutes": 4.0}
    assert slide_words("![x](y.png)") == 0


WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_widget_cell_also_has_a_plain_output(path):
    """Opened fresh (untrusted, on GitHub) a widget shows only its text/plain: that must be a result, not a repr."""
    nb = json.loads(path.read_text())
    for i, c in enumerate(code_cells(nb)):
        if not re.search(r"\binteract(ive)?\(|widgets\.", text(c)):
            continue
        outs = c.get("outputs", [])
        reprs = [o for o in outs if WIDGET in o.get("data", {})
                 and re.match(r"\w+\(children=", "".join(o["data"].get("text/plain", "")))]
        assert not reprs, f"widget cell {i} shows a widget repr where a reader expects a result: use peftcourse.widgets.interact"
        plain = [o for o in outs if o["output_type"] == "stream" or
                 (WIDGET not in o.get("data", {}) and set(o.get("data", {})) & {"image/png", "text/plain"})]
        assert plain, f"widget cell {i} has no plain default output (text or PNG) to show before the kernel runs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_nbconvert_renders_the_deck(path):
    """`jupyter nbconvert --to slides` builds one reveal.js section per slide, holding one per (sub)slide."""
    from nbconvert import SlidesExporter

    nb = json.loads(path.read_text())
    types = [c["metadata"].get("slideshow", {}).get("slide_type") for c in nb["cells"]]
    body, _ = SlidesExporter().from_filename(str(path))
    sections = body.count("<section")
    assert sections == 2 * types.count("slide") + types.count("subslide"), \
        f"the deck has {sections} <section>s for {types.count('slide')} slides and {types.count('subslide')} subslides"
    assert types.count("notes") == body.count('<aside class="notes"'), "speaker notes went missing from the deck"
