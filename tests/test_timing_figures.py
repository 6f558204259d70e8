"""tools/timing_figures.py writes the notebooks' timing figures into README.md and docs/teaching.md from the
benchmark's record (data/notebook_bench.json, written by tests/bench_notebooks.py --record)."""
import importlib.util
import json
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tf = load("tools/timing_figures.py", "timing_figures")
bench = load("tests/bench_notebooks.py", "bench_notebooks")
XEON = {"cpu": "Intel(R) Xeon(R) Processor", "cpus": 2, "gpu": None}


def entry(wall, peak=500, cells=None, load=(0.5, 1.0), machine=XEON):
    return {"mode": "full", "wall_s": wall, "peak_mb": peak, "cell_s": cells or {}, "load": list(load), "machine": machine}


def figures(record):
    return tf.Figures(record, list(record))


def test_every_kind_of_marker_is_filled_from_the_record():
    record = {"00_a.ipynb": entry(16.6, 521, {"c1": 9.8, "c2": 0.04}),
              "01_b.ipynb": entry(174.4, 1363, {"x": 44.5, "y": 70.0}, load=(3.1, 15.9))}
    doc = ("A <!-- bench 00 -->?<!-- /bench --> B <!-- bench 01 -->?<!-- /bench --> "
           "C <!-- bench 00 c1+c2 -->?<!-- /bench --> D <!-- bench 01 x -->?<!-- /bench --> "
           "E <!-- bench 01 y -->?<!-- /bench --> F <!-- bench total -->?<!-- /bench --> "
           "G <!-- bench longest -->?<!-- /bench --> H <!-- bench machine -->?<!-- /bench --> "
           "I <!-- bench conditions -->?<!-- /bench -->\n")
    out = tf.render(doc, figures(record), "doc.md")
    values = dict(re.findall(r"(\w) <!-- bench [^>]*-->(.*?)<!-- /bench -->", out))
    assert values == {"A": "17 s", "B": "2 min 54 s", "C": "10 s", "D": "45 s", "E": "1 min 10 s",
                      "F": "about 3 min", "G": "01, 2 min 54 s", "H": "2-core Intel Xeon CPU",
                      "I": "while other jobs ran (load average up to 15.9 on 2 CPUs), so the times are upper bounds"}
    assert tf.render(out, figures(record), "doc.md") == out   # a second run changes nothing


def test_an_idle_machine_and_a_gpu_are_said_so():
    gpu = {**XEON, "gpu": "NVIDIA H100 80GB HBM3"}
    record = {"00_a.ipynb": entry(10, load=(0.2, 0.9), machine=gpu)}
    out = tf.render("<!-- bench machine -->?<!-- /bench -->, <!-- bench conditions -->?<!-- /bench -->",
                    figures(record), "doc.md")
    assert out == ("<!-- bench machine -->2-core Intel Xeon CPU with an NVIDIA H100 80GB HBM3<!-- /bench -->, "
                   "<!-- bench conditions -->with nothing else running<!-- /bench -->")


def test_the_table_keeps_its_indentation_and_blank_lines():
    record = {"00_a.ipynb": entry(16.6, 521), "01_b.ipynb": entry(186.5, 1179)}
    doc = "- item:\n\n  <!-- bench table -->\n\n  old\n\n  <!-- /bench -->\n\n- next\n"
    assert tf.render(doc, figures(record), "doc.md") == (
        "- item:\n\n  <!-- bench table -->\n\n  | notebook | full run | peak memory (kernel) |\n  |---|---|---|\n"
        "  | 00_a | 17 s | 521 MB |\n  | 01_b | 187 s | 1,179 MB |\n\n  <!-- /bench -->\n\n- next\n")


