"""Pretrain TinyGPT, the course's own small causal language model, on the Python-docs corpus.

    python -m peftcourse.pretrain                    # the committed model: data/models/tinygpt/
    python -m peftcourse.pretrain --steps 50 --out /tmp/tiny
    PEFTCOURSE_FAST=1 python -m peftcourse.pretrain --out /tmp/tiny   # 3 steps, a smoke test

Steps: train a byte-level BPE tokenizer (GPT-2's scheme; digits split one per token as in LLaMA, so
numbers and UUIDs tokenize regularly), build a GPT-2-architecture model, train it with THE course
loop (peftcourse.train.train), save it in Hugging Face format with a model card and a loss curve.
"""
import argparse
import math
import os
import platform
import tempfile
import time

import torch

from .runtime import get_device, is_fast, seed_everything, versions
from .train import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS_DIR = os.path.join(ROOT, "data", "corpus")
DEFAULT_OUT = os.path.join(ROOT, "data", "models", "tinygpt")
DOC_SEP = "\n<|endoftext|>\n"   # how data/build_corpus.py separates documents
EOS, PAD = "<|endoftext|>", "<|pad|>"
PROMPTS = ["The return value is", "This function", "If the file", "A list is", "Raise ValueError if"]


def read_corpus(split, max_chars=None):
    """Documents of data/corpus/pydocs_{split}.txt (split: 'train' or 'val')."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    path = os.path.join(CORPUS_DIR, f"pydocs_{split}.txt")
    if not os.path.exists(path):
        raise FileNotFoundError(f"corpus file {path} is missing: rebuild it with `python data/build_corpus.py`")
    with open(path, encoding="utf-8") as f:
        text = f.read(max_chars)
    return [d.strip() for d in text.split(DOC_SEP) if d.strip()]


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


def make_model(vocab_size, n_embd=192, n_layer=4, n_head=4, n_positions=256, eos_id=0, pad_id=1):
    """A GPT-2-architecture causal LM (transformers' GPT2LMHeadModel), randomly initialised."""
    from transformers import GPT2Config, GPT2LMHeadModel
    if n_embd % n_head:
        raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
    config = GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                        n_head=n_head, bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=pad_id)
    return GPT2LMHeadModel(config)


def token_blocks(tokenizer, docs, block_size):
    """Concatenate the documents (each ended by eos) and cut the stream into (n, block_size) blocks."""
    ids = []
    for doc in docs:
        ids += tokenizer(doc)["input_ids"] + [tokenizer.eos_token_id]
    n = len(ids) // block_size
    if n == 0:
        raise ValueError(f"{len(ids)} tokens do not fill one block of {block_size}")
    return torch.tensor(ids[: n * block_size]).view(n, block_size)


def lm_batches(blocks, batch_size, seed=0):
    """A DataLoader of {'input_ids', 'labels'} dicts, reshuffled every epoch from a seeded generator."""
    from torch.utils.data import DataLoader
    return DataLoader(blocks, batch_size=batch_size, shuffle=True, drop_last=True,
                      generator=torch.Generator().manual_seed(seed),
                      collate_fn=lambda rows: {"input_ids": torch.stack(rows), "labels": torch.stack(rows)})


