"""The course's one plotting style and the figures several notebooks share.

Colours: one per method from colour-blind-safe palettes (Okabe & Ito 2008; Tol's "muted" for the
methods beyond its eight), each with its own marker, so that methods stay apart in grey print too.
Variants of one method in one plot (LoRA r=1 / r=8, four MoRA types) keep the method's hue but get
shades, line styles and markers of their own: `styles(labels)`. Legends go beside the data (`legend`),
and compared values go on an axis that shows their differences (`plot_values`: dots, not bars from 0).
"""
import os

import matplotlib.pyplot as plt
from matplotlib.colors import to_hex, to_rgb

COLORS = {  # one colour per method, the same in every notebook and diagram
    "full FT": "#000000", "top-layer": "#999933", "feature-based": "#88CCEE", "adapter": "#CC79A7",
    "prompt": "#882255", "prefix": "#DDCC77", "LoRA": "#0072B2", "QLoRA": "#56B4E9", "DoRA": "#E69F00",
    "MoRA": "#009E73", "SBoRA-FA": "#D55E00", "SBoRA-FB": "#332288", "peft": "#777777",
}
MARKERS = {
    "full FT": "s", "top-layer": "v", "feature-based": "^", "adapter": "D", "prompt": "P", "prefix": "X",
    "LoRA": "o", "QLoRA": "h", "DoRA": "d", "MoRA": "p", "SBoRA-FA": ">", "SBoRA-FB": "<", "peft": "x",
}
# number formats (notebooks 06 and 07) keep a colour of their own too, from Tol's muted palette; a label names one
# in any case ("nf4", "NF4 + DQ", "QLoRA NF4" is QLoRA's)
FORMATS = {"int8": "#44AA99", "int4": "#AA4499", "FP4": "#CC6677", "NF4": "#117733"}
COLORS.update(FORMATS)
MARKERS.update({"int8": "*", "int4": "8", "FP4": "H", "NF4": "+"})
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)))
VARIANT_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
FROZEN = "#BBBBBB"  # frozen weights in diagrams and plots


def style():
    plt.rcParams.update({
        "figure.figsize": (6.4, 3.6), "figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3,
        "axes.spines.top": False, "axes.spines.right": False, "font.size": 10, "legend.frameon": False,
        "axes.prop_cycle": plt.cycler(color=["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7",
                                             "#56B4E9", "#882255", "#999933", "#332288", "#000000"]),
    })


style()


def method_of(label):
    """The known method (or number format) a label starts with ("LoRA r=8" -> "LoRA"; "QLoRA NF4" -> "QLoRA";
    "nf4" -> "NF4"), else None."""
    for name in sorted(COLORS, key=len, reverse=True):
        if str(label).startswith(name) or name in FORMATS and str(label).lower().startswith(name.lower()):
            return name
    return None


def color(label):
    """The method's colour when the label starts with a known method name, else None (matplotlib's cycle)."""
    method = method_of(label)
    return COLORS[method] if method else None


def shade(hex_color, i, n):
    """Variant i of n of one colour: from darker (i = 0) to lighter (i = n-1); n = 1 gives the colour itself."""
    if n <= 1:
        return hex_color
    t = i / (n - 1)  # 0 .. 1
    rgb = to_rgb(hex_color)
    if t < 0.5:  # mix with black, at most 35 %
        k = 0.35 * (1 - 2 * t)
        return to_hex([c * (1 - k) for c in rgb])
    k = 0.5 * (2 * t - 1)  # mix with white, at most 50 %
    return to_hex([c + (1 - c) * k for c in rgb])


def styles(labels):
    """{label: dict(color=, marker=, linestyle=)} for the curves of one plot.

    Labels of one method ("LoRA r=1", "LoRA r=8") share its hue in shades, and differ in line style
    and marker; labels of no known method take the default colour cycle, each with its own style.
    """
    labels = list(labels)
    groups = {}
    for label in labels:
        groups.setdefault(method_of(label) or label, []).append(label)
    taken = {COLORS[m].lower() for m in groups if m in COLORS}  # unknown labels must not look like a method
    cycle = [c for c in plt.rcParams["axes.prop_cycle"].by_key()["color"] if c.lower() not in taken] or ["#444444"]
    out, unknown = {}, 0
    for method, members in groups.items():
        for i, label in enumerate(members):
            if method in COLORS:
                base, marker = COLORS[method], MARKERS[method]
            else:
                base, marker = cycle[unknown % len(cycle)], VARIANT_MARKERS[unknown % len(VARIANT_MARKERS)]
                unknown += 1
            out[label] = dict(color=shade(base, i, len(members)), linestyle=LINESTYLES[i % len(LINESTYLES)],
                              marker=marker if len(members) == 1 else VARIANT_MARKERS[i % len(VARIANT_MARKERS)])
    return out


