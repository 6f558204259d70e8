"""An exercise must not give itself away: no prediction whose measured value the notebook has already printed or
written above it, no code exercise whose worked solution a `show()` listing above it already holds.

Both scans read the committed notebooks as a student meets them (markdown as written, code cells by their outputs)
and stop at the exercise. They are textual: an earlier figure, or the same equation written with other names
(`self.up(F.gelu(self.down(h)))` for `h @ W_down.T ...`), is left to a reader. Run on the notebooks as issue 26
found them, they flag four of its exercises: 01's top-layer share (85 % printed above), 04's prefix-to-prompt ratio
("8 times"), 01's feature-based fine-tuning (93 % of it in cnn.prepare's listing), 04's soft prompt (73 %).
"""
import io
import json
import pathlib
import re
import textwrap
import tokenize

import pytest

from peftcourse import exercises as E

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
# A code exercise leaks when this share of its solution's tokens stands in an earlier listing, in runs of at least
# RUN tokens in the same order. Measured on the course: the two solutions that were literal copies of a listing
# (01's feature-based fine-tuning of cnn.prepare, 04's soft prompt of PromptTuning) held 93 % and 73 %; exercises
# that reuse a listed line around a new step (02's SVD call, 01's BitFit, 04's per-task prompts) 60 to 67 %.
COPIED_SHARE = 0.7
RUN = 6
NUMBER_WORDS = {2: "twice", 3: "three times", 4: "four times", 8: "eight times", 10: "ten times"}


def load(nn_):
    return json.loads((ROOT / "notebooks" / f"{E.NOTEBOOKS[nn_]}.ipynb").read_text())


def exercise_cell(nb, ex):
    """The index of the exercise's cell (the one tagged `exercise` that names it)."""
    call = "predict" if ex.kind == "predict" else "check"
    found = [i for i, c in enumerate(nb["cells"]) if "exercise" in c["metadata"].get("tags", [])
             and re.search(rf"""{call}\(\s*["']{re.escape(ex.id)}["']""", "".join(c["source"]))]
    assert len(found) == 1, f"{ex.id}: expected one exercise cell, found {found}"
    return found[0]


def visible(cell):
    """What a student reads of a cell: a markdown cell's text, a code cell's printed and displayed text."""
    if cell["cell_type"] == "markdown":
        return "".join(cell["source"])
    return "\n".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
                     for o in cell.get("outputs", []))


def listings(cell):
    """The package sources a code cell's `show()` calls displayed (their text starts with '# peftcourse/')."""
    return [text for o in cell.get("outputs", [])
            if (text := "".join(o.get("data", {}).get("text/plain", ""))).startswith("# peftcourse/")]


# ------------------------------------------------------------------ predictions

def numbers(measured):
    if isinstance(measured, dict):
        for v in measured.values():
            yield from numbers(v)
    elif isinstance(measured, (int, float)) and not isinstance(measured, bool):
        yield float(measured)


def tells(value):
    """Patterns that state a measured value: a share as a percentage or to three digits, a small count or ratio
    as a multiple ("8 times", "8×", "eight times"), a larger number as written. 0 and tiny values say nothing
    (they are everywhere)."""
    def number(s):
        return rf"(?<![\d.,]){re.escape(s)}(?![\d]|[.,]\d)"
    if abs(value) < 1e-3:
        return set()
    if abs(value) < 1:
        return {number(f"{100 * value:.2g}") + r"\s?%", number(f"{100 * value:.3g}") + r"\s?%",
                number(f"{value:.3g}")}
    if abs(value) < 10:
        out = {number(s) + r"\$?\s?(×|x\b|times)(?!\s?\d)" for s in {f"{value:g}", f"{value:.1f}"}}
        if round(value) in NUMBER_WORDS and abs(value - round(value)) < 0.05:
            out.add(rf"\b{NUMBER_WORDS[round(value)]}\b")
        return out
    return {number(s) for s in {f"{value:.0f}", f"{value:,.0f}", f"{value:.3g}"}}


def prediction_leaks(nb, index, measured):
    """(cell, excerpt) where a cell above the prediction's question states the measured value. Numbers the
    question itself gives (the setting: "the other 63 weights", "a 16×16 layer") are not counted."""
    question = visible(nb["cells"][index - 1])
    patterns = {p for v in numbers(measured) for p in tells(v) if not re.search(p, question)}
    found = []
    for i, cell in enumerate(nb["cells"][:index - 1]):
        text = visible(cell)
        for p in sorted(patterns):
            for m in re.finditer(p, text):
                found.append((i, " ".join(text[max(0, m.start() - 60):m.end() + 20].split())))
    return found


PREDICTIONS = [ex.id for nn_ in E.NOTEBOOKS for ex in E.for_notebook(nn_) if ex.kind == "predict"]


@pytest.mark.parametrize("ex_id", PREDICTIONS)
def test_no_prediction_is_answered_above_its_question(ex_id):
    ex = E.get(ex_id)
    nb = load(ex.notebook)
    index = exercise_cell(nb, ex)
    found = prediction_leaks(nb, index, ex.measure())
    assert not found, (f"{ex_id} (cell {index}) is answered above it: "
                       + "; ".join(f"cell {i}: ...{excerpt}..." for i, excerpt in found[:3])
                       + ". Ask for it before the reveal, or ask another quantity.")


