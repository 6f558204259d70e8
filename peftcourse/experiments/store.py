"""Running an experiment and storing its result: every seed, the verdict, the environment and commit, written
to data/results/NAME.json (full size) or NAME.<size>.json (other sizes, not committed, so a student's rerun
never overwrites the cache); reading, validating and rerunning a stored result."""
import json
import math
import os
import subprocess
import time

import torch

from .. import runtime
from ..runtime import ROOT
from .registry import SIZES, get
from .verdict import VERDICTS, verdict

PENDING = "awaiting confirmation"   # a design whose registered confirmation seeds have not all run yet

RESULTS_DIR = os.path.join(ROOT, "data", "results")
KEYS = ("name", "claim", "question", "paper", "size", "config", "seeds", "metric", "higher_is_better", "results",
        "curves", "selection_seeds", "confirmation_seeds", "registered_commit", "follow_up_of", "verdict", "why",
        "env", "commit", "confirmation_runs")
OPTIONAL_KEYS = ("curves", "registered_commit", "follow_up_of", "confirmation_runs")
ENV_KEYS = ("versions", "device", "threads", "wall_s")
REPRODUCE_TOLERANCE = 0.02   # a rerun of one cached seed must land within 2 % of the cached value


def git_commit():
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name():
    """The device a result was computed on; on a CPU, the kernel level when the command line capped it."""
    device = str(runtime.get_device())
    if device == "cpu" and os.environ.get("ATEN_CPU_CAPABILITY"):
        return f"cpu ({torch.backends.cpu.get_cpu_capability()} kernels)"
    return device


def check_seeds(seeds):
    if not isinstance(seeds, (list, tuple)) or not seeds:
        raise ValueError(f"seeds must be a non-empty list of ints, got {seeds!r}")
    for s in seeds:
        if not isinstance(s, int) or isinstance(s, bool) or s < 0:
            raise ValueError(f"every seed must be a non-negative int, got {s!r} in {list(seeds)}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {list(seeds)}")
    return list(seeds)


def judged_seeds(exp, seeds, size):
    """(selection seeds, confirmation seeds) of a result. Full size: a design's registered ones, a control's seeds
    that chose nothing; other sizes (a student's rerun): every seed run confirms, none selected."""
    if size != "full":
        return [], list(seeds)
    selection = exp.selection_seeds
    if exp.is_control:
        return selection, [s for s in seeds if s not in selection]
    return selection, list(exp.confirmation_seeds)


def judge_result(exp, result, size="full"):
    """(verdict, why) of a result under the rule (verdict.py), counting its confirmation seeds only; a design
    whose registered confirmation seeds have not all run is PENDING, with what the seeds so far say."""
    _, confirmation = judged_seeds(exp, result["seeds"], size)
    counted = [s for s in confirmation if s in result["seeds"]]
    if not counted:
        return PENDING, f"none of the confirmation seeds {confirmation} has run yet."
    verdict_, why = verdict(exp, result["results"], result["config"], result["seeds"], set(counted))
    if len(counted) < len(confirmation):
        missing = [s for s in confirmation if s not in counted]
        return PENDING, (f"confirmation seeds {missing} have not run yet; the {len(counted)} that have would say "
                         f"{verdict_}: {why}")
    return verdict_, why


def counted_values(result):
    """{setting: values} on the seeds the verdict counts (its confirmation seeds that have run; every seed when
    none has): what the notebooks' means, spreads and plots show, so they agree with the verdict."""
    keep = [i for i, s in enumerate(result["seeds"]) if s in result["confirmation_seeds"]] or range(len(result["seeds"]))
    return {setting: [values[i] for i in keep] for setting, values in result["results"].items()}


def stamp(exp, result, size="full"):
    """Put the registration (seeds, commit, follow-up) and the verdict into a result, in KEYS order."""
    selection, confirmation = judged_seeds(exp, result["seeds"], size)
    result.update(size=size, selection_seeds=selection, confirmation_seeds=confirmation)
    if size == "full" and not exp.is_control:
        result["registered_commit"] = exp.registered_commit
        if exp.follow_up_of:
            result["follow_up_of"] = exp.follow_up_of
    result["verdict"], result["why"] = judge_result(exp, result, size)
    return {k: result[k] for k in KEYS if k in result}


