"""The MiniLM-L6 runner (C1-C4, C6, C7, C9 on an encoder). The papers show these claims on pretrained encoders
fine-tuned for classification (LoRA Table 2 on RoBERTa, Houlsby et al. on BERT, DoRA and QLoRA on LLaMA/RoBERTa):
the real pretrained MiniLM-L6 classifying standard-library sentences by package (data.doc_topics, 8 labels) is
the same setting at CPU scale. Every MiniLM experiment is the same runner (run_minilm) with its own settings.
"""
import json
import os
import time

import torch

from .. import data, models, runtime
from ..adapters import add_adapters, freeze_all_but_top
from ..inject import inject
from ..train import train
from ..runtime import count_params
from .registry import FULL, TOP_LAYER, Spec, adapter, experiment
from .store import load_result, result_path

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
    "full FT": FULL,
    "LoRA": Spec("lora", ["query", "value"], r=8, alpha=8),
    "adapter": adapter(64),
    "top-layer": TOP_LAYER,
    "SBoRA-FA": Spec("sbora", ["query", "value"], r=4, alpha=8, extra={"variant": "FA"}),
}
FAMILY = {"full": "full FT", "lora": "LoRA", "dora": "LoRA", "qlora": "LoRA", "adapter": "adapter", "top": "top-layer",
          "sbora": "SBoRA-FA"}
RUN_CACHE = {}         # run_key -> run: settings shared by experiments train once per process
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
    """Apply one method (a Spec) to a fresh MiniLM classifier, with the package's own pieces."""
    method = spec.method
    if method in ("lora", "dora", "qlora", "sbora"):   # "pooler": also train BERT's pooler, as RoBERTa's head trains its dense layer
        head = ["classifier"] + (["pooler"] if spec.get("pooler") else [])
        extra = {"variant": spec.get("variant")} if method == "sbora" else {}   # SBoRA's columns: torch's seeded RNG
        inject(model, method, list(spec.targets), modules_to_save=head, r=spec.r, alpha=spec.alpha, **extra)
    elif method == "adapter":   # Houlsby et al. train the LayerNorms and the head with the adapters
        add_adapters(model, spec.get("bottleneck"),
                     modules_to_save=["classifier", "LayerNorm"] + (["pooler"] if spec.get("pooler") else []))
    elif method == "top":       # top-layer tuning: the last k blocks and the head (pooler + classifier)
        freeze_all_but_top(model, spec.get("k"))
    elif method != "full":
        raise ValueError(f"unknown method {method!r} in {spec.to_dict()}: use one of {sorted(FAMILY)}")
    return model


def with_head_lr(model, lr):
    """AdamW with the method's lr for its trainable weights and HEAD_LR for the new classifier."""
    head = {id(p) for p in model.classifier.parameters()}
    return lambda params: torch.optim.AdamW([{"params": [p for p in params if id(p) not in head]},
                                             {"params": [p for p in params if id(p) in head], "lr": HEAD_LR}], lr=lr)


def run_key(spec, lr, seed, cfg):
    """What makes a run: the setting (as its stored dict), rate, seed, data config and head rate, as one string."""
    keys = ("n_train", "n_val", "n_test", "steps", "batch_size", "max_length", "eval_every", "task")
    return json.dumps([Spec.of(spec).to_dict(), lr, seed, {k: cfg[k] for k in keys if k in cfg}, HEAD_LR],
                      sort_keys=True)


def finetune(spec, lr, seed, cfg):
    """One MiniLM fine-tuning run (the course's one loop, peftcourse.train.train): val/test accuracy, curves and
    seconds. Cached per process (and in RUN_CACHE_FILE when set), since experiments share settings (full FT,
    LoRA r=8)."""
    return cached_run(run_key(spec, lr, seed, cfg), lambda: _finetune(Spec.of(spec), lr, seed, cfg))


