"""Build nbgrader source notebooks from the student notebooks and the worked solutions.

    python solutions/make_nbgrader_source.py [OUT]      (default OUT: source/, nbgrader's source folder)

Every cell tagged `exercise` gets its solved version from solutions/NN_topic.py (the ### BEGIN SOLUTION /
### END SOLUTION markers kept), the tag `solution` and nbgrader's metadata of an autograded answer; the
placeholder a student would have filled in (`answer = ...   # a number`) stays above the markers as a comment,
since nbgrader replaces what lies between them with `raise NotImplementedError()`. A quick or code exercise is
followed by a locked test cell worth one point that imports the checker under a private name,

    from peftcourse.check import check as _graded_check
    assert _graded_check("05-lora-params", answer)

so neither a student's own `check = lambda *a, **k: True` nor a deleted import line decides the grade. The
`from peftcourse.check import ...` line moves out of the first exercise cell into a locked cell of its own, which
autograde restores if a student edits it. Predictions are not graded: committing one is the exercise.
Without an nbgrader_config.py beside OUT, one is written there (course id, timeout, the student version keeps the
committed outputs). Then `nbgrader generate_assignment NN_topic` writes the student version and `nbgrader
autograde NN_topic` runs the test cells; README.md, section Exercises, has the whole sequence.
"""
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from peftcourse import exercises  # noqa: E402  (after the path, so a checkout without installing works)

IMPORT_LINE = "from peftcourse.check import"
GRADED_CHECK = "_graded_check"   # the checker's name inside the locked test cells, out of a student's way

NBGRADER_CONFIG = '''\
"""nbgrader settings for the peftcourse notebooks (written by solutions/make_nbgrader_source.py)."""
c = get_config()  # noqa: F821 (nbgrader provides it)
c.CourseDirectory.course_id = "peftcourse"
# the student version keeps the committed full-run outputs (figures, tables), as the course notebooks do
c.ClearOutput.enabled = False
# a cell may train for a minute or more in a full run; grading in fast mode (PEFTCOURSE_FAST=1) is much quicker
c.Execute.timeout = 600
'''


def solution_blocks(path):
    parts = re.split(r"^# %% \[([\w-]+)\]\s*$", path.read_text(), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def lines(text):
    out = text.split("\n")
    return [line + "\n" for line in out[:-1]] + ([out[-1]] if out[-1] else [])


def nbgrader_meta(grade_id, solution, grade, points=0):
    meta = {"grade": grade, "grade_id": grade_id, "locked": not solution, "schema_version": 3,
            "solution": solution, "task": False}
    if grade:
        meta["points"] = points
    return meta


def locked_cell(cell_id, source, grade=False):
    """A code cell nbgrader restores if a student edits it; with grade=True it is a one-point test."""
    return {"cell_type": "code", "execution_count": None, "id": cell_id,
            "metadata": {"nbgrader": nbgrader_meta(cell_id, solution=False, grade=grade, points=1 if grade else 0),
                         "slideshow": {"slide_type": "skip"}},
            "outputs": [], "source": lines(source)}


def solved_source(ex, student_text, solved_block):
    """The solved cell: the student's placeholder lines as a comment, then the worked solution with its markers."""
    solved = solved_block.strip()
    outside = re.sub(r"[ ]*### BEGIN SOLUTION.*?### END SOLUTION\n", "", solved + "\n", flags=re.S).splitlines()
    placeholders = [line for line in student_text.splitlines()
                    if "..." in line and line not in outside and not line.startswith(IMPORT_LINE)]
    if ex.kind == "code":   # the placeholder sits inside the function, where nbgrader's stub goes
        placeholders = []
    return "\n".join([f"# {line.strip()}   <- your answer replaces the two lines below" for line in placeholders]
                     + [solved])


def source_notebook(nb_path):
    """The notebook with solved, nbgrader-marked exercise cells, a locked import cell before the first one and a
    locked test cell after each graded one."""
    solved = solution_blocks(ROOT / "solutions" / (nb_path.stem + ".py"))
    nb = json.loads(nb_path.read_text())
    cells, imports = [], []
    for cell in nb["cells"]:
        if "exercise" not in cell.get("metadata", {}).get("tags", []):
            cells.append(cell)
            continue
        text = "".join(cell["source"])
        ex = exercises.get(re.search(r"""(?:check|predict)\(\s*["']([\w-]+)["']""", text).group(1))
        if not imports:
            imports = [line for line in text.splitlines() if line.startswith(IMPORT_LINE)]
            cells.append(locked_cell(f"{nb_path.stem[:2]}-imports", "\n".join(imports or [
                f"{IMPORT_LINE} check, predict, reveal, solution"])))
        cell["source"] = lines(solved_source(ex, text, solved[ex.id]))
        cell["metadata"]["tags"] = cell["metadata"]["tags"] + ["solution"]
        cell["metadata"]["nbgrader"] = nbgrader_meta(ex.id, solution=True, grade=False)
        cell["outputs"], cell["execution_count"] = [], None
        cells.append(cell)
        if ex.kind != "predict":
            cells.append(locked_cell(f"{ex.id}-test", f"from peftcourse.check import check as {GRADED_CHECK}\n"
                                                      f'assert {GRADED_CHECK}("{ex.id}", {ex.name})', grade=True))
    nb["cells"] = cells
    return nb


def main(out="source"):
    written = []
    for nb_path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        if not (ROOT / "solutions" / (nb_path.stem + ".py")).exists():
            continue
        dest = pathlib.Path(out) / nb_path.stem / nb_path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(json.dumps(source_notebook(nb_path), indent=1, ensure_ascii=False) + "\n")
        written.append(dest)
    config = pathlib.Path(out).resolve().parent / "nbgrader_config.py"
    if not config.exists():
        config.write_text(NBGRADER_CONFIG)
        print(f"wrote {config}")
    print(f"{len(written)} source notebooks in {out}/: now `nbgrader generate_assignment NN_topic` for each")
    return written


if __name__ == "__main__":
    main(*sys.argv[1:2])
