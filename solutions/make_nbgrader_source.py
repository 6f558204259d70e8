"""Build nbgrader source notebooks from the student notebooks and the worked solutions.

    python solutions/make_nbgrader_source.py [OUT]      (default OUT: source/, nbgrader's source folder)

Every cell tagged `exercise` gets its solved version from solutions/NN_topic.py (the ### BEGIN SOLUTION /
### END SOLUTION markers kept), the tag `solution` and nbgrader's metadata of an autograded answer; a quick or
code exercise is followed by a locked test cell, `assert check(id, answer)`, worth one point. Predictions are
not graded: committing one is the exercise. `nbgrader generate_assignment NN_topic` then writes the student
version (markers replaced by `raise NotImplementedError()`), and `nbgrader autograde` runs the test cells.
"""
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from peftcourse import exercises  # noqa: E402  (after the path, so a checkout without installing works)


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


def source_notebook(nb_path):
    """The notebook with solved, nbgrader-marked exercise cells (and a test cell after each graded one)."""
    solved = solution_blocks(ROOT / "solutions" / (nb_path.stem + ".py"))
    nb = json.loads(nb_path.read_text())
    cells = []
    for cell in nb["cells"]:
        cells.append(cell)
        if "exercise" not in cell.get("metadata", {}).get("tags", []):
            continue
        text = "".join(cell["source"])
        ex = exercises.get(re.search(r"""(?:check|predict)\(\s*["']([\w-]+)["']""", text).group(1))
        imports = [line for line in text.splitlines() if line.startswith("from peftcourse.check import")]
        cell["source"] = lines("\n".join(imports + ([""] if imports else []) + [solved[ex.id].strip()]))
        cell["metadata"]["tags"] = cell["metadata"]["tags"] + ["solution"]
        cell["metadata"]["nbgrader"] = nbgrader_meta(ex.id, solution=True, grade=False)
        cell["outputs"], cell["execution_count"] = [], None
        if ex.kind != "predict":
            cells.append({"cell_type": "code", "execution_count": None, "id": f"{ex.id}-test",
                          "metadata": {"nbgrader": nbgrader_meta(f"{ex.id}-test", solution=False, grade=True, points=1),
                                       "slideshow": {"slide_type": "skip"}},
                          "outputs": [], "source": lines(f'assert check("{ex.id}", {ex.name})')})
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
    print(f"{len(written)} source notebooks in {out}/: now `nbgrader generate_assignment NN_topic` for each")
    return written


if __name__ == "__main__":
    main(*sys.argv[1:2])
