"""The course's one plotting style and the figures several notebooks share."""
import matplotlib.pyplot as plt

COLORS = {  # one colour per method, the same in every notebook
    "full FT": "#444444", "top-layer": "#8c564b", "feature-based": "#bcbd22", "adapter": "#9467bd",
    "prompt": "#e377c2", "prefix": "#f7b6d2", "LoRA": "#1f77b4", "QLoRA": "#17becf", "DoRA": "#ff7f0e",
    "MoRA": "#2ca02c", "SBoRA-FA": "#d62728", "SBoRA-FB": "#ff9896", "peft": "#7f7f7f",
}


def style():
    plt.rcParams.update({
        "figure.figsize": (6.4, 3.6), "figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3,
        "axes.spines.top": False, "axes.spines.right": False, "font.size": 10, "legend.frameon": False,
    })


style()


def color(label):
    """The method's colour when the label starts with a known method name, else matplotlib's cycle."""
    for name in sorted(COLORS, key=len, reverse=True):
        if str(label).startswith(name):
            return COLORS[name]
    return None


def new_axes(ncols=1, nrows=1, width=None, height=None, **kw):
    w, h = plt.rcParams["figure.figsize"]
    fig, axes = plt.subplots(nrows, ncols, figsize=(width or w * ncols, height or h * nrows), **kw)
    return fig, axes


def plot_losses(histories, ax=None, window=20, title="training loss", logy=False):
    """Loss curves of several runs: histories is {label: History}."""
    if ax is None:
        _, ax = new_axes()
    for label, h in histories.items():
        ax.plot(h.steps, h.smoothed_losses(window), label=label, color=color(label))
    ax.set_xlabel("step")
    ax.set_ylabel("loss" + (f" (mean of {window})" if window > 1 else ""))
    if logy:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    return ax


def plot_metric(histories, metric, ax=None, title=None):
    """An eval metric over steps for several runs."""
    if ax is None:
        _, ax = new_axes()
    for label, h in histories.items():
        steps, values = h.metric(metric)
        ax.plot(steps, values, marker="o", label=label, color=color(label))
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.set_title(title or metric)
    ax.legend()
    return ax


def scatter_tradeoff(points, x="trainable params", y="accuracy", ax=None, logx=True, title=None):
    """Quality against cost: points is {label: (x, y)}."""
    if ax is None:
        _, ax = new_axes()
    for label, (px, py) in points.items():
        ax.scatter([px], [py], s=60, color=color(label), label=label)
        ax.annotate(label, (px, py), textcoords="offset points", xytext=(5, 5), fontsize=8)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title or f"{y} vs {x}")
    return ax


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
