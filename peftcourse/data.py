"""The fine-tuning tasks of the course: data, seeded splits, batches for Hugging Face models, metrics.

Generative tasks (TinyGPT) are lists of {"prompt", "answer"}; the model learns prompt -> answer + eos,
with the loss on the answer only (labels -100 on the prompt, as in instruction tuning):

    pairs = uuid_pairs(100)                               # MoRA's memorization task (paper §3)
    train_set, test_set = arithmetic(2000, 200)           # "37+45=" -> "82"
    batches = generation_batches(tok, pairs, batch_size=16)
    evaluate_generation(model, tok, pairs, metric=uuid_metric)   # {"char_acc": ..., "exact": ...}

Text tasks: doc_topics() (sentence -> standard-library package, for MiniLM), domain_text() (GNU
license texts: legal English that the Python-docs pretraining corpus lacks; metric perplexity),
digits() (scikit-learn's 8x8 images, notebook 01).
"""
import json
import math
import os
import random
import re
import uuid

import torch
from torch.utils.data import DataLoader

from . import validate
from .runtime import ROOT, eval_mode, to_device

TASKS_DIR = os.path.join(ROOT, "data", "tasks")
TOPIC_LABELS = ["asyncio", "decimal", "email", "http", "logging", "tkinter", "unittest", "xml"]


def check_no_leak(train, test, key):
    """Raise when an example's `key` appears in both train and test (the test set must be unseen)."""
    shared = {ex[key] for ex in train} & {ex[key] for ex in test}
    if shared:
        raise ValueError(f"{len(shared)} test examples also appear in train (by {key!r}), e.g. {sorted(shared)[0]!r}")


# ---------------------------------------------------------------- language-model text (pretraining, domain_text)

DOC_SEP = "\n<|endoftext|>\n"   # how data/build_corpus.py separates documents in its text files


def token_blocks(tokenizer, docs, block_size):
    """Concatenate the documents (each ended by eos) and cut the stream into (n, block_size) blocks."""
    validate.positive_int("block_size", block_size)
    if isinstance(docs, str) or not all(isinstance(d, str) for d in docs):
        raise TypeError("docs must be a list of strings (one per document)")
    ids = []
    for doc in docs:
        ids += tokenizer(doc)["input_ids"] + [tokenizer.eos_token_id]
    n = len(ids) // block_size
    if n == 0:
        raise ValueError(f"{len(ids)} tokens do not fill one block of {block_size}")
    return torch.tensor(ids[: n * block_size]).view(n, block_size)


def lm_batches(blocks, batch_size, seed=0):
    """A DataLoader of {'input_ids', 'labels'} dicts, reshuffled every epoch from a seeded generator."""
    validate.positive_int("batch_size", batch_size)
    if not torch.is_tensor(blocks) or blocks.dim() != 2 or len(blocks) < batch_size:
        raise ValueError(f"blocks must be a 2-D tensor of token blocks (token_blocks) with at least batch_size="
                         f"{batch_size} rows, got {tuple(getattr(blocks, 'shape', ()))}")
    return DataLoader(blocks, batch_size=batch_size, shuffle=True, drop_last=True,
                      generator=torch.Generator().manual_seed(seed),
                      collate_fn=lambda rows: {"input_ids": torch.stack(rows), "labels": torch.stack(rows)})


def mean_loss(model, blocks, batch_size=16):
    """Token-averaged next-token cross-entropy (nats) of the model on the blocks, in eval mode."""
    validate.positive_int("batch_size", batch_size)
    if not torch.is_tensor(blocks) or blocks.dim() != 2 or len(blocks) == 0:
        raise ValueError(f"blocks must be a non-empty 2-D tensor of token blocks (token_blocks), "
                         f"got {tuple(getattr(blocks, 'shape', ()))}")
    device = next(model.parameters()).device
    total, count = 0.0, 0
    with eval_mode(model):
        for i in range(0, len(blocks), batch_size):
            x = blocks[i:i + batch_size].to(device)
            total += model(input_ids=x, labels=x).loss.item() * x.numel()
            count += x.numel()
    return total / count


# ---------------------------------------------------------------- UUID memorization (MoRA §3)

def uuid_pairs(n, seed=0):
    """n random uuid4 key -> value pairs as {"prompt": "<key>:", "answer": "<value>", "key", "value"}.

    A memorization task: the model is trained on the pairs and tested on the SAME pairs (MoRA §3,
    Table 2); a random value cannot be inferred, so there is no held-out split.
    """
    validate.positive_int("n", n)
    rng = random.Random(seed)
    keys, out = set(), []
    while len(out) < n:
        key = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        value = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if key not in keys:
            keys.add(key)
            out.append({"prompt": f"{key}:", "answer": value, "key": key, "value": value})
    return out


