"""A notebook's plots of a stored result: the curves as a band over seeds (plot_curves), the final metric per
setting (plot_summary, plot_summaries), each with a student's own run drawn over it, and the per-seed paired
gaps that the verdict reads (plot_gaps; show_evidence: a notebook's evidence cell in one call). matplotlib is imported
only when a plot is drawn."""
import math

import torch

from .registry import get
from .store import counted_values, load_result
from .verdict import BETTER_LEVEL, PARITY_LEVEL, interval, judge, summary


def plot_summaries(names, ncols=2, height=None, width=None):
    """plot_summary of several cached results on a grid, each titled with its name and verdict; a setting keeps
    one colour on every panel (one style table for all of them)."""
    from .. import plots
    results = [load_result(name) for name in names]
    st = plots.styles(dict.fromkeys(s for result in results for s in result["results"]))
    nrows = -(-len(names) // ncols)
    fig, axes = plots.new_axes(ncols, nrows, width=width, height=height, sharex=True, squeeze=False)
    for name, result, ax in zip(names, results, axes.flat):
        plot_summary(result, ax=ax, styles=st)
        ax.set_title(f"{name}: {result['verdict']}")
        ax.tick_params(labelbottom=True)   # a shared axis still gets its numbers on every panel (one may be hidden)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def _student_curves(student):
    return {} if student is None else student.get("curves", {})


def plot_curves(result, student=None, curve="loss", ax=None, legend_where="right"):
    """The cached run as a band (mean ± sd over seeds) per setting and the student's own run drawn over it.

    result / student: result dicts (load_result(...), run_experiment(..., size="class")) or names to load.
    """
    from .. import plots
    result = load_result(result) if isinstance(result, str) else result
    if "curves" not in result:
        raise ValueError(f"{result['name']}'s result stores no curves")
    if ax is None:
        _, ax = plots.new_axes()
    steps_key = "eval_steps" if curve != "loss" else "loss_steps"
    for setting, st in plots.styles(result["curves"]).items():
        c = result["curves"][setting]
        if curve not in c:
            raise KeyError(f"curve {curve!r} not stored; there are {sorted(k for k in c if not k.endswith('steps'))}")
        per_seed = torch.tensor(c[curve], dtype=torch.float64)   # (seeds, points)
        mean, sd = per_seed.mean(0), (per_seed.std(0) if len(per_seed) > 1 else torch.zeros_like(per_seed[0]))
        ax.fill_between(c[steps_key], mean - sd, mean + sd, color=st["color"], alpha=0.2, lw=0)
        ax.plot(c[steps_key], mean, color=st["color"], linestyle=st["linestyle"], marker=st["marker"], ms=4,
                label=f"{setting} ({len(per_seed)} seeds)")
        mine = _student_curves(student).get(setting)
        if mine is not None:
            ax.plot(mine[steps_key], mine[curve][0], color=st["color"], lw=2.5, alpha=0.9, marker="*", ms=9,
                    linestyle="-", label=f"{setting}: your run")
    ax.set_xlabel("step")
    ax.set_ylabel(curve.replace("_", " "))
    ax.set_title(f"{result['claim']}: {result['name']}")
    plots.legend(ax, legend_where)
    return ax


def plot_summary(result, student=None, ax=None, styles=None):
    """Final metric per setting over the confirmation seeds: every seed as a dot, the mean with its 95 % interval
    as a bar, the student's value as a star. styles: {setting: style} shared with other panels (plot_summaries);
    default plots.styles of this result's settings."""
    from .. import plots
    result = load_result(result) if isinstance(result, str) else result
    if ax is None:
        _, ax = plots.new_axes(height=0.6 + 0.5 * len(result["results"]))
    st = plots.styles(result["results"]) if styles is None else styles
    for i, (setting, values) in enumerate(counted_values(result).items()):
        mean, low, high = interval(values, BETTER_LEVEL)
        n = len(values)
        ax.errorbar(mean, i, xerr=0 if n < 2 else [[mean - low], [high - mean]], fmt=st[setting]["marker"],
                    color=st[setting]["color"], ms=8, capsize=4)
        ax.scatter(values, [i + 0.15] * n, s=12, color=st[setting]["color"], alpha=0.6)
        ax.annotate(f"{mean:.3f}", (mean, i - 0.3), ha="center", fontsize=8)
        if student is not None and setting in student["results"]:
            ax.scatter(student["results"][setting], [i - 0.15] * len(student["results"][setting]), marker="*",
                       s=120, color=st[setting]["color"], edgecolor="black", zorder=3,
                       label="your run" if i == 0 else None)
    ax.set_yticks(range(len(result["results"])), list(result["results"]))
    ax.set_ylim(-0.7, len(result["results"]) - 0.3)
    ax.set_xlabel(f"{result['metric']} (dots: confirmation seeds; bar: mean, 95 % interval)")
    ax.set_title(f"{result['claim']}: {result['verdict']}")
    if student is not None:
        plots.legend(ax)
    return ax


def plot_gaps(result, comparison=0, ax=None):
    """The evidence the verdict reads: one comparison's per-seed paired gaps over the confirmation seeds (dots),
    their mean with its interval (95 % for "better", 90 % for parity), 0, and the ±margin band of a parity claim.
    Positive: the paper's winner is ahead. comparison: its index among the experiment's non-fraction comparisons."""
    from .. import plots
    result = load_result(result) if isinstance(result, str) else result
    pairs = [c for c in get(result["name"]).compare if c["kind"] != "fraction"]
    if not (isinstance(comparison, int) and 0 <= comparison < len(pairs)):
        raise ValueError(f"comparison must be an index 0..{len(pairs) - 1} of {result['name']}'s comparisons, "
                         f"got {comparison!r}")
    c = pairs[comparison]
    counted = set(result["confirmation_seeds"]) & set(result["seeds"])
    if not counted:
        raise ValueError(f"{result['name']}: none of its confirmation seeds {result['confirmation_seeds']} has run "
                         f"yet, so there is no gap to draw; run `python -m peftcourse.experiments confirm "
                         f"{result['name']}`")
    verdict, _, gaps = judge(c, result["results"], result["config"], result["higher_is_better"], result["seeds"],
                             counted)
    level = BETTER_LEVEL if c["kind"] == "better" else PARITY_LEVEL
    mean, low, high = interval(list(gaps.values()), level)
    if ax is None:
        _, ax = plots.new_axes(height=2.2)
    if c["kind"] == "parity":
        ax.axvspan(-c["margin"], c["margin"], color="tab:green", alpha=0.15, lw=0, label=f"±margin ({c['margin']:g})")
    ax.axvline(0, color="black", lw=0.8)
    ax.scatter(list(gaps.values()), [0.25] * len(gaps), s=20, color="tab:gray", label="one seed")
    for seed, gap in gaps.items():
        ax.annotate(str(seed), (gap, 0.35), ha="center", fontsize=7)
    ax.errorbar(mean, 0, xerr=0 if len(gaps) < 2 else [[mean - low], [high - mean]], fmt="o", color="black",
                capsize=5, label=f"mean gap, {level:.0%} interval")
    ax.set_yticks([])
    ax.set_ylim(-0.6, 0.7)
    flip = "" if result["higher_is_better"] else ", sign flipped: lower is better"
    ax.set_xlabel(f"paired gap: {c['a']} − {c['b']} ({result['metric'].split(' (')[0]}{flip})")
    ax.set_title(f"{result['name']} ({c['kind']}): {verdict}")
    plots.legend(ax)
    return ax


def show_evidence(name, width=8, panel_height=2.3):
    """A notebook's cached-evidence cell in one call: the question, the paper's figure, the numbers per seed and
    the verdict (describe), then the paired gaps of every comparison the verdict reads, one panel each. Returns
    the stored result."""
    import matplotlib.pyplot as plt
    from .. import plots
    from .report import describe
    result = load_result(name)
    describe(result)
    n_pairs = len([c for c in get(name).compare if c["kind"] != "fraction"])
    fig, axes = plots.new_axes(nrows=n_pairs, width=width, height=panel_height * n_pairs, squeeze=False)
    for i, ax in enumerate(axes.flat):
        plot_gaps(result, comparison=i, ax=ax)
    fig.tight_layout()
    plt.show()
    return result
