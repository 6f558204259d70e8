"""Pretrain TinyGPT, the course's own small causal language model, on the Python-docs corpus.

    python -m peftcourse.pretrain --out data/models/tinygpt_v2       # the CPU preset (the course's model)
    python -m peftcourse.pretrain --out data/models/tinygpt_v2 --resume   # continue from the last checkpoint
    python -m peftcourse.pretrain --preset gpu --out /tmp/tinygpt_gpu     # bf16, larger model, one GPU
    PEFTCOURSE_FAST=1 python -m peftcourse.pretrain --out /tmp/tiny      # 3 steps, a smoke test

Steps: train a byte-level BPE tokenizer (GPT-2's scheme; digits split one per token as in LLaMA, so
numbers and UUIDs tokenize regularly), build a GPT-2-architecture model, train it with THE course
loop (peftcourse.train.train), save it in Hugging Face format with a model card and a loss curve.

Checkpoints (safetensors + JSON, no pickle) go to <out>/checkpoints/ every `checkpoint_every` steps:
weights, optimizer moments, schedule position, random state and the run's configuration. Batches are
a function of (seed, step), so `--resume` continues exactly where the interrupted run stopped.
"""
import argparse
import bz2
import json
import lzma
import math
import os
import platform
import shutil
import tempfile
import time

import torch

from .data import DOC_SEP, mean_loss, token_blocks
from .runtime import ROOT, count_params, eval_mode, file_sha256, get_device, is_fast, seed_everything, versions
from .train import train

CORPUS_DIR = os.path.join(ROOT, "data", "corpus")
EOS, PAD = "<|endoftext|>", "<|pad|>"
PROMPTS = ["The return value is", "This function", "If the file", "A list is", "Raise ValueError if"]