def uuid_metric(predictions, answers):
    """Character accuracy over the 32 hex characters of each answer (its 4 hyphens excluded), compared
    position by position in the 36-character layout, plus exact match. Both averaged over examples.

    A guess with only the uuid4 layout right ("xxxxxxxx-xxxx-4xxx-[89ab]xxx-...") gets the version
    character, a quarter of variant characters and 1/16 of the 30 random ones: (1 + 1/4 + 30/16)/32 = 9.77%.
    """
    _same_length(predictions, answers)
    char, exact = 0.0, 0.0
    for pred, ans in zip(predictions, answers):
        if len(ans) != 36 or ans.count("-") != 4:
            raise ValueError(f"answer {ans!r} is not a 36-character uuid")
        positions = [i for i, c in enumerate(ans) if c != "-"]
        char += sum(i < len(pred) and pred[i] == ans[i] for i in positions) / len(positions)
        exact += pred.strip() == ans
    return {"char_acc": char / len(answers), "exact": exact / len(answers)}


# ---------------------------------------------------------------- arithmetic

def arithmetic(n_train, n_test, digits=2, ops="+", seed=0):
    """Problems such as "37+45=" -> "82" (operands with exactly `digits` digits), as two disjoint sets.

    Each problem string occurs once; asking for more problems than exist raises.
    """
    validate.positive_int("n_train", n_train)
    validate.positive_int("n_test", n_test)
    validate.int_in("digits", digits, 1, 3)
    if not isinstance(ops, str) or not ops or set(ops) - set("+-*"):
        raise ValueError(f"ops must be a string of '+', '-', '*', got {ops!r}")
    low, high = (0 if digits == 1 else 10 ** (digits - 1)), 10 ** digits
    n_exist = len(set(ops)) * (high - low) ** 2
    if n_train + n_test > n_exist:
        raise ValueError(f"asked for {n_train}+{n_test} problems, but only {n_exist} distinct "
                         f"{digits}-digit problems with ops {ops!r} exist")
    rng = random.Random(seed)
    chosen = rng.sample(range(n_exist), n_train + n_test)  # distinct problems, so no test leaks into train
    examples = []
    for code in chosen:
        op = sorted(set(ops))[code // (high - low) ** 2]
        a, b = low + code % (high - low), low + (code // (high - low)) % (high - low)
        value = a + b if op == "+" else a - b if op == "-" else a * b
        examples.append({"prompt": f"{a}{op}{b}=", "answer": str(value)})
    train, test = examples[:n_train], examples[n_train:]
    check_no_leak(train, test, "prompt")
    return train, test


def exact_match(predictions, answers):
    """Fraction of predictions equal to the answer (surrounding whitespace ignored)."""
    _same_length(predictions, answers)
    return {"exact": sum(p.strip() == a.strip() for p, a in zip(predictions, answers)) / len(answers)}


def check_examples(examples, keys):
    """A non-empty list of dicts that all have `keys` (the shape uuid_pairs, arithmetic and doc_topics return)."""
    if not isinstance(examples, (list, tuple)) or not examples:
        raise ValueError(f"no examples: give a non-empty list of dicts with keys {keys}")
    bad = [ex for ex in examples if not isinstance(ex, dict) or any(k not in ex for k in keys)]
    if bad:
        raise ValueError(f"every example must be a dict with keys {keys}, got e.g. {bad[0]!r}"[:300])


def check_tokenizer(tokenizer):
    if not callable(tokenizer) or getattr(tokenizer, "pad_token_id", None) is None:
        raise TypeError(f"tokenizer must be a Hugging Face tokenizer with a pad token (models.load_tinygpt()'s), "
                        f"got {type(tokenizer).__name__}")


def _same_length(predictions, answers):
    if not isinstance(predictions, (list, tuple)) or not isinstance(answers, (list, tuple)):
        raise TypeError("predictions and answers must be lists of strings")
    if len(predictions) != len(answers) or not answers:
        raise ValueError(f"need as many predictions as answers (and at least one): "
                         f"{len(predictions)} predictions, {len(answers)} answers")


# ---------------------------------------------------------------- generative batches and evaluation

def encode_example(tokenizer, example):
    """(input_ids, labels) of prompt + answer + eos; labels are -100 on the prompt (loss on the answer only)."""
    prompt = tokenizer(example["prompt"])["input_ids"]
    answer = tokenizer(example["answer"])["input_ids"] + [tokenizer.eos_token_id]
    return prompt + answer, [-100] * len(prompt) + answer


def generation_batches(tokenizer, examples, batch_size=16, seed=0, shuffle=True):
    """A DataLoader of {"input_ids", "attention_mask", "labels"} dicts (right-padded, pad labels -100)."""
    validate.positive_int("batch_size", batch_size)
    validate.flag("shuffle", shuffle)
    check_examples(examples, ("prompt", "answer"))
    check_tokenizer(tokenizer)
    encoded = [encode_example(tokenizer, ex) for ex in examples]

    def collate(rows):
        width = max(len(ids) for ids, _ in rows)
        pad = tokenizer.pad_token_id
        return {"input_ids": torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in rows]),
                "attention_mask": torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows]),
                "labels": torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])}
    return DataLoader(encoded, batch_size=batch_size, shuffle=shuffle, collate_fn=collate,
                      generator=torch.Generator().manual_seed(seed))