def run_experiment(name, seeds=(0,), size="full", config=None, out_dir=None, log=print):
    """Run every seed of an experiment; return its result dict and write it to out_dir (None: do not write).

    config: None (the size's own config, then prepare() e.g. the learning-rate sweep) or a finished config
    (e.g. a cached result's, to rerun a seed exactly as it was run; prepare() is skipped).

    What a seed's run returns besides "metric" and "curves" goes into the stored config: "facts" (what the
    runs measured about themselves, e.g. trainable weights; a later seed's replace an earlier one's) and
    "examples" (e.g. generations: the first seed's are kept, and a cached config keeps its own); "runs"
    ({run: seconds}, as prepare's) are what its runs take alone, summed into the wall time (a run shared with
    another experiment counts in both); without them the wall time is this call's.
    """
    exp = get(name)
    seeds = check_seeds(seeds)
    start, commit = time.perf_counter(), git_commit()   # the code as it was when the run started
    runs = {}
    if config is None:
        config = exp.config(size)
        if exp.prepare is not None:
            config, runs = exp.prepare(config, size, name)
    results, curves = {}, {}
    for seed in seeds:
        out = exp.fn(config, seed)
        for setting, value in out["metric"].items():
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise FloatingPointError(f"{name}, seed {seed}, {setting}: the metric is {value!r}, not a finite number")
            results.setdefault(setting, []).append(float(value))
        for setting, curve in (out.get("curves") or {}).items():
            merged = curves.setdefault(setting, {k: v for k, v in curve.items() if k.endswith("steps")})
            for key, values in curve.items():
                if not key.endswith("steps"):
                    merged.setdefault(key, []).append(values)   # one list per seed
        config.update(out.get("facts", {}))
        for key, value in out.get("examples", {}).items():
            config.setdefault(key, value)
        runs.update(out.get("runs", {}))
        log(f"{name} seed {seed}: " + ", ".join(f"{s} {v:.4f}" for s, v in out["metric"].items()))
    wall = sum(runs.values()) if runs else None
    result = {"name": name, "claim": exp.claim, "question": exp.question, "paper": exp.paper, "config": config,
              "seeds": seeds, "metric": exp.metric, "higher_is_better": exp.higher_is_better, "results": results,
              "curves": curves,
              "env": {"versions": runtime.versions(), "device": device_name(),
                      "threads": torch.get_num_threads(),
                      "wall_s": round(wall if wall is not None else time.perf_counter() - start, 1)},
              "commit": commit}
    if not curves:
        del result["curves"]
    result = stamp(exp, result, size)
    if out_dir is not None:
        write_result(result, size, out_dir, log)
    return result


def write_result(result, size="full", out_dir=RESULTS_DIR, log=print):
    os.makedirs(out_dir, exist_ok=True)
    path = result_path(result["name"], size, out_dir)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, sort_keys=False)
        f.write("\n")
    log(f"wrote {os.path.relpath(path, ROOT) if path.startswith(ROOT) else path}: {result['verdict']}")
    return path


def add_seeds(cached, new):
    """The cached result with the seeds of `new` (a run of the same experiment with the cached config) added:
    values and curves appended per seed, the run's commit and environment recorded under confirmation_runs,
    the verdict judged again."""
    exp = get(cached["name"])
    if new["name"] != cached["name"] or set(new["results"]) != set(cached["results"]):
        raise ValueError(f"cannot add a run of {new['name']!r} with settings {sorted(new['results'])} to "
                         f"{cached['name']!r} with settings {sorted(cached['results'])}")
    twice = sorted(set(new["seeds"]) & set(cached["seeds"]))
    if twice:
        raise ValueError(f"{cached['name']}: seeds {twice} are already stored; add only new seeds")
    merged = json.loads(json.dumps(cached))
    merged["seeds"] = cached["seeds"] + new["seeds"]
    for setting, values in new["results"].items():
        merged["results"][setting] += values
    for setting, curve in new.get("curves", {}).items():
        for key, values in curve.items():
            if not key.endswith("steps"):
                merged["curves"][setting][key] += values
    merged.setdefault("confirmation_runs", []).append(
        {"seeds": new["seeds"], "commit": new["commit"], "env": new["env"]})
    return stamp(exp, in_seed_order(merged))


def in_seed_order(result):
    """The result with its seeds (and every per-seed list: values, curves) in increasing order."""
    order = sorted(range(len(result["seeds"])), key=result["seeds"].__getitem__)
    result["seeds"] = [result["seeds"][i] for i in order]
    result["results"] = {s: [v[i] for i in order] for s, v in result["results"].items()}
    for curve in result.get("curves", {}).values():
        for key, values in curve.items():
            if not key.endswith("steps"):
                curve[key] = [values[i] for i in order]
    return result


