"""Put the launch badges and the Colab install lines into notebooks, and the badges into README.md.

    python tools/launch_cells.py notebooks/*.ipynb README.md          # write
    python tools/launch_cells.py --check notebooks/*.ipynb README.md  # exit 1 if a file would change

For a notebook: the first markdown cell gets a Binder + Colab badge line under its title, and the first code
cell starts with the Colab lines of peftcourse.colab.cell_lines(). The lines are prepended to the cell, so
its outputs and execution count stay what they are: off Colab the lines print nothing and do nothing.
For README.md: the badge line (the line under the title, or the badge line already there) opens
notebooks/00_start_here.ipynb.

Idempotent: a second run changes nothing. Badge lines and Colab lines already there are replaced by the
current ones, so after changing peftcourse.colab.REPOSITORY or BRANCH a run updates every file.
Cells, their ids, metadata and outputs are otherwise kept byte for byte (the notebook JSON is written
back with nbformat's layout: one-space indent, keys sorted, a final newline).
"""
import argparse
import importlib.util
import json
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def load_colab():
    """peftcourse/colab.py on its own (standard library only), without importing the package and torch."""
    spec = importlib.util.spec_from_file_location("peftcourse_colab", ROOT / "peftcourse" / "colab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


colab = load_colab()

BADGE_SIGNS = ("mybinder.org/v2/gh/", "colab.research.google.com/github/")


def is_badge_line(line):
    return any(sign in line for sign in BADGE_SIGNS) and line.lstrip().startswith("[![")


def with_badges(lines, badge_line):
    """`lines` (no newlines) with the badge line replacing the one there or inserted under the title."""
    lines = list(lines)
    at = [i for i, line in enumerate(lines) if is_badge_line(line)]
    if at:
        lines[at[0]] = badge_line
        for i in reversed(at[1:]):
            del lines[i]
        return lines
    titles = [i for i, line in enumerate(lines) if line.startswith("# ")]
    if not titles:
        raise ValueError("the first markdown cell has no '# title' line to put the badges under")
    t = titles[0]
    return lines[:t + 1] + ["", badge_line] + lines[t + 1:]


def without_colab_lines(lines):
    """The cell's own lines: a Colab block made by any version of cell_lines() at its top removed."""
    if len(lines) >= 2 and lines[0].startswith("import sys") and colab.MARKER in lines[1]:
        end = 2
        while end < len(lines) and lines[end].startswith("    "):
            end += 1
        return lines[end:]
    if any(colab.MARKER in line for line in lines):
        raise ValueError("the first code cell tests google.colab somewhere other than at its top: "
                         "move those lines or remove them, then run again")
    return list(lines)


def split(source):
    text = "".join(source) if isinstance(source, list) else source
    return text.split("\n")


def join(lines):
    """Back to nbformat's list-of-lines form (every line but the last keeps its newline)."""
    text = "\n".join(lines)
    return [line for line in text.splitlines(keepends=True)]


def update_notebook(nb, path_in_repo):
    """Returns the notebook (a dict) with badges and Colab lines; `path_in_repo` like 'notebooks/05_lora.ipynb'."""
    cells = nb.get("cells")
    if not isinstance(cells, list):
        raise ValueError("not a notebook: no list of cells")
    markdown = next((c for c in cells if c.get("cell_type") == "markdown"), None)
    code = next((c for c in cells if c.get("cell_type") == "code" and "".join(c.get("source", "")).strip()), None)
    if markdown is None or code is None:
        raise ValueError("the notebook needs a markdown cell (for the badges) and a code cell (for the Colab lines)")
    markdown["source"] = join(with_badges(split(markdown["source"]), colab.badges_markdown(path_in_repo)))
    own = without_colab_lines(split(code["source"]))
    code["source"] = join(colab.cell_lines() + own)
    return nb


def update_readme(text, notebook="notebooks/00_start_here.ipynb"):
    lines = text.split("\n")
    return "\n".join(with_badges(lines, colab.badges_markdown(notebook)))


def process(path, check=False):
    """Update one file; returns True when it changed (or, with check, would change)."""
    path = pathlib.Path(path).resolve()
    try:
        rel = path.relative_to(ROOT).as_posix()
    except ValueError:
        rel = None
    original = path.read_text(encoding="utf-8")
    if path.suffix == ".ipynb":
        nb = json.loads(original)
        # the repository path decides the badge links; a copy elsewhere (tests) links as notebooks/<name>
        in_repo = rel if rel and rel.startswith("notebooks/") else f"notebooks/{path.name}"
        new = json.dumps(update_notebook(nb, in_repo), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    elif path.name == "README.md":
        new = update_readme(original)
    else:
        raise ValueError(f"{path}: give notebooks (.ipynb) or README.md")
    if new == original:
        return False
    if not check:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(new, encoding="utf-8")
        os.replace(tmp, path)
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", help="notebooks (.ipynb) and README.md")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is not up to date")
    args = ap.parse_args(argv)
    changed = [f for f in args.files if process(f, check=args.check)]
    for f in changed:
        print(("not up to date: " if args.check else "updated: ") + f)
    if args.check and changed:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