def generate_answers(model, tokenizer, prompts, max_new_tokens=40, batch_size=32):
    """Greedy continuations of the prompts (left-padded batches), cut at the first eos."""
    validate.positive_int("max_new_tokens", max_new_tokens)
    validate.positive_int("batch_size", batch_size)
    if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
        raise TypeError("prompts must be a list of strings")
    device = next(model.parameters()).device
    out = []
    with eval_mode(model):
        for i in range(0, len(prompts), batch_size):
            ids = [tokenizer(p)["input_ids"] for p in prompts[i:i + batch_size]]
            width = max(map(len, ids))
            input_ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(x)) + x for x in ids], device=device)
            mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=device)
            gen = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                 do_sample=False, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=tokenizer.eos_token_id)
            out += [tokenizer.decode(row[width:], skip_special_tokens=True) for row in gen]
    return out


def evaluate_generation(model, tokenizer, examples, metric=exact_match, batch_size=32, max_new_tokens=None):
    """Greedy-generate an answer for every example's prompt and score it: metric(predictions, answers)."""
    validate.module("model", model)
    check_examples(examples, ("prompt", "answer"))
    check_tokenizer(tokenizer)
    if not callable(metric):
        raise TypeError(f"metric must be a function (predictions, answers) -> dict, e.g. exact_match, got {metric!r}")
    if max_new_tokens is None:  # room for the longest answer plus eos
        max_new_tokens = max(len(tokenizer(ex["answer"])["input_ids"]) for ex in examples) + 1
    predictions = generate_answers(model, tokenizer, [ex["prompt"] for ex in examples], max_new_tokens, batch_size)
    return metric(predictions, [ex["answer"] for ex in examples])



def answer_loss(model, batches):
    """Mean cross-entropy on the answers of held-out generation_batches(..., shuffle=False) (their labels
    mask the prompts), in eval mode: the measure to use while exact match is still near 0."""
    batches = list(batches)
    if not batches:
        raise ValueError("no batches to evaluate: pass generation_batches(tokenizer, test, shuffle=False)")
    device = next(model.parameters()).device
    with eval_mode(model):  # a model fresh from train() is in train mode: dropout would make the loss noisy
        losses = [model(**to_device(batch, device)).loss.item() for batch in batches]
    return sum(losses) / len(losses)

# ---------------------------------------------------------------- text classification (MiniLM)

def doc_topics(n_train=None, n_test=400, seed=0):
    """Sentences from standard-library docstrings labelled by the package they come from (8 labels,
    TOPIC_LABELS; 1,600 sentences, 200 per label). Returns (train, test) lists of {"text", "label": int}."""
    path = os.path.join(TASKS_DIR, "doc_topics.jsonl")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing: rebuild it with `python data/build_corpus.py`")
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    validate.positive_int("n_test", n_test)
    n_train = len(rows) - n_test if n_train is None else n_train
    validate.positive_int("n_train", n_train)
    if n_train + n_test > len(rows):
        raise ValueError(f"asked for {n_train}+{n_test} sentences, but doc_topics has only {len(rows)}")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    examples = [{"text": rows[i]["text"], "label": TOPIC_LABELS.index(rows[i]["label"])} for i in order]
    train, test = examples[:n_train], examples[n_train:n_train + n_test]
    check_no_leak(train, test, "text")
    return train, test


WORD_ORDER_LABELS = ["as written", "two neighbouring words swapped"]


def word_order(examples, seed=0, window=10):
    """A CoLA-like acceptability task made from any sentences ({"text", ...}, e.g. doc_topics'): each sentence
    comes either as written (label 0) or with one pair of neighbouring, different words swapped (label 1), the
    pair's first word among the sentence's first `window`; half and half at random (seeded). Whitespace is
    normalised in both classes alike, so only the word order tells them apart. Sentences of fewer than 4 words
    are left out. Returns [{"text", "label"}]."""
    check_examples(examples, ("text",))
    validate.int_in("seed", seed, 0, 2**63 - 1)
    validate.positive_int("window", window)
    rng, out = random.Random(seed), []
    for ex in examples:
        words = ex["text"].split()
        pairs = [i for i in range(min(len(words) - 1, window)) if words[i] != words[i + 1]]
        if len(words) < 4 or not pairs:
            continue
        swap = rng.random() < 0.5
        if swap:
            i = rng.choice(pairs)
            words[i], words[i + 1] = words[i + 1], words[i]
        out.append({"text": " ".join(words), "label": int(swap)})
    if not out:
        raise ValueError("no sentence has 4 or more words: word_order needs sentences to swap words in")
    return out