def test_the_readme_table_round_trips_through_a_record_of_its_own_numbers():
    """The generator writes the README's table, longest and total exactly as they read now, from their numbers."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- bench table -->(.*?)<!-- /bench -->", readme, re.S)
    assert block, "README.md has no <!-- bench table --> block"
    rows = re.findall(r"^\s*\| (\d\d_\w+) \| (\d+) s \| ([\d,]+) MB \|$", block[1], re.M)
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert [f"{n}.ipynb" for n, _, _ in rows] == notebooks, "the README table must list every notebook, in order"
    record = {f"{n}.ipynb": entry(float(s), int(mb.replace(",", ""))) for n, s, mb in rows}

    def without_conditions(text):   # the README's wording of the load is not in a record made of its numbers
        return re.sub(r"(<!-- bench (?:conditions|machine) -->).*?(<!-- /bench -->)", r"\1\2", text)
    assert without_conditions(tf.render(readme, tf.Figures(record, notebooks), "README.md")) == without_conditions(readme)


@pytest.mark.parametrize("doc, message", [
    ("<!-- bench 07 -->?<!-- /bench -->", "there is no notebook 07"),
    ("<!-- bench 01 -->?<!-- /bench -->", "01_b.ipynb, which data/notebook_bench.json has not recorded"),
    ("<!-- bench total -->?<!-- /bench -->", "needs every notebook"),
    ("<!-- bench 00 zz -->?<!-- /bench -->", "cites cell 'zz' of 00_a.ipynb"),
    ("<!-- bench fastest -->?<!-- /bench -->", "unknown figure 'fastest'"),
    ("x <!-- bench 00 -->?\n", "without its pair"),
    ("x <!-- bench table -->\n\nold\n<!-- /bench -->", "on a line of its own"),
])
def test_a_marker_the_record_cannot_fill_is_named(doc, message):
    record = {"00_a.ipynb": entry(10, cells={"c1": 1.0})}
    with pytest.raises(tf.FigureError, match=re.escape(message)) as err:
        tf.render(doc, tf.Figures(record, ["00_a.ipynb", "01_b.ipynb"]), "doc.md")
    assert "doc.md:1" in str(err.value)


def repo(tmp_path, record=None):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "notebooks" / "00_a.ipynb").write_text("{}")
    (tmp_path / "README.md").write_text("runs in <!-- bench 00 -->1 s<!-- /bench -->\n")
    (tmp_path / "docs" / "teaching.md").write_text("cell <!-- bench 00 c1 -->1 s<!-- /bench -->\n")
    if record is not None:
        (tmp_path / "data" / "notebook_bench.json").write_text(json.dumps({"notebooks": record}))
    return tmp_path


def test_check_fails_until_write_has_run(tmp_path, capsys):
    root = repo(tmp_path, {"00_a.ipynb": entry(75.0, cells={"c1": 3.0})})
    assert tf.main(["--check", "--root", str(root)]) == 1
    assert "README.md, docs/teaching.md" in capsys.readouterr().err
    assert tf.main(["--write", "--root", str(root)]) == 0
    assert (root / "README.md").read_text() == "runs in <!-- bench 00 -->1 min 15 s<!-- /bench -->\n"
    assert (root / "docs" / "teaching.md").read_text() == "cell <!-- bench 00 c1 -->3 s<!-- /bench -->\n"
    assert tf.main(["--check", "--root", str(root)]) == 0


def test_no_record_says_how_to_make_one(tmp_path, capsys):
    assert tf.main(["--check", "--root", str(repo(tmp_path))]) == 2
    assert "python tests/bench_notebooks.py --write --record" in capsys.readouterr().err


def test_the_benchmark_records_cell_times_and_merges_runs(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1"), nbformat.v4.new_markdown_cell("x")])
    nb.cells[0].id = "setup"
    nb.cells[0].metadata["execution"] = {"iopub.execute_input": "2026-01-01T10:00:00.100Z",
                                         "shell.execute_reply": "2026-01-01T10:00:09.900Z"}
    assert bench.cell_seconds(nb) == {"setup": 9.8}
    path = tmp_path / "record.json"
    first = {"notebook": "01_b.ipynb", "mode": "full", "wall_s": 60.0, "peak_mb": 900, "cell_s": {}, "load": [1, 1]}
    bench.record([first], path)
    bench.record([{**first, "notebook": "00_a.ipynb", "wall_s": 12.0}, {**first, "wall_s": 55.0}], path)
    data = json.loads(path.read_text())["notebooks"]
    assert list(data) == ["00_a.ipynb", "01_b.ipynb"] and data["01_b.ipynb"]["wall_s"] == 55.0
    assert data["00_a.ipynb"]["machine"]["cpus"] >= 1 and "notebook" not in data["00_a.ipynb"]
    with pytest.raises(ValueError, match="only full runs"):
        bench.record([{**first, "mode": "fast"}], path)


def test_every_cell_the_guide_times_exists_in_its_notebook():
    """A marker names code cells by id: a cell split or renamed by an edit must not leave a dangling figure."""
    cited = re.findall(r"<!-- bench (\d\d) ([^>]+?) -->", (ROOT / "docs" / "teaching.md").read_text())
    assert cited, "docs/teaching.md times no cell"
    for number, ids in cited:
        [path] = (ROOT / "notebooks").glob(f"{number}_*.ipynb")
        code = {c.get("id") for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"}
        missing = [i for i in ids.split("+") if i not in code]
        assert not missing, f"docs/teaching.md times cells {missing} of {path.name}, which has no such code cell"


def test_the_docs_match_the_benchmark_record():
    if not (ROOT / "data" / "notebook_bench.json").exists():
        pytest.skip("no data/notebook_bench.json yet: python tests/bench_notebooks.py --write --record")
    assert tf.main(["--check"]) == 0, "run python tools/timing_figures.py --write"
