"""Write the notebooks' timing figures into README.md and docs/teaching.md from the benchmark's record.

    python tests/bench_notebooks.py --write --record   # full runs: refresh the notebooks, record the figures
                                                       # in data/notebook_bench.json
    python tools/timing_figures.py --write             # write every figure between its markers
    python tools/timing_figures.py --check             # exit 1 (and say where) if a doc differs from the record

A figure sits between two HTML comments, which GitHub, JupyterLab and the course website do not show:

    <!-- bench KEY -->2 min 54 s<!-- /bench -->

KEY is one of
    NN              notebook NN's full run, e.g. "2 min 54 s"
    NN ID+ID...     the run time of those code cells of notebook NN (cell ids), summed: "the rank sweep (34 s)"
    total           all notebooks one after the other, e.g. "about 25 min"
    longest         the slowest notebook and its time, e.g. "11, 4 min 36 s"
    machine         the CPU the figures were measured on, e.g. "2-core Intel Xeon CPU"
    conditions      whether other jobs ran at the same time (then the times are upper bounds)
    table           (on a line of its own, closed by <!-- /bench --> on another, blank lines between) the
                    table of every notebook's full run and peak memory, indented like the opening marker
"""
import argparse
import glob
import json
import math
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORD = os.path.join("data", "notebook_bench.json")
DOCS = ("README.md", os.path.join("docs", "teaching.md"))
MARKER = re.compile(r"<!-- bench (?P<key>[^>]*?) -->(?P<value>.*?)<!-- /bench -->", re.S)
KEYS = "NN, NN ID+ID..., total, longest, machine, conditions, table"
RECORD_HINT = "python tests/bench_notebooks.py --write --record"


class FigureError(ValueError):
    """A marker that the record cannot fill; the message says which and what to do."""


def whole(x):
    """x rounded half up (Python's round() takes 44.5 to 44)."""
    return math.floor(x + 0.5)


def duration(seconds):
    """'17 s', '2 min 54 s', '4 min'."""
    seconds = whole(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


def load_record(path):
    if not os.path.exists(path):
        raise FigureError(f"no benchmark record at {path}: run `{RECORD_HINT}` first (full runs, a few minutes each)")
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, dict) or not isinstance(data.get("notebooks"), dict):
        raise FigureError(f"{path} is not a benchmark record (expected {{\"notebooks\": {{name: figures}}}}); "
                          f"write it with `{RECORD_HINT}`")
    return data["notebooks"]


class Figures:
    """The figures of the notebooks present in the repository, from the record."""

    def __init__(self, record, notebooks, source=RECORD):
        self.record, self.notebooks, self.source = record, sorted(notebooks), source

    def entry(self, number, where):
        names = [n for n in self.notebooks if n.startswith(f"{number}_")]
        if not names:
            raise FigureError(f"{where}: there is no notebook {number} (notebooks: "
                              f"{', '.join(n[:2] for n in self.notebooks)})")
        name = names[0]
        if name not in self.record:
            raise FigureError(f"{where} cites notebook {name}, which {self.source} has not recorded: run "
                              f"`python tests/bench_notebooks.py notebooks/{name} --write --record`")
        return name, self.record[name]

    def all(self, where):
        missing = [n for n in self.notebooks if n not in self.record]
        if missing:
            raise FigureError(f"{where} needs every notebook, and {self.source} lacks {', '.join(missing)}: "
                              f"run `{RECORD_HINT}`")
        return [(n, self.record[n]) for n in self.notebooks]

    def value(self, key, where):
        words = key.split()
        if key == "total":
            return f"about {whole(sum(e['wall_s'] for _, e in self.all(where)) / 60)} min"
        if key == "longest":
            name, e = max(self.all(where), key=lambda ne: ne[1]["wall_s"])
            return f"{name[:2]}, {duration(e['wall_s'])}"
        if key == "machine":
            return machines(self.all(where))
        if key == "conditions":
            return conditions(self.all(where))
        if key == "table":
            raise FigureError(f"{where}: the table marker must stand on a line of its own")
        if re.fullmatch(r"\d\d", words[0]) and len(words) <= 2:
            name, e = self.entry(words[0], where)
            if len(words) == 1:
                return duration(e["wall_s"])
            seconds = 0.0
            for cell in words[1].split("+"):
                if cell not in e.get("cell_s", {}):
                    raise FigureError(f"{where} cites cell {cell!r} of {name}, which {self.source} does not have: the "
                                      f"cell was removed or its id changed; find its id in the notebook and fix the "
                                      f"marker, or rerun `python tests/bench_notebooks.py notebooks/{name} --record`")
                seconds += e["cell_s"][cell]
            return duration(seconds)
        raise FigureError(f"{where}: unknown figure {key!r} in a marker; the keys are {KEYS}")

    def table(self, where, indent):
        lines = ["| notebook | full run | peak memory (kernel) |", "|---|---|---|"]
        lines += [f"| {name.removesuffix('.ipynb')} | {whole(e['wall_s'])} s | {e['peak_mb']:,} MB |"
                  for name, e in self.all(where)]
        return "\n\n" + "".join(f"{indent}{line}\n" for line in lines) + "\n" + indent


