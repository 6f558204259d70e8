"""A real chat model learns a task: SmolLM2 answers "which package's documentation is this sentence from?".

The task is doc_topics (data.doc_topics: 8 standard-library packages, 200 sentences each), asked through the
model's own chat template. The answer is the package's name, and the model is scored on its FIRST token:

    loss      = cross-entropy of the answer's first token over the whole vocabulary (next-token prediction,
                exactly what supervised fine-tuning of a chat model optimizes; the prompt is not trained on)
    accuracy  = how often that token is the most likely of the 8 answers' first tokens (the multiple-choice
                scoring of LM evaluation harnesses: a model that would answer in a sentence is not penalized
                for its wording, only for its choice)

Only the last position's logits are computed (`logits_to_keep=1`): a 49,152-word vocabulary at every position
would cost more memory than the model (issue measured 3.4 GB against 1.2 GB).
"""
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from . import data, validate
from .runtime import eval_mode
from .train import train

SYSTEM = "Name the Python package a documentation sentence is from."
N_TRAIN, N_HELD_OUT = 1100, 400   # the registered SmolLM2 designs' training sentences; doc_topics' test sentences
QUESTION = "Packages: {labels}.\nSentence: {text}"


def split(n_test=N_HELD_OUT, n_val=0, n_train=N_TRAIN):
    """(train, val, test) of the one fixed doc_topics split every SmolLM2 run uses (notebooks and registered
    designs): the first n_train training sentences, the next n_val for validation, and the first n_test of the
    400 held-out test sentences (the 400 MiniLM is tested on), which no run trains on."""
    train_all, test = data.doc_topics(n_test=N_HELD_OUT, seed=0)
    validate.int_in("n_test", n_test, 1, len(test))
    validate.int_in("n_train", n_train, 1, len(train_all))
    validate.int_in("n_val", n_val, 0, len(train_all) - n_train)
    return train_all[:n_train], train_all[n_train:n_train + n_val], test[:n_test]


def prompt(tokenizer, text):
    """The chat-formatted question about one sentence, ending where the assistant's answer starts."""
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": QUESTION.format(labels=", ".join(data.TOPIC_LABELS), text=text)}]
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def answer_tokens(tokenizer):
    """The first token of each answer (label order), checked to be distinct: one token decides the choice."""
    ids = [tokenizer(label, add_special_tokens=False)["input_ids"][0] for label in data.TOPIC_LABELS]
    if len(set(ids)) != len(ids):
        raise ValueError(f"two answers start with the same token ({ids}): the first token cannot tell them apart")
    return torch.tensor(ids)


def encode(tokenizer, texts, max_sentence_tokens=32):
    """Left-padded prompts (every answer position is the last one) with their attention mask and positions.
    Each sentence is cut to max_sentence_tokens tokens first, so the question and the answer cue survive."""
    rows = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_sentence_tokens]
        rows.append(tokenizer(prompt(tokenizer, tokenizer.decode(ids)), add_special_tokens=False)["input_ids"])
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    # positions count real tokens only: a left-padded prompt reads as if it started at position 0
    return {"input_ids": input_ids, "attention_mask": mask, "position_ids": (mask.cumsum(-1) - 1).clamp(min=0)}


class AnswerLogits(nn.Module):
    """model -> the next-token logits at the answer position only (batch, vocab): what train()'s loss_fn sees."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, enc):
        return self.model(**enc, logits_to_keep=1).logits[:, -1, :]


def batches(tokenizer, examples, batch_size=8, seed=0, shuffle=True):
    """A DataLoader of (encoded prompts, the answer's first token): train(AnswerLogits(model), ..., loss_fn=
    F.cross_entropy) fine-tunes on it."""
    validate.positive_int("batch_size", batch_size)
    data.check_examples(examples, ("text", "label"))
    targets = answer_tokens(tokenizer)

    def collate(rows):
        return encode(tokenizer, [r["text"] for r in rows]), targets[[r["label"] for r in rows]]
    return DataLoader(examples, batch_size=batch_size, shuffle=shuffle, collate_fn=collate,
                      generator=torch.Generator().manual_seed(seed))


def accuracy(model, tokenizer, examples, batch_size=32):
    """{"accuracy": share of sentences whose most likely answer (of the 8) is right} for a causal LM."""
    validate.module("model", model)
    data.check_examples(examples, ("text", "label"))
    choices = answer_tokens(tokenizer)
    head = AnswerLogits(model)
    device = next(model.parameters()).device
    correct = 0
    with eval_mode(model), torch.no_grad():
        for enc, target in batches(tokenizer, examples, batch_size, shuffle=False):
            logits = head({k: v.to(device) for k, v in enc.items()})[:, choices.to(device)]
            correct += (choices[logits.argmax(-1).cpu()] == target).sum().item()
    return {"accuracy": correct / len(examples)}


def answers(model, tokenizer, texts, max_new_tokens=12):
    """The model's own greedy answers, in words (to show what it says before and after fine-tuning)."""
    enc = encode(tokenizer, texts)
    device = next(model.parameters()).device
    with eval_mode(model), torch.no_grad():
        out = model.generate(input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device),
                             max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return [tokenizer.decode(row[enc["input_ids"].shape[1]:], skip_special_tokens=True).strip() for row in out]


def finetune(model, tokenizer, examples, *, steps, lr, batch_size=4, seed=0, desc="fine-tune"):
    """Train the model's trainable weights on the task with the course's one loop, train(); returns its History.

    Gradient checkpointing recomputes each block's activations in the backward pass instead of storing them all:
    on SmolLM2 at batch 4 about 400 MB less memory for about a third more time per step (same gradients)."""
    use_cache = model.config.use_cache
    model.config.use_cache = False   # no key/value cache while training: checkpointing recomputes instead
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    try:
        return train(AnswerLogits(model), batches(tokenizer, examples, batch_size=batch_size, seed=seed),
                     steps=steps, lr=lr, loss_fn=F.cross_entropy, seed=seed, desc=desc)
    finally:
        model.gradient_checkpointing_disable()
        model.config.use_cache = use_cache


def answer_table(examples, columns, width=90):
    """Print each example's sentence (cut to `width`), its right answer, and every model's answer:
    columns = {model name: [its answer to each example]}."""
    for name, said in columns.items():
        if len(said) != len(examples):
            raise ValueError(f"{name!r} has {len(said)} answers for {len(examples)} examples: one per example")
    for i, ex in enumerate(examples):
        print(f"[{i + 1}] {ex['text'][:width]}")
        print(f"    right answer: {data.TOPIC_LABELS[ex['label']]}")
        for name, said in columns.items():
            print(f"    {name:>6}: {said[i]!r}")
