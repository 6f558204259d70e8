"""Extract the course's text data from Debian's Python 3.11 packages and the system's license texts.

    apt-get install python3.11-doc       # the documentation sources (Debian 12: 3.11.2-6+deb12u9)
    python data/build_corpus.py corpus   # rewrites data/corpus/ (byte for byte, given the same packages)
    python data/build_corpus.py tasks    # rewrites data/tasks/ (from the running Python's standard library)
    python data/build_corpus.py          # both

The outputs are committed, so training never depends on the local installation.
Sources (all redistributable, see data/README.md):
- the Python 3.11 documentation as reST sources (Debian package python3.11-doc,
  /usr/share/doc/python3.11/html/_sources/**/*.rst.txt), converted to plain text (markup removed,
  code kept), and the docstrings of the standard library's .py files of Debian's libpython3.11-stdlib
  (/usr/lib/python3.11), read with `ast` (nothing is imported or run): PSF License, copied next to
  the corpus;
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
import subprocess
import sys
import sysconfig

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
TASKS = os.path.join(HERE, "tasks")
SEP = "\n<|endoftext|>\n"           # document separator in the corpus files
VAL_EVERY = 12                      # about 1 group in 12 goes to validation (by a hash of its name)
DOCS = "/usr/share/doc/python3.11/html/_sources"   # Debian python3.11-doc
STDLIB = "/usr/lib/python3.11"                     # Debian libpython3.11-stdlib, the same version as the docs
DEBIAN_VERSION = "3.11.2-6+deb12u9"                # the version the committed corpus was built from
SKIP_PAGES = {"contents.rst.txt", "copyright.rst.txt", "license.rst.txt", "whatsnew/changelog.rst.txt"}
SKIP_PAGE_DIRS = ("includes/",)     # fragments included elsewhere
MIN_SHARED = 40                     # paragraphs this long or longer must not be in both splits
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


# ---------------------------------------------------------------- reST -> readable text
# Sphinx renders these directives as a heading word; we write the same word so the text reads as the page does.
LABELS = {"note": "Note:", "warning": "Warning:", "seealso": "See also:", "important": "Important:",
          "caution": "Caution:", "impl-detail": "CPython implementation detail:", "versionadded": "New in version {}.",
          "versionchanged": "Changed in version {}:", "deprecated": "Deprecated since version {}:",
          "deprecated-removed": "Deprecated since version {}, removed in version {}:", "availability": "Availability: {}",
          "rubric": "{}", "topic": "{}", "sidebar": "{}", "glossary": "", "epigraph": "", "table": "{}",
          "list-table": "{}", "only": "", "centered": "{}", "hlist": ""}
# code and grammar: the directive line goes, the indented body is kept verbatim
CODE = {"code-block", "sourcecode", "doctest", "testcode", "testoutput", "productionlist", "parsed-literal"}
# API descriptions: Sphinx shows the signature; so do we (e.g. "json.dumps(obj, *, skipkeys=False, ...)")
SIGNATURE = {"function", "method", "class", "data", "attribute", "exception", "decorator", "decoratormethod",
             "classmethod", "staticmethod", "coroutinefunction", "coroutinemethod", "awaitablefunction",
             "awaitablemethod", "abstractmethod", "opcode", "cmdoption", "option", "envvar", "describe",
             "object", "pdbcommand", "2to3fixer", "index-entry"}
DIRECTIVE = re.compile(r"^(\s*)\.\.\s+([\w:-]+)::\s*(.*)$")
UNDERLINE = re.compile(r"^\s*([=\-~^\"'*#+`:.<>_])\1{3,}\s*$")          # section titles' over/underlines
TABLE_RULE = re.compile(r"^\s*(\+[-=+]+\+|=+( +=+)+|-+( +-+)+)\s*$")   # grid/simple table borders
OPTION = re.compile(r"^\s*:[\w-]+:(\s.*)?$")                           # :synopsis: ..., :noindex:
INLINE = [(re.compile(r":([\w:.+-]+):`([^`]+)`"), lambda m: _role(*m.groups())),  # :func:`~os.path.join` -> join
          (re.compile(r"``([^`]+?)``"), r"\1"),
          (re.compile(r"`([^`<]+?)\s*<[^>`]*>`__?"), r"\1"),                    # `text <url>`_ -> text
          (re.compile(r"`([^`]+)`__?"), r"\1"),
          (re.compile(r"\s*\[(#[\w-]*|\d+)\]_"), ""),                            # footnote references
          (re.compile(r"\*\*(\S[^*]*?)\*\*"), r"\1"),
          (re.compile(r"(?<![\w*\\])\*(\S[^*]*?)\*(?![\w*])"), r"\1")]


def _role(name, text):
    if name in ("rfc", "pep"):                        # Sphinx writes "RFC 7159", "PEP 8"
        return f"{name.upper()} {text}"
    m = re.match(r"^(.*?)\s*<[^>]*>$", text)          # :ref:`title <label>` -> title
    if m and m.group(1):
        return m.group(1)
    text = text.lstrip("!")
    return text[1:].rsplit(".", 1)[-1] if text.startswith("~") else text


def _indent(line):
    return len(line) - len(line.lstrip(" "))


def rst_to_text(rst):
    """reST source of a docs page -> the text a reader sees: markup and navigation-only directives dropped,
    code kept verbatim, API signatures and "New in version" notes kept as lines."""
    out, skip_body, literal = [], None, None   # skip_body/literal: indent of the directive/paragraph owning a body
    for line in rst.replace("\t", "        ").splitlines():
        line = line.rstrip()
        ind = _indent(line)
        if skip_body is not None:
            if not line or ind > skip_body:
                continue
            skip_body = None
        if literal is not None:
            if not line or ind > literal:
                out.append(line)
                continue
            literal = None
        m = DIRECTIVE.match(line)
        if m:
            pad, name, arg = m.groups()
            name = name.split(":")[-1] if name.startswith(("c:", "py:")) and name.split(":")[-1] in SIGNATURE else name
            if name in SIGNATURE:
                out.append(pad + arg)
            elif name in LABELS:
                args = arg.split(None, 1) if name == "deprecated-removed" else [arg]
                label = LABELS[name].format(*args) if LABELS[name].count("{}") <= len(args) else arg
                if label:
                    out.append(pad + _inline(label))
            elif name in CODE:
                literal = len(pad)
            else:                     # index, toctree, module, highlight, include, image, comments ...
                skip_body = len(pad)
            continue
        if line.lstrip().startswith(".. "):   # a comment or a link target (.. _label:)
            skip_body = ind
            continue
        if UNDERLINE.match(line) or TABLE_RULE.match(line) or OPTION.match(line):
            continue
        if line.strip() == "::":
            literal = ind
            continue
        if line.endswith("::"):
            literal = ind
            line = line[:-3] + ":" if line.endswith(" ::") else line[:-1]
        out.append(_inline(line))
    text = "\n".join(out)
    for pattern, repl in INLINE[:4]:   # roles, literals and links that wrap onto the next line
        text = pattern.sub(repl, text)
    text = re.sub(r"\n\s*\n(\s*\n)+", "\n\n", text)     # one blank line between paragraphs
    return text.strip()


def _inline(line):
    for pattern, repl in INLINE:
        line = pattern.sub(repl, line)
    return line


def docs_pages(root=DOCS):
    """(group, relative path, text) of every page of the HTML docs' reST sources, in path order."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if not name.endswith(".rst.txt") or rel in SKIP_PAGES or rel.startswith(SKIP_PAGE_DIRS):
                continue
            with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                rst = f.read()
            # a library page and the docstrings of the module it documents share a group, so they are
            # held out together (json.rst and json/*.py docstrings are never split across train/val)
            mod = re.search(r"^\.\. (?:py:)?module:: ([\w.]+)", rst, re.M)
            group = "module:" + mod.group(1).split(".")[0] if mod else "page:" + rel
            text = rst_to_text(rst)
            if len(text) >= 200:
                out.append((group, rel, text))
    return out


