"""The SmolLM2 runner (C1, C2, C6, C7 on a real, GPU-pretrained chat model): SmolLM2-135M-Instruct fine-tuned
to answer which standard-library package a documentation sentence is from (peftcourse.chat_task), scored by
test accuracy of the answer's first token among the 8 packages.

One loaded copy per process; every run fine-tunes a fresh deep copy. The adapters sit on q_proj and v_proj,
the LoRA paper's choice (Hu et al. §7.1); QLoRA stores every linear layer of the 30 blocks in NF4 (with double
quantization) and trains LoRA on q_proj and v_proj on top (QLoRA §3). The rates are chosen on seed 0 only, per
family, by validation accuracy (the selection seed); the same run cache as MiniLM's lets experiments that share
a setting (LoRA r = 8, LoRA r = 1) train it once.
"""
import copy
import time

import torch
import torch.nn.functional as F

from .. import chat_task, models, runtime
from ..inject import inject
from ..qlora import QuantLinear
from ..base import replace_module
from ..runtime import count_params
from ..train import train
from .minilm import cached_run
from .registry import FULL, Spec
from .store import load_result

TARGETS = ["q_proj", "v_proj"]
BLOCK_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
LR_SWEEP = {"full FT": [3e-5, 1e-4], "LoRA": [1e-3, 3e-3]}   # tried on seed 0 (validation accuracy)
SWEEP_SPEC = {"full FT": FULL, "LoRA": Spec("lora", TARGETS, r=8, alpha=16)}
FAMILY = {"full": "full FT", "lora": "LoRA", "dora": "LoRA", "qlora": "LoRA"}
ZERO_SHOT = Spec("none")   # the instruction-tuned model as it comes: no training, what every method starts from
SIZES = {"smoke": {"n_train": 16, "n_val": 8, "n_test": 8, "steps": 2, "batch_size": 2},
         "class": {"n_train": chat_task.N_TRAIN, "n_val": 100, "n_test": 100, "steps": 30, "batch_size": 4},
         "full": {"n_train": chat_task.N_TRAIN, "n_val": 100, "n_test": 200, "steps": 60, "batch_size": 4}}
_SMOLLM2 = {}


def fresh_smollm2():
    """(a deep copy of SmolLM2, its tokenizer): loaded once per process, copied per run."""
    if "model" not in _SMOLLM2:
        _SMOLLM2["model"], _SMOLLM2["tok"] = models.load_smollm2()
    return copy.deepcopy(_SMOLLM2["model"]), _SMOLLM2["tok"]


def splits(cfg):
    """(train, val, test) of the size's share of the fixed split (chat_task.split)."""
    return chat_task.split(n_test=cfg["n_test"], n_val=cfg["n_val"], n_train=cfg["n_train"])


def nf4_base(model, skip=(), read_weight=None):
    """Every linear layer of the blocks stored in NF4 with double quantization, frozen (QLoRA's base model);
    `skip`: layer names left for inject(model, "qlora", ...), which quantizes them under its adapter.
    read_weight: None (quantize the weights in the model) or name -> fp32 weight, e.g.
    quantization.saved_weights(model): each layer's weight read from the saved file as it is quantized, so a
    model whose weights are pages of its mapped file (from_pretrained) never holds them all in memory."""
    for name, module in list(model.named_modules()):
        short = name.rsplit(".", 1)[-1]
        if not (isinstance(module, torch.nn.Linear) and short in BLOCK_LINEARS):
            continue
        if short not in skip:
            weight = module.weight if read_weight is None else read_weight(name)
            replace_module(model, name, QuantLinear(weight, module.bias))
        elif read_weight is not None:   # inject quantizes it later, from this copy: the file's pages stay unread
            module.weight = torch.nn.Parameter(read_weight(name), requires_grad=False)
    return model


def build(model, spec, read_weight=None):
    """One method on SmolLM2, with the package's own pieces (the one injection for every adapter); read_weight:
    where QLoRA's NF4 base reads each weight from (nf4_base)."""
    if spec.method == "full":
        model.requires_grad_(True)
    elif spec.method in ("lora", "dora"):
        inject(model, spec.method, list(spec.targets), r=spec.r, alpha=spec.alpha)
    elif spec.method == "qlora":   # the other linear layers in NF4, then QLoRALinear (NF4 base + LoRA) on the targets
        inject(nf4_base(model, skip=spec.targets, read_weight=read_weight), "qlora", list(spec.targets),
               r=spec.r, alpha=spec.alpha)
    else:
        raise ValueError(f"unknown method {spec.method!r} in {spec.to_dict()}: use one of {sorted(FAMILY)}")
    return model


