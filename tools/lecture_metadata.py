"""Write every notebook's lecture timing (metadata.lecture) and its docs/teaching.md row from the timing rule.

    python tools/lecture_metadata.py              # rewrite the notebooks' metadata.lecture and the guide's rows
    python tools/lecture_metadata.py --check      # print each notebook's timing; exit 1 if one differs or is over 20 min
    python tools/lecture_metadata.py notebooks/05_lora.ipynb ...   # only these notebooks

The rule is tests/test_notebook_hygiene.py's lecture_estimate (TIMING_RULE there): slides, code cells and text on the
lecture path. metadata.lecture also keeps the path, the titles of its slides in order (a slide's first heading, else
its first line). Running it twice changes nothing the second time; a notebook is rewritten only if its metadata
changes, in the layout Jupyter saves (one-space indent, sorted keys), and nothing else in it is touched.
"""
import argparse
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from test_notebook_hygiene import MAX_LECTURE_MINUTES, TIMING_RULE, lecture_estimate  # noqa: E402

GUIDE = ROOT / "docs" / "teaching.md"
RULE_SENTENCE = re.compile(r"Timing rule \(the notebooks' `metadata\.lecture`[^)]*\): .*?\.\s+", re.S)


def slide_titles(nb):
    titles = []
    for cell in nb["cells"]:
        if cell["metadata"]["slideshow"]["slide_type"] in ("slide", "subslide"):
            source = "".join(cell["source"])
            heading = re.search(r"^#+\s*(.+?)\s*$", source, re.M)
            first = next((line.strip() for line in source.splitlines() if line.strip()), "")
            titles.append(heading.group(1) if heading else first)
    return titles


def lecture(nb):
    """metadata.lecture by the rule: the estimate, the rule in words and the slide titles."""
    return {**lecture_estimate(nb), "timing": TIMING_RULE, "path": slide_titles(nb)}


def guide_cell(lec):
    return f"{lec['minutes']:g} min, {lec['slides']} slides"


def update_guide(guide, number, lec):
    """The guide with notebook NN's row showing this timing in its third column."""
    lines = guide.splitlines(keepends=True)
    rows = [i for i, line in enumerate(lines) if line.startswith(f"| {number} |")]
    if len(rows) != 1:
        raise SystemExit(f"docs/teaching.md needs exactly one table row for notebook {number}, found {len(rows)}")
    columns = lines[rows[0]].split("|")
    columns[3] = f" {guide_cell(lec)} "
    lines[rows[0]] = "|".join(columns)
    guide = "".join(lines)
    sentence = (f"Timing rule (the notebooks' `metadata.lecture`, written by `python tools/lecture_metadata.py`): "
                f"{TIMING_RULE}.\n")
    return RULE_SENTENCE.sub(sentence, guide, count=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=pathlib.Path)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if anything differs")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    guide = GUIDE.read_text()
    stale, too_long = [], []
    for path in paths:
        raw = path.read_text()
        nb = json.loads(raw)
        lec = lecture(nb)
        changed = nb["metadata"].get("lecture") != lec
        flag = ""
        if lec["minutes"] > MAX_LECTURE_MINUTES:
            too_long.append(path.name)
            flag = f"  over {MAX_LECTURE_MINUTES} min"
        print(f"{path.name:36s} {lec['minutes']:5g} min: {lec['slides']} slides, {lec['code_cells_shown']} code cells, "
              f"{lec['words_shown']} words{flag}{'  (metadata differs)' if changed else ''}")
        guide = update_guide(guide, path.name[:2], lec)
        if changed:
            stale.append(path.name)
            if not args.check:
                nb["metadata"]["lecture"] = lec
                path.write_text(json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    guide_changed = guide != GUIDE.read_text()
    if guide_changed and not args.check:
        GUIDE.write_text(guide)
    if args.check:
        if guide_changed:
            print("docs/teaching.md differs from the notebooks' timing")
        return 1 if stale or guide_changed or too_long else 0
    print(f"{len(stale)} notebooks rewritten" + (", docs/teaching.md updated" if guide_changed else ""))
    return 1 if too_long else 0


if __name__ == "__main__":
    sys.exit(main())
