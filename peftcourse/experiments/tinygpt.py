"""The TinyGPT runners (C8, C9, C7, and C3, C4 on a causal LM). MoRA and SBoRA are shown on causal LMs (LLaMA);
the course's own pretrained TinyGPT is that setting at CPU scale. One loaded copy per process; every run
fine-tunes a fresh deep copy of it, on one of three tasks: memorizing UUID pairs (MoRA §3), two-digit
arithmetic, and adapting to a new domain (legal English).
"""
import copy
import time

import torch

from .. import data, models, runtime
from ..adapters import add_adapters, freeze_all_but_top
from ..inject import adapter_layers, inject
from ..lora import inject_gpt2_attention
from ..train import train
from ..runtime import count_params
from .registry import Spec
from .store import load_result

GPT2_TARGETS = list(models.GPT2_MODULES)   # every linear layer of the blocks, as in the MoRA and SBoRA papers
TINY_LR_SWEEP = [3e-3, 1e-2]               # LoRA-family rates tried on seed 0 for each setting (recorded)
TINY_LR_EXTEND = 2                          # ... and up to two more, x3 or /3, while the best one is at an edge
DOMAIN_BLOCK = 64   # tokens per training block and per perplexity window (notebook 08's setting)
_TINYGPT = {}


def fresh_tinygpt():
    """(a deep copy of the course's TinyGPT, its tokenizer): loaded once per process, copied per run."""
    if "model" not in _TINYGPT:
        _TINYGPT["model"], _TINYGPT["tok"] = models.load_tinygpt()
    return copy.deepcopy(_TINYGPT["model"]), _TINYGPT["tok"]


def tinygpt_with(spec, seed):
    """A fresh TinyGPT with one method injected (a Spec, or its dict); SBoRA's columns from `seed`."""
    spec = Spec.of(spec)
    runtime.seed_everything(seed)   # the adapter's random init (LoRA's A, MoRA's none, SBoRA's columns)
    model, tok = fresh_tinygpt()
    method, kwargs = spec.method, spec.arguments()
    if method == "lora_attention":   # LoRA on the lecture's W_q / W_k / W_v / W_o, split out of c_attn
        inject_gpt2_attention(model, **kwargs)
    elif method == "adapter":        # Houlsby et al. train the LayerNorms with the adapters
        add_adapters(model, spec.get("bottleneck"), modules_to_save=["ln_1", "ln_2", "ln_f"])
    elif method == "top":            # the last k blocks and the final LayerNorm (lm_head is the embedding)
        freeze_all_but_top(model, spec.get("k"), head=("ln_f",))
    elif method == "full":
        model.requires_grad_(True)
    else:                            # every linear layer of the blocks, one injection for every other method
        if method == "sbora":
            kwargs["generator"] = torch.Generator().manual_seed(seed)
        inject(model, method, GPT2_TARGETS, **kwargs)
    return model, tok


def with_settings(settings, sizes, **extra):
    """The three sizes of a TinyGPT experiment ({size: config}), each with the same settings and `extra` keys
    (lr_from, lr_fixed); full size sweeps the rates unless one is fixed."""
    sizes = {size: {**cfg, "settings": settings, **extra} for size, cfg in sizes.items()}
    if "lr_fixed" not in extra:
        sizes["full"]["lr_sweep"] = "run"
    return sizes


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


def run_record(model, history, metric, steps):
    """One training run as an experiment stores it: the last value of `metric`, the trainable weights, and the
    curves (the eval metric, and the training loss as a running mean read at 20 points)."""
    eval_steps, values = history.metric(metric)
    every = max(1, steps // 20)
    return {metric: values[-1], "trainable": count_params(model, trainable_only=True),
            "curve": {"eval_steps": eval_steps, metric: values, "loss_steps": history.steps[every - 1::every],
                      "loss": history.smoothed_losses(every)[every - 1::every]}}


def tinygpt_runs(config, seed, run_one, metric):
    """Every setting of a TinyGPT experiment for one seed, run_one(spec, lr, seed, config) -> (model, run):
    ({setting: (model, run)}, {"metric", "curves", "facts": trainable weights and their share})."""
    runs = {s: run_one(spec, config["lr"][s], seed, config) for s, spec in config["settings"].items()}
    total = {s: count_params(m) for s, (m, _) in runs.items()}
    return runs, {"metric": {s: r[metric] for s, (_, r) in runs.items()},
                  "curves": {s: r["curve"] for s, (_, r) in runs.items()},
                  "facts": {"trainable": {s: r["trainable"] for s, (_, r) in runs.items()},
                            "trainable_percent": {s: round(100 * r["trainable"] / total[s], 4)
                                                  for s, (_, r) in runs.items()}}}


# ---------------------------------------------------------------- memorizing UUID pairs (C8)

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
    return {"char_acc": acc[-1], "trainable": count_params(model, trainable_only=True),
            "curve": {"eval_steps": steps, "char_acc": acc, "loss_steps": history.steps, "loss": history.losses},
            "generation": {"prompt": pairs[0]["prompt"], "answer": pairs[0]["answer"], "before": before, "after": after},
            "wall_s": time.perf_counter() - start}


def uuid_prepare(config, size, name):
    return tiny_sweep(config, name, lambda s, lr: -memorize_uuids(config["settings"][s], lr, 0, config)["char_acc"]), {}


def run_uuids(config, seed):
    """Every setting memorizes the pairs: character accuracy, curves, trainable weights, and the first seed's
    generation of the first pair before and after training."""
    runs = {s: memorize_uuids(spec, config["lr"][s], seed, config) for s, spec in config["settings"].items()}
    return {"metric": {s: r["char_acc"] for s, r in runs.items()}, "curves": {s: r["curve"] for s, r in runs.items()},
            "facts": {"trainable": {s: r["trainable"] for s, r in runs.items()}},
            "examples": {"generations": {s: r["generation"] for s, r in runs.items()}}}


# ---------------------------------------------------------------- two-digit arithmetic (C3, C4, C9; C10 merges it)

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


def arithmetic_prepare(config, size, name):
    return tiny_sweep(config, name,
                      lambda s, lr: learn_arithmetic(config["settings"][s], lr, 0, config)[1]["answer_loss"]), {}


def run_arithmetic(config, seed):
    """Every setting learns addition: held-out answer loss, curves, trainable weights."""
    return tinygpt_runs(config, seed, learn_arithmetic, "answer_loss")[1]


def touched_columns(model):
    """The most input columns (FA) of any adapted layer that its ΔW changes: r for SBoRA-FA (SBoRA §3)."""
    return max(int((layer.delta_weight().detach().abs().sum(0) > 0).sum()) for _, layer in adapter_layers(model))


def run_arithmetic_columns(config, seed):
    """run_arithmetic, and how many input columns each setting's ΔW touches."""
    runs, measured = tinygpt_runs(config, seed, learn_arithmetic, "answer_loss")
    measured["facts"]["touched_columns"] = {s: touched_columns(m) for s, (m, _) in runs.items()}
    return measured


# ---------------------------------------------------------------- a new domain: legal English (C7)

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
                                                                  validation=True)[1]["perplexity"]), {}


def run_domain(config, seed):
    """Every setting adapts to the licenses: test perplexity, curves, trainable weights."""
    return tinygpt_runs(config, seed, adapt_to_domain, "perplexity")[1]