def run_key(spec, lr, seed, cfg):
    spec = Spec.of(spec)
    if spec.method == "none":   # nothing is trained or drawn at random: one run serves every seed
        lr, seed = None, 0
    return ["smollm2", spec.to_dict(), lr, seed, {k: cfg[k] for k in SIZES["full"]}]


def finetune(spec, lr, seed, cfg):
    """One SmolLM2 fine-tuning run (the course's one loop): val/test accuracy, curves and seconds; cached."""
    return cached_run(run_key(spec, lr, seed, cfg), lambda: _finetune(Spec.of(spec), lr, seed, cfg))


def _finetune(spec, lr, seed, cfg):
    start = time.perf_counter()
    train_set, val, test = splits(cfg)
    runtime.seed_everything(seed)   # the adapter's random init, then the data order, all from `seed`
    model, tok = fresh_smollm2()
    if spec.method == "none":
        return {"val": None, "test": chat_task.accuracy(model, tok, test)["accuracy"], "trainable_percent": 0.0,
                "wall_s": time.perf_counter() - start}
    build(model, spec)
    trainable, total = count_params(model, trainable_only=True), count_params(model)
    batches = chat_task.batches(tok, train_set, batch_size=cfg["batch_size"], seed=seed)
    history = train(chat_task.AnswerLogits(model), batches, steps=cfg["steps"], lr=lr, loss_fn=F.cross_entropy,
                    schedule="cosine", warmup=max(1, cfg["steps"] // 10), seed=seed, progress=False,
                    eval_fn=lambda m: chat_task.accuracy(m.model, tok, val), eval_every=cfg["steps"])
    test_acc = chat_task.accuracy(model, tok, test)["accuracy"]
    every = max(1, cfg["steps"] // 20)
    return {"val": history.last("accuracy"), "test": test_acc, "trainable_percent": 100 * trainable / total,
            "curve": {"loss_steps": history.steps[every - 1::every],
                      "loss": history.smoothed_losses(window=every)[every - 1::every]},
            "wall_s": time.perf_counter() - start}


def smollm2_prepare(config, size, name):
    """Each family's rate: full size sweeps the design's grid (config["lr_grid"], else LR_SWEEP) on seed 0
    (validation accuracy, recorded in config["lr_sweep"]); other sizes reuse the cached full result's rates
    (else the grid's first)."""
    families = sorted({FAMILY[Spec.of(s).method] for s in config["settings"].values() if Spec.of(s).method != "none"})
    grid = config.get("lr_grid", LR_SWEEP)
    config["lr"], seconds = {}, {}
    if size == "full":
        config["lr_sweep"] = {}
        for fam in families:
            runs = {lr: finetune(SWEEP_SPEC[fam], lr, 0, config) for lr in grid[fam]}
            seconds.update({str(run_key(SWEEP_SPEC[fam], lr, 0, config)): r["wall_s"] for lr, r in runs.items()})
            config["lr_sweep"][fam] = {"setting": SWEEP_SPEC[fam].to_dict(), "seed": 0,
                                       "val_accuracy": {f"{lr:g}": r["val"] for lr, r in runs.items()}}
            config["lr"][fam] = max(sorted(runs), key=lambda lr: runs[lr]["val"])   # a tie keeps the smaller rate
        return config, seconds
    try:
        cached = load_result(name)["config"]["lr"]
    except (FileNotFoundError, KeyError, ValueError):
        cached = {}
    config["lr"] = {fam: cached.get(fam, grid[fam][0]) for fam in families}
    return config, seconds


def run_smollm2(config, seed):
    """Every setting of a SmolLM2 experiment for one seed: test accuracies, curves, trainable shares and runs."""
    specs = {s: Spec.of(spec) for s, spec in config["settings"].items()}
    rates = {s: config["lr"].get(FAMILY.get(spec.method)) for s, spec in specs.items()}
    runs = {s: finetune(spec, rates[s], seed, config) for s, spec in specs.items()}
    return {"metric": {s: r["test"] for s, r in runs.items()},
            "curves": {s: r["curve"] for s, r in runs.items() if "curve" in r},
            "facts": {"trainable_percent": {s: round(r["trainable_percent"], 4) for s, r in runs.items()}},
            "runs": {str(run_key(specs[s], rates[s], seed, config)): r["wall_s"] for s, r in runs.items()}}


def smollm2_sizes(settings, lr_grid=None):
    """Every size's config; lr_grid: the design's own rates to sweep per family (default LR_SWEEP)."""
    extra = {} if lr_grid is None else {"lr_grid": lr_grid}
    return {size: {**cfg, "settings": settings, **extra} for size, cfg in SIZES.items()}
