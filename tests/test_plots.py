"""peftcourse.plots: methods and their variants stay apart, legends sit beside the data, axes show differences."""
import itertools

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_rgb

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from peftcourse import plots  # noqa: E402
from peftcourse.train import History  # noqa: E402

COMPARED = ["full FT", "adapter", "prompt", "prefix", "LoRA", "QLoRA", "DoRA", "MoRA", "SBoRA-FA", "SBoRA-FB"]
# Machado et al. 2009, severity 1: how the colours look with deuteranopia and protanopia (linear RGB)
SIMULATE = {
    "normal vision": np.eye(3),
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                              [-0.011820, 0.042940, 0.968881]]),
    "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                            [-0.003882, -0.048116, 1.051998]]),
}


def seen(hex_color, matrix):
    c = np.array(to_rgb(hex_color))
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    s = np.clip(matrix @ linear, 0, 1)
    return np.where(s <= 0.0031308, 12.92 * s, 1.055 * s ** (1 / 2.4) - 0.055)


@pytest.mark.parametrize("vision", list(SIMULATE))
def test_compared_methods_stay_apart_with_colour_blindness(vision):
    """The methods notebook 12 plots together: no two look alike (the old prompt/prefix/SBoRA-FB pinks did)."""
    closest = min((np.linalg.norm(seen(plots.COLORS[a], SIMULATE[vision]) - seen(plots.COLORS[b], SIMULATE[vision])), a, b)
                  for a, b in itertools.combinations(COMPARED, 2))
    assert closest[0] > 0.18, f"{closest[1]} and {closest[2]} look alike under {vision}"
    assert len({plots.MARKERS[m] for m in COMPARED}) == len(COMPARED)  # and every method has its own marker


def test_variants_of_one_method_differ_in_shade_line_and_marker():
    st = plots.styles(["LoRA r=1", "LoRA r=8", "MoRA type 1", "MoRA type 6", "MoRA truncation", "MoRA decoupling"])
    for group in (["LoRA r=1", "LoRA r=8"], ["MoRA type 1", "MoRA type 6", "MoRA truncation", "MoRA decoupling"]):
        for key in ("color", "linestyle", "marker"):
            assert len({str(st[label][key]) for label in group}) == len(group), (group, key)
    assert st["LoRA r=1"]["color"] != st["MoRA type 1"]["color"]
    assert plots.styles(["DoRA"])["DoRA"]["color"] == plots.COLORS["DoRA"]  # a single run keeps the method colour


def test_unknown_labels_never_take_a_method_colour():
    st = plots.styles(["LoRA", "DoRA", "baseline", "scratch"])
    assert {st["baseline"]["color"], st["scratch"]["color"]}.isdisjoint({plots.COLORS["LoRA"], plots.COLORS["DoRA"]})
    assert st["baseline"]["color"] != st["scratch"]["color"]


def history(offset):
    h = History()
    for step in range(1, 41):
        h.records.append({"step": step, "loss": offset + 1.0 / step, "time_s": 0.0, "peak_mem_mb": 0.0})
    return h


def test_plot_losses_puts_the_legend_beside_the_data():
    ax = plots.plot_losses({"LoRA r=1": history(0.0), "LoRA r=8": history(0.1)}, window=1)
    fig = ax.figure
    fig.canvas.draw()
    box, axes_box = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert box.x0 >= axes_box.x1  # right of the axes, over no curve
    lines = ax.get_lines()
    assert lines[0].get_color() != lines[1].get_color() and lines[0].get_linestyle() != lines[1].get_linestyle()
    plt.close(fig)


def test_plot_values_fits_the_axis_to_the_differences():
    ax = plots.plot_values({"LoRA (W_q)": 466.0, "LoRA (W_q, W_v)": 441.3, "LoRA all": 432.1}, xlabel="perplexity",
                           reference=("full FT", 420.0))
    lo, hi = ax.get_xlim()
    assert 380 < lo < 420 and 466 < hi < 500  # not from 0: the 7 % spread fills the axis
    assert [t.get_text() for t in ax.get_yticklabels()] == ["LoRA (W_q)", "LoRA (W_q, W_v)", "LoRA all"]
    assert any(t.get_text() == "441.3" for t in ax.texts)
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="at least one"):
        plots.plot_values({})


def test_scatter_tradeoff_uses_a_log_axis_only_for_a_wide_range():
    narrow = plots.scatter_tradeoff({"LoRA": (49_000, 0.5), "DoRA": (50_000, 0.6), "MoRA": (48_000, 0.4)})
    wide = plots.scatter_tradeoff({"LoRA": (3_000, 0.5), "full FT": (22_000_000, 0.6)})
    assert narrow.get_xscale() == "linear" and wide.get_xscale() == "log"
    plt.close("all")


def test_same_limits_makes_existing_axes_comparable():
    fig, (a, b) = plt.subplots(1, 2)
    a.plot([0, 1], [430, 440])
    b.plot([0, 1], [450, 470])
    plots.same_limits([a, b])
    assert a.get_ylim() == b.get_ylim() and a.get_ylim()[0] <= 430 and a.get_ylim()[1] >= 470
    with pytest.raises(ValueError, match="axis"):
        plots.same_limits([a, b], axis="z")
    plt.close(fig)


def test_legend_refuses_a_place_on_the_data():
    fig, ax = plt.subplots()
    ax.plot([0, 1], label="x")
    with pytest.raises(ValueError, match="outside the data"):
        plots.legend(ax, "best")
    plt.close(fig)


def test_scatter_labels_of_crowded_points_do_not_overlap():
    """Notebook 12 at one parameter budget: every method within a few percent of 49 k parameters."""
    points = {name: (49_000 + 20 * i, 0.50 + 0.001 * (i % 2)) for i, name in
              enumerate(["LoRA", "DoRA", "MoRA", "SBoRA-FA", "SBoRA-FB", "prompt"])}
    points.update({"adapter": (60_000, 0.3), "full FT": (40_000, 0.7)})  # the range that crowds the others
    ax = plots.scatter_tradeoff(points, x="trainable parameters", y="accuracy")
    ax.figure.canvas.draw()
    boxes = [matplotlib.text.Text.get_window_extent(t) for t in ax.texts]  # the words, not their leader lines
    assert len(boxes) == len(points)
    for a, b in itertools.combinations(boxes, 2):
        assert min(a.x1, b.x1) - max(a.x0, b.x0) <= 1 or min(a.y1, b.y1) - max(a.y0, b.y0) <= 1
    plt.close(ax.figure)


def test_plot_feature_shares_marks_each_tasks_region_in_its_own_colour():
    import torch
    shares = [torch.tensor([0.4, 0.3, 0.1, 0.1, 0.1]), torch.tensor([0.05, 0.05, 0.3, 0.3, 0.3])]
    ax = plots.plot_feature_shares(shares, [torch.tensor([0, 1]), torch.tensor([2, 3])], names=("add", "sub"))
    points = [c.get_offsets() for c in ax.collections]
    assert [len(p) for p in points] == [5, 2, 2]                      # every feature, then each region's
    np.testing.assert_allclose(points[2], [[0.1, 0.3], [0.1, 0.3]])   # sub's region: features 2 and 3
    assert ax.get_xscale() == "log" and "add's region" in [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close("all")
    with pytest.raises(ValueError, match="two tasks"):
        plots.plot_feature_shares(shares[:1], [torch.tensor([0])])