# ------------------------------------------------------------------ code

def tokens(source):
    """Python tokens without comments and layout; an unparsable text gives what it can."""
    out = []
    try:
        for t in tokenize.generate_tokens(io.StringIO(source).readline):
            if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                              tokenize.ENDMARKER):
                out.append(t.string)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return out


def copied_share(solution, listing, run=RUN):
    """The share of the solution's tokens that lie in runs of `run` tokens appearing in the listing in order."""
    grams = {tuple(listing[i:i + run]) for i in range(len(listing) - run + 1)}
    covered = [False] * len(solution)
    for i in range(len(solution) - run + 1):
        if tuple(solution[i:i + run]) in grams:
            covered[i:i + run] = [True] * run
    return sum(covered) / max(1, len(solution))


def solution_body(ex):
    """What the student writes: the lines between the solution markers, dedented."""
    text = (SOLUTIONS / ex.solution_file).read_text()
    parts = re.split(r"^# %% \[([\w-]+)\]\s*$", text, flags=re.M)
    block = dict(zip(parts[1::2], parts[2::2]))[ex.id]
    return textwrap.dedent(re.search(r"### BEGIN SOLUTION\n(.*?)[ ]*### END SOLUTION", block, re.S).group(1))


def code_leaks(nb, index, body):
    """(cell, share) of every listing above the exercise that holds COPIED_SHARE or more of its solution."""
    solution = tokens(body)
    found = []
    for i, cell in enumerate(nb["cells"][:index]):
        for listing in listings(cell):
            share = copied_share(solution, tokens(listing))
            if share >= COPIED_SHARE:
                found.append((i, share, listing.splitlines()[0]))
    return found


CODE = [ex.id for nn_ in E.NOTEBOOKS for ex in E.for_notebook(nn_) if ex.kind == "code"]


@pytest.mark.parametrize("ex_id", CODE)
def test_no_code_exercise_is_in_a_listing_above_it(ex_id):
    ex = E.get(ex_id)
    nb = load(ex.notebook)
    index = exercise_cell(nb, ex)
    found = code_leaks(nb, index, solution_body(ex))
    assert not found, (f"{ex_id} (cell {index}): " + "; ".join(
        f"cell {i} ({where}) shows {share:.0%} of the solution" for i, share, where in found)
        + ". Ask for a variant the listing does not contain: another layout, scaling, variant or edge case.")


# ------------------------------------------------------------------ the scans find what they look for

def markdown(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def output(text):
    return {"cell_type": "code", "metadata": {}, "source": "", "outputs": [
        {"output_type": "display_data", "data": {"text/plain": text}}]}


@pytest.mark.parametrize("earlier, measured, leaks", [
    ("top-layer      trainable 28,069 of 32,869 (85%)", 0.854, True),     # a share printed as a percentage
    ("a prefix has $L \\cdot 2 = 8$ times the parameters", 8.0, True),     # a ratio as a multiple
    ("that is eight times the weights", 8.0, True),
    ("the largest difference is 3.56", {"diff": 3.5599}, False),           # a small number not as a multiple
    ("LoRA with r = 8 trains 2 × 4096 × 8 = 65,536 of them", 2, False),   # a product, not 'twice'
    ("the ratio is 191 on LLaMA", 191.45, True),
    ("gap 0.0 everywhere", 0.0, False),
    ("85.4% of 1,000", 0.00854, False),                                    # 0.854 % is not 85.4 %
])
def test_the_prediction_scan_finds_stated_values(earlier, measured, leaks):
    nb = {"cells": [output(earlier), markdown("**Exercise.** Predict, then run."), {"cell_type": "code", "source": ""}]}
    assert bool(prediction_leaks(nb, 2, measured)) == leaks


def test_the_prediction_scan_ignores_the_setting_the_question_gives():
    nb = {"cells": [markdown("How many of the other 63 weights become 0?"), output("63"),
                    markdown("**Exercise.** Of the other 63 weights of the block, how many will NF4 store as 0?"),
                    {"cell_type": "code", "source": ""}]}
    assert not prediction_leaks(nb, 3, 63)


def test_the_code_scan_finds_a_copied_body_and_not_a_variant():
    listing = ("# peftcourse/linalg.py\ndef low_rank_factors(M, r):\n"
               "    U, S, Vh = torch.linalg.svd(M, full_matrices=False)\n    return U[:, :r] @ torch.diag(S[:r]) @ Vh[:r]\n")
    nb = {"cells": [output(listing), {"cell_type": "code", "source": ""}]}
    copied = "U, S, Vh = torch.linalg.svd(M, full_matrices=False)  # sorted\nreturn U[:, :r] @ torch.diag(S[:r]) @ Vh[:r]\n"
    variant = "U, S, Vh = torch.linalg.svd(M)\nkeep = S >= tol * S[0]\nreturn (U[:, keep] * S[keep]) @ Vh[keep]\n"
    assert code_leaks(nb, 1, copied) and code_leaks(nb, 1, copied)[0][1] == 1.0
    assert not code_leaks(nb, 1, variant)
    assert not code_leaks({"cells": [output(listing.replace("# peftcourse/", "# elsewhere/"))] + nb["cells"][1:]},
                          1, copied), "only package listings count"
