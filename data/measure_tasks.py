"""Measure, for every task of peftcourse.data, the untuned model against a fully fine-tuned one.

    python data/measure_tasks.py        # writes data/task_gaps.json; numbers go into data/README.md

Full fine-tuning (every parameter trainable) with THE course loop, a few CPU minutes per task.
"""
import json
import os
import platform
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from peftcourse import data, models  # noqa: E402
from peftcourse.runtime import budget, seed_everything  # noqa: E402
from peftcourse.train import train  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "task_gaps.json")


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def uuid_task():
    model, tok = models.load_tinygpt()
    pairs = data.uuid_pairs(budget(32, 4))
    before = data.evaluate_generation(model, tok, pairs, metric=data.uuid_metric)
    steps = budget(300, 3)
    h = train(model, data.generation_batches(tok, pairs, batch_size=16), steps=steps, lr=1e-3,
              schedule="cosine", warmup=10, progress=False)
    after = data.evaluate_generation(model, tok, pairs, metric=data.uuid_metric)
    return {"task": f"uuid_pairs({len(pairs)}) memorization, TinyGPT", "metric": "char_acc (exact)",
            "untuned": before, "fine_tuned": after, "steps": steps, "train_s": h.wall_time}


def arithmetic_task():
    model, tok = models.load_tinygpt()
    train_set, test_set = data.arithmetic(budget(3000, 64), budget(200, 16))
    before = data.evaluate_generation(model, tok, test_set)
    steps = budget(1200, 3)
    h = train(model, data.generation_batches(tok, train_set, batch_size=32), steps=steps, lr=1e-3,
              schedule="cosine", warmup=40, progress=False)
    after = data.evaluate_generation(model, tok, test_set)
    return {"task": f"arithmetic 2-digit a+b ({len(train_set)} train / {len(test_set)} test), TinyGPT",
            "metric": "exact (test)", "untuned": before, "fine_tuned": after, "steps": steps, "train_s": h.wall_time}


def classification_task():
    model, tok = models.load_minilm(num_labels=len(data.TOPIC_LABELS))
    train_set, test_set = data.doc_topics(n_test=400)
    before = data.evaluate_classification(model, tok, test_set)
    steps = budget(150, 3)
    h = train(model, data.classification_batches(tok, train_set, batch_size=32), steps=steps, lr=5e-5,
              schedule="cosine", warmup=10, progress=False)
    after = data.evaluate_classification(model, tok, test_set)
    return {"task": f"doc_topics ({len(train_set)} train / {len(test_set)} test, 8 labels), MiniLM-L6",
            "metric": "accuracy (test)", "untuned": before, "fine_tuned": after, "steps": steps,
            "train_s": h.wall_time}


def domain_task():
    model, tok = models.load_tinygpt()
    train_docs, test_docs = data.domain_text()
    before = {"perplexity": data.perplexity(model, tok, test_docs)}
    steps = budget(150, 3)
    h = train(model, data.lm_data(tok, train_docs, block_size=128, batch_size=8), steps=steps, lr=5e-4,
              schedule="cosine", warmup=10, progress=False)
    after = {"perplexity": data.perplexity(model, tok, test_docs)}
    return {"task": "domain_text: GNU licenses (train GPL-2, LGPL-2.1, GFDL-1.3, LGPL-3; test GPL-3), TinyGPT",
            "metric": "perplexity (test)", "untuned": before, "fine_tuned": after, "steps": steps,
            "train_s": h.wall_time}


def digits_task():
    Xtr, ytr, Xte, yte = data.digits()
    seed_everything(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))

    def acc():
        with torch.no_grad():
            return {"accuracy": (net(Xte).argmax(-1) == yte).float().mean().item()}
    before = acc()
    steps = budget(300, 3)
    h = train(net, data.tensor_batches(Xtr, ytr, batch_size=64), steps=steps, lr=3e-3,
              loss_fn=torch.nn.functional.cross_entropy, progress=False)
    return {"task": "digits (1437 train / 360 test), MLP 64-64-10 from scratch", "metric": "accuracy (test)",
            "untuned": before, "fine_tuned": acc(), "steps": steps, "train_s": h.wall_time}


if __name__ == "__main__":
    tasks = [uuid_task, arithmetic_task, classification_task, domain_task, digits_task]
    names = sys.argv[1:] or [t.__name__ for t in tasks]
    results = json.load(open(OUT)) if os.path.exists(OUT) else {}
    for task in tasks:
        if task.__name__ in names:
            r, total = timed(task)
            r["total_s"] = total
            results[task.__name__] = r
            print(json.dumps(r), flush=True)
    results["_hardware"] = platform.processor() or platform.machine()
    with open(OUT, "w") as f:
        json.dump(results, f, indent=1)
