"""The verdict rule, written once for every experiment. Each experiment lists the comparisons the paper makes;
the gap is mean(a) - mean(b) over seeds (sign flipped when lower is better) and its standard error is Welch's,
sqrt(sd_a²/n_a + sd_b²/n_b):
  "better" (the paper reports a beats b):   reproduced  when gap > 2·SE (the paper's sign, outside the spread);
                                            partly      when 0 < gap ≤ 2·SE (right sign, inside the spread);
                                            not reproduced when gap ≤ 0.
  "parity" (the paper reports a ≈ b):       reproduced  when |gap| ≤ 2·SE (inside the seed spread);
                                            partly      when it is outside but |gap| ≤ the declared margin;
                                            not reproduced otherwise.
  "fraction" (a trains < x % of weights):   reproduced when it does, else not reproduced.
The experiment's verdict: "reproduced" when every comparison is, "not reproduced" when none is and at least
one is not, else "partly". The `why` sentence is built from the same numbers.
"""
import math
import statistics

VERDICTS = ("reproduced", "partly", "not reproduced")


def better(a, b):
    """The paper reports that setting a beats setting b."""
    return {"kind": "better", "a": a, "b": b}


def parity(a, b, margin):
    """The paper reports a ≈ b; `margin` (in metric units) is the gap still called 'partly' outside the spread."""
    return {"kind": "parity", "a": a, "b": b, "margin": margin}


def fraction(a, below_percent):
    """Setting a trains fewer than `below_percent` % of the model's weights (read from config["trainable_percent"])."""
    return {"kind": "fraction", "a": a, "below": below_percent}


def summary(values):
    """(mean, sd, n) of one setting's values over seeds (sd 0 for a single seed)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0), len(values)


def judge(comparison, results, config, higher_is_better):
    """(verdict, sentence) of one comparison, by the rule in the module docstring."""
    a = comparison["a"]
    if comparison["kind"] == "fraction":
        pct = config["trainable_percent"][a]
        ok = pct < comparison["below"]
        return (VERDICTS[0] if ok else VERDICTS[2],
                f"{a} trains {pct:.2f} % of the weights ({'<' if ok else '≥'} {comparison['below']:g} %)")
    b = comparison["b"]
    (ma, sa, na), (mb, sb, nb) = summary(results[a]), summary(results[b])
    sign = 1 if higher_is_better else -1
    gap = sign * (ma - mb)
    se = math.sqrt(sa ** 2 / na + sb ** 2 / nb)
    nums = (f"{a} {ma:.3f} ± {sa:.3f} vs {b} {mb:.3f} ± {sb:.3f} (mean ± sd, {na} and {nb} seeds): "
            f"gap {gap:+.3f}, 2 SE = {2 * se:.3f}")
    if comparison["kind"] == "better":
        verdict = VERDICTS[0] if gap > 2 * se else VERDICTS[1] if gap > 0 else VERDICTS[2]
        said = {"reproduced": f"{a} is better, outside the seed spread",
                "partly": f"{a} is better but inside the seed spread",
                "not reproduced": f"{a} is not better"}[verdict]
    else:
        verdict = (VERDICTS[0] if abs(gap) <= 2 * se else
                   VERDICTS[1] if abs(gap) <= comparison["margin"] else VERDICTS[2])
        said = {"reproduced": "parity: the gap is inside the seed spread",
                "partly": f"the gap is outside the seed spread but within {comparison['margin']:g}",
                "not reproduced": f"no parity: the gap is outside the spread and above {comparison['margin']:g}"}[verdict]
    return verdict, f"{nums}, so {said}"


def verdict(exp, results, config):
    """(verdict, why) of an experiment's results: every comparison judged, then combined (module docstring)."""
    judged = [judge(c, results, config, exp.higher_is_better) for c in exp.compare]
    kinds = [v for v, _ in judged]
    overall = (VERDICTS[0] if all(v == VERDICTS[0] for v in kinds) else
               VERDICTS[2] if VERDICTS[0] not in kinds and VERDICTS[2] in kinds else VERDICTS[1])
    return overall, "; ".join(s for _, s in judged) + "."