def cached_run(key, compute):
    """RUN_CACHE[key], computed once by compute() (and appended to RUN_CACHE_FILE when set). key: a string, or
    JSON data that becomes one."""
    key = key if isinstance(key, str) else json.dumps(key, sort_keys=True)
    if key not in RUN_CACHE:
        RUN_CACHE[key] = compute()
        if RUN_CACHE_FILE:
            with open(RUN_CACHE_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps({"key": key, "run": RUN_CACHE[key]}) + "\n")
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
    trainable, total = count_params(model, trainable_only=True), count_params(model)
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
    """Fix each method family's learning rate; returns (config, {run: seconds} of the sweep's runs).
    Full size: a sweep on seed 0, judged by validation accuracy (recorded in config["lr_sweep"]), except for
    families whose rate `lr_from`'s sweep already chose or config["lr_fixed"] gives.
    Other sizes: the rates of the cached full result (else the middle candidate)."""
    families = sorted({FAMILY[Spec.of(spec).method] for spec in config["settings"].values()})
    config["lr"], seconds = {}, {}
    if config.get("lr_from") and (size == "full" or os.path.isfile(result_path(config["lr_from"]))):
        chosen = load_result(config["lr_from"])["config"]["lr"]   # the rates another experiment's sweep chose
        config["lr"] = {fam: chosen[fam] for fam in families if fam in chosen}
    config["lr"].update(config.get("lr_fixed", {}))
    if size == "full":
        for fam in (f for f in families if f not in config["lr"]):
            runs = {lr: finetune(SWEEP_SPEC[fam], lr, 0, config) for lr in LR_SWEEP[fam]}
            seconds.update({run_key(SWEEP_SPEC[fam], lr, 0, config): r["wall_s"] for lr, r in runs.items()})
            config.setdefault("lr_sweep", {})
            config["lr_sweep"][fam] = {"setting": SWEEP_SPEC[fam].to_dict(), "seed": 0,
                                       "val_accuracy": {f"{lr:g}": r["val"] for lr, r in runs.items()}}
            config["lr"][fam] = max(runs, key=lambda lr: runs[lr]["val"])   # ties: the smaller rate (listed first)
    else:
        try:
            cached = load_result(name)["config"]["lr"]
        except (FileNotFoundError, KeyError, ValueError):
            cached = {}
        for fam in (f for f in families if f not in config["lr"]):
            config["lr"][fam] = cached.get(fam, LR_SWEEP[fam][1])
    return config, seconds


def run_minilm(config, seed):
    """Every setting of a MiniLM experiment for one seed: its test accuracies, curves, trainable shares and runs."""
    specs = {s: Spec.of(spec) for s, spec in config["settings"].items()}
    rates = {s: config["lr"][FAMILY[spec.method]] for s, spec in specs.items()}
    runs = {s: finetune(spec, rates[s], seed, config) for s, spec in specs.items()}
    return {"metric": {s: r["test"] for s, r in runs.items()},
            "curves": {s: r["curve"] for s, r in runs.items()},
            "facts": {"trainable_percent": {s: round(r["trainable_percent"], 4) for s, r in runs.items()}},
            "runs": {run_key(specs[s], rates[s], seed, config): r["wall_s"] for s, r in runs.items()}}


def minilm_experiment(name, settings, full=None, lr_from=None, task=None, lr_fixed=None, **kw):
    """Register a MiniLM experiment: the same runner (run_minilm) with its own settings and comparisons.
    full: overrides of the full size (a longer control run); lr_from: reuse that experiment's chosen rates;
    task: config keys of another task on the same sentences (WORD_ORDER), for every size;
    lr_fixed: {family: rate} given, not swept (a control of one family's rate)."""
    extra = {"settings": settings, **({"lr_from": lr_from} if lr_from else {}), **(task or {}),
             **({"lr_fixed": lr_fixed} if lr_fixed else {})}
    experiment(name, sizes=minilm_sizes(full, **extra), prepare=minilm_prepare, metric="test accuracy",
               higher_is_better=True, **kw)(run_minilm)