def legend(ax, where="right", **kw):
    """A legend beside the data: right of the axes (default) or below them; never over the curves."""
    if where == "right":
        kw = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "borderaxespad": 0.0, **kw}
    elif where == "below":
        kw = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.18), "ncol": 3, **kw}
    else:
        raise ValueError(f"legend where={where!r}: use 'right' or 'below' (outside the data)")
    return ax.legend(**kw)


def same_limits(axes, axis="y"):
    """Give existing axes one common range on `axis` ("x", "y" or "xy"), so their values compare by eye."""
    axes = list(getattr(axes, "flat", axes))
    if not axes or axis not in ("x", "y", "xy"):
        raise ValueError(f"same_limits needs axes and axis 'x', 'y' or 'xy', got {len(axes)} axes, axis={axis!r}")
    for name in axis:
        lows, highs = zip(*(getattr(ax, f"get_{name}lim")() for ax in axes))
        for ax in axes:
            getattr(ax, f"set_{name}lim")(min(lows), max(highs))
    return axes


def new_axes(ncols=1, nrows=1, width=None, height=None, **kw):
    w, h = plt.rcParams["figure.figsize"]
    fig, axes = plt.subplots(nrows, ncols, figsize=(width or w * ncols, height or h * nrows), **kw)
    return fig, axes


