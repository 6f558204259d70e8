"""Experiments as code: each lecture claim (COURSE_DESIGN.md §8, C1-C11) as a registered experiment with
several seeds, a cached full-size result in data/results/NAME.json, and a rule that says whether the paper's
finding was reproduced.

    python -m peftcourse.experiments list                                # every experiment and its last run
    python -m peftcourse.experiments run lora_vs_full_ft --seeds 0 1 2 3 4 --size full
    python -m peftcourse.experiments run lora_vs_full_ft --size class    # ≤ 2 min on a CPU: what a student reruns
    python -m peftcourse.experiments check lora_vs_full_ft --seed 0      # rerun one cached seed, compare (≤ 2 %)
    python -m peftcourse.experiments table                               # the README's table of results

    result = load_result("lora_vs_full_ft")       # in a notebook: the cached numbers, instantly
    plot_curves(result, student=my_run)           # mean ± sd band over seeds, the student's run drawn over it

Sizes: "smoke" (tests, seconds), "class" (one seed in ≤ 2 min on a 2-core CPU, the cached run's learning
rates), "full" (the cached result: learning-rate sweep, then every seed). Full results go to NAME.json;
the other sizes to NAME.<size>.json next to it (not committed), so a student's rerun never overwrites the cache.

The verdict rule (verdict()), written once for every experiment. Each experiment lists the comparisons the
paper makes; the gap is mean(a) - mean(b) over seeds (sign flipped when lower is better) and its standard
error is Welch's, sqrt(sd_a²/n_a + sd_b²/n_b):
  "better" (the paper reports a beats b):   reproduced  when gap > 2·SE (the paper's sign, outside the spread);
                                            partly      when 0 < gap ≤ 2·SE (right sign, inside the spread);
                                            not reproduced when gap ≤ 0.
  "parity" (the paper reports a ≈ b):       reproduced  when |gap| ≤ 2·SE (inside the seed spread);
                                            partly      when it is outside but |gap| ≤ the declared margin;
                                            not reproduced otherwise.
  "fraction" (a trains < x % of weights):   reproduced when it does, else not reproduced.
The experiment's verdict: "reproduced" when every comparison is, "not reproduced" when none is and at least
one is not, else "partly". The `why` sentence is built from the same numbers.

Adding an experiment (e.g. a TinyGPT claim, C8-C10): write fn(config, seed) -> {"metric": {setting: value},
"curves": {setting: {"eval_steps": [...], "val_accuracy": [...], ...}}} with the package's own pieces (train,
inject, data), decorate it with @experiment(name, claim=..., question=..., paper=..., metric=...,
higher_is_better=..., sizes={"smoke": ..., "class": ..., "full": ...}, compare=[better(...), parity(...)]), and
give it a prepare(config, size, name) when it needs a sweep. A curve key ending in "steps" holds the x values.
In a notebook: mine = run_experiment(name, [0], "class") (nothing written), then plot_curves(name, student=mine).
"""
import argparse
import copy
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time

import torch

from .. import data, models, runtime
from ..adapters import add_adapters, freeze_all_but_top
from ..inject import inject
from ..lora import inject_gpt2_attention
from ..train import train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULTS_DIR = os.path.join(ROOT, "data", "results")
SIZES = ("smoke", "class", "full")
VERDICTS = ("reproduced", "partly", "not reproduced")
KEYS = ("name", "claim", "question", "paper", "config", "seeds", "metric", "higher_is_better", "results",
        "curves", "verdict", "why", "env", "commit")   # "curves" is the one optional key
ENV_KEYS = ("versions", "device", "threads", "wall_s")
REPRODUCE_TOLERANCE = 0.02   # a rerun of one cached seed must land within 2 % of the cached value
REGISTRY = {}


class Experiment:
    """One registered experiment: what it asks, the paper's figure, its sizes and the comparisons it judges."""

    def __init__(self, fn, name, claim, question, paper, metric, higher_is_better, sizes, compare, prepare):
        self.fn, self.name, self.claim, self.question, self.paper = fn, name, claim, question, paper
        self.metric, self.higher_is_better, self.sizes, self.compare, self.prepare = (
            metric, higher_is_better, sizes, compare, prepare)

    def config(self, size):
        if size not in SIZES:
            raise ValueError(f"size must be one of {SIZES}, got {size!r}")
        return json.loads(json.dumps(self.sizes[size]))   # a deep copy: a run never changes the registry


def experiment(name, *, claim, question, paper, metric, higher_is_better, sizes, compare, prepare=None):
    """Register fn(config, seed) -> {"metric": {setting: value}, "curves": {setting: {...}} (optional)}.

    sizes: {"smoke": config, "class": config, "full": config}; compare: the paper's comparisons (better(),
    parity(), fraction()); prepare(config, size, name) -> config runs once before the seeds (e.g. the
    learning-rate sweep) and what it returns is stored as the result's config.
    """
    if not (isinstance(claim, str) and claim[:1] == "C" and claim[1:].isdigit() and 1 <= int(claim[1:]) <= 11):
        raise ValueError(f"claim must be 'C1' ... 'C11' (COURSE_DESIGN.md §8), got {claim!r}")
    if set(sizes) != set(SIZES):
        raise ValueError(f"sizes must give a config for each of {SIZES}, got {sorted(sizes)}")
    if not compare:
        raise ValueError(f"experiment {name!r} needs at least one comparison to judge the paper's claim by")

    def register(fn):
        if name in REGISTRY:
            raise ValueError(f"an experiment named {name!r} is already registered")
        REGISTRY[name] = Experiment(fn, name, claim, question, paper, metric, higher_is_better, sizes, compare, prepare)
        return fn
    return register


def get(name):
    if name not in REGISTRY:
        raise KeyError(f"no experiment named {name!r}; registered: {sorted(REGISTRY)}")
    return REGISTRY[name]


# ---------------------------------------------------------------- the verdict rule

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


# ---------------------------------------------------------------- running and storing

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


def run_experiment(name, seeds=(0,), size="full", config=None, out_dir=None, log=print):
    """Run every seed of an experiment; return its result dict and write it to out_dir (None: do not write).

    config: None (the size's own config, then prepare() e.g. the learning-rate sweep) or a finished config
    (e.g. a cached result's, to rerun a seed exactly as it was run; prepare() is skipped).
    """
    exp = get(name)
    seeds = check_seeds(seeds)
    start, commit = time.perf_counter(), git_commit()   # the code as it was when the run started
    if config is None:
        config = exp.config(size)
        if exp.prepare is not None:
            config = exp.prepare(config, size, name)
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
        log(f"{name} seed {seed}: " + ", ".join(f"{s} {v:.4f}" for s, v in out["metric"].items()))
    runs = config.pop("_runs", None)   # {run: seconds}: what its runs take alone (a run shared with another experiment counts in both)
    wall = sum(runs.values()) if runs else None
    verdict_, why = verdict(exp, results, config)
    result = {"name": name, "claim": exp.claim, "question": exp.question, "paper": exp.paper, "config": config,
              "seeds": seeds, "metric": exp.metric, "higher_is_better": exp.higher_is_better, "results": results,
              "curves": curves, "verdict": verdict_, "why": why,
              "env": {"versions": runtime.versions(), "device": device_name(),
                      "threads": torch.get_num_threads(),
                      "wall_s": round(wall if wall is not None else time.perf_counter() - start, 1)},
              "commit": commit}
    if not curves:
        del result["curves"]
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        path = result_path(name, size, out_dir)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1, sort_keys=False)
            f.write("\n")
        log(f"wrote {os.path.relpath(path, ROOT) if path.startswith(ROOT) else path}: {verdict_}")
    return result


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
    return result


