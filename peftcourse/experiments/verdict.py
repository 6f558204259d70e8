"""The verdict rule, written once for every experiment (docs/evidence.md; notebook 05, "How the course judges a
claim").

A seed s runs every setting of an experiment with the same data order and the same head initialisation, so the
settings pair up: the evidence for "a beats b" is the per-seed gap d_s = sign · (a_s - b_s) (sign = -1 when lower
is better), not two separate means. Over the n counted seeds, mean(d) ± t · sd(d)/√n is a t-interval with n - 1
degrees of freedom (sd(d)/√n is the standard error of the mean gap):

  "better" (the paper reports a beats b):
      reproduced      when the 95 % interval lies above 0 (a is ahead, and the seeds agree enough to say so);
      partly          when only the mean gap is above 0;
      not reproduced  otherwise.
  "parity" (the paper reports a ≈ b, within a margin declared at registration; two one-sided tests):
      reproduced      when the 90 % interval lies inside ±margin (equivalence shown, not merely no difference seen);
      partly          when only |mean gap| ≤ margin;
      not reproduced  otherwise.
  "fraction" (a trains < x % of the weights): reproduced when it does, else not reproduced.

An experiment is "reproduced" when every comparison is, "not reproduced" when none is and at least one is not,
else "partly". Only confirmation seeds count: seeds that chose nothing (learning rates, steps, task).
"""
import math
import statistics

from scipy import stats

VERDICTS = ("reproduced", "partly", "not reproduced")
BETTER_LEVEL, PARITY_LEVEL = 0.95, 0.90   # TOST at 5 % per side is the 90 % interval inside the margin


def better(a, b):
    """The paper reports that setting a beats setting b."""
    return {"kind": "better", "a": a, "b": b}


def parity(a, b, margin, why):
    """The paper reports a ≈ b: equivalent when the gap's 90 % interval lies inside ±margin (metric units).
    why: one sentence from the paper that justifies the margin."""
    if not (isinstance(margin, (int, float)) and margin > 0 and math.isfinite(margin)):
        raise ValueError(f"margin must be a positive number in the metric's units, got {margin!r}")
    if not (isinstance(why, str) and why.strip()):
        raise ValueError("a parity margin needs its one-sentence justification from the paper (why=...)")
    return {"kind": "parity", "a": a, "b": b, "margin": margin, "why": why}


def fraction(a, below_percent):
    """Setting a trains fewer than `below_percent` % of the model's weights (config["trainable_percent"])."""
    return {"kind": "fraction", "a": a, "below": below_percent}


def summary(values):
    """(mean, sd, n) of values (sd 0 for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0), len(values)


def paired_gaps(results, seeds, counted, a, b, higher_is_better):
    """{seed: sign · (a - b)} over the counted seeds, in the order they were run."""
    sign = 1 if higher_is_better else -1
    return {s: sign * (results[a][i] - results[b][i]) for i, s in enumerate(seeds) if s in counted}


def interval(gaps, level):
    """(mean, low, high): the t-interval of the mean gap (n - 1 degrees of freedom); infinite for one seed."""
    mean, sd, n = summary(gaps)
    if n < 2:
        return mean, -math.inf, math.inf
    half = stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def judge(comparison, results, config, higher_is_better, seeds=None, counted=None):
    """(verdict, sentence, per-seed gaps) of one comparison over the counted seeds (default: every seed run;
    seeds: the seeds the values were run with, in order)."""
    a = comparison["a"]
    if comparison["kind"] == "fraction":
        pct = config["trainable_percent"][a]
        ok = pct < comparison["below"]
        return (VERDICTS[0] if ok else VERDICTS[2],
                f"{a} trains {pct:.2f} % of the weights ({'<' if ok else '≥'} {comparison['below']:g} %)", {})
    b = comparison["b"]
    seeds = list(range(len(results[a]))) if seeds is None else seeds
    counted = set(seeds) if counted is None else counted
    gaps = paired_gaps(results, seeds, counted, a, b, higher_is_better)
    if not gaps:
        raise ValueError(f"no counted seed to judge {a} against {b}: counted {sorted(counted)}, run {seeds}")
    values = list(gaps.values())
    if comparison["kind"] == "better":
        mean, low, high = interval(values, BETTER_LEVEL)
        verdict = VERDICTS[0] if low > 0 else VERDICTS[1] if mean > 0 else VERDICTS[2]
        said = {VERDICTS[0]: f"the 95 % interval is above 0: {a} is better",
                VERDICTS[1]: f"{a} is ahead on average, but the 95 % interval reaches 0",
                VERDICTS[2]: f"{a} is not ahead on average"}[verdict]
        level = "95 %"
    else:
        m = comparison["margin"]
        mean, low, high = interval(values, PARITY_LEVEL)
        verdict = VERDICTS[0] if -m < low and high < m else VERDICTS[1] if abs(mean) <= m else VERDICTS[2]
        said = {VERDICTS[0]: f"the 90 % interval lies inside ±{m:g}: equivalent",
                VERDICTS[1]: f"the mean gap is inside ±{m:g}, but the 90 % interval is not",
                VERDICTS[2]: f"the mean gap is outside ±{m:g}"}[verdict]
        level = "90 %"
    span = "" if len(values) < 2 else f", {level} interval [{low:+.3f}, {high:+.3f}]"
    nums = (f"{a} vs {b}, paired over {len(values)} seeds ({', '.join(map(str, gaps))}): gap {mean:+.3f} "
            f"(per seed {min(values):+.3f} to {max(values):+.3f}){span}")
    return verdict, f"{nums}, so {said}", gaps


def combine(verdicts):
    """Every comparison reproduced -> reproduced; none reproduced and one not -> not reproduced; else partly."""
    if all(v == VERDICTS[0] for v in verdicts):
        return VERDICTS[0]
    if VERDICTS[0] not in verdicts and VERDICTS[2] in verdicts:
        return VERDICTS[2]
    return VERDICTS[1]


def verdict(exp, results, config, seeds, counted):
    """(verdict, why) of an experiment's results over the counted seeds: every comparison judged, then combined."""
    judged = [judge(c, results, config, exp.higher_is_better, seeds, counted) for c in exp.compare]
    return combine([v for v, _, _ in judged]), "; ".join(s for _, s, _ in judged) + "."