def cpu_name(model):
    model = re.sub(r"\((R|TM|tm|r)\)", "", model)
    model = re.sub(r"\s+@.*$", "", model)
    model = re.sub(r"\b(CPU|Processor|processor)\b", "", model)
    return " ".join(model.split()) or "unknown"


def machines(entries):
    seen = []
    for _, e in entries:
        m = e.get("machine") or {}
        text = f"{m.get('cpus', '?')}-core {cpu_name(m.get('cpu', ''))} CPU"
        if m.get("gpu"):
            text += f" with an {m['gpu']}"
        if text not in seen:
            seen.append(text)
    return " and ".join(seen)


def conditions(entries):
    loads = [(max(e.get("load") or [0]), (e.get("machine") or {}).get("cpus") or 1) for _, e in entries]
    busiest, cpus = max(loads)
    if any(load > cpus for load, cpus in loads):
        return f"while other jobs ran (load average up to {busiest:g} on {cpus} CPUs), so the times are upper bounds"
    return "with nothing else running"


def render(text, figures, doc):
    """text with every marker's figure rewritten from figures; doc names the file in error messages."""
    def replace(match):
        key = " ".join(match["key"].split())
        line = text.count("\n", 0, match.start()) + 1
        where = f"{doc}:{line}"
        if key == "table":
            start = text.rfind("\n", 0, match.start()) + 1
            indent = text[start:match.start()]
            if indent.strip() or not match["value"].startswith("\n"):
                raise FigureError(f"{where}: the table marker must stand on a line of its own")
            body = figures.table(where, indent)
        else:
            if "\n" in match["value"]:
                raise FigureError(f"{where}: an inline figure runs over a line end (a missing <!-- /bench -->?)")
            body = figures.value(key, where)
        return f"<!-- bench {key} -->{body}<!-- /bench -->"
    out = MARKER.sub(replace, text)
    stray = re.search(r"<!-- /?bench\b", MARKER.sub("", out))
    if stray:
        line = out.count("\n", 0, stray.start()) + 1
        raise FigureError(f"{doc}:{line}: a bench marker without its pair (<!-- bench KEY -->figure<!-- /bench -->)")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--write", action="store_true", help="rewrite the figures in the docs")
    what.add_argument("--check", action="store_true", help="exit 1 if a doc's figures differ from the record")
    ap.add_argument("--root", default=ROOT, help="the repository (default: this one)")
    ap.add_argument("--record", help=f"the benchmark record (default: ROOT/{RECORD})")
    args = ap.parse_args(argv)
    record_path = args.record or os.path.join(args.root, RECORD)
    notebooks = [os.path.basename(p) for p in glob.glob(os.path.join(args.root, "notebooks", "[0-9][0-9]_*.ipynb"))]
    try:
        inside = os.path.abspath(record_path).startswith(os.path.abspath(args.root) + os.sep)
        source = os.path.relpath(record_path, args.root) if inside else record_path
        figures = Figures(load_record(record_path), notebooks, source=source)
        changed = []
        for doc in DOCS:
            path = os.path.join(args.root, doc)
            with open(path) as f:
                text = f.read()
            new = render(text, figures, doc)
            if new != text:
                changed.append(doc)
                if args.write:
                    with open(path, "w") as f:
                        f.write(new)
    except FigureError as e:
        print(f"timing_figures: {e}", file=sys.stderr)
        return 2
    if args.check and changed:
        print(f"timing figures differ from {source} in {', '.join(changed)}: "
              "run python tools/timing_figures.py --write", file=sys.stderr)
        return 1
    if args.write:
        print(f"rewrote {', '.join(changed)}" if changed else "the figures were up to date")
    else:
        print(f"up to date: {', '.join(DOCS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
