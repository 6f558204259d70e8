"""Extract the course's text data from the Python installation and the system's license texts.

    python data/build_corpus.py        # rewrites the files under data/corpus/ and data/tasks/

Run once; the outputs are committed, so training never depends on the local Python version.
Sources (all redistributable, see data/README.md):
- the Python Language Reference topics that ship with CPython (`pydoc_data.topics`) and the
  docstrings of the standard library's .py files, read with `ast` (nothing is imported or run):
  PSF License, copied next to the corpus;
- the GNU license texts in /usr/share/common-licenses (verbatim copying permitted): a legal-English
  domain that the pretraining corpus lacks, for the domain-adaptation task;
- sentences from the docstrings of a few standard-library packages, labelled by the package they
  come from, for the text-classification task.
"""
import ast
import hashlib
import json
import os
import random
import re
import shutil
import sys
import sysconfig

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
TASKS = os.path.join(HERE, "tasks")
SEP = "\n<|endoftext|>\n"           # document separator in the corpus files
VAL_EVERY = 12                      # about 1 document in 12 goes to validation (by a hash of its name)
SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "__pycache__", "encodings", "pydoc_data",
             "_bundled", "lib2to3", "turtledemo"}
LICENSE_DIR = "/usr/share/common-licenses"
DOMAIN_TRAIN = ["GPL-2", "LGPL-2.1", "GFDL-1.3", "LGPL-3"]   # whole documents: no paragraph of the
DOMAIN_TEST = ["GPL-3"]                                      # test license is seen in training
# text classification: label = the package a docstring sentence comes from
TOPICS = {"asyncio": "asyncio", "email": "email", "unittest": "unittest", "tkinter": "tkinter",
          "xml": "xml", "http": "http", "logging": "logging", "_pydecimal": "decimal"}
PER_TOPIC = 200


def stdlib_modules(root):
    """(dotted module name, path) of every .py file of the standard library outside tests."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("test"))
        for name in sorted(filenames):
            if name.endswith(".py") and not name.startswith("test"):
                rel = os.path.relpath(os.path.join(dirpath, name), root)[:-3]
                out.append((rel.replace(os.sep, ".").removesuffix(".__init__"), os.path.join(dirpath, name)))
    return out


def docstrings(path):
    """All docstrings of a file (module, classes, functions) in source order, cleaned up."""
    with open(path, encoding="utf-8", errors="replace") as f:
        try:
            tree = ast.parse(f.read())
        except SyntaxError:
            return []
    nodes = [tree] + [n for n in ast.walk(tree)
                      if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    nodes.sort(key=lambda n: getattr(n, "lineno", 0))
    out = []
    for node in nodes:
        doc = ast.get_docstring(node, clean=True)
        if doc and len(doc) >= 40 and "\x00" not in doc:
            out.append(doc.strip())
    return out


def is_val(name):
    return int(hashlib.sha1(name.encode()).hexdigest(), 16) % VAL_EVERY == 0


def build_corpus():
    from pydoc_data import topics
    docs = [(f"topic:{k}", v.strip()) for k, v in sorted(topics.topics.items())]
    seen = set()
    for module, path in stdlib_modules(sysconfig.get_paths()["stdlib"]):
        kept = []
        for d in docstrings(path):
            if d not in seen:           # inherited/copied docstrings appear once only
                seen.add(d)
                kept.append(d)
        if kept:
            docs.append((module, "\n\n".join(kept)))
    train = [text for name, text in docs if not is_val(name)]
    val = [text for name, text in docs if is_val(name)]
    os.makedirs(CORPUS, exist_ok=True)
    for split, texts in (("train", train), ("val", val)):
        with open(os.path.join(CORPUS, f"pydocs_{split}.txt"), "w", encoding="utf-8") as f:
            f.write(SEP.join(texts) + "\n")
    shutil.copy(os.path.join(sysconfig.get_paths()["stdlib"], "LICENSE.txt"), os.path.join(CORPUS, "LICENSE-PSF.txt"))
    print(f"corpus: {len(train)} train / {len(val)} val documents, "
          f"{sum(map(len, train)) / 1e6:.2f} / {sum(map(len, val)) / 1e6:.2f} M characters")


def sentences(text):
    """Prose sentences of a docstring: 8-40 words, mostly letters, no code or doctest lines."""
    text = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith((">>>", "...", "$")))
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", para):
            words = s.split()
            letters = sum(c.isalpha() or c.isspace() for c in s)
            if 8 <= len(words) <= 40 and letters >= 0.85 * len(s) and s[-1] in ".!?" and s[0].isupper():
                yield s


def build_classification():
    by_topic = {label: set() for label in set(TOPICS.values())}
    for module, path in stdlib_modules(sysconfig.get_paths()["stdlib"]):
        label = TOPICS.get(module.split(".")[0])
        if label:
            for d in docstrings(path):
                by_topic[label].update(sentences(d))
    shared = set.union(*[s & t for a, s in by_topic.items() for b, t in by_topic.items() if a < b] or [set()])
    rng = random.Random(0)
    rows = []
    for label in sorted(by_topic):
        pool = sorted(by_topic[label] - shared)   # a sentence found under two labels has no honest label
        if len(pool) < PER_TOPIC:
            raise SystemExit(f"topic {label!r} has only {len(pool)} sentences, need {PER_TOPIC}")
        rows += [{"text": s, "label": label} for s in rng.sample(pool, PER_TOPIC)]
    rng.shuffle(rows)
    os.makedirs(TASKS, exist_ok=True)
    with open(os.path.join(TASKS, "doc_topics.jsonl"), "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"classification: {len(rows)} sentences, {len(by_topic)} labels " +
          ", ".join(f"{k}:{len(v)}" for k, v in sorted(by_topic.items())))


def build_domain():
    os.makedirs(TASKS, exist_ok=True)
    for split, names in (("train", DOMAIN_TRAIN), ("test", DOMAIN_TEST)):
        texts = []
        for name in names:
            with open(os.path.join(LICENSE_DIR, name), encoding="utf-8") as f:
                texts.append(f.read().strip())
        with open(os.path.join(TASKS, f"licenses_{split}.txt"), "w", encoding="utf-8") as f:
            f.write(SEP.join(texts) + "\n")
        print(f"domain {split}: {names}, {sum(map(len, texts))} characters")


if __name__ == "__main__":
    print(f"Python {sys.version.split()[0]} from {sysconfig.get_paths()['stdlib']}")
    build_corpus()
    build_classification()
    build_domain()