def paragraphs(text):
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]


def build_corpus():
    """Docs pages + standard-library docstrings, split by group (a module's page and docstrings together),
    then every training paragraph that also occurs in validation is dropped (the docs repeat themselves)."""
    docs = [(group, text) for group, _, text in docs_pages()]
    seen = set()
    for module, path in stdlib_modules(STDLIB):
        kept = []
        for d in docstrings(path):
            if d not in seen:           # inherited/copied docstrings appear once only
                seen.add(d)
                kept.append(d)
        if kept:
            docs.append(("module:" + module.split(".")[0], "\n\n".join(kept)))
    val = [text for group, text in docs if is_val(group)]
    val_paras = {p for t in val for p in paragraphs(t) if len(p) >= MIN_SHARED}
    train, dropped = [], 0
    for group, text in docs:
        if is_val(group):
            continue
        paras = re.split(r"\n\s*\n", text)
        kept = [p for p in paras if " ".join(p.split()) not in val_paras]
        dropped += len(paras) - len(kept)
        if kept:
            train.append("\n\n".join(kept))
    train_paras = {p for t in train for p in paragraphs(t)}
    leaked = [p for p in val_paras if p in train_paras]
    assert not leaked, f"validation paragraphs in training: {leaked[:3]}"
    os.makedirs(CORPUS, exist_ok=True)
    for split, texts in (("train", train), ("val", val)):
        with open(os.path.join(CORPUS, f"pydocs_{split}.txt"), "w", encoding="utf-8") as f:
            f.write(SEP.join(texts) + "\n")
    shutil.copy(os.path.join(STDLIB, "LICENSE.txt"), os.path.join(CORPUS, "LICENSE-PSF.txt"))
    print(f"corpus: {len(train)} train / {len(val)} val documents, "
          f"{sum(map(len, train)) / 1e6:.2f} / {sum(map(len, val)) / 1e6:.2f} M characters; "
          f"{dropped} training paragraphs dropped because validation has them")


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


def debian_version(package):
    try:
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True,
                              text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    if what not in ("corpus", "tasks", "all"):
        raise SystemExit(f"usage: python data/build_corpus.py [corpus|tasks|all], got {what!r}")
    if what in ("corpus", "all"):
        if not os.path.isdir(DOCS) or not os.path.isdir(STDLIB):
            raise SystemExit(f"{DOCS} or {STDLIB} is missing: `apt-get install python3.11-doc libpython3.11-stdlib`")
        found = {p: debian_version(p) for p in ("python3.11-doc", "libpython3.11-stdlib")}
        if any(v != DEBIAN_VERSION for v in found.values()):
            print(f"warning: the committed corpus was built from version {DEBIAN_VERSION}, found {found}: "
                  "the output will differ from the committed files")
        build_corpus()
    if what in ("tasks", "all"):
        print(f"Python {sys.version.split()[0]} from {sysconfig.get_paths()['stdlib']}")
        build_classification()
        build_domain()