def validate_result(result, min_seeds=3):
    """Raise ValueError naming the first problem: keys, a registered name, ≥ min_seeds seeds, finite values
    (one per seed), and a verdict that the rule gives for these numbers."""
    if not isinstance(result, dict):
        raise ValueError(f"a result must be a dict, got {type(result).__name__}")
    keys = set(result)
    need = set(KEYS) - {"curves"}
    if not need <= keys or not keys <= set(KEYS):
        raise ValueError(f"result keys must be {KEYS} ('curves' optional): missing {sorted(need - keys)}, "
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
    if result["verdict"] not in VERDICTS:
        raise ValueError(f"{result['name']}: verdict must be one of {VERDICTS}, got {result['verdict']!r}")
    expected, _ = verdict(exp, result["results"], result["config"])
    if result["verdict"] != expected:
        raise ValueError(f"{result['name']}: verdict {result['verdict']!r}, but the rule gives {expected!r}")
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


# ---------------------------------------------------------------- MiniLM-L6 on doc_topics (C1-C4, C6, C7, C9)
# The papers show these claims on pretrained encoders fine-tuned for classification (LoRA Table 2 on RoBERTa,
# Houlsby et al. on BERT, DoRA and QLoRA on LLaMA/RoBERTa): the real pretrained MiniLM-L6 classifying
# standard-library sentences by package (data.doc_topics, 8 labels) is the same setting at CPU scale.

MINILM_DATA = {   # the training sentences are split once (seed 0): the sweep picks learning rates on `val`, never on `test`
    "full": {"n_train": 1000, "n_val": 200, "n_test": 400, "steps": 64, "batch_size": 16, "max_length": 16, "eval_every": 32},
    "class": {"n_train": 1000, "n_val": 200, "n_test": 400, "steps": 32, "batch_size": 16, "max_length": 16, "eval_every": 16},
    "smoke": {"n_train": 24, "n_val": 8, "n_test": 8, "steps": 2, "batch_size": 4, "max_length": 12, "eval_every": 1},
}
HEAD_LR = 1e-2         # the new, randomly initialised classifier learns at this rate in every method (as in notebook 03)
LR_SWEEP = {           # per method family: candidates tried on seed 0 (LoRA-family ~10x full FT's, LoRA §4 / Hu et al.)
    "full FT": [3e-5, 1e-4, 3e-4],
    "LoRA": [3e-4, 1e-3, 3e-3],          # also DoRA and QLoRA: their papers reuse LoRA's hyperparameters
    "adapter": [3e-4, 1e-3, 3e-3],
    "top-layer": [1e-4, 3e-4, 1e-3],
    "SBoRA-FA": [1e-3, 3e-3, 1e-2, 3e-2],   # its own sweep (on TinyGPT it chose ~3x LoRA's rate); 1e-2 was best of
                                            # the first three, so 3e-2 bounds it
}
SWEEP_SPEC = {         # the setting each family's learning rate is swept with
    "full FT": {"method": "full"},
    "LoRA": {"method": "lora", "targets": ["query", "value"], "r": 8, "alpha": 8},
    "adapter": {"method": "adapter", "bottleneck": 64},
    "top-layer": {"method": "top", "k": 1},
    "SBoRA-FA": {"method": "sbora", "targets": ["query", "value"], "r": 4, "alpha": 8, "variant": "FA"},
}
FAMILY = {"full": "full FT", "lora": "LoRA", "dora": "LoRA", "qlora": "LoRA", "adapter": "adapter", "top": "top-layer",
          "sbora": "SBoRA-FA"}
RUN_CACHE = {}         # (spec, lr, seed, data config) -> run: settings shared by experiments train once per process
RUN_CACHE_FILE = None  # optionally a JSON-lines file that keeps them between processes (the CLI's --cache)


def minilm_sizes(full=None, **extra):
    """Each size's data config plus `extra`; `full` overrides keys of the full size only (e.g. a longer run)."""
    sizes = {size: {**cfg, **extra} for size, cfg in MINILM_DATA.items()}
    sizes["full"].update(full or {})
    return sizes


def minilm_splits(cfg):
    """(train, val, test) from doc_topics' seeded split; test sorted by length (less padding, same accuracy).
    cfg["task"] == "word_order": the same sentences as data.word_order's acceptability task (labels: as written
    or two neighbouring words swapped), each split with its own fixed seed."""
    train_all, test = data.doc_topics(n_train=cfg["n_train"] + cfg["n_val"], n_test=cfg["n_test"], seed=0)
    parts = train_all[:cfg["n_train"]], train_all[cfg["n_train"]:], test
    if cfg.get("task") == "word_order":
        parts = [data.word_order(part, seed=i) for i, part in enumerate(parts)]
    train_set, val, test = parts
    return train_set, sorted(val, key=lambda ex: len(ex["text"])), sorted(test, key=lambda ex: len(ex["text"]))


def minilm_labels(cfg):
    return data.WORD_ORDER_LABELS if cfg.get("task") == "word_order" else data.TOPIC_LABELS


def build(model, spec):
    """Apply one method to a fresh MiniLM classifier, with the package's own pieces."""
    method = spec["method"]
    if method in ("lora", "dora", "qlora", "sbora"):   # "pooler": also train BERT's pooler, as RoBERTa's head trains its dense layer
        head = ["classifier"] + (["pooler"] if spec.get("pooler") else [])
        extra = {"variant": spec["variant"]} if method == "sbora" else {}   # SBoRA's columns: torch's seeded RNG
        inject(model, method, spec["targets"], modules_to_save=head, r=spec["r"], alpha=spec["alpha"], **extra)
    elif method == "adapter":   # Houlsby et al. train the LayerNorms and the head with the adapters
        add_adapters(model, spec["bottleneck"], modules_to_save=["classifier", "LayerNorm"] + (["pooler"] if spec.get("pooler") else []))
    elif method == "top":       # top-layer tuning: the last k blocks and the head (pooler + classifier)
        freeze_all_but_top(model, spec["k"])
    elif method != "full":
        raise ValueError(f"unknown method {method!r} in {spec}: use one of {sorted(FAMILY)}")
    return model


def with_head_lr(model, lr):
    """AdamW with the method's lr for its trainable weights and HEAD_LR for the new classifier."""
    head = {id(p) for p in model.classifier.parameters()}
    return lambda params: torch.optim.AdamW([{"params": [p for p in params if id(p) not in head]},
                                             {"params": [p for p in params if id(p) in head], "lr": HEAD_LR}], lr=lr)


def finetune(spec, lr, seed, cfg):
    """One MiniLM fine-tuning run (the course's one loop, peftcourse.train.train): val/test accuracy and curves.
    Cached per process (and in RUN_CACHE_FILE when set), since experiments share settings (full FT, LoRA r=8);
    cfg["_runs"] collects the seconds of every run an experiment used."""
    keys = ("n_train", "n_val", "n_test", "steps", "batch_size", "max_length", "eval_every", "task")
    key = json.dumps([spec, lr, seed, {k: cfg[k] for k in keys if k in cfg}, HEAD_LR], sort_keys=True)
    if key not in RUN_CACHE:
        RUN_CACHE[key] = _finetune(spec, lr, seed, cfg)
        if RUN_CACHE_FILE:
            with open(RUN_CACHE_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps({"key": key, "run": RUN_CACHE[key]}) + "\n")
    cfg.setdefault("_runs", {})[key] = RUN_CACHE[key]["wall_s"]
    return RUN_CACHE[key]


def load_run_cache(path):
    global RUN_CACHE_FILE
    RUN_CACHE_FILE = path
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                RUN_CACHE[row["key"]] = row["run"]


def _finetune(spec, lr, seed, cfg):
    start = time.perf_counter()
    train_set, val, test = minilm_splits(cfg)
    runtime.seed_everything(seed)   # the head's and the adapter's random init, then the data order, all from `seed`
    model, tok = models.load_minilm(num_labels=len(minilm_labels(cfg)), seed=seed)
    build(model, spec)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    batches = data.classification_batches(tok, train_set, batch_size=cfg["batch_size"], seed=seed,
                                          max_length=cfg["max_length"])
    history = train(model, batches, steps=cfg["steps"], lr=lr, optimizer=with_head_lr(model, lr),
                    schedule="cosine", warmup=max(1, cfg["steps"] // 10), seed=seed, progress=False,
                    eval_fn=lambda m: data.evaluate_classification(m, tok, val), eval_every=cfg["eval_every"])
    test_acc = data.evaluate_classification(model, tok, test)["accuracy"]
    steps, val_acc = history.metric("accuracy")
    every = max(1, cfg["steps"] // 20)
    smooth = history.smoothed_losses(window=every)
    return {"val": val_acc[-1], "test": test_acc, "trainable_percent": 100 * trainable / total,
            "curve": {"eval_steps": steps, "val_accuracy": val_acc,
                      "loss_steps": history.steps[every - 1::every], "loss": smooth[every - 1::every]},
            "wall_s": time.perf_counter() - start}


def minilm_prepare(config, size, name):
    """Fix each method family's learning rate. Full size: a sweep on seed 0, judged by validation accuracy
    (recorded in config["lr_sweep"]), except for families whose rate `lr_from`'s sweep already chose or
    config["lr_fixed"] gives.
    Other sizes: the rates of the cached full result (else the middle candidate)."""
    families = sorted({FAMILY[spec["method"]] for spec in config["settings"].values()})
    config["lr"] = {}
    if config.get("lr_from") and (size == "full" or os.path.isfile(result_path(config["lr_from"]))):
        chosen = load_result(config["lr_from"])["config"]["lr"]   # the rates another experiment's sweep chose
        config["lr"] = {fam: chosen[fam] for fam in families if fam in chosen}
    config["lr"].update(config.get("lr_fixed", {}))
    if size == "full":
        for fam in (f for f in families if f not in config["lr"]):
            runs = {lr: finetune(SWEEP_SPEC[fam], lr, 0, config) for lr in LR_SWEEP[fam]}
            config.setdefault("lr_sweep", {})
            config["lr_sweep"][fam] = {"setting": SWEEP_SPEC[fam], "seed": 0,
                                       "val_accuracy": {f"{lr:g}": r["val"] for lr, r in runs.items()}}
            config["lr"][fam] = max(runs, key=lambda lr: runs[lr]["val"])   # ties: the smaller rate (listed first)
    else:
        try:
            cached = load_result(name)["config"]["lr"]
        except (FileNotFoundError, KeyError, ValueError):
            cached = {}
        for fam in (f for f in families if f not in config["lr"]):
            config["lr"][fam] = cached.get(fam, LR_SWEEP[fam][1])
    return config


def run_minilm(config, seed):
    """Every setting of a MiniLM experiment for one seed: {"metric": {setting: test accuracy}, "curves": ...}."""
    runs = {s: finetune(spec, config["lr"][FAMILY[spec["method"]]], seed, config) for s, spec in config["settings"].items()}
    config["trainable_percent"] = {s: round(r["trainable_percent"], 4) for s, r in runs.items()}
    return {"metric": {s: r["test"] for s, r in runs.items()},
            "curves": {s: r["curve"] for s, r in runs.items()}}


def minilm_experiment(name, settings, full=None, lr_from=None, task=None, lr_fixed=None, **kw):
    """Register a MiniLM experiment: the same runner (run_minilm) with its own settings and comparisons.
    full: overrides of the full size (a longer control run); lr_from: reuse that experiment's chosen rates;
    task: config keys of another task on the same sentences (WORD_ORDER), for every size;
    lr_fixed: {family: rate} given, not swept (a control of one family's rate)."""
    extra = {"settings": settings, **({"lr_from": lr_from} if lr_from else {}), **(task or {}),
             **({"lr_fixed": lr_fixed} if lr_fixed else {})}
    experiment(name, sizes=minilm_sizes(full, **extra), prepare=minilm_prepare, metric="test accuracy",
               higher_is_better=True, **kw)(run_minilm)


FULL = {"method": "full"}


def lora(targets, r, method="lora"):
    return {"method": method, "targets": targets, "r": r, "alpha": 8}   # α fixed at 8 for every r (LoRA §4.1)


def adapter(bottleneck):
    return {"method": "adapter", "bottleneck": bottleneck}


def pooled(spec):
    """The same method with BERT's pooler trained too, as the papers' RoBERTa head trains its dense layer."""
    return {**spec, "pooler": True}


TOP_LAYER = {"method": "top", "k": 1}   # the last block and the head (pooler + classifier)
POOLED_ADAPTER, TOP_LAYER_LABEL = "adapter b=64 + pooler", "top-layer (last block + head)"
# C4 with the pooler trained (top-layer tuning trains it too)
HOULSBY_POOLED = {"full FT": FULL, POOLED_ADAPTER: pooled(adapter(64)), TOP_LAYER_LABEL: TOP_LAYER}
HOULSBY_COMPARE = [parity(POOLED_ADAPTER, "full FT", margin=0.02), better(POOLED_ADAPTER, TOP_LAYER_LABEL),
                   fraction(POOLED_ADAPTER, 5.0)]   # Houlsby's claim: near full FT, ahead of top-layer, a few %
PAPER_LENGTH = {"steps": 192, "eval_every": 64}   # about three epochs (LoRA Appendix D and Houlsby et al. §3.1 train
                                                  # for several); the full size's 64 steps are about one


QV = ["query", "value"]
minilm_experiment(
    "lora_vs_full_ft", claim="C1",
    question="Does LoRA on W_q, W_v match full fine-tuning while training well under 1 % of the weights?",
    paper="LoRA (Hu et al. 2021) Table 2: RoBERTa-large GLUE average 89.0 (LoRA, 0.8 M) vs 88.9 (full FT, 355 M); "
          "lecture slide 'LoRA: results'",
    settings={"full FT": FULL, "LoRA (q,v) r=8": lora(QV, 8)},
    compare=[parity("LoRA (q,v) r=8", "full FT", margin=0.02), fraction("LoRA (q,v) r=8", 1.0)])

minilm_experiment(   # the control of C1: is LoRA's gap at 64 steps a matter of training length?
    "lora_vs_full_ft_long", claim="C1",
    question="Control: with three times the steps (same learning rates), does LoRA close its gap to full fine-tuning?",
    paper="LoRA (Hu et al. 2021) Table 2 and Appendix D: RoBERTa runs train 10-80 epochs; the 64-step run of "
          "lora_vs_full_ft is about one epoch; lecture slide 'LoRA: results'",
    settings={"full FT": FULL, "LoRA (q,v) r=8": lora(QV, 8)}, full=PAPER_LENGTH,
    lr_from="lora_vs_full_ft",
    compare=[parity("LoRA (q,v) r=8", "full FT", margin=0.02), fraction("LoRA (q,v) r=8", 1.0)])

minilm_experiment(   # the second control of C1: is it the frozen pooler (LoRA's RoBERTa head trains its dense layer)?
    "lora_vs_full_ft_pooler", claim="C1",
    question="Control: when LoRA also trains the pooler (BERT's head: dense + tanh, as the paper's RoBERTa head), "
             "does it match full fine-tuning at 64 steps?",
    paper="LoRA (Hu et al. 2021) Table 2 trains RoBERTa's classification head (dense + output) in full; "
          "BertForSequenceClassification's equivalent is pooler + classifier; lecture slide 'LoRA: results'",
    settings={"full FT": FULL, "LoRA (q,v) r=8 + pooler": pooled(lora(QV, 8))}, lr_from="lora_vs_full_ft",
    compare=[parity("LoRA (q,v) r=8 + pooler", "full FT", margin=0.02), fraction("LoRA (q,v) r=8 + pooler", 1.0)])

minilm_experiment(   # both controls of C1 together: the paper's head (pooler trained) and about three epochs
    "lora_vs_full_ft_pooler_long", claim="C1",
    question="With the pooler trained (as the paper's RoBERTa head) and three times the steps, does LoRA on W_q, W_v "
             "match full fine-tuning while training under 1 % of the weights?",
    paper="LoRA (Hu et al. 2021) Table 2: RoBERTa-large GLUE average 89.0 (LoRA, 0.8 M) vs 88.9 (full FT, 355 M), "
          "head trained in full, 10-80 epochs (Appendix D); lecture slide 'LoRA: results'",
    settings={"full FT": FULL, "LoRA (q,v) r=8 + pooler": pooled(lora(QV, 8))},
    full=PAPER_LENGTH, lr_from="lora_vs_full_ft",
    compare=[parity("LoRA (q,v) r=8 + pooler", "full FT", margin=0.02), fraction("LoRA (q,v) r=8 + pooler", 1.0)])

minilm_experiment(   # the control of C2: the same with the pooler trained
    "lora_rank_pooler", claim="C2",
    question="Control: with the pooler trained too, does r = 1 on W_q, W_v do as well as r = 64?",
    paper="LoRA (Hu et al. 2021) Table 6: GPT-3 WikiSQL 73.4 (r = 1) vs 73.5 (r = 64); lecture slide 'How small can r be?'",
    settings={"LoRA (q,v) r=1 + pooler": pooled(lora(QV, 1)),
              "LoRA (q,v) r=64 + pooler": pooled(lora(QV, 64))}, lr_from="lora_rank",
    compare=[parity("LoRA (q,v) r=1 + pooler", "LoRA (q,v) r=64 + pooler", margin=0.02)])

minilm_experiment(
    "lora_rank", claim="C2",
    question="Is a very low rank enough: does r = 1 on W_q, W_v do as well as r = 64?",
    paper="LoRA (Hu et al. 2021) Table 6: GPT-3 WikiSQL 73.4 (r = 1) vs 73.5 (r = 64) on (W_q, W_v); "
          "lecture slide 'How small can r be?'",
    settings={"LoRA (q,v) r=1": lora(QV, 1), "LoRA (q,v) r=64": lora(QV, 64)},
    compare=[parity("LoRA (q,v) r=1", "LoRA (q,v) r=64", margin=0.02)])

minilm_experiment(
    "lora_targets", claim="C3",
    question="At an equal parameter budget, is adapting W_q and W_v better than adapting W_q alone?",
    paper="LoRA (Hu et al. 2021) Table 5: WikiSQL 73.7 (W_q, W_v, r = 4) vs 70.4 (W_q, r = 8), 18 M parameters each; "
          "lecture slide 'Which weights to adapt?'",
    settings={"LoRA (q) r=8": lora(["query"], 8), "LoRA (q,v) r=4": lora(QV, 4)},
    compare=[better("LoRA (q,v) r=4", "LoRA (q) r=8")])

minilm_experiment(
    "adapters_vs_top_layer", claim="C4",
    question="Do bottleneck adapters match full fine-tuning with a few % of the weights, and beat tuning only the top layer?",
    paper="Houlsby et al. 2019 Table 1 and Fig. 1: BERT-large GLUE 80.0 (adapters, 3.6 % per task) vs 80.4 (full FT); "
          "top-layer tuning falls behind at a similar budget; lecture slide 'Adapters'",
    settings={"full FT": FULL, "adapter b=64": adapter(64),
              "top-layer (last block + head)": TOP_LAYER},
    compare=[parity("adapter b=64", "full FT", margin=0.02), better("adapter b=64", "top-layer (last block + head)"),
             fraction("adapter b=64", 5.0)])

minilm_experiment(   # the control of C3: the same budget comparison with the paper's head (pooler trained)
    "lora_targets_pooler", claim="C3",
    question="Control: with the pooler trained too (the paper's RoBERTa head), is adapting W_q and W_v at r = 4 better "
             "than W_q alone at r = 8?",
    paper="LoRA (Hu et al. 2021) Table 5: WikiSQL 73.7 (W_q, W_v, r = 4) vs 70.4 (W_q, r = 8); lecture slide "
          "'Which weights to adapt?'",
    settings={"LoRA (q) r=8 + pooler": pooled(lora(["query"], 8)),
              "LoRA (q,v) r=4 + pooler": pooled(lora(QV, 4))}, lr_from="lora_targets",
    compare=[better("LoRA (q,v) r=4 + pooler", "LoRA (q) r=8 + pooler")])

minilm_experiment(   # the control of C4: adapters also train the pooler, as top-layer tuning does
    "adapters_vs_top_layer_pooler", claim="C4",
    question="Control: when the adapters' model also trains the pooler (top-layer tuning trains it too), do adapters "
             "match full fine-tuning and beat top-layer tuning?",
    paper="Houlsby et al. 2019 Table 1 and Fig. 1: BERT-large GLUE 80.0 (adapters, 3.6 % per task) vs 80.4 (full FT); "
          "top-layer tuning falls behind at a similar budget; lecture slide 'Adapters'",
    settings=HOULSBY_POOLED, lr_from="adapters_vs_top_layer", compare=HOULSBY_COMPARE)

minilm_experiment(
    "dora_vs_lora", claim="C7",
    question="Is DoRA at least as good as LoRA at the same rank, with the largest gain at a low rank?",
    paper="DoRA (Liu et al. 2024) Table 1 and Fig. 5: commonsense reasoning, LLaMA-7B, DoRA above LoRA at every rank, "
          "most at r = 4 (+22.4 points) vs r = 32 (+3.7); lecture slide 'DoRA: results'",
    settings={"LoRA (q,v) r=1": lora(QV, 1), "DoRA (q,v) r=1": lora(QV, 1, "dora"),
              "LoRA (q,v) r=8": lora(QV, 8), "DoRA (q,v) r=8": lora(QV, 8, "dora")},
    compare=[better("DoRA (q,v) r=1", "LoRA (q,v) r=1"), parity("DoRA (q,v) r=8", "LoRA (q,v) r=8", margin=0.02)])

minilm_experiment(   # the control of C7: the frozen pooler held C1 and C2 back; does it hide DoRA's low-rank gain?
    "dora_vs_lora_pooler", claim="C7",
    question="Control: with the pooler trained too (the paper's RoBERTa head), is DoRA ahead of LoRA at r = 1?",
    paper="DoRA (Liu et al. 2024) Table 1 and Fig. 5: DoRA above LoRA at every rank, most at low rank; "
          "lecture slide 'DoRA: results'",
    settings={"LoRA (q,v) r=1 + pooler": pooled(lora(QV, 1)),
              "DoRA (q,v) r=1 + pooler": pooled(lora(QV, 1, "dora"))}, lr_from="dora_vs_lora",
    compare=[better("DoRA (q,v) r=1 + pooler", "LoRA (q,v) r=1 + pooler")])

# The paper's setting for C2-C4 and C7, as C1's lora_vs_full_ft_pooler_long found it: the head's dense layer
# (BERT's pooler) trained, for PAPER_LENGTH.

minilm_experiment(
    "lora_rank_pooler_long", claim="C2",
    question="With the pooler trained (the paper's head) and three times the steps, does r = 1 on W_q, W_v do as "
             "well as r = 64?",
    paper="LoRA (Hu et al. 2021) Table 6: GPT-3 WikiSQL 73.4 (r = 1) vs 73.5 (r = 64) on (W_q, W_v); "
          "lecture slide 'How small can r be?'",
    settings={"LoRA (q,v) r=1 + pooler": pooled(lora(QV, 1)),
              "LoRA (q,v) r=64 + pooler": pooled(lora(QV, 64))},
    full=PAPER_LENGTH, lr_from="lora_rank",
    compare=[parity("LoRA (q,v) r=1 + pooler", "LoRA (q,v) r=64 + pooler", margin=0.02)])

minilm_experiment(
    "lora_targets_pooler_long", claim="C3",
    question="With the pooler trained (the paper's head) and three times the steps, is adapting W_q and W_v at r = 4 "
             "better than W_q alone at r = 8 (the same budget)?",
    paper="LoRA (Hu et al. 2021) Table 5: WikiSQL 73.7 (W_q, W_v, r = 4) vs 70.4 (W_q, r = 8), 18 M parameters each; "
          "lecture slide 'Which weights to adapt?'",
    settings={"LoRA (q) r=8 + pooler": pooled(lora(["query"], 8)),
              "LoRA (q,v) r=4 + pooler": pooled(lora(QV, 4))},
    full=PAPER_LENGTH, lr_from="lora_targets",
    compare=[better("LoRA (q,v) r=4 + pooler", "LoRA (q) r=8 + pooler")])

minilm_experiment(
    "adapters_vs_top_layer_pooler_long", claim="C4",
    question="With the pooler trained (as top-layer tuning trains it) and three times the steps, do adapters match "
             "full fine-tuning with a few % of the weights, and beat tuning only the top layer?",
    paper="Houlsby et al. 2019 Table 1 and Fig. 1: BERT-large GLUE 80.0 (adapters, 3.6 % per task) vs 80.4 (full FT), "
          "3-20 epochs; top-layer tuning falls behind at a similar budget; lecture slide 'Adapters'",
    settings=HOULSBY_POOLED, full=PAPER_LENGTH, lr_from="adapters_vs_top_layer", compare=HOULSBY_COMPARE)

minilm_experiment(   # top-layer tuning above trains 8.5 % of the weights, the adapters 3.2 %: Houlsby's Fig. 1
    "adapters_vs_top_layer_equal_budget", claim="C4",   # compares them at the same budget, so give both 8.5 %
    question="At top-layer tuning's budget (adapters with bottleneck 192 train about as many weights as the last "
             "block), in the paper's setting (pooler trained, three times the steps), do adapters beat tuning only "
             "the top layer, and match full fine-tuning?",
    paper="Houlsby et al. 2019 Fig. 1 and Fig. 3: at an equal number of trained weights adapters stay near full "
          "fine-tuning while tuning only the top layers falls behind; lecture slide 'Adapters'",
    settings={"full FT": FULL, "adapter b=192 + pooler": pooled(adapter(192)),
              "top-layer (last block + head)": TOP_LAYER},
    full=PAPER_LENGTH, lr_from="adapters_vs_top_layer",
    compare=[parity("adapter b=192 + pooler", "full FT", margin=0.02),
             better("adapter b=192 + pooler", "top-layer (last block + head)")])

minilm_experiment(   # the control of C4's designs: how much is already in the frozen encoder's features?
    "adapters_vs_top_layer_head_only", claim="C4",
    question="Control: how close does the head alone (BERT's pooler and the classifier on the frozen encoder) come "
             "to full fine-tuning and to top-layer tuning, in the paper's setting (192 steps)?",
    paper="Houlsby et al. 2019 Fig. 1 and Fig. 3: on GLUE, tuning only the top layers falls behind adapters and full "
          "fine-tuning, because the lower layers must change too; lecture slide 'Adapters'",
    settings={"full FT": FULL, "top-layer (last block + head)": TOP_LAYER,
              "head only (pooler + classifier)": {"method": "top", "k": 0}},
    full=PAPER_LENGTH, lr_from="adapters_vs_top_layer",
    compare=[parity("head only (pooler + classifier)", "full FT", margin=0.02)])

# C4 where the frozen encoder's top features do not answer the task: is a sentence as written, or are two
# neighbouring words swapped (CoLA-like; GLUE's CoLA is one of Houlsby's tasks)? 32 tokens, so that the swapped
# pair (it starts among the first 10 words) is kept.
WORD_ORDER = {"task": "word_order", "max_length": 32}
minilm_experiment(   # registered as a design; its full FT collapsed to the majority class on 4 of 5 seeds at the
    # swept rate (3e-4), so its parity is with a broken baseline: it counts as a control of what top-layer tuning misses
    "adapters_vs_top_layer_word_order", claim="C4",
    question="Control: on a task the encoder's top features do not answer (is the sentence as written, or are two "
             "neighbouring words swapped?), in the paper's setting (pooler trained, 192 steps), does top-layer tuning "
             "fall behind adapters, and do adapters match full fine-tuning at its swept rate?",
    paper="Houlsby et al. 2019 Table 1 and Fig. 1: BERT-large GLUE (CoLA, grammatical acceptability, among its tasks) "
          "80.0 (adapters, 3.6 % per task) vs 80.4 (full FT); top-layer tuning falls behind adapters, even with more "
          "trained parameters; lecture slide 'Adapters'",
    settings=HOULSBY_POOLED, full=PAPER_LENGTH, task=WORD_ORDER, compare=HOULSBY_COMPARE)

minilm_experiment(   # the control of the word-order runs: full FT at its sweep's next rate, which kept learning there
    "adapters_vs_top_layer_word_order_low_lr", claim="C4",
    question="Control: on the word-order task, with full fine-tuning at 1e-4 (its sweep's second-best rate, 0.010 lower "
             "on validation) instead of the swept 3e-4, at which it collapsed on 4 of 5 seeds, do adapters match it?",
    paper="Houlsby et al. 2019 Table 1: BERT-large GLUE 80.0 (adapters, 3.6 % per task) vs 80.4 (full FT), each "
          "with its own swept rate; lecture slide 'Adapters'",
    settings={"full FT": FULL, "adapter b=64 + pooler": pooled(adapter(64))},
    full=PAPER_LENGTH, task=WORD_ORDER, lr_from="adapters_vs_top_layer_word_order", lr_fixed={"full FT": 1e-4},
    compare=[parity("adapter b=64 + pooler", "full FT", margin=0.02)])

minilm_experiment(
    "dora_vs_lora_pooler_long", claim="C7",
    question="With the pooler trained (the paper's head) and three times the steps, is DoRA ahead of LoRA at r = 1?",
    paper="DoRA (Liu et al. 2024) Table 1 and Fig. 5: commonsense reasoning, LLaMA-7B, DoRA above LoRA at every rank, "
          "most at low rank; lecture slide 'DoRA: results'",
    settings={"LoRA (q,v) r=1 + pooler": pooled(lora(QV, 1)),
              "DoRA (q,v) r=1 + pooler": pooled(lora(QV, 1, "dora"))},
    full=PAPER_LENGTH, lr_from="dora_vs_lora",
    compare=[better("DoRA (q,v) r=1 + pooler", "LoRA (q,v) r=1 + pooler")])

minilm_experiment(
    "sbora_vs_lora_minilm", claim="C9",
    question="On a pretrained encoder in the paper's setting (pooler trained, three times the steps), does SBoRA-FA "
             "(A fixed to r standard-basis rows, only B trains) match LoRA at the same rank with about half the "
             "trainable weights?",
    paper="SBoRA (Po et al. 2024) Tables 2-3: commonsense and arithmetic reasoning on LLaMA, SBoRA-FA at the same "
          "rank as LoRA within about a point of it (sometimes above) with 40-50 % fewer trainable parameters; "
          "lecture slide 'SBoRA'",
    settings={"LoRA (q,v) r=4 + pooler": pooled(lora(QV, 4)),
              "SBoRA-FA (q,v) r=4 + pooler": pooled(SWEEP_SPEC["SBoRA-FA"])},
    full=PAPER_LENGTH, lr_from="lora_targets",
    compare=[parity("SBoRA-FA (q,v) r=4 + pooler", "LoRA (q,v) r=4 + pooler", margin=0.02)])

minilm_experiment(
    "qlora_vs_lora", claim="C6",
    question="Does LoRA on an NF4 + double-quantized base (QLoRA, from scratch) match LoRA on the full-precision base?",
    paper="QLoRA (Dettmers et al. 2023) Table 3 / Fig. 3: NF4 + DQ matches 16-bit LoRA and full fine-tuning "
          "(RoBERTa/T5 GLUE, LLaMA MMLU); lecture slide 'QLoRA: results'",
    settings={"LoRA (all linear) r=8": lora(["query", "key", "value", "dense"], 8),
              "QLoRA NF4+DQ (all linear) r=8": lora(["query", "key", "value", "dense"], 8, "qlora")},
    compare=[parity("QLoRA NF4+DQ (all linear) r=8", "LoRA (all linear) r=8", margin=0.02)])


# ---------------------------------------------------------------- TinyGPT (C8-C10, and C3, C4): the generative claims
# MoRA and SBoRA are shown on causal LMs (LLaMA); the course's own pretrained TinyGPT is that setting at CPU
# scale. One loaded copy per process; every run fine-tunes a fresh deep copy of it.

GPT2_TARGETS = list(models.GPT2_MODULES)   # every linear layer of the blocks, as in the MoRA and SBoRA papers
TINY_LR_SWEEP = [3e-3, 1e-2]               # LoRA-family rates tried on seed 0 for each setting (recorded)
TINY_LR_EXTEND = 2                          # ... and up to two more, x3 or /3, while the best one is at an edge
_TINYGPT = {}


def fresh_tinygpt():
    """(a deep copy of the course's TinyGPT, its tokenizer): loaded once per process, copied per run."""
    if "model" not in _TINYGPT:
        _TINYGPT["model"], _TINYGPT["tok"] = models.load_tinygpt()
    return copy.deepcopy(_TINYGPT["model"]), _TINYGPT["tok"]


def tinygpt_with(spec, seed):
    """A fresh TinyGPT with one method injected (spec: {"method", **its arguments}); SBoRA's columns from `seed`."""
    runtime.seed_everything(seed)   # the adapter's random init (LoRA's A, MoRA's none, SBoRA's columns)
    model, tok = fresh_tinygpt()
    method, kwargs = spec["method"], {k: v for k, v in spec.items() if k != "method"}
    if method == "lora_attention":   # LoRA on the lecture's W_q / W_k / W_v / W_o, split out of c_attn
        inject_gpt2_attention(model, **kwargs)
    elif method == "adapter":        # Houlsby et al. train the LayerNorms with the adapters
        add_adapters(model, spec["bottleneck"], modules_to_save=["ln_1", "ln_2", "ln_f"])
    elif method == "top":            # the last k blocks and the final LayerNorm (lm_head is the embedding)
        freeze_all_but_top(model, spec["k"], head=("ln_f",))
    elif method == "full":
        model.requires_grad_(True)
    else:                            # every linear layer of the blocks, one injection for every other method
        if method == "sbora":
            kwargs["generator"] = torch.Generator().manual_seed(seed)
        inject(model, method, GPT2_TARGETS, **kwargs)
    return model, tok


def tiny_sweep(config, name, run_one):
    """Each setting's learning rate: full size sweeps TINY_LR_SWEEP on seed 0 (run_one(setting, lr) -> score,
    lower is better), extended while the best rate is the grid's largest or smallest; other sizes reuse the
    cached full result's rates (else 1e-2); config["lr_fixed"]: one given rate for every setting."""
    config["lr"] = {}
    if "lr_fixed" in config:   # a control at one shared rate: no sweep
        config["lr"] = {s: config["lr_fixed"] for s in config["settings"]}
        return config
    if config.get("lr_sweep") == "run":
        config["lr_sweep"] = {}
        reused = load_result(config["lr_from"])["config"]["lr"] if config.get("lr_from") else {}
        for setting in config["settings"]:
            if setting in reused:   # a control: the rate the other experiment's sweep chose for this setting
                config["lr"][setting] = reused[setting]
                continue
            scores = {lr: run_one(setting, lr) for lr in TINY_LR_SWEEP}
            for _ in range(TINY_LR_EXTEND):   # a best rate at the edge of the grid was not chosen, only bounded
                best = min(scores, key=scores.get)
                if best not in (min(scores), max(scores)):
                    break
                beyond = round(best * 3 if best == max(scores) else best / 3, 6)
                scores[beyond] = run_one(setting, beyond)
            config["lr_sweep"][setting] = {f"{lr:g}": s for lr, s in sorted(scores.items())}
            config["lr"][setting] = min(scores, key=scores.get)
        return config
    try:
        cached = load_result(name)["config"]["lr"]
    except (FileNotFoundError, KeyError, ValueError):
        cached = {}
    config["lr"] = {s: cached.get(s, TINY_LR_SWEEP[-1]) for s in config["settings"]}
    return config


def memorize_uuids(spec, lr, seed, cfg):
    """MoRA §3's task: train on n key -> value UUID pairs (random per seed), test on the same pairs."""
    start = time.perf_counter()
    pairs = data.uuid_pairs(cfg["n_pairs"], seed=seed)
    model, tok = tinygpt_with(spec, seed)
    recall = lambda m: data.evaluate_generation(m, tok, pairs, metric=data.uuid_metric)  # noqa: E731
    before = data.generate_answers(model, tok, [pairs[0]["prompt"]], max_new_tokens=36)[0]
    history = train(model, data.generation_batches(tok, pairs, batch_size=len(pairs), seed=seed), steps=cfg["steps"],
                    lr=lr, seed=seed, progress=False, eval_fn=recall, eval_every=cfg["eval_every"])
    after = data.generate_answers(model, tok, [pairs[0]["prompt"]], max_new_tokens=36)[0]
    steps, acc = history.metric("char_acc")
    return {"char_acc": acc[-1], "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "curve": {"eval_steps": steps, "char_acc": acc, "loss_steps": history.steps, "loss": history.losses},
            "generation": {"prompt": pairs[0]["prompt"], "answer": pairs[0]["answer"], "before": before, "after": after},
            "wall_s": time.perf_counter() - start}


def with_settings(settings, smoke, class_, full, **extra):
    """The three sizes of a TinyGPT experiment, each with the same settings and `extra` keys (lr_from, lr_fixed);
    full size sweeps the rates unless one is fixed."""
    sizes = {size: {**cfg, "settings": settings, **extra} for size, cfg in
             (("smoke", smoke), ("class", class_), ("full", full))}
    if "lr_fixed" not in extra:
        sizes["full"]["lr_sweep"] = "run"
    return sizes


UUID_SETTINGS = {"LoRA r=8": {"method": "lora", "r": 8, "alpha": 16},       # 98,304 trainable weights
                 "MoRA r=8": {"method": "mora", "r": 8, "mora_type": 1}}    # 98,388: MoRA's r̂ for LoRA r=8's budget
UUID_SIZES = {"smoke": {"n_pairs": 2, "steps": 2, "eval_every": 1},
              "class_": {"n_pairs": 8, "steps": 60, "eval_every": 20},
              "full": {"n_pairs": 8, "steps": 160, "eval_every": 20}}


def uuid_prepare(config, size, name):
    return tiny_sweep(config, name, lambda s, lr: -memorize_uuids(config["settings"][s], lr, 0, config)["char_acc"])


@experiment(
    "mora_vs_lora_uuid", claim="C8",
    question="At an equal number of trainable weights, does MoRA (one square r̂ × r̂ matrix) memorize new facts "
             "(random UUID pairs) better than LoRA?",
    paper="MoRA (Jiang et al. 2024) Table 2 / Fig. 1: UUID pairs on LLaMA-2 7B, character accuracy after 900 steps, "
          "r = 8: MoRA 100 % vs LoRA 76.5 % (r = 256: 100 % vs 100 %); lecture slide 'MoRA: results'",
    metric="character accuracy on the memorized pairs", higher_is_better=True,
    sizes=with_settings(UUID_SETTINGS, **UUID_SIZES),
    compare=[better("MoRA r=8", "LoRA r=8")], prepare=uuid_prepare)
def mora_vs_lora_uuid(config, seed):
    runs = {s: memorize_uuids(spec, config["lr"][s], seed, config) for s, spec in config["settings"].items()}
    config["trainable"] = {s: r["trainable"] for s, r in runs.items()}
    config.setdefault("generations", {s: r["generation"] for s, r in runs.items()})   # seed 0's first pair
    return {"metric": {s: r["char_acc"] for s, r in runs.items()}, "curves": {s: r["curve"] for s, r in runs.items()}}


@experiment(   # the control of C8: LoRA's chosen rate (1e-2) sits next to one that fails; at a shared safe rate?
    "mora_vs_lora_uuid_same_lr", claim="C8",
    question="Control: at one shared rate that is safe for both (3e-3, MoRA's own choice), does MoRA memorize the UUID "
             "pairs better than LoRA at an equal number of trainable weights?",
    paper="MoRA (Jiang et al. 2024) Table 2 / Fig. 1: UUID pairs on LLaMA-2 7B, r = 8: MoRA 100 % vs LoRA 76.5 % "
          "after 900 steps, one learning rate per method; lecture slide 'MoRA: results'",
    metric="character accuracy on the memorized pairs", higher_is_better=True,
    sizes=with_settings(UUID_SETTINGS, **UUID_SIZES, lr_fixed=3e-3),
    compare=[better("MoRA r=8", "LoRA r=8")], prepare=uuid_prepare)
def mora_vs_lora_uuid_same_lr(config, seed):
    return mora_vs_lora_uuid(config, seed)


def arithmetic_split(op, n_train, n_test, seed):
    """(training batches, held-out batches) of two-digit problems with operator `op` (a seeded split)."""
    model_tok = fresh_tinygpt()[1]
    train_set, test = data.arithmetic(n_train, n_test, ops=op, seed=seed)
    return (data.generation_batches(model_tok, train_set, batch_size=32, seed=seed),
            list(data.generation_batches(model_tok, test, batch_size=100, shuffle=False)))


def learn_arithmetic(spec, lr, seed, cfg, op="+", model=None):
    """Fine-tune TinyGPT (or `model`, already injected) on `op` problems; held-out answer loss and curves."""
    if model is None:
        model, _ = tinygpt_with(spec, seed)
    batches, test = arithmetic_split(op, cfg["n_train"], cfg["n_test"], seed)
    history = train(model, batches, steps=cfg["steps"], lr=lr, seed=seed, progress=False,
                    eval_fn=lambda m: {"answer_loss": data.answer_loss(m, test)}, eval_every=cfg["eval_every"])
    return model, run_record(model, history, "answer_loss", cfg["steps"])


def run_record(model, history, metric, steps):
    """One training run as an experiment stores it: the last value of `metric`, the trainable weights, and the
    curves (the eval metric, and the training loss as a running mean read at 20 points)."""
    eval_steps, values = history.metric(metric)
    every = max(1, steps // 20)
    return {metric: values[-1], "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "curve": {"eval_steps": eval_steps, metric: values, "loss_steps": history.steps[every - 1::every],
                      "loss": history.smoothed_losses(every)[every - 1::every]}}


def touched_columns(model):
    """The most input columns (FA) of any adapted layer that its ΔW changes: r for SBoRA-FA (SBoRA §3)."""
    from ..inject import adapter_layers
    return max(int((layer.delta_weight().detach().abs().sum(0) > 0).sum()) for _, layer in adapter_layers(model))


SBORA_SETTINGS = {"LoRA r=4": {"method": "lora", "r": 4, "alpha": 8},                        # 49,152 weights
                  "SBoRA-FA r=4": {"method": "sbora", "r": 4, "alpha": 8, "variant": "FA"}}   # 27,648: B only
SBORA_SIZES = {"smoke": {"n_train": 16, "n_test": 8, "steps": 2, "eval_every": 1},
               "class_": {"n_train": 2000, "n_test": 200, "steps": 80, "eval_every": 20},
               "full": {"n_train": 2000, "n_test": 200, "steps": 320, "eval_every": 40}}


def sbora_prepare(config, size, name):
    return tiny_sweep(config, name, lambda s, lr: learn_arithmetic(config["settings"][s], lr, 0, config)[1]["answer_loss"])


@experiment(
    "sbora_vs_lora", claim="C9",
    question="Does SBoRA-FA (A fixed to r standard-basis rows, only B trains) learn as well as LoRA at the same rank "
             "with about half the trainable weights, while its ΔW touches only r input columns?",
    paper="SBoRA (Po et al. 2024) Tables 2-3: commonsense and arithmetic reasoning on LLaMA, SBoRA-FA at the same "
          "rank as LoRA within about a point of it (sometimes above) with 40-50 % fewer trainable parameters; "
          "lecture slide 'SBoRA'",
    metric="held-out answer loss (two-digit addition)", higher_is_better=False,
    sizes=with_settings(SBORA_SETTINGS, **SBORA_SIZES),
    compare=[parity("SBoRA-FA r=4", "LoRA r=4", margin=0.1)], prepare=sbora_prepare)
def sbora_vs_lora(config, seed):
    runs, measured = tinygpt_runs(config, seed)
    config["touched_columns"] = {s: touched_columns(m) for s, (m, _) in runs.items()}
    return measured


def tinygpt_runs(config, seed, run_one=learn_arithmetic, metric="answer_loss"):
    """Every setting of a TinyGPT experiment for one seed: ({setting: (model, run)}, {"metric", "curves"})."""
    runs = {s: run_one(spec, config["lr"][s], seed, config) for s, spec in config["settings"].items()}
    config["trainable"] = {s: r["trainable"] for s, (_, r) in runs.items()}
    config["trainable_percent"] = {s: round(100 * r["trainable"] / sum(p.numel() for p in m.parameters()), 4)
                                   for s, (m, r) in runs.items()}
    return runs, {"metric": {s: r[metric] for s, (_, r) in runs.items()},
                  "curves": {s: r["curve"] for s, (_, r) in runs.items()}}


@experiment(   # the control of C9: is SBoRA-FA's gap the halved budget or the fixed basis?
    "sbora_vs_lora_equal_budget", claim="C9",
    question="Control: at LoRA r = 4's number of trainable weights (SBoRA-FA r = 7), does SBoRA-FA learn as well as LoRA?",
    paper="SBoRA (Po et al. 2024) Tables 2-3 compare at equal rank; the lecture's claim is about the budget; "
          "lecture slide 'SBoRA'",
    metric="held-out answer loss (two-digit addition)", higher_is_better=False,
    sizes=with_settings({"LoRA r=4": SBORA_SETTINGS["LoRA r=4"],
                         "SBoRA-FA r=7": {"method": "sbora", "r": 7, "alpha": 14, "variant": "FA"}},
                        **SBORA_SIZES, lr_from="sbora_vs_lora"),
    compare=[parity("SBoRA-FA r=7", "LoRA r=4", margin=0.1)], prepare=sbora_prepare)
def sbora_vs_lora_equal_budget(config, seed):
    return sbora_vs_lora(config, seed)


# C3 on the kind of model its paper result comes from (GPT-3 on WikiSQL, a causal LM writing answers): TinyGPT
# learning addition, LoRA on the lecture's W_q alone at r = 8 vs W_q, W_v at r = 4, 12,288 weights each.
TARGET_SETTINGS = {"LoRA (q) r=8": {"method": "lora_attention", "weights": ["q"], "r": 8, "alpha": 16},
                   "LoRA (q,v) r=4": {"method": "lora_attention", "weights": ["q", "v"], "r": 4, "alpha": 8}}


@experiment(
    "lora_targets_tinygpt", claim="C3",
    question="On a causal LM learning to write answers (TinyGPT, two-digit addition), at an equal budget, is adapting "
             "W_q and W_v at r = 4 better than W_q alone at r = 8?",
    paper="LoRA (Hu et al. 2021) Table 5: GPT-3 WikiSQL 73.7 (W_q, W_v, r = 4) vs 70.4 (W_q, r = 8), 18 M parameters "
          "each; lecture slide 'Which weights to adapt?'",
    metric="held-out answer loss (two-digit addition)", higher_is_better=False,
    sizes=with_settings(TARGET_SETTINGS, **SBORA_SIZES),
    compare=[better("LoRA (q,v) r=4", "LoRA (q) r=8")], prepare=sbora_prepare)
def lora_targets_tinygpt(config, seed):
    return tinygpt_runs(config, seed)[1]


# C4 where the lower layers must change: TinyGPT learning addition (on MiniLM's topic task the last block alone
# recovers nearly all of full fine-tuning, adapters_vs_top_layer_head_only). Houlsby et al. Fig. 1: adapters beat
# top-layer tuning even with fewer trained weights; here 2 % against the last block's 17 %.
HOULSBY_SETTINGS = {"full FT": FULL, "adapter b=16": adapter(16), "top-layer (last block)": TOP_LAYER}


@experiment(
    "adapters_vs_top_layer_tinygpt", claim="C4",
    question="On a task whose lower layers must change (TinyGPT learning two-digit addition), do adapters match full "
             "fine-tuning with a few % of the weights, and beat tuning only the top layer, which trains far more?",
    paper="Houlsby et al. 2019 Table 1 and Fig. 1: BERT-large GLUE 80.0 (adapters, 3.6 % per task) vs 80.4 (full FT); "
          "top-layer tuning falls behind adapters, even with more trained parameters; lecture slide 'Adapters'",
    metric="held-out answer loss (two-digit addition)", higher_is_better=False,
    sizes=with_settings(HOULSBY_SETTINGS, **SBORA_SIZES),
    compare=[parity("adapter b=16", "full FT", margin=0.1), better("adapter b=16", "top-layer (last block)"),
             fraction("adapter b=16", 5.0)], prepare=sbora_prepare)
def adapters_vs_top_layer_tinygpt(config, seed):
    return tinygpt_runs(config, seed)[1]


# C7 on the kind of task DoRA's paper tunes for (a causal LM adapting to text it did not see in pretraining):
# TinyGPT, pretrained on Python documentation, learns legal English (GNU licenses) and is tested on the GPL-3.
DOMAIN_BLOCK = 64   # tokens per training block and per perplexity window (notebook 08's setting)
DORA_SETTINGS = {f"{name} r={r}": {"method": name.lower(), "r": r, "alpha": 2 * r}
                 for r in (1, 8) for name in ("LoRA", "DoRA")}
DOMAIN_SIZES = {"smoke": {"steps": 2, "eval_every": 1, "test_chars": 1500},
                "class_": {"steps": 80, "eval_every": 40},
                "full": {"steps": 240, "eval_every": 40}}   # about 2.6 epochs of the 23k training tokens


def adapt_to_domain(spec, lr, seed, cfg, validation=False):
    """Fine-tune TinyGPT on the training licenses (data.domain_text); held-out perplexity and curves.

    validation=True is the rate sweep's run: it trains without the last training license (LGPL-3) and scores
    on that one, so no rate is ever chosen on the test text (the GPL-3)."""
    train_docs, test_docs = data.domain_text()
    if validation:
        train_docs, test_docs = train_docs[:-1], train_docs[-1:]
    if cfg.get("test_chars"):   # smoke size: the opening of the test text keeps each evaluation short
        test_docs = [doc[:cfg["test_chars"]] for doc in test_docs]
    model, tok = tinygpt_with(spec, seed)
    batches = data.lm_data(tok, train_docs, block_size=DOMAIN_BLOCK, batch_size=4, seed=seed)
    history = train(model, batches, steps=cfg["steps"], lr=lr, seed=seed, progress=False,
                    eval_fn=lambda m: {"perplexity": data.perplexity(m, tok, test_docs, block_size=DOMAIN_BLOCK)},
                    eval_every=cfg["eval_every"])
    return model, run_record(model, history, "perplexity", cfg["steps"])


def domain_prepare(config, size, name):
    return tiny_sweep(config, name, lambda s, lr: adapt_to_domain(config["settings"][s], lr, 0, config,
                                                                  validation=True)[1]["perplexity"])


@experiment(
    "dora_vs_lora_tinygpt", claim="C7",
    question="On a causal LM adapting to a new domain (TinyGPT learning legal English), is DoRA at least as good as "
             "LoRA at the same rank, with the largest gain at a low rank?",
    paper="DoRA (Liu et al. 2024) Table 1 and Fig. 5: commonsense reasoning, LLaMA-7B, DoRA above LoRA at every rank, "
          "most at r = 4 (+22.4 points) vs r = 32 (+3.7); lecture slide 'DoRA: results'",
    metric="test perplexity on the GPL-3 (held out)", higher_is_better=False,
    sizes=with_settings(DORA_SETTINGS, **DOMAIN_SIZES),
    compare=[better("DoRA r=1", "LoRA r=1"), parity("DoRA r=8", "LoRA r=8", margin=5.0)], prepare=domain_prepare)
def dora_vs_lora_tinygpt(config, seed):
    return tinygpt_runs(config, seed, adapt_to_domain, "perplexity")[1]


@experiment(   # the control of C7 on TinyGPT: DoRA's magnitude vector adds one weight per output row
    "dora_vs_lora_tinygpt_budget", claim="C7",
    question="Control: is DoRA's gain at r = 1 more than its extra weights (the magnitude vector)? DoRA r = 1 against "
             "LoRA r = 2, which trains more weights.",
    paper="DoRA (Liu et al. 2024) §5: DoRA adds only the magnitude vector to LoRA's weights (+0.01 % of LLaMA-7B); "
          "lecture slide 'DoRA: results'",
    metric="test perplexity on the GPL-3 (held out)", higher_is_better=False,
    sizes=with_settings({"DoRA r=1": DORA_SETTINGS["DoRA r=1"], "LoRA r=2": {"method": "lora", "r": 2, "alpha": 4}},
                        **DOMAIN_SIZES, lr_from="dora_vs_lora_tinygpt"),
    compare=[better("DoRA r=1", "LoRA r=2")], prepare=domain_prepare)
def dora_vs_lora_tinygpt_budget(config, seed):
    return dora_vs_lora_tinygpt(config, seed)


@experiment(   # the second control: the sweep gave LoRA r = 1 1e-2, next to 3e-3 on validation (72.4 vs 74.3)
    "dora_vs_lora_tinygpt_same_lr", claim="C7",
    question="Control: at one shared rate (3e-3, the rate the sweep chose at r = 8 and for LoRA r = 2), is DoRA still "
             "ahead of LoRA at r = 1?",
    paper="DoRA (Liu et al. 2024) §5.1: DoRA reuses LoRA's hyperparameters; lecture slide 'DoRA: results'",
    metric="test perplexity on the GPL-3 (held out)", higher_is_better=False,
    sizes=with_settings({s: DORA_SETTINGS[s] for s in ("LoRA r=1", "DoRA r=1")}, **DOMAIN_SIZES, lr_fixed=3e-3),
    compare=[better("DoRA r=1", "LoRA r=1")], prepare=domain_prepare)
def dora_vs_lora_tinygpt_same_lr(config, seed):
    return dora_vs_lora_tinygpt(config, seed)


TASK_OPS = {"addition": "+", "subtraction": "-"}
MERGE_SIZES = {"smoke": {"n_train": 16, "n_test": 8, "steps": 2, "eval_every": 1},
               "class": {"n_train": 2000, "n_test": 200, "steps": 80, "eval_every": 40},
               "full": {"n_train": 2000, "n_test": 200, "steps": 200, "eval_every": 50}}


def sbora_rank_at_lora_budget():
    """SBoRA-FA's rank with LoRA r=4's number of trainable weights over GPT2_TARGETS (7 for TinyGPT)."""
    from ..sbora import rank_for_budget
    lora = inject(fresh_tinygpt()[0], "lora", GPT2_TARGETS, r=4, alpha=8)
    return rank_for_budget(fresh_tinygpt()[0], GPT2_TARGETS, "FA", sum(p.numel() for p in lora.parameters()
                                                                         if p.requires_grad))


def task_feature_regions(config, seed):
    """Each task's FA regions (sbora.feature_regions), from the input energies of its own training prompts in
    the pretrained model."""
    from ..sbora import feature_regions, input_energy
    energies = [input_energy(fresh_tinygpt()[0], arithmetic_split(op, config["n_train"], config["n_test"], seed + i)[0],
                             GPT2_TARGETS) for i, op in enumerate(TASK_OPS.values())]
    return feature_regions(energies, config["ranks"]["SBoRA-FA"])


def task_model(kind, task, seed, config, regions):
    """A fresh TinyGPT for task number `task` of TASK_OPS: "LoRA" r=4, or SBoRA-FA at LoRA's budget in the task's
    disjoint columns: a slice of a seeded permutation ("SBoRA-FA") or the columns its inputs use ("... task features")."""
    from ..sbora import inject_task
    model = fresh_tinygpt()[0]
    if kind == "LoRA":
        return inject(model, "lora", GPT2_TARGETS, r=4, alpha=8)
    r_fa = config["ranks"]["SBoRA-FA"]
    return inject_task(model, GPT2_TARGETS, task=task, n_tasks=len(TASK_OPS), r=r_fa, alpha=2 * r_fa, variant="FA",
                       seed=seed, regions=regions[task] if kind == "SBoRA-FA task features" else None)


def merged_tasks(config, seed, kinds):
    """Train one model per task and kind, merge each kind's task models into one, and measure the interference:
    the held-out answer-loss increase after merging, per task and mean. kinds: {kind: label of its merged model};
    config["lr"]: one rate, or one per label. Also each kind's controls (cross-talk, update size)."""
    from ..sbora import merge_tasks
    base = fresh_tinygpt()[0]
    if "ranks" not in config:   # merge_prepare (or the cached config of a rerun) has them already
        config["ranks"] = {"LoRA": 4, "SBoRA-FA": sbora_rank_at_lora_budget()}
    rates = config["lr"] if isinstance(config["lr"], dict) else dict.fromkeys(kinds.values(), config["lr"])
    regions = task_feature_regions(config, seed) if "SBoRA-FA task features" in kinds else None
    trained, single = {kind: [] for kind in kinds}, {}
    tests = {task: arithmetic_split(op, config["n_train"], config["n_test"], seed + i)[1]
             for i, (task, op) in enumerate(TASK_OPS.items())}
    for i, (task, op) in enumerate(TASK_OPS.items()):
        runtime.seed_everything(seed)
        built = {kind: task_model(kind, i, seed, config, regions) for kind in kinds}
        for kind, model in built.items():
            learn_arithmetic(None, rates[kinds[kind]], seed + i, config, op=op, model=model)
            trained[kind].append(model)
            single[(kind, task)] = data.answer_loss(model, tests[task])
    metric = {}
    for kind, label in kinds.items():
        merged = merge_tasks(fresh_tinygpt()[0], trained[kind])
        per_task = {task: data.answer_loss(merged, tests[task]) - single[(kind, task)] for task in TASK_OPS}
        metric[label] = statistics.fmean(per_task.values())
        metric.update({f"{label}: {task}": v for task, v in per_task.items()})
        # the controls: how strongly the OTHER task's update answers this task's inputs (1 = as strongly as its own),
        # and how large each task's update is next to the weight it changes
        metric[f"cross-talk: {kind}"] = statistics.fmean(
            cross_talk(base, trained[kind][i], trained[kind][1 - i], tests[task]) for i, task in enumerate(TASK_OPS))
        metric[f"update size: {kind}"] = statistics.fmean(relative_update(model) for model in trained[kind])
    return {"metric": metric}


@experiment(
    "multi_sbora_vs_lora_sum", claim="C10",
    question="When two tasks' adapters are merged into one model, does Multi-SBoRA (disjoint columns per task) "
             "interfere less than summing LoRA adapters at an equal budget?",
    paper="SBoRA (Po et al. 2024) §3.3 (the idea, no measured table): each task updates its own disjoint columns, "
          "so merged tasks do not overwrite each other; lecture slide 'Multi-SBoRA'",
    metric="interference: held-out answer-loss increase after merging, mean of the two tasks", higher_is_better=False,
    sizes={size: {**cfg, "lr": 1e-2} for size, cfg in MERGE_SIZES.items()},
    compare=[better("Multi-SBoRA (merged)", "LoRA adapters summed")])
def multi_sbora_vs_lora_sum(config, seed):
    return merged_tasks(config, seed, {"SBoRA-FA": "Multi-SBoRA (merged)", "LoRA": "LoRA adapters summed"})


# C10 with each task's columns where its own inputs are strong and the other task's weak: the lecture's regional
# update in its brain-like sense (distinct functions in distinct regions). The random disjoint columns above left
# the cross-talk at 0.99, so random columns run here too, side by side, each kind at its own swept rate.
TASK_FEATURE_KINDS = {"SBoRA-FA task features": "Multi-SBoRA, task-feature columns (merged)",
                      "SBoRA-FA": "Multi-SBoRA, random columns (merged)", "LoRA": "LoRA adapters summed"}


def merge_prepare(config, size, name):
    """Each kind's rate from a sweep of its single-task result (addition alone, seed 0), as for every TinyGPT claim."""
    config["settings"] = {label: {"kind": kind} for kind, label in TASK_FEATURE_KINDS.items()}
    config["ranks"] = {"LoRA": 4, "SBoRA-FA": sbora_rank_at_lora_budget()}
    return tiny_sweep(config, name, lambda label, lr: single_task_loss(config, config["settings"][label]["kind"], lr))


def single_task_loss(config, kind, lr):
    """Held-out answer loss of one kind trained on addition alone (seed 0)."""
    regions = task_feature_regions(config, 0) if kind == "SBoRA-FA task features" else None
    runtime.seed_everything(0)
    model = task_model(kind, 0, 0, config, regions)
    return learn_arithmetic(None, lr, 0, config, model=model)[1]["answer_loss"]


@experiment(
    "multi_sbora_task_features", claim="C10",
    question="When two tasks' adapters are merged, does Multi-SBoRA with each task's columns where its own inputs are "
             "strong and the other task's weak interfere less than summed LoRA adapters at an equal budget?",
    paper="SBoRA (Po et al. 2024) §3.3 and the lecture's summary (the idea, no measured table): each task updates its "
          "own region, as distinct functions sit in distinct brain regions, so merged tasks interfere less; lecture "
          "slide 'Summary of SBoRA'",
    metric="interference: held-out answer-loss increase after merging, mean of the two tasks", higher_is_better=False,
    sizes={size: {**cfg, **({"lr_sweep": "run"} if size == "full" else {})} for size, cfg in MERGE_SIZES.items()},
    compare=[better("Multi-SBoRA, task-feature columns (merged)", "LoRA adapters summed")], prepare=merge_prepare)
def multi_sbora_task_features(config, seed):
    return merged_tasks(config, seed, TASK_FEATURE_KINDS)


@experiment(   # the control of C10's task-feature design: each kind's swept rate gives SBoRA-FA 3x LoRA's update size
    "multi_sbora_task_features_same_lr", claim="C10",
    question="Control: at one shared rate (3e-3, the summed LoRA adapters' own choice), does Multi-SBoRA with "
             "task-feature columns interfere less than summed LoRA adapters at an equal budget?",
    paper="SBoRA (Po et al. 2024) §3.3 and the lecture's summary (the idea, no measured table): each task updates its "
          "own region, so merged tasks interfere less; lecture slide 'Summary of SBoRA'",
    metric="interference: held-out answer-loss increase after merging, mean of the two tasks", higher_is_better=False,
    sizes={size: {**cfg, "lr_fixed": 3e-3} for size, cfg in MERGE_SIZES.items()},
    compare=[better("Multi-SBoRA, task-feature columns (merged)", "LoRA adapters summed")], prepare=merge_prepare)
def multi_sbora_task_features_same_lr(config, seed):
    return merged_tasks(config, seed, TASK_FEATURE_KINDS)


def relative_update(model):
    """‖ΔW‖ / ‖W₀‖ (Frobenius), averaged over the adapted layers: how far training moved each weight."""
    from ..inject import adapter_layers
    with torch.no_grad():
        return statistics.fmean(float(layer.delta_weight().norm() / layer.base.weight.norm())
                                for _, layer in adapter_layers(model))


def cross_talk(base, own, other, batches):
    """sqrt(Σ‖ΔW_other·x‖² / Σ‖ΔW_own·x‖²) over every adapted layer, x = that layer's inputs in the pretrained
    model on this task's held-out prompts: Multi-SBoRA's regions are disjoint in the weights, not in the inputs."""
    from ..inject import adapter_layers
    own_layers, other_layers = dict(adapter_layers(own)), dict(adapter_layers(other))
    sums, hooks = [0.0, 0.0], []

    def record(name):
        def hook(_, inputs, __):
            with torch.no_grad():
                x = inputs[0].reshape(-1, inputs[0].shape[-1])
                sums[0] += float((x @ own_layers[name].delta_weight().T).pow(2).sum())
                sums[1] += float((x @ other_layers[name].delta_weight().T).pow(2).sum())
        return hook
    for name in own_layers:
        hooks.append(base.get_submodule(name).register_forward_hook(record(name)))
    try:
        data.answer_loss(base, batches)
    finally:
        for h in hooks:
            h.remove()
    return (sums[1] / sums[0]) ** 0.5


# ---------------------------------------------------------------- real pretrained weights in 4 bits (C5)

def embed(model, tok, texts):
    """Mean-pooled sentence embeddings of MiniLM (how all-MiniLM-L6-v2 is used), without gradients."""
    with torch.no_grad():
        enc = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1)


FORMAT_SETTINGS = {"int4": ("int4", False), "FP4": ("fp4", False), "NF4": ("nf4", False), "NF4 + DQ": ("nf4", True)}


def round_trip(w, fmt, double_quant, blocksize):
    """w quantized to 4 bits in blocks and back (the weights QLoRA's forward pass computes with)."""
    from .. import quant
    q = (quant.quantize_absmax(w, 4, blocksize) if fmt == "int4" else
         quant.quantize_4bit(w, quant.nf4_code() if fmt == "nf4" else quant.fp4_code(), blocksize, double_quant))
    return q, q.dequantize(torch.float32)


@experiment(
    "four_bit_formats", claim="C5",
    question="On real pretrained weights (MiniLM-L6's linear layers), does NF4 keep the model closer to its "
             "full-precision self than int4 and FP4, and does double quantization cost (almost) nothing?",
    paper="QLoRA (Dettmers et al. 2023) §3 and Table 2 / Fig. 3: NF4 beats FP4 and int4 (perplexity, zero-shot "
          "accuracy); double quantization cuts the constants from 0.5 to 0.127 bits per weight at no loss; "
          "lecture slides 'NormalFloat', 'Double quantization'",
    metric="embedding error: 1 − cosine(4-bit, full-precision sentence embedding), mean over sentences",
    higher_is_better=False,
    sizes={"smoke": {"n_sentences": 8, "blocksize": 64}, "class": {"n_sentences": 128, "blocksize": 64},
           "full": {"n_sentences": 256, "blocksize": 64}},
    compare=[better("NF4", "FP4"), better("NF4", "int4"), parity("NF4 + DQ", "NF4", margin=0.002)])
def four_bit_formats(config, seed):
    from .. import quant
    model, tok = models.load_minilm()
    train_all, test = data.doc_topics(n_test=400, seed=0)
    sentences = [ex["text"] for ex in random.Random(seed).sample(train_all + test, config["n_sentences"])]
    reference = embed(model, tok, sentences)
    weights = {n: m.weight for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    original = {n: w.detach().clone() for n, w in weights.items()}
    metric, errors, overhead = {}, {}, {}
    try:
        for setting, (fmt, dq) in FORMAT_SETTINGS.items():
            sq_err = stored_bits = 0.0
            for n, w in weights.items():
                q, w_hat = round_trip(original[n], fmt, dq, config["blocksize"])
                sq_err += float((w_hat - original[n]).pow(2).sum())
                stored_bits += q.overhead_bits_per_param() * w.numel()
                with torch.no_grad():
                    w.copy_(w_hat)
            cos = torch.nn.functional.cosine_similarity(embed(model, tok, sentences), reference, dim=-1)
            metric[setting] = float((1 - cos).mean())
            norm = sum(float(w.pow(2).sum()) for w in original.values())
            errors[setting] = round((sq_err / norm) ** 0.5, 5)
            overhead[setting] = round(stored_bits / sum(w.numel() for w in original.values()), 4)
    finally:
        with torch.no_grad():
            for n, w in weights.items():
                w.copy_(original[n])
    config["weight_error"], config["constant_bits_per_weight"] = errors, overhead   # same for every seed
    return {"metric": metric}


# ---------------------------------------------------------------- reading results: tables and plots

def results_table(results_dir=RESULTS_DIR):
    """The committed full-size results as a Markdown table (claim, experiment, setting means ± sd, verdict)."""
    rows = ["| claim | experiment | seeds | settings: mean ± sd | verdict | wall |", "|---|---|---|---|---|---|"]
    found = []
    for name in REGISTRY:
        if os.path.isfile(result_path(name, "full", results_dir)):
            found.append(load_result(name, "full", results_dir))
    for r in sorted(found, key=lambda r: (int(r["claim"][1:]), r["name"])):
        cells = "; ".join(f"{s} {summary(v)[0]:.3f} ± {summary(v)[1]:.3f}" for s, v in r["results"].items())
        rows.append(f"| {r['claim']} | `{r['name']}` | {len(r['seeds'])} | {cells} ({r['metric']}) | "
                    f"{r['verdict']} | {r['env']['wall_s'] / 60:.0f} min |")
    return "\n".join(rows)


def all_claims():
    """Every registered claim, C1 first."""
    return sorted({exp.claim for exp in REGISTRY.values()}, key=lambda c: int(c[1:]))


def is_control(name):
    """A control experiment asks why its claim's designed experiment came out as it did (question "Control...")."""
    return get(name).question.startswith("Control")


def claims_table(results_dir=RESULTS_DIR):
    """One row per claim: the verdict of each designed experiment (the first design and, for the MiniLM claims,
    the one in the paper's setting: head trained, three times the steps) and of each control, from the results."""
    rows = ["| claim | designed experiments: verdict | controls: verdict |", "|---|---|---|"]
    for claim in all_claims():
        cells = {True: [], False: []}
        for name, exp in REGISTRY.items():
            if exp.claim == claim and os.path.isfile(result_path(name, "full", results_dir)):
                cells[is_control(name)].append(f"`{name}`: {load_result(name, 'full', results_dir)['verdict']}")
        if cells[False] or cells[True]:
            rows.append(f"| {claim} | {'; '.join(cells[False]) or '—'} | {'; '.join(cells[True]) or '—'} |")
    return "\n".join(rows)


def tally(results_dir=RESULTS_DIR):
    """The README's count: the claims for which at least one designed experiment (not a control) reproduced."""
    claims = all_claims()
    done = [c for c in claims if any(exp.claim == c and not is_control(name)
                                     and os.path.isfile(result_path(name, "full", results_dir))
                                     and load_result(name, "full", results_dir)["verdict"] == VERDICTS[0]
                                     for name, exp in REGISTRY.items())]
    return (f"Claims with a designed experiment reproduced: {', '.join(done) or 'none'} "
            f"({len(done)} of {len(claims)}).")


TABLE_START = "<!-- results table: generated by `python -m peftcourse.experiments table --write` -->"
TABLE_END = "<!-- end of results table -->"


def write_readme_table(path=os.path.join(ROOT, "README.md"), results_dir=RESULTS_DIR):
    """Put claims_table() and results_table() between the README's two table markers (the rest is left as it is)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text.count(TABLE_START) != 1 or text.count(TABLE_END) != 1 or text.index(TABLE_START) > text.index(TABLE_END):
        raise ValueError(f"{path} needs the lines {TABLE_START!r} and {TABLE_END!r}, once each and in this order")
    head, rest = text.split(TABLE_START)
    _, tail = rest.split(TABLE_END)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{head}{TABLE_START}\n{claims_table(results_dir)}\n\n{tally(results_dir)}\n\n"
                f"{results_table(results_dir)}\n{TABLE_END}{tail}")
    return path


def class_size():
    """The size of a notebook's "run it yourself" cell: class (≤ 2 min on a CPU), smoke in fast mode (CI)."""
    return "smoke" if runtime.is_fast() else "class"


def rerun(name, seed=0):
    """A student's own run of a registered experiment at class size (nothing written): one seed, the cached rates."""
    return run_experiment(name, [seed], class_size(), log=lambda *_: None)


def describe(result):
    """What a notebook prints above the cached plot: the question, the paper's figure, the numbers, the verdict."""
    result = load_result(result) if isinstance(result, str) else result
    lines = [f"{result['claim']}: {result['question']}", f"paper: {result['paper']}",
             f"measured here: {result['metric']}, mean ± sd over {len(result['seeds'])} seeds"]
    width = max(len(s) for s in result["results"])
    for setting, values in result["results"].items():
        mean, sd, _ = summary(values)
        lines.append(f"  {setting:<{width}}  {mean:.3f} ± {sd:.3f}")
    lines.append(f"verdict: {result['verdict']}. {result['why']}")
    print("\n".join(lines))


def one_line(result):
    """A result in one line (a notebook's list of controls): steps, seeds, mean ± sd per setting, verdict."""
    result = load_result(result) if isinstance(result, str) else result
    cells = ", ".join(f"{s} {summary(v)[0]:.3f} ± {summary(v)[1]:.3f}" for s, v in result["results"].items())
    steps = f"{result['config']['steps']} steps, " if "steps" in result["config"] else ""
    return f"{result['name']} ({steps}{len(result['seeds'])} seeds): {cells} → {result['verdict']}"


def plot_summaries(names, ncols=2, height=None, width=None):
    """plot_summary of several cached results on a grid, each titled with its name and verdict."""
    from .. import plots
    nrows = -(-len(names) // ncols)
    fig, axes = plots.new_axes(ncols, nrows, width=width, height=height, sharex=True, squeeze=False)
    for name, ax in zip(names, axes.flat):
        plot_summary(name, ax=ax)
        ax.set_title(f"{name}: {load_result(name)['verdict']}")
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


def plot_summary(result, student=None, ax=None):
    """Final metric per setting: every seed as a dot, mean ± 2 SE as a bar, the student's value as a star."""
    from .. import plots
    result = load_result(result) if isinstance(result, str) else result
    if ax is None:
        _, ax = plots.new_axes(height=0.6 + 0.5 * len(result["results"]))
    st = plots.styles(result["results"])
    for i, (setting, values) in enumerate(result["results"].items()):
        mean, sd, n = summary(values)
        ax.errorbar(mean, i, xerr=2 * sd / math.sqrt(n), fmt=st[setting]["marker"], color=st[setting]["color"],
                    ms=8, capsize=4)
        ax.scatter(values, [i + 0.15] * n, s=12, color=st[setting]["color"], alpha=0.6)
        ax.annotate(f"{mean:.3f}", (mean, i - 0.3), ha="center", fontsize=8)
        if student is not None and setting in student["results"]:
            ax.scatter(student["results"][setting], [i - 0.15] * len(student["results"][setting]), marker="*",
                       s=120, color=st[setting]["color"], edgecolor="black", zorder=3,
                       label="your run" if i == 0 else None)
    ax.set_yticks(range(len(result["results"])), list(result["results"]))
    ax.set_ylim(-0.7, len(result["results"]) - 0.3)
    ax.set_xlabel(f"{result['metric']} (dots: seeds; bar: mean ± 2 SE)")
    ax.set_title(f"{result['claim']}: {result['verdict']}")
    if student is not None:
        plots.legend(ax)
    return ax


# ---------------------------------------------------------------- command line

def last_run(name):
    path = result_path(name)
    if not os.path.isfile(path):
        return "not run"
    try:
        r = load_result(name)
    except ValueError as err:
        return f"invalid result file: {err}"
    return (f"{r['verdict']}, {len(r['seeds'])} seeds, {r['env']['wall_s'] / 60:.1f} min on {r['env']['device']} "
            f"({r['env']['threads']} threads), commit {r['commit'][:10]}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m peftcourse.experiments", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every registered experiment with its last full-size run")
    run = sub.add_parser("run", help="run experiments and write data/results/NAME[.size].json")
    run.add_argument("names", nargs="+", metavar="NAME")
    run.add_argument("--seeds", nargs="+", type=int, default=[0])
    run.add_argument("--size", choices=SIZES, default="class")
    run.add_argument("--cache", help="a JSON-lines file of finished runs to reuse between processes (full-size runs)")
    check = sub.add_parser("check", help="rerun one cached seed with the cached config; fail beyond 2 %%")
    check.add_argument("name")
    check.add_argument("--seed", type=int, default=0)
    table = sub.add_parser("table", help="the README's table of the committed results")
    table.add_argument("--write", action="store_true", help="write it into README.md between its markers")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name, exp in REGISTRY.items():
            print(f"{exp.claim:<4} {name:<24} {last_run(name)}\n     {exp.question}")
    elif args.command == "run":
        for name in args.names:
            get(name)   # every name checked before anything runs
        if args.cache:
            load_run_cache(args.cache)
        for name in args.names:
            run_experiment(name, args.seeds, args.size, out_dir=RESULTS_DIR)
    elif args.command == "check":
        worst = 0.0
        for setting, (old, new, rel) in reproduce(args.name, args.seed).items():
            print(f"{setting:<34} cached {old:.4f}  rerun {new:.4f}  difference {100 * rel:.2f} %")
            worst = max(worst, rel)
        print("reproduced within 2 %" if worst <= REPRODUCE_TOLERANCE else "NOT within 2 %")
        return 0 if worst <= REPRODUCE_TOLERANCE else 1
    elif args.command == "table":
        print(results_table())
        if args.write:
            write_readme_table()
    return 0


# x86 CPUs with AVX-512 round some kernels differently from AVX2-only ones, and a run near the edge of its stable
# learning rate (C8's LoRA at 1e-2) turns that rounding into another result (0.824 vs 0.656 for one seed). The command
# line therefore caps torch's, oneDNN's and MKL's kernels at AVX2 (nothing changes on an AVX2 CPU), so a cached seed
# repeats on either kind of CPU. PEFTCOURSE_NATIVE_KERNELS=1 runs on the CPU's own kernels instead.
PORTABLE_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def needs_portable_kernels(environ=os.environ, machine=None):
    """True where this process should restart with PORTABLE_KERNELS: an x86 CPU, not capped yet, not opted out."""
    import platform
    return ((machine or platform.machine()).lower() in ("x86_64", "amd64")
            and any(environ.get(k) != v for k, v in PORTABLE_KERNELS.items())
            and environ.get("PEFTCOURSE_NATIVE_KERNELS") != "1")

