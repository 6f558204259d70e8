"""peftcourse.diagrams: every lecture figure draws, its words are readable and apart, its numbers are the course's."""
import itertools

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from peftcourse import diagrams, quant  # noqa: E402


def texts(fig):
    """Every visible, non-empty text of a figure (titles, labels, annotations, legend entries)."""
    found = [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]
    return found


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("draw", diagrams.ALL, ids=lambda f: f.__name__)
def test_draws_readable_words_that_do_not_collide(draw):
    fig = draw()
    assert isinstance(fig, matplotlib.figure.Figure)
    fig.canvas.draw()
    words = texts(fig)
    assert words, "a diagram must say what its parts are"
    assert min(t.get_fontsize() for t in words) >= 9, "too small for a projector"
    renderer = fig.canvas.get_renderer()
    page = fig.bbox
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in words]
    for text, bb in boxes:  # nothing cut off (a little slack: saved with bbox_inches="tight")
        assert bb.x0 >= page.x0 - 40 and bb.x1 <= page.x1 + 40 and bb.y0 >= page.y0 - 60, f"{text!r} is off the figure"
    for (a, ba), (b, bb) in itertools.combinations(boxes, 2):
        overlap_w = min(ba.x1, bb.x1) - max(ba.x0, bb.x0)
        overlap_h = min(ba.y1, bb.y1) - max(ba.y0, bb.y0)
        assert overlap_w <= 2 or overlap_h <= 2, f"{a!r} overlaps {b!r}"


def all_text(fig):
    return " ".join(t.get_text() for t in texts(fig))


def test_low_rank_counts_are_the_formula():
    words = all_text(diagrams.low_rank(n=10, r=3))
    assert "n² = 100 numbers" in words and "2rn = 60 numbers" in words


def test_finetuning_approaches_draws_the_cnn_of_notebook_01():
    """The layers drawn are SmallCNN's (three conv blocks, the dense layer, the new output layer), not a transformer's."""
    from peftcourse import cnn
    words = all_text(diagrams.finetuning_approaches())
    assert "embeddings" not in words and "layer 4" not in words
    assert all(f"conv block {i}" in words for i in (1, 2, 3)) and "new output layer" in words
    dense = cnn.SmallCNN(n_classes=5, image_size=12).head[0]
    assert f"dense {dense.in_features} → {dense.out_features}" in words


def test_double_quant_layout_shows_the_papers_overheads():
    words = all_text(diagrams.double_quant_layout())
    assert "0.500 → 0.127" in words and "4.500 bits" in words and "4.127 bits" in words
    assert "0.250 → 0.063" in all_text(diagrams.double_quant_layout(blocksize=128))


def test_nf4_bins_marks_the_packages_nf4_levels():
    fig = diagrams.nf4_bins()
    ticks = [line for line in fig.axes[0].get_lines() if line.get_marker() == "|"]
    np.testing.assert_allclose(ticks[0].get_xdata(), quant.nf4_code().numpy())
    assert len(fig.axes[1].get_lines()[-1].get_xdata()) == 15  # int4: 15 even levels


def test_sbora_updates_touch_r_columns_or_rows():
    fig = diagrams.sbora_factors(n=12, r=4)
    fa_delta = fig.axes[2].get_images()[0].get_array()
    fb_delta = fig.axes[5].get_images()[0].get_array()
    assert (np.abs(fa_delta).sum(axis=0) > 0).sum() == 4 and (np.abs(fa_delta).sum(axis=1) > 0).sum() == 12
    assert (np.abs(fb_delta).sum(axis=1) > 0).sum() == 4


def test_multi_sbora_regions_are_disjoint_and_as_many_as_tasks_times_r():
    fig = diagrams.multi_sbora_regions(n_features=40, r=3, n_tasks=4)
    coloured = [p for p in fig.axes[0].patches if p.get_facecolor()[:3] != (1.0, 1.0, 1.0)]
    assert len(coloured) == 12 and len({p.get_x() for p in coloured}) == 12


def test_mora_compress_uses_the_reference_r_hat():
    assert "256×256" in all_text(diagrams.mora_compress(d=4096, r=8))