def classification_batches(tokenizer, examples, batch_size=32, seed=0, shuffle=True, max_length=64):
    """A DataLoader of tokenized {"input_ids", "attention_mask", ..., "labels"} dicts."""
    validate.positive_int("batch_size", batch_size)
    validate.flag("shuffle", shuffle)
    validate.positive_int("max_length", max_length)
    check_examples(examples, ("text", "label"))
    check_tokenizer(tokenizer)

    def collate(rows):
        batch = tokenizer([r["text"] for r in rows], padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt")
        batch["labels"] = torch.tensor([r["label"] for r in rows])
        return dict(batch)
    return DataLoader(examples, batch_size=batch_size, shuffle=shuffle, collate_fn=collate,
                      generator=torch.Generator().manual_seed(seed))


def evaluate_classification(model, tokenizer, examples, batch_size=64):
    """{"accuracy": ...} of a sequence-classification model (argmax of its logits) on the examples."""
    validate.module("model", model)
    check_examples(examples, ("text", "label"))
    device = next(model.parameters()).device
    correct = 0
    with eval_mode(model):
        for batch in classification_batches(tokenizer, examples, batch_size, shuffle=False):
            labels = batch.pop("labels").to(device)
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
            correct += (logits.argmax(-1) == labels).sum().item()
    return {"accuracy": correct / len(examples)}


# ---------------------------------------------------------------- domain adaptation (perplexity)

def domain_text():
    """(train_docs, test_docs): GNU license texts, legal English absent from the pretraining corpus.

    Train: GPL-2, LGPL-2.1, GFDL-1.3, LGPL-3; test: GPL-3 without the 11 paragraphs (boilerplate such
    as the preamble heading and "How to Apply These Terms") that also occur in a training license.
    """
    out = []
    for split in ("train", "test"):
        path = os.path.join(TASKS_DIR, f"licenses_{split}.txt")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} is missing: rebuild it with `python data/build_corpus.py`")
        with open(path, encoding="utf-8") as f:
            out.append([d.strip() for d in f.read().split(DOC_SEP) if d.strip()])
    train, test = out
    seen = {_norm(p) for doc in train for p in _paragraphs(doc)}
    test = ["\n\n".join(p for p in _paragraphs(doc) if _norm(p) not in seen) for doc in test]
    return train, test


def _paragraphs(doc):
    return [p for p in re.split(r"\n\s*\n", doc) if p.strip()]


def _norm(paragraph):
    return " ".join(paragraph.split())


def lm_data(tokenizer, docs, block_size=128, batch_size=8, seed=0):
    """Language-modelling batches ({"input_ids", "labels"}) of the documents cut into blocks."""
    return lm_batches(token_blocks(tokenizer, docs, block_size), batch_size, seed)


def perplexity(model, tokenizer, docs, block_size=128):
    """exp(mean next-token cross-entropy) of the model on the documents, cut into blocks."""
    return math.exp(mean_loss(model, token_blocks(tokenizer, docs, block_size)))


# ---------------------------------------------------------------- digits (notebook 01)

def digits(n_test=360, seed=0):
    """scikit-learn's 1,797 8x8 handwritten digits: (X_train, y_train, X_test, y_test) tensors,
    X of shape (n, 1, 8, 8) scaled to [0, 1], y of class indices 0..9; a seeded split."""
    from sklearn.datasets import load_digits
    data = load_digits()
    validate.positive_int("n_test", n_test)
    validate.int_in("seed", seed, 0, 2**63 - 1)
    if n_test >= len(data.target):
        raise ValueError(f"n_test={n_test} leaves no training images (there are {len(data.target)})")
    order = torch.randperm(len(data.target), generator=torch.Generator().manual_seed(seed))
    X = torch.tensor(data.images, dtype=torch.float32)[order].unsqueeze(1) / 16.0
    y = torch.tensor(data.target)[order]
    return X[n_test:], y[n_test:], X[:n_test], y[:n_test]


def tensor_batches(X, y, batch_size=64, seed=0, shuffle=True):
    """A DataLoader of (inputs, target) pairs, for train(..., loss_fn=...)."""
    from torch.utils.data import TensorDataset
    validate.positive_int("batch_size", batch_size)
    validate.flag("shuffle", shuffle)
    if not torch.is_tensor(X) or not torch.is_tensor(y):
        raise TypeError(f"X and y must be tensors, got {type(X).__name__} and {type(y).__name__}")
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    return DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(seed))