def plot_losses(histories, ax=None, window=20, title="training loss", logy=False, legend_where="right"):
    """Loss curves of several runs: histories is {label: History}; variants of a method in shades and line styles."""
    if ax is None:
        _, ax = new_axes()
    for label, st in styles(histories).items():
        h = histories[label]
        ax.plot(h.steps, h.smoothed_losses(window), label=label, markevery=max(1, len(h.steps) // 6), ms=5, **st)
    ax.set_xlabel("step")
    ax.set_ylabel("loss" + (f" (mean of {window})" if window > 1 else ""))
    if logy:
        ax.set_yscale("log")
    ax.set_title(title)
    legend(ax, legend_where)
    return ax


def plot_metric(histories, metric, ax=None, title=None, legend_where="right"):
    """An eval metric over steps for several runs."""
    if ax is None:
        _, ax = new_axes()
    for label, st in styles(histories).items():
        steps, values = histories[label].metric(metric)
        ax.plot(steps, values, label=label, **st)
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.set_title(title or metric)
    legend(ax, legend_where)
    return ax


def plot_values(values, ax=None, xlabel="value", title=None, reference=None, fmt="{:,.1f}", lower_is_better=None):
    """Compared numbers as dots on an axis fitted to them, each labelled with its value: {label: value}.

    Bars from 0 hide differences like 432 vs 466 (7 %); dots on a fitted axis show them, and the printed
    values keep the scale honest. reference: an optional (label, value) drawn as a dashed line (e.g. full FT).
    """
    if not values:
        raise ValueError("plot_values needs at least one {label: value} entry")
    if ax is None:
        _, ax = new_axes(height=max(2.0, 0.45 * len(values) + 1.0))
    labels = list(values)
    st = styles(labels)
    for i, label in enumerate(labels):
        ax.scatter([values[label]], [i], s=70, color=st[label]["color"], marker=st[label]["marker"], zorder=3)
        ax.annotate(fmt.format(values[label]), (values[label], i), textcoords="offset points", xytext=(0, 7),
                    ha="center", fontsize=9)
    numbers = list(values.values())
    if reference is not None:
        ref_label, ref_value = reference
        ax.axvline(ref_value, color=color(ref_label) or "#444444", ls="--", lw=1.2)
        ax.annotate(f"{ref_label} {fmt.format(ref_value)}", (ref_value, len(labels) - 0.4), fontsize=9,
                    ha="center", color=color(ref_label) or "#444444")
        numbers.append(ref_value)
    lo, hi = min(numbers), max(numbers)
    pad = (hi - lo) * 0.12 or abs(hi) * 0.05 or 1.0
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(len(labels) - 0.3, -0.7)  # first label on top, room for the value labels
    ax.set_yticks(range(len(labels)), labels)
    ax.grid(axis="y", visible=False)
    if lower_is_better is not None:
        xlabel += " (lower is better)" if lower_is_better else " (higher is better)"
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    return ax


def scatter_tradeoff(points, x="trainable params", y="accuracy", ax=None, logx="auto", title=None):
    """Quality against cost: points is {label: (x, y)}. logx="auto": a log axis only when x spans > 20x."""
    if ax is None:
        _, ax = new_axes()
    st = styles(points)
    for label, (px, py) in points.items():
        ax.scatter([px], [py], s=60, color=st[label]["color"], marker=st[label]["marker"], label=label, zorder=3)
    xs = [px for px, _ in points.values()]
    if logx == "auto":
        logx = min(xs) > 0 and max(xs) / min(xs) > 20
    if logx:
        ax.set_xscale("log")
    label_points(ax, points)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title or f"{y} vs {x}")
    return ax


def label_points(ax, points, fontsize=8):
    """Name each point beside it; a label that would cover an earlier one moves up a line (crowded methods)."""
    ax.autoscale_view()
    to_points = 72 / ax.figure.dpi  # display pixels -> typographic points
    placed = []  # (x0, x1, y) of the labels so far, in points
    for label, (px, py) in points.items():
        x, y = (v * to_points for v in ax.transData.transform((px, py)))
        width, dy = 0.6 * fontsize * len(str(label)), 5
        while any(x + 5 < x1 and x0 < x + 5 + width and abs(y + dy - y1) < fontsize + 2 for x0, x1, y1 in placed):
            dy += fontsize + 3
        placed.append((x + 5, x + 5 + width, y + dy))
        ax.annotate(label, (px, py), textcoords="offset points", xytext=(5, dy), fontsize=fontsize,
                    arrowprops=dict(arrowstyle="-", color="#999999", lw=0.6) if dy > 5 else None)


def plot_matrices(matrices, ncols=None, cmap="RdBu_r", size=2.6, suptitle=None):
    """Heatmaps side by side, {title: 2-D tensor or array}; each on a colour scale symmetric around 0 (white),
    clipped at the 99th percentile of its nonzero magnitudes."""
    import numpy as np
    if not matrices:
        raise ValueError("plot_matrices needs at least one {title: matrix} entry")
    ncols = ncols or len(matrices)
    nrows = -(-len(matrices) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3), squeeze=False)
    for ax, (title, m) in zip(axes.flat, matrices.items()):
        m = np.asarray(m.detach().float().cpu() if hasattr(m, "detach") else m, dtype=float)
        if m.ndim != 2:
            raise ValueError(f"{title!r} is not a matrix (shape {m.shape})")
        nonzero = np.abs(m[m != 0])
        v = float(np.quantile(nonzero, 0.99)) if nonzero.size else 1.0  # a few outliers must not wash out the rest
        ax.imshow(m, cmap=cmap, vmin=-v, vmax=v, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    for ax in list(axes.flat)[len(matrices):]:
        ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig, axes


def plot_feature_shares(shares, regions, names=("task 1", "task 2"), ax=None, title=None):
    """One layer's input features, each a dot at (its share of task 1's input energy, of task 2's), log axes;
    the features each task's region holds (multi_sbora.feature_regions) in that task's colour. Dots on the diagonal
    are used by both tasks alike: a region there would answer the other task's inputs as strongly as its own."""
    if len(shares) != 2 or len(regions) != 2 or len(names) != 2:
        raise ValueError("plot_feature_shares draws two tasks: give two share vectors, two regions and two names")
    if ax is None:
        _, ax = new_axes(width=4.6, height=4.2)
    x, y = (s.detach().float() for s in shares)
    ax.scatter(x, y, s=10, color=FROZEN, label="other features")
    for region, name, c in zip(regions, names, ("#0072B2", "#D55E00")):
        ax.scatter(x[region], y[region], s=28, color=c, label=f"{name}'s region")
    low, high = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    ax.plot([low, high], [low, high], color="gray", lw=1, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"share of {names[0]}'s input energy")
    ax.set_ylabel(f"share of {names[1]}'s input energy")
    ax.set_title(title or "which features each task uses")
    ax.legend(loc="upper left", fontsize=8)
    return ax


# ---------------------------------------------------------------- every shown figure, checked

def _legends(fig):
    return [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)


def _overlap(a, b, tol=2.0):
    """Whether two display boxes overlap by more than `tol` pixels each way."""
    return min(a.x1, b.x1) - max(a.x0, b.x0) > tol and min(a.y1, b.y1) - max(a.y0, b.y0) > tol


def _name(ax):
    return repr(ax.get_title() or ax.get_ylabel() or ax.get_xlabel() or f"panel {ax.figure.axes.index(ax) + 1}")


def legend_problems(fig):
    """Where a legend of `fig` hides something: another panel (its data, ticks, labels or title), another legend
    or the figure's title. A twin axis sharing the legend's panel is the same panel."""
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()
    problems = []
    legends = _legends(fig)
    for i, leg in enumerate(legends):
        box = leg.get_window_extent(renderer)
        owner = leg.axes if leg.axes is not None and leg in (leg.axes.get_legend(),) else None
        where = f"the legend of {_name(owner)}" if owner is not None else "the figure's legend"
        for ax in fig.axes:
            if ax is owner or not ax.get_visible() or (
                    owner is not None and ax.get_position().bounds == owner.get_position().bounds):
                continue
            if _overlap(box, ax.get_tightbbox(renderer)):
                problems.append(f"{where} lies over the panel {_name(ax)}: put it below (legend(ax, 'below')), "
                                "give the figure more width, or use one legend for the figure")
        for other in legends[i + 1:]:
            if _overlap(box, other.get_window_extent(renderer)):
                problems.append(f"{where} and another legend lie over each other")
        if fig._suptitle is not None and fig._suptitle.get_text() and _overlap(
                box, fig._suptitle.get_window_extent(renderer)):
            problems.append(f"{where} lies over the figure's title")
    return problems


def _handle_color(handle):
    """The colour an entry of a legend shows (a line's, a marker's, a patch's or a collection's face), or None."""
    for get in ("get_color", "get_markerfacecolor", "get_facecolor"):
        try:
            c = getattr(handle, get)()
        except AttributeError:
            continue
        if hasattr(c, "ndim") and getattr(c, "ndim", 0) == 2:   # a collection: one colour per point
            c = c[0] if len(c) else None
        try:
            return to_hex(c, keep_alpha=False)
        except (ValueError, TypeError):
            continue
    return None


def is_shade(hex_color, base, most=8):
    """Whether hex_color is the colour `base` or one of its shades (shade(base, i, n) for n up to `most`)."""
    hex_color = hex_color.lower()
    return any(shade(base, i, n).lower() == hex_color for n in range(1, most + 1) for i in range(n))


def colour_problems(fig):
    """Legend entries of `fig` that name a method (or number format) but are not in its colour or a shade of it
    (`styles`): so a method keeps its colour in every figure of a notebook, and of the course. Labels of no known
    method ("trained", "step 1", "before adaptation") may take the colour their figure gives them."""
    problems = []
    for leg in _legends(fig):
        for handle, text in zip(leg.legend_handles, leg.get_texts()):
            label, c = text.get_text(), _handle_color(handle)
            method = method_of(label)
            if c is not None and method is not None and not is_shade(c, COLORS[method]):
                problems.append(f"{label!r} is drawn in {c}, not in {method}'s colour {COLORS[method]} or a shade "
                                "of it: take plots.color(label) or plots.styles(labels)")
    return problems


def figure_problems(fig):
    """Everything `legend_problems` and `colour_problems` find in a figure."""
    return legend_problems(fig) + colour_problems(fig)


# Figures of the notebooks that still break a rule until their notebooks are reworked: (notebook, cell, the words of
# the problem). check_shown_figures lets a problem through that contains these words; empty it as they are fixed.
FIGURES_TO_FIX = (
)


def _to_fix(problem):
    return any(words in problem for _, _, words in FIGURES_TO_FIX)


class FigureProblem(AssertionError):
    """A shown figure hides a legend or breaks the notebook's colours."""


def check_shown_figures(shell=None):
    """From now on, every figure this IPython session shows is checked by `figure_problems`, and a problem is
    raised as an error of the cell that showed it.

    setup() turns it on when PEFTCOURSE_CHECK_FIGURES=1, which the test suite sets, so the notebooks' fast-mode
    runs check every figure they draw. Returns False outside IPython (nothing to check)."""
    from matplotlib.figure import Figure
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        shell = get_ipython()
    if shell is None or getattr(shell, "_peftcourse_figure_check", None) is not None:
        return shell is not None
    pending = []
    display_formatter = shell.display_formatter
    format_for_display = display_formatter.format   # the inline backend registers its PNG printer later, lazily

    def checked(obj, *args, **kwargs):
        if isinstance(obj, Figure):
            pending.extend(p for p in figure_problems(obj) if not _to_fix(p))
        return format_for_display(obj, *args, **kwargs)

    def raise_pending(*_):
        if pending:
            problems = list(dict.fromkeys(pending))
            pending.clear()
            raise FigureProblem("a figure of this cell: " + "; ".join(problems))

    display_formatter.format = checked
    shell.events.register("post_run_cell", raise_pending)   # after the inline backend shows the figures (post_execute)
    shell._peftcourse_figure_check = checked
    return True


if os.environ.get("PEFTCOURSE_CHECK_FIGURES", "").strip() == "1":   # the test suite's notebook runs
    check_shown_figures()