def confirm(name, seeds=None, results_dir=RESULTS_DIR, log=print):
    """Run a design's registered confirmation seeds that its stored result lacks (or `seeds`), with the stored
    config (its learning rates: no sweep), add them to the stored result and judge it again."""
    exp = get(name)
    cached = load_result(name, "full", results_dir)
    if exp.is_control and seeds is None:
        raise ValueError(f"{name} is a control: it has no registered confirmation seeds; name the seeds to add")
    missing = [s for s in (seeds if seeds is not None else exp.confirmation_seeds) if s not in cached["seeds"]]
    if not missing:
        log(f"{name}: every confirmation seed is stored ({cached['confirmation_seeds']})")
        return cached
    new = run_experiment(name, missing, "full", config=json.loads(json.dumps(cached["config"])), log=log)
    merged = add_seeds(cached, new)
    write_result(merged, "full", results_dir, log)
    return merged


def result_path(name, size="full", results_dir=RESULTS_DIR):
    return os.path.join(results_dir, f"{name}.json" if size == "full" else f"{name}.{size}.json")


def load_result(name, size="full", results_dir=RESULTS_DIR):
    """The stored result of an experiment (validated), e.g. for a notebook's instant plot."""
    path = result_path(name, size, results_dir)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no {size} result for {name!r} at {path}: run "
                                f"`python -m peftcourse.experiments run {name} --size {size}`")
    with open(path, encoding="utf-8") as f:
        result = json.load(f)
    validate_result(result, min_seeds=1)
    if result["size"] != size:
        raise ValueError(f"{path} holds a {result['size']} result, not {size}")
    return result


def validate_result(result, min_seeds=3):
    """Raise ValueError naming the first problem: keys, a registered name, ≥ min_seeds seeds, finite values
    (one per seed), and a verdict that the rule gives for these numbers."""
    if not isinstance(result, dict):
        raise ValueError(f"a result must be a dict, got {type(result).__name__}")
    keys = set(result)
    need = set(KEYS) - set(OPTIONAL_KEYS)
    if not need <= keys or not keys <= set(KEYS):
        raise ValueError(f"result keys must be {KEYS} ({OPTIONAL_KEYS} optional): missing {sorted(need - keys)}, "
                         f"unexpected {sorted(keys - set(KEYS))}")
    exp = get(result["name"])
    if result["claim"] != exp.claim:
        raise ValueError(f"{result['name']}: claim {result['claim']!r}, but the experiment is registered for {exp.claim}")
    seeds = check_seeds(result["seeds"])
    if len(seeds) < min_seeds:
        raise ValueError(f"{result['name']}: {len(seeds)} seeds, at least {min_seeds} are needed")
    for setting, values in result["results"].items():
        if len(values) != len(seeds) or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise ValueError(f"{result['name']}, {setting}: need one finite value per seed ({len(seeds)}), got {values}")
    if set(result["env"]) != set(ENV_KEYS):
        raise ValueError(f"{result['name']}: env keys must be {ENV_KEYS}, got {sorted(result['env'])}")
    if result["verdict"] not in VERDICTS + (PENDING,):
        raise ValueError(f"{result['name']}: verdict must be one of {VERDICTS + (PENDING,)}, got {result['verdict']!r}")
    if result["size"] not in SIZES:
        raise ValueError(f"{result['name']}: size must be one of {SIZES}, got {result['size']!r}")
    expected = stamp(exp, json.loads(json.dumps(result)), result["size"])
    for key in ("selection_seeds", "confirmation_seeds", "registered_commit", "follow_up_of"):
        if result.get(key) != expected.get(key):
            raise ValueError(f"{result['name']}: {key} {result.get(key)!r}, but the registration gives "
                             f"{expected.get(key)!r}")
    if set(result["selection_seeds"]) & set(result["confirmation_seeds"]):
        raise ValueError(f"{result['name']}: selection seeds {result['selection_seeds']} and confirmation seeds "
                         f"{result['confirmation_seeds']} overlap")
    if result["verdict"] != expected["verdict"]:
        raise ValueError(f"{result['name']}: verdict {result['verdict']!r}, but the rule gives {expected['verdict']!r}")
    return result



def reproduce(name, seed, size="full", results_dir=RESULTS_DIR):
    """Rerun one cached seed with the cached config (its learning rates: no sweep) and compare.

    Returns {setting: (cached, new, relative difference)}; the course's promise is a difference ≤ 2 %
    (a CPU with another thread count or another BLAS may round differently; the same machine repeats exactly).
    """
    cached = load_result(name, size, results_dir)
    if seed not in cached["seeds"]:
        raise ValueError(f"seed {seed} is not among the cached seeds {cached['seeds']} of {name!r}")
    new = run_experiment(name, [seed], size, config=cached["config"], log=lambda *_: None)
    i = cached["seeds"].index(seed)
    return {s: (cached["results"][s][i], new["results"][s][0],
                abs(new["results"][s][0] - cached["results"][s][i]) / max(abs(cached["results"][s][i]), 1e-12))
            for s in cached["results"]}