@torch.no_grad()
def mean_loss(model, blocks, batch_size=16):
    """Token-averaged next-token cross-entropy (nats) of the model on the blocks."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(blocks), batch_size):
        x = blocks[i:i + batch_size].to(device)
        total += model(input_ids=x, labels=x).loss.item() * x.numel()
        count += x.numel()
    model.train(was_training)
    return total / count


def unigram_loss(train_blocks, val_blocks, vocab_size):
    """Cross-entropy of a unigram model (add-one smoothed token frequencies): the baseline to beat."""
    counts = torch.bincount(train_blocks.flatten(), minlength=vocab_size).double() + 1
    logp = (counts / counts.sum()).log()
    return -logp[val_blocks.flatten()].mean().item()


def hardware(device):
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU: {name}, {torch.get_num_threads()} threads"


def samples(model, tokenizer, prompts=PROMPTS, max_new_tokens=40, seed=0):
    """Sampled continuations (temperature 0.8, top-k 40), seeded so the card is reproducible."""
    device = next(model.parameters()).device
    model.eval()
    out = []
    for i, prompt in enumerate(prompts):
        torch.manual_seed(seed + i)
        ids = tokenizer(prompt, return_tensors="pt").to(device)
        room = model.config.n_positions - ids["input_ids"].shape[1]  # never run past the position table
        gen = model.generate(**ids, max_new_tokens=min(max_new_tokens, room), do_sample=True, temperature=0.8, top_k=40,
                             pad_token_id=tokenizer.pad_token_id)
        out.append(tokenizer.decode(gen[0], skip_special_tokens=True))
    return out


def plot_curve(history, evals, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(history.steps, history.smoothed_losses(20), label="train (running mean of 20 steps)")
    if evals:
        ax.plot([e["step"] for e in evals], [e["val_loss"] for e in evals], "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title("TinyGPT pretraining on the Python docs corpus")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pretrain(out_dir=DEFAULT_OUT, steps=300, vocab_size=4096, n_embd=192, n_layer=4, n_head=4,
             n_positions=256, block_size=256, batch_size=8, lr=2e-3, warmup=30, seed=0, max_chars=None,
             progress=True):
    """Tokenizer + model + training + saving. Returns a dict of what was measured."""
    if not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not 0 < block_size <= n_positions:
        raise ValueError(f"block_size ({block_size}) must be between 1 and n_positions ({n_positions})")
    seed_everything(seed)
    device = get_device()
    t0 = time.perf_counter()
    train_docs, val_docs = read_corpus("train", max_chars), read_corpus("val", max_chars)
    tokenizer = train_tokenizer(train_docs, vocab_size)
    train_blocks = token_blocks(tokenizer, train_docs, block_size)
    val_blocks = token_blocks(tokenizer, val_docs, block_size)
    model = make_model(len(tokenizer), n_embd, n_layer, n_head, n_positions,
                       tokenizer.eos_token_id, tokenizer.pad_token_id)
    n_params = sum(p.numel() for p in model.parameters())
    eval_every = max(1, steps // 12)
    history = train(model, lm_batches(train_blocks, batch_size, seed), steps=steps, lr=lr,
                    schedule="cosine", warmup=min(warmup, steps // 10), weight_decay=0.1, seed=seed,
                    device=device, progress=progress, desc="pretrain", eval_every=eval_every,
                    eval_fn=lambda m: {"val_loss": mean_loss(m, val_blocks[:32])})
    val_loss = mean_loss(model, val_blocks)
    result = {"n_params": n_params, "steps": steps, "tokens_seen": steps * batch_size * block_size,
              "train_tokens": train_blocks.numel(), "val_tokens": val_blocks.numel(),
              "val_loss": val_loss, "val_ppl": math.exp(val_loss),
              "unigram_ppl": math.exp(unigram_loss(train_blocks, val_blocks, len(tokenizer))),
              "train_time_s": history.wall_time, "wall_time_s": time.perf_counter() - t0,
              "hardware": hardware(device), "config": dict(vocab_size=len(tokenizer), n_embd=n_embd,
              n_layer=n_layer, n_head=n_head, n_positions=n_positions, block_size=block_size,
              batch_size=batch_size, lr=lr, seed=seed)}
    result["samples"] = samples(model, tokenizer, max_new_tokens=8 if is_fast() else 40)
    save(model, tokenizer, history, result, out_dir)
    return result


def save(model, tokenizer, history, result, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    plot_curve(history, history.evals, os.path.join(out_dir, "loss_curve.png"))
    with open(os.path.join(out_dir, "README.md"), "w", encoding="utf-8") as f:
        f.write(model_card(result))


def model_card(r):
    c = r["config"]
    v = versions()
    gens = "\n".join(f"- `{s!r}`" for s in r["samples"])
    return f"""# TinyGPT

The course's own small causal language model: transformers' GPT-2 architecture, pretrained from
scratch by `python -m peftcourse.pretrain` on the Python-docs corpus in `data/corpus/`.
Load it offline with `peftcourse.models.load_tinygpt()` or
`AutoModelForCausalLM.from_pretrained("data/models/tinygpt")`.

| | |
|---|---|
| corpus | CPython 3.11 Language Reference topics (`pydoc_data.topics`) + standard-library docstrings (PSF License), see `data/README.md` |
| training tokens | {r['train_tokens']:,} (validation: {r['val_tokens']:,}, held-out modules/topics) |
| parameters | {r['n_params']:,} |
| architecture | GPT-2: {c['n_layer']} layers, {c['n_head']} heads, d_model {c['n_embd']}, context {c['n_positions']}, tied embeddings |
| tokenizer | byte-level BPE, vocab {c['vocab_size']} (digits one per token); eos `{EOS}` = 0, pad `{PAD}` = 1 |
| steps | {r['steps']:,} (batch {c['batch_size']} x {c['block_size']} tokens, AdamW lr {c['lr']}, warmup + cosine, weight decay 0.1, seed {c['seed']}) |
| tokens seen | {r['tokens_seen']:,} |
| hardware | {r['hardware']} |
| wall time | {r['wall_time_s'] / 60:.1f} min in all, {r['train_time_s'] / 60:.1f} min of training steps |
| validation loss | {r['val_loss']:.3f} nats/token |
| validation perplexity | **{r['val_ppl']:.1f}** (unigram baseline: {r['unigram_ppl']:.1f}) |
| software | torch {v['torch']}, transformers {v['transformers']}, python {v['python']} |

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
    p.add_argument("--out", default=None, help=f"output folder (default {os.path.relpath(DEFAULT_OUT, ROOT)}; "
                   "in fast mode a temporary folder)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default 300; 3 in fast mode)")
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--n-embd", type=int, default=192)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-positions", type=int, default=256, help="context length of the model")
    p.add_argument("--block-size", type=int, default=256, help="training sequence length (<= n_positions)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    fast = is_fast()
    out = a.out or (tempfile.mkdtemp(prefix="tinygpt_") if fast else DEFAULT_OUT)
    steps = a.steps or (3 if fast else 300)
    r = pretrain(out, steps=steps, vocab_size=a.vocab_size, n_embd=a.n_embd, n_layer=a.n_layer,
                 n_head=a.n_head, n_positions=a.n_positions, block_size=a.block_size,
                 batch_size=a.batch_size, lr=a.lr, seed=a.seed, max_chars=60_000 if fast else None)
    print(f"saved to {out}: {r['n_params']:,} params, {r['steps']} steps, val loss {r['val_loss']:.3f}, "
          f"val ppl {r['val_ppl']:.1f} (unigram {r['unigram_ppl']:.1f}), {r['wall_time_s']:.0f} s on {r['hardware']}")
    return r


if __name__ == "__main__":
    main()