# `cpu`: the course's model. Size and per-token cost as TinyGPT v1 (every notebook fine-tunes it several
# times on a 2-core CPU within minutes); what improves is the data (a 5x larger corpus) and the training
# (>= 10x the tokens, no dropout: at this scale the model underfits, dropout only slows it down).
# `gpu`: a stronger model for one modern GPU in minutes (bf16 autocast); dropout 0.1 because it sees the
# 3 M-token corpus about ten times.
PRESETS = {
    "cpu": dict(vocab_size=4096, n_embd=192, n_layer=4, n_head=4, n_positions=256, block_size=256,
                batch_size=8, lr=2e-3, warmup=100, steps=1500, dropout=0.0, autocast=None),
    "gpu": dict(vocab_size=8192, n_embd=384, n_layer=6, n_head=6, n_positions=512, block_size=512,
                batch_size=32, lr=1e-3, warmup=200, steps=2000, dropout=0.1, autocast="bfloat16"),
}
FAST = dict(steps=3)
AUTOCAST = {None: None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def read_corpus(split, max_chars=None):
    """Documents of data/corpus/pydocs_{split}.txt (split: 'train' or 'val')."""
    with open(corpus_path(split), encoding="utf-8") as f:
        text = f.read(max_chars)
    return [d.strip() for d in text.split(DOC_SEP) if d.strip()]


def corpus_path(split):
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    path = os.path.join(CORPUS_DIR, f"pydocs_{split}.txt")
    if not os.path.exists(path):
        raise FileNotFoundError(f"corpus file {path} is missing: rebuild it with `python data/build_corpus.py corpus`")
    return path


def train_tokenizer(docs, vocab_size=4096):
    """Byte-level BPE (any byte sequence encodes; nothing is ever unknown) with eos and pad tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    if not isinstance(vocab_size, int) or vocab_size < 300:
        raise ValueError(f"vocab_size must be an int >= 300 (256 bytes + merges + specials), got {vocab_size!r}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),           # 1 digit = 1 token, as in LLaMA
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(docs, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, unk_token=EOS,
                                   pad_token=PAD, model_max_length=None)


def make_model(vocab_size, n_embd=192, n_layer=4, n_head=4, n_positions=256, eos_id=0, pad_id=1, dropout=0.1):
    """A GPT-2-architecture causal LM (transformers' GPT2LMHeadModel), randomly initialised."""
    from transformers import GPT2Config, GPT2LMHeadModel
    if n_embd % n_head:
        raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
    config = GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                        n_head=n_head, bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=pad_id,
                        resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout)
    return GPT2LMHeadModel(config)


def batch_stream(blocks, batch_size, seed, start=0):
    """Batches start, start+1, ... of a run: epoch e visits the blocks in a permutation seeded by
    (seed, e), so batch k is the same whether or not the run was interrupted before it."""
    per_epoch = len(blocks) // batch_size
    if per_epoch == 0:
        raise ValueError(f"{len(blocks)} blocks do not fill one batch of {batch_size}")
    k, epoch, order = start, None, None
    while True:
        e, i = divmod(k, per_epoch)
        if e != epoch:
            epoch, order = e, torch.randperm(len(blocks), generator=torch.Generator().manual_seed(seed * 1_000_003 + e))
        x = blocks[order[i * batch_size:(i + 1) * batch_size]]
        yield {"input_ids": x, "labels": x}
        k += 1


def unigram_loss(train_blocks, val_blocks, vocab_size):
    """Cross-entropy of a unigram model (add-one smoothed token frequencies): the baseline to beat."""
    counts = torch.bincount(train_blocks.flatten(), minlength=vocab_size).double() + 1
    logp = (counts / counts.sum()).log()
    return -logp[val_blocks.flatten()].mean().item()


# ---------------------------------------------------------------- held-out bits per byte

@torch.no_grad()
def bits_per_byte(model, tokenizer, text, batch_size=16, window=None, stride=None, sep_id=None):
    """Held-out bits per byte of a corpus text: the total next-token cross-entropy (nats) of all its
    tokens / ln 2 / its UTF-8 bytes. Documents are tokenized as in training (eos before and after each);
    windows of n_positions tokens overlap by half, so every token but the first few has at least half a
    window of context.

    For a model with a long context (SmolLM2: 8,192 positions) window and stride set the cost: every
    token but the first few then has at least window - stride tokens of context. sep_id: the token
    that separated documents in the model's own training (default: the tokenizer's eos, TinyGPT's)."""
    sep = tokenizer.eos_token_id if sep_id is None else sep_id
    ids = [sep]
    for doc in (d.strip() for d in text.split(DOC_SEP)):
        if doc:
            ids += tokenizer(doc)["input_ids"] + [sep]
    ids = torch.tensor(ids)
    n = window or model.config.n_positions
    stride = stride or n // 2
    if not 0 < stride <= n:
        raise ValueError(f"stride must be in 1..window={n}, got {stride}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    spans, done = [], 1            # (window start, first target scored); target t is ids[t]
    for s in range(0, len(ids) - 1, stride):
        end = min(s + n, len(ids) - 1)                    # inputs ids[s:end] predict ids[s+1:end+1]
        spans.append((s, end, done))
        done = end + 1
        if done >= len(ids):
            break
    total = 0.0
    for i in range(0, len(spans), batch_size):
        group = spans[i:i + batch_size]
        width = max(end - s for s, end, _ in group)
        x = torch.full((len(group), width), sep)
        for row, (s, end, _) in enumerate(group):
            x[row, :end - s] = ids[s:end]
        logp = model(input_ids=x.to(device)).logits.float().log_softmax(-1).cpu()
        for row, (s, end, first) in enumerate(group):
            targets = ids[first:end + 1]
            total -= logp[row, first - 1 - s:end - s].gather(-1, targets[:, None]).sum().item()
    model.train(was_training)
    return total / math.log(2) / len(text.encode("utf-8"))


COMPRESSORS = {"xz": lambda b: lzma.compress(b, preset=9),     # = `xz -9`
               "bz2": lambda b: bz2.compress(b, 9)}            # = `bzip2 -9`


def compressor_bits_per_byte(train_text, val_text, method):
    """Held-out bits per byte of a general-purpose compressor that has seen the training text:
    (size(c(train + val)) - size(c(train))) * 8 / bytes(val)."""
    if method not in COMPRESSORS:
        raise ValueError(f"method must be one of {sorted(COMPRESSORS)}, got {method!r}")
    train_b, val_b = train_text.encode("utf-8"), val_text.encode("utf-8")
    c = COMPRESSORS[method]
    return (len(c(train_b + val_b)) - len(c(train_b))) * 8 / len(val_b)


# ---------------------------------------------------------------- checkpoints (safetensors + json)

def latest_checkpoint(ckpt_dir):
    """Path of the highest-step complete checkpoint (step-NNNNNNN/), or None."""
    if not os.path.isdir(ckpt_dir):
        return None
    steps = sorted(d for d in os.listdir(ckpt_dir) if d.startswith("step-") and not d.endswith(".tmp"))
    return os.path.join(ckpt_dir, steps[-1]) if steps else None


def save_checkpoint(ckpt_dir, step, model, opt, sched, run):
    """Write checkpoints/step-NNNNNNN/ atomically (a .tmp folder renamed when complete), keep the last two."""
    from safetensors.torch import save_file
    final = os.path.join(ckpt_dir, f"step-{step:07d}")
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    save_file({k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"},  # tied
              os.path.join(tmp, "model.safetensors"))
    osd = opt.state_dict()
    tensors = {f"{i}.{k}": v for i, s in osd["state"].items() for k, v in s.items()}
    tensors["rng"] = torch.get_rng_state()
    save_file(tensors, os.path.join(tmp, "optimizer.safetensors"))
    with open(os.path.join(tmp, "state.json"), "w") as f:
        json.dump({**run, "step": step, "param_groups": osd["param_groups"], "scheduler": sched.state_dict()}, f)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in sorted(d for d in os.listdir(ckpt_dir) if d.startswith("step-") and not d.endswith(".tmp"))[:-2]:
        shutil.rmtree(os.path.join(ckpt_dir, old))


def load_checkpoint(path, model):
    """Load weights into `model`; return (state.json dict, train() resume state). Clear errors name the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    hint = "delete the folder to start afresh, or resume from an intact copy"
    for name in ("state.json", "model.safetensors", "optimizer.safetensors"):
        if not os.path.isfile(os.path.join(path, name)):
            raise FileNotFoundError(f"checkpoint {path} is incomplete: {name} is missing; {hint}")
    try:
        with open(os.path.join(path, "state.json")) as f:
            meta = json.load(f)
        weights = load_file(os.path.join(path, "model.safetensors"))
        tensors = load_file(os.path.join(path, "optimizer.safetensors"))
    except (ValueError, SafetensorError, OSError) as err:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"checkpoint {path} is corrupt ({err}); {hint}") from None
    weights["lm_head.weight"] = weights["transformer.wte.weight"]
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise ValueError(f"checkpoint {path} does not match the model ({str(err)[:200]}); {hint}") from None
    state = {}
    for key, value in tensors.items():
        if key != "rng":
            i, name = key.split(".", 1)
            state.setdefault(int(i), {})[name] = value
    return meta, {"optimizer": {"state": state, "param_groups": meta["param_groups"]},
                  "scheduler": meta["scheduler"], "rng": tensors["rng"]}


def check_same_config(saved, given, path):
    """A resumed run must be the run that was interrupted: name every setting that differs."""
    diff = sorted(k for k in set(saved) | set(given) if saved.get(k) != given.get(k))
    if diff:
        detail = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {given.get(k)!r}" for k in diff)
        raise ValueError(f"cannot resume from {path}: the configuration differs ({detail}); rerun with the "
                         "checkpoint's settings, or delete its checkpoints/ folder to start a new run")


# ---------------------------------------------------------------- the run

def hardware(device):
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    n = torch.get_num_threads()
    return f"CPU: {name}, {n} thread{'s' if n != 1 else ''}"


def samples(model, tokenizer, prompts=PROMPTS, max_new_tokens=40, seed=0):
    """Sampled continuations (temperature 0.8, top-k 40), seeded so the card is reproducible."""
    device = next(model.parameters()).device
    out = []
    with eval_mode(model):   # no dropout while sampling; the caller's mode comes back afterwards
        for i, prompt in enumerate(prompts):
            torch.manual_seed(seed + i)
            ids = tokenizer(prompt, return_tensors="pt").to(device)
            room = model.config.n_positions - ids["input_ids"].shape[1]  # never run past the position table
            gen = model.generate(**ids, max_new_tokens=min(max_new_tokens, room), do_sample=True, temperature=0.8,
                                 top_k=40, pad_token_id=tokenizer.pad_token_id)
            out.append(tokenizer.decode(gen[0], skip_special_tokens=True))
    return out


def plot_curve(losses, evals, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    steps, values = zip(*losses)
    smooth = [sum(values[max(0, i - 49):i + 1]) / len(values[max(0, i - 49):i + 1]) for i in range(len(values))]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, smooth, label="train (running mean of 50 steps)")
    if evals:
        ax.plot([e["step"] for e in evals], [e["val_loss"] for e in evals], "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title("TinyGPT pretraining on the Python docs corpus")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def resolve_config(preset="cpu", **overrides):
    """The preset's settings with the given (non-None) overrides; unknown names fail."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: use one of {sorted(PRESETS)}")
    cfg = dict(PRESETS[preset], preset=preset, seed=0, init_from=None)
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}: known are {sorted(cfg)}")
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    if not isinstance(cfg["steps"], int) or cfg["steps"] <= 0:
        raise ValueError(f"steps must be a positive int, got {cfg['steps']!r}")
    if not 0 < cfg["block_size"] <= cfg["n_positions"]:
        raise ValueError(f"block_size ({cfg['block_size']}) must be between 1 and n_positions ({cfg['n_positions']})")
    if cfg["autocast"] not in AUTOCAST:
        raise ValueError(f"autocast must be one of {list(AUTOCAST)}, got {cfg['autocast']!r}")
    return cfg


def pretrain(out_dir, preset="cpu", resume=False, finish=False, checkpoint_every=200, eval_every=None,
             max_chars=None, compressors=True, progress=True, **overrides):
    """Tokenizer + model + training (+ resume) + measuring + saving. Returns a dict of what was measured.

    finish: measure and save the model of the last checkpoint as it is, without training on (a run
    that cannot complete in the time there is; the card then says at which step it stopped).

    overrides: any preset setting (steps, n_embd, lr, ...). max_chars: read only that much of each corpus
    file (smoke tests). compressors: also measure xz and bz2 on the same text (slow on the full corpus).
    """
    cfg = resolve_config(preset, **overrides)
    if not isinstance(checkpoint_every, int) or checkpoint_every <= 0:
        raise ValueError(f"checkpoint_every must be a positive int, got {checkpoint_every!r}")
    from transformers import PreTrainedTokenizerFast
    ckpt_dir = os.path.join(out_dir, "checkpoints")
    run = {"config": {**cfg, "max_chars": max_chars,
                      "corpus_sha256": {s: file_sha256(corpus_path(s)) for s in ("train", "val")}}}
    if cfg["init_from"] is not None:   # continued pretraining: a saved model's tokenizer and weights, a new schedule
        run["config"]["init_sha256"] = file_sha256(os.path.join(cfg["init_from"], "model.safetensors"))
    last = latest_checkpoint(ckpt_dir)
    resume = resume or finish
    if resume and last is None:
        raise FileNotFoundError(f"nothing to resume: no checkpoint (step-NNNNNNN/ folder) in {ckpt_dir}")
    if not resume and last is not None:
        raise FileExistsError(f"{ckpt_dir} holds checkpoints of an earlier run: pass --resume to continue it, "
                              "or delete that folder to start afresh")
    if resume:  # settings first: nothing is loaded or changed when they differ
        try:
            with open(os.path.join(last, "state.json")) as f:
                saved = json.load(f)["config"]
        except FileNotFoundError:
            raise FileNotFoundError(f"checkpoint {last} is incomplete: state.json is missing") from None
        except (ValueError, KeyError) as err:
            raise ValueError(f"checkpoint {last}/state.json is corrupt ({err}): delete {last} to fall back "
                             "to the one before, or the checkpoints/ folder to start afresh") from None
        check_same_config(saved, run["config"], last)
    seed_everything(cfg["seed"])
    device = get_device()
    t0 = time.perf_counter()
    texts = {}
    for split in ("train", "val"):
        with open(corpus_path(split), encoding="utf-8") as f:
            texts[split] = f.read(max_chars)
    train_docs, val_docs = ([d.strip() for d in texts[s].split(DOC_SEP) if d.strip()] for s in ("train", "val"))
    tok_dir = os.path.join(ckpt_dir, "tokenizer")
    init = cfg["init_from"]
    if resume or init is not None:
        tokenizer = PreTrainedTokenizerFast.from_pretrained(tok_dir if resume else init, local_files_only=True)
        if not resume:
            os.makedirs(ckpt_dir, exist_ok=True)
            tokenizer.save_pretrained(tok_dir)
    else:
        tokenizer = train_tokenizer(train_docs, cfg["vocab_size"])
        os.makedirs(ckpt_dir, exist_ok=True)
        tokenizer.save_pretrained(tok_dir)
    train_blocks = token_blocks(tokenizer, train_docs, cfg["block_size"])
    val_blocks = token_blocks(tokenizer, val_docs, cfg["block_size"])
    model = make_model(len(tokenizer), cfg["n_embd"], cfg["n_layer"], cfg["n_head"], cfg["n_positions"],
                       tokenizer.eos_token_id, tokenizer.pad_token_id, dropout=cfg["dropout"])
    n_params = count_params(model)
    if init is not None and not resume:
        from safetensors.torch import load_file
        weights = load_file(os.path.join(init, "model.safetensors"))
        weights.setdefault("lm_head.weight", weights["transformer.wte.weight"])
        model.load_state_dict(weights)
    start, state = 0, None
    run.update(losses=[], evals=[], train_time_s=0.0)
    if resume:
        meta, state = load_checkpoint(last, model)
        start = meta["step"]
        run.update(losses=meta["losses"], evals=meta["evals"], train_time_s=meta["train_time_s"])
        print(f"resuming from {last} (step {start} of {cfg['steps']})")
    steps = cfg["steps"]
    eval_every = eval_every or max(1, steps // 15)
    done_before = dict(losses=len(run["losses"]), evals=len(run["evals"]), time=run["train_time_s"])

    def on_step(step, history, opt, sched):
        if step % checkpoint_every == 0 or step == steps:
            run["losses"] = run["losses"][:done_before["losses"]] + [[r["step"], r["loss"]] for r in history.records]
            run["evals"] = run["evals"][:done_before["evals"]] + history.evals
            run["train_time_s"] = done_before["time"] + history.wall_time
            save_checkpoint(ckpt_dir, step, model, opt, sched, run)

    if start < steps and not finish:
        train(model, batch_stream(train_blocks, cfg["batch_size"], cfg["seed"], start), steps=steps, lr=cfg["lr"],
              schedule="cosine", warmup=min(cfg["warmup"], steps // 10), weight_decay=0.1, seed=cfg["seed"],
              device=device, progress=progress, desc="pretrain", eval_every=eval_every,
              eval_fn=lambda m: {"val_loss": mean_loss(m, val_blocks[:32])}, autocast=AUTOCAST[cfg["autocast"]],
              start_step=start, state=state, on_step=on_step)
        start = steps   # trained to the end
    val_loss = mean_loss(model, val_blocks)
    c = run["config"]
    result = {"n_params": n_params, "steps": start, "scheduled_steps": steps,
              "tokens_seen": start * cfg["batch_size"] * cfg["block_size"],
              "train_tokens": train_blocks.numel(), "val_tokens": val_blocks.numel(),
              "val_loss": val_loss, "val_ppl": math.exp(val_loss),
              "unigram_ppl": math.exp(unigram_loss(train_blocks, val_blocks, len(tokenizer))),
              "bits_per_byte": bits_per_byte(model, tokenizer, texts["val"]),
              "val_bytes": len(texts["val"].encode("utf-8")), "max_chars": max_chars,
              "train_time_s": run["train_time_s"], "resumed": resume, "earlier": _earlier(init),
              "hardware": hardware(device), "config": {**c, "vocab_size": len(tokenizer)},
              "losses": run["losses"], "evals": run["evals"]}
    if compressors:
        for method in COMPRESSORS:
            result[f"{method}_bits_per_byte"] = compressor_bits_per_byte(texts["train"], texts["val"], method)
    result["samples"] = samples(model, tokenizer, max_new_tokens=8 if is_fast() else 48)
    result["wall_time_s"] = time.perf_counter() - t0
    # fine-tuning in the notebooks uses the config's dropout: the usual GPT-2 value, whatever pretraining used
    for name in ("resid_pdrop", "embd_pdrop", "attn_pdrop"):
        setattr(model.config, name, 0.1)
    save(model, tokenizer, result, out_dir)
    return result


def _earlier(init):
    """What the model this run continues had seen (its metrics.json), for the card's totals."""
    if init is None or not os.path.isfile(os.path.join(init, "metrics.json")):
        return None
    with open(os.path.join(init, "metrics.json")) as f:
        m = json.load(f)
    out = {k: m.get(k) for k in ("steps", "tokens_seen", "train_time_s", "hardware", "config")}
    for k in ("steps", "tokens_seen", "train_time_s"):   # a continuation of a continuation: all runs before
        out[k] += (m.get("earlier") or {}).get(k, 0)
    return out


def save(model, tokenizer, result, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    plot_curve(result["losses"], result["evals"], os.path.join(out_dir, "loss_curve.png"))
    with open(os.path.join(out_dir, "README.md"), "w", encoding="utf-8") as f:
        f.write(model_card(result))
    with open(os.path.join(out_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump({k: v for k, v in result.items() if k not in ("losses",)}, f, indent=1)


def model_card(r):
    c = r["config"]
    v = versions()
    gens = "\n".join(f"- `{s!r}`" for s in r["samples"])
    measured_on = (f"the whole of `data/corpus/pydocs_val.txt` ({r['val_bytes']:,} bytes)" if r["max_chars"] is None
                   else f"the first {r['max_chars']:,} characters of `pydocs_val.txt` ({r['val_bytes']:,} bytes)")
    stopped = "" if r["steps"] == r["scheduled_steps"] else f" of {r['scheduled_steps']:,} scheduled (stopped early)"
    e = r.get("earlier")
    earlier = "" if not e else (f" + {e['tokens_seen']:,} in the runs it continues ({e['steps']:,} steps, "
                                f"{e['train_time_s'] / 60:.1f} min on {e['hardware']}): "
                                f"**{r['tokens_seen'] + e['tokens_seen']:,}** in all")
    if "xz_bits_per_byte" in r:
        compress = (f"| xz -9, given the training text | {r['xz_bits_per_byte']:.3f} bits/byte "
                    f"(TinyGPT / xz = **{r['bits_per_byte'] / r['xz_bits_per_byte']:.2f}**) |\n"
                    f"| bzip2 -9, given the training text | {r['bz2_bits_per_byte']:.3f} bits/byte |\n")
    else:
        compress = ""
    return f"""# TinyGPT

The course's own small causal language model: transformers' GPT-2 architecture, pretrained from
scratch by `python -m peftcourse.pretrain` (preset `{c['preset']}`) on the Python-docs corpus in `data/corpus/`.
Load it offline with `peftcourse.models.load_tinygpt(path)` or `AutoModelForCausalLM.from_pretrained(path)`.

| | |
|---|---|
| corpus | Python 3.11 documentation (Debian python3.11-doc reST sources as text) + standard-library docstrings (PSF License), see `data/README.md` |
| training tokens | {r['train_tokens']:,} (validation: {r['val_tokens']:,}, held-out pages/modules) |
| parameters | {r['n_params']:,} |
| architecture | GPT-2: {c['n_layer']} layers, {c['n_head']} heads, d_model {c['n_embd']}, context {c['n_positions']}, tied embeddings; dropout {c['dropout']} in pretraining, 0.1 in the saved config (for fine-tuning) |
| tokenizer | byte-level BPE, vocab {c['vocab_size']} (digits one per token); eos `{EOS}` = 0, pad `{PAD}` = 1 |
| steps | {r['steps']:,}{stopped} (batch {c['batch_size']} x {c['block_size']} tokens, AdamW lr {c['lr']}, warmup {c['warmup']} + cosine to 10%, weight decay 0.1, autocast {c['autocast']}, seed {c['seed']}) |
| tokens seen | {r['tokens_seen']:,}{earlier} |
| hardware | {r['hardware']} |
| wall time | {r['train_time_s'] / 60:.1f} min of training steps (over all resumed parts); this last part {r['wall_time_s'] / 60:.1f} min in all |
| validation loss | {r['val_loss']:.3f} nats/token, perplexity {r['val_ppl']:.1f} (unigram baseline: {r['unigram_ppl']:.1f}) |
| **held-out bits per byte** | **{r['bits_per_byte']:.3f}** on {measured_on} |
{compress}| software | torch {v['torch']}, transformers {v['transformers']}, python {v['python']} |

Bits per byte: the model's total next-token cross-entropy over the held-out text / ln 2 / its bytes
(windows of {c['n_positions']} tokens overlapping by half). A compressor's: size(compress(train + val)) -
size(compress(train)), in bits, / bytes of val, i.e. the compressor may use everything in the training
text. `python data/compress_baseline.py` recomputes all three.

![loss curve](loss_curve.png)

## Sample generations (temperature 0.8, top-k 40, seed 0, 1, ... per prompt)

{gens}

## Intended use

Teaching: a model small enough to fine-tune on a laptop CPU in minutes, so that LoRA, DoRA, MoRA and
the other methods of the course can be compared on a real pretrained language model. It writes
Python-documentation-like English; it knows little else and its statements are not reliable.
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=None, help="output folder (required outside fast mode, so the committed "
                   "model is never overwritten by accident; in fast mode a temporary folder)")
    p.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in <out>/checkpoints/")
    p.add_argument("--finish", action="store_true", help="measure and save the last checkpoint's model "
                   "without training on (when a run cannot complete in the time there is)")
    p.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    for name in ("steps", "vocab_size", "n_embd", "n_layer", "n_head", "n_positions", "block_size",
                 "batch_size", "warmup", "seed"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=None, help="overrides the preset")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--dropout", type=float, default=None)
    p.add_argument("--init-from", default=None, help="continue pretraining a saved model folder "
                   "(its tokenizer and weights; a new schedule)")
    a = p.parse_args(argv)
    fast = is_fast()
    if a.out is None and not fast:
        p.error("--out is required (e.g. --out data/models/tinygpt_v2)")
    out = a.out or tempfile.mkdtemp(prefix="tinygpt_")
    torch.set_num_threads(a.threads or os.cpu_count() or 1)
    overrides = {k: getattr(a, k) for k in ("steps", "vocab_size", "n_embd", "n_layer", "n_head", "n_positions",
                                            "block_size", "batch_size", "warmup", "seed", "lr", "dropout", "init_from")}
    if fast:
        overrides["steps"] = overrides["steps"] or FAST["steps"]
    r = pretrain(out, preset=a.preset, resume=a.resume, finish=a.finish, checkpoint_every=a.checkpoint_every,
                 max_chars=60_000 if fast else None, **overrides)
    xz = f", xz {r['xz_bits_per_byte']:.3f}" if "xz_bits_per_byte" in r else ""
    print(f"saved to {out}: {r['n_params']:,} params, {r['steps']} steps, {r['tokens_seen']:,} tokens, "
          f"val loss {r['val_loss']:.3f}, {r['bits_per_byte']:.3f} bits/byte{xz}, "
          f"{r['train_time_s']:.0f} s of training on {r['hardware']}")
    return r


if __name__ == "__main__":
    main()
