"""Every figure a notebook shows keeps its legends readable and its colours: checked where figures are shown.

plots.check_shown_figures() wraps IPython's display formatter, so every figure a kernel displays (at the end of a
cell, by plt.show(), inside a widget's captured output) passes plots.figure_problems: no legend over another panel,
another legend or the title, and every method or number format in its colour (or a shade of it), so a method keeps
one colour across a notebook. A problem is raised as an error of the cell. The test suite sets
PEFTCOURSE_CHECK_FIGURES=1 (tests/conftest.py), so the notebooks' fast-mode runs (pytest --nbval-lax) check every
figure they draw; the tests here check the checks.
"""
import json
import os
import pathlib

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from peftcourse import plots  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def three_panels(legend_where, width=15):
    labels = ["LoRA r=4", "SBoRA-FA r=4", "SBoRA-FB r=4"]
    fig, axes = plots.new_axes(3, width=width, height=3.8)
    for ax, title in zip(axes, ("addition", "license text", "quality vs parameters")):
        for label, st in plots.styles(labels).items():
            ax.plot([0, 1, 2], [3, 2, 1.5], label=label, **st)
        ax.axhline(3.5, color="k", ls=":", label="before adaptation")
        ax.set_title(title)
    for ax in axes[:2]:
        plots.legend(ax, legend_where, **({"ncol": 1} if legend_where == "below" else {}))
    return fig, axes


def test_a_legend_over_the_next_panel_is_found():
    fig, _ = three_panels("right")   # notebook 10's first draft: each legend spilled onto the next panel
    problems = plots.legend_problems(fig)
    assert problems == [p for p in problems if "lies over the panel" in p] and len(problems) == 2
    assert "'addition' lies over the panel 'license text'" in problems[0]


def test_legends_below_the_data_or_at_the_right_edge_pass():
    fig, _ = three_panels("below")
    assert plots.legend_problems(fig) == []
    fig, (a, b) = plots.new_axes(2)
    a.plot([0, 1], label="LoRA", color=plots.color("LoRA"))
    b.plot([0, 1], label="DoRA", color=plots.color("DoRA"))
    plots.legend(b)   # right of the last panel: beside the data, over nothing
    assert plots.figure_problems(fig) == []


def test_a_legend_over_a_twin_axis_of_its_own_panel_is_fine_but_two_legends_on_top_of_each_other_are_not():
    fig, ax = plots.new_axes()
    ax.plot([0, 1], label="loss", color="#0072B2")
    twin = ax.twinx()
    twin.plot([1, 0], label="accuracy", color="#D55E00")
    ax.legend(loc="upper left")
    assert plots.legend_problems(fig) == []
    twin.legend(loc="upper left")
    assert any("lie over each other" in p for p in plots.legend_problems(fig))


def test_a_method_or_format_off_its_colour_is_found_and_other_labels_are_free():
    fig, ax = plots.new_axes()
    ax.plot([0, 1], label="LoRA r=8", color="#D55E00")                   # LoRA drawn in SBoRA-FA's orange
    ax.bar([0], [1], label="nf4", color="#CC79A7")                        # a format in the adapter's pink
    ax.scatter([0], [1], label="int4, blocks of 64", color=plots.shade(plots.COLORS["int4"], 1, 2))
    ax.plot([0, 1], label="trained", color="#123456")                     # no method: any colour
    plots.legend(ax)
    problems = plots.colour_problems(fig)
    assert len(problems) == 2 and "'LoRA r=8' is drawn in #d55e00, not in LoRA's colour" in problems[0]
    assert "'nf4' is drawn in #cc79a7, not in NF4's colour #117733" in problems[1]
    assert plots.method_of("QLoRA NF4 + DQ") == "QLoRA" and plots.method_of("NF4 + DQ") == "NF4"


def test_variants_of_a_method_in_its_shades_pass():
    labels = [f"MoRA type {t}" for t in (1, 4, 6, 8)] + ["LoRA r=1", "LoRA r=8", "full FT"]
    fig, ax = plots.new_axes()
    for label, st in plots.styles(labels).items():
        ax.plot([0, 1], label=label, **st)
    plots.legend(ax)
    assert plots.figure_problems(fig) == []
    assert plots.is_shade(plots.shade(plots.COLORS["MoRA"], 2, 4), plots.COLORS["MoRA"])
    assert not plots.is_shade("#ff0000", plots.COLORS["MoRA"])


def test_the_test_suite_turns_the_check_on_for_the_notebooks():
    assert os.environ.get("PEFTCOURSE_CHECK_FIGURES") == "1", "tests/conftest.py sets it for nbval's kernels"


def test_a_kernel_raises_a_figure_problem_in_the_cell_that_shows_it(monkeypatch):
    from nbclient import NotebookClient
    from nbformat import v4

    cells = ["from peftcourse import plots\nimport matplotlib.pyplot as plt",
             "fig, ax = plots.new_axes()\nax.plot([0, 1], label='LoRA', color='#D55E00')\nplots.legend(ax)",
             "fig, ax = plots.new_axes()\nax.plot([0, 1], label='LoRA', color=plots.color('LoRA'))\nplots.legend(ax)",
             "fig, (a, b) = plots.new_axes(2)\nfor x in (a, b):\n    x.plot([0, 1], label='a long label, long enough')\n"
             "plots.legend(a)\nplt.show()\nprint('after show')"]
    nb = v4.new_notebook(cells=[v4.new_code_cell(c) for c in cells])
    monkeypatch.setenv("PEFTCOURSE_CHECK_FIGURES", "1")   # the kernel inherits it
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(ROOT)}}).execute()

    def errors(cell):
        return [o for o in cell.outputs if o.output_type == "error"]
    assert not errors(nb.cells[0]) and not errors(nb.cells[2])
    assert [e.ename for e in errors(nb.cells[1])] == ["FigureProblem"]
    assert "not in LoRA's colour" in errors(nb.cells[1])[0].evalue
    shown = nb.cells[3]   # a figure shown mid-cell by plt.show() is checked too
    assert "after show" in json.dumps(shown.outputs) and "lies over the panel" in errors(shown)[0].evalue
    assert any("image/png" in o.get("data", {}) for o in nb.cells[1].outputs), "the figure is still shown"


def test_figures_to_fix_name_real_cells_and_only_their_problems_pass():
    for notebook, cell, words in plots.FIGURES_TO_FIX:
        nb = json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text())
        assert 0 <= cell < len(nb["cells"]), (notebook, cell)   # the cell as found; edits move it a little
        assert words.startswith(("the legend of ", "'")) and words.endswith((" lies over", " is drawn in")), words
    fig, ax = plots.new_axes()
    ax.plot([0, 1], label="LoRA r=8", color="#D55E00")
    plots.legend(ax)
    assert plots.figure_problems(fig) and not any(plots._to_fix(p) for p in plots.figure_problems(fig))
