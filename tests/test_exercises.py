"""The exercises teach: reference solutions pass, blanks say so, wrong answers get hints and never the answer."""
import contextlib
import io
import json
import math
import pathlib
import re

import numpy as np
import pytest
import torch

from peftcourse import check as C
from peftcourse import cnn
from peftcourse import exercises as E

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = {p.name[:2]: p for p in sorted((ROOT / "notebooks").glob("*.ipynb"))}
IDS = sorted(E.EXERCISES)


@pytest.fixture(autouse=True)
def fresh_checker():
    C.reset()
    yield
    C.reset()


def run(fn, *args):
    """Call a checker; return (its result, what it printed)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = fn(*args)
    return result, out.getvalue()


def solution_blocks(exercise):
    text = (C.SOLUTIONS_DIR / exercise.solution_file).read_text()
    parts = re.split(r"^# %% \[([\w-]+)\]\s*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def number_strings(value):
    """The ways a number could be printed: 131072, 131,072, 131072.0, 4.125, 0.0078125 ..."""
    value = float(value)
    out = {repr(value), f"{value:g}", f"{value:.6g}"}
    if value.is_integer():
        out |= {str(int(value)), f"{int(value):,}"}
    return {s for s in out if s not in ("0", "0.0")}


def mentions(text, value):
    return any(re.search(rf"(?<![\d.,]){re.escape(s)}(?![\d])", text) for s in number_strings(value))


# ------------------------------------------------------------------ the registry and the notebooks

def exercise_cells(nb):
    """(index, exercise id) of every cell tagged `exercise`."""
    out = []
    for i, cell in enumerate(nb["cells"]):
        if "exercise" in cell.get("metadata", {}).get("tags", []):
            ids = re.findall(r"""(?:check|predict)\(\s*["']([\w-]+)["']""", "".join(cell["source"]))
            assert len(ids) == 1, f"an exercise cell must name exactly one exercise id, cell {i} names {ids}"
            out.append((i, ids[0]))
    return out


@pytest.mark.parametrize("nn_", [f"{n:02d}" for n in range(1, 14)])
def test_each_notebook_has_three_kinds_of_exercise(nn_):
    nb = json.loads(NOTEBOOKS[nn_].read_text())
    cells = exercise_cells(nb)
    kinds = [E.get(ex_id).kind for _, ex_id in cells]
    assert len(cells) >= 3, f"notebook {nn_} has {len(cells)} exercise cells"
    assert "code" in kinds and "predict" in kinds, f"notebook {nn_} exercises are {kinds}"
    assert sorted(ex_id for _, ex_id in cells) == sorted(ex.id for ex in E.for_notebook(nn_)), \
        "every registered exercise of the notebook has exactly one cell, and no cell names another notebook's"
    for i, ex_id in cells:
        cell = nb["cells"][i]
        assert cell["metadata"].get("slideshow", {}).get("slide_type") == "skip", "exercise cells are lab-only"
        if E.get(ex_id).kind == "predict":  # the measuring cell follows the prediction and reveals it
            assert f'reveal("{ex_id}"' in "".join(nb["cells"][i + 1]["source"])


@pytest.mark.parametrize("ex_id", IDS)
def test_solution_matches_its_exercise_cell(ex_id):
    """Outside the solution markers a worked solution is the student's cell, line for line (they stay in step)."""
    ex = E.get(ex_id)
    nb = json.loads(NOTEBOOKS[ex.notebook].read_text())
    cells = [nb["cells"][i] for i, k in exercise_cells(nb) if k == ex_id] if ex.notebook != "00" else \
        [c for c in nb["cells"] if f'check("{ex_id}"' in "".join(c["source"])]
    assert len(cells) == 1
    student = "".join(cells[0]["source"]).splitlines()
    solved = re.sub(r"[ ]*### BEGIN SOLUTION.*?### END SOLUTION\n", "", solution_blocks(ex)[ex_id], flags=re.S)
    for line in solved.strip().splitlines():
        assert line in student, f"{ex_id}: solution line {line!r} is not in the notebook's exercise cell"
    assert ex.name in "\n".join(student) and C.solution_source(ex_id).strip()


@pytest.mark.parametrize("ex_id", [i for i in IDS if E.get(i).kind in ("quick", "array")])
def test_no_expected_value_in_a_student_facing_cell(ex_id):
    """Neither the exercise cell nor its neighbours (question, next cell) show the answer, in source or output."""
    ex = E.get(ex_id)
    nb = json.loads(NOTEBOOKS[ex.notebook].read_text())
    index = dict((k, i) for i, k in exercise_cells(nb))[ex_id]
    values = np.atleast_1d(np.asarray(ex.expected(), dtype=float))
    for cell in nb["cells"][max(0, index - 2):index + 3]:
        text = "".join(cell["source"]) + json.dumps(cell.get("outputs", []), ensure_ascii=False)
        question = "".join(nb["cells"][index - 1]["source"])
        for v in values:
            if ex.kind == "array" and mentions(question, v):
                continue  # an entry that the question itself states (W's entries) is not the answer
            assert not mentions(text, v), f"{ex_id}: the answer {v:g} appears next to the exercise"


def test_notebook_answer_key_and_solutions_match_one_to_one():
    """notebooks/NN_x.ipynb <-> peftcourse/exercises/nbNN_x.py <-> solutions/NN_x.py, and no other module."""
    package = ROOT / "peftcourse" / "exercises"
    assert sorted(p.stem for p in package.glob("nb*.py")) == sorted("nb" + p.stem for p in NOTEBOOKS.values())
    assert sorted(p.stem for p in (ROOT / "solutions").glob("[0-9][0-9]_*.py")) == sorted(p.stem for p in NOTEBOOKS.values())
    for nn_, path in NOTEBOOKS.items():
        exs = E.for_notebook(nn_)
        assert exs and all(ex.notebook == nn_ and ex.solution_file == path.stem + ".py" for ex in exs), nn_
        assert E.module(nn_).__name__ == f"peftcourse.exercises.nb{path.stem}"
    assert len(IDS) == len(set(IDS)) == sum(len(E.for_notebook(nn_)) for nn_ in NOTEBOOKS)


def test_a_notebook_loads_only_its_own_answer_key():
    import subprocess
    import sys
    code = ("import sys; from peftcourse.check import check; check('05-lora-params', ...); "
            "print(sorted(m for m in sys.modules if m.startswith('peftcourse.exercises.nb')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "['peftcourse.exercises.nb05_lora']", out


def test_unknown_notebook_is_a_clear_error():
    with pytest.raises(KeyError, match="no notebook '14'"):
        E.for_notebook("14")
    with pytest.raises(KeyError, match="unknown exercise id '14-x'; known ids: 00-adapter-weights"):
        E.get("14-x")


def test_the_registry_refuses_malformed_exercises():
    with pytest.raises(ValueError, match="tol must be a finite number >= 0"):
        E.Exercise("99-x", "quick", "t", "answer", hint="", reread="", expected=lambda: 1, tol=-1)
    with pytest.raises(ValueError, match="tol must be a finite number >= 0"):
        E.Exercise("99-x", "quick", "t", "answer", hint="", reread="", expected=lambda: 1, tol=True)
    with pytest.raises(ValueError, match="kind must be one of"):
        E.Exercise("99-x", "essay", "t", "answer", hint="", reread="")
    with pytest.raises(ValueError, match="needs options, outcome, measure"):
        E.Exercise("99-x", "predict", "t", "prediction", hint="", reread="")


# ------------------------------------------------------------------ reference solutions and blanks

@pytest.mark.parametrize("ex_id", IDS)
def test_reference_solution_passes(ex_id):
    ex = E.get(ex_id)
    blocks = solution_blocks(ex)
    assert "### BEGIN SOLUTION" in blocks[ex_id] and "### END SOLUTION" in blocks[ex_id], "nbgrader markers"
    namespace = {}
    exec(blocks["setup"], namespace)
    _, printed = run(exec, blocks[ex_id], namespace)
    if ex.kind == "predict":
        assert f"[~] {ex_id}" in printed, printed
        ok, printed = run(C.reveal, ex_id, ex.measure())
    else:
        ok, printed = run(C.check, ex_id, namespace[ex.name])
    assert ok and printed.startswith(f"[x] {ex_id}"), printed


@pytest.mark.parametrize("ex_id", IDS)
def test_blank_answer_reports_not_answered(ex_id):
    ex = E.get(ex_id)
    if ex.kind == "predict":
        for blank in (..., None):
            ok, printed = run(C.predict, ex_id, blank)
            assert not ok and "not answered yet" in printed
        ok, printed = run(C.reveal, ex_id, ex.measure())
        assert not ok and "not answered yet" in printed
        assert printed.count("\n") == 1 and "measurement" not in printed, "nothing of the measurement is shown"
        return
    blanks = (..., None)
    if ex.kind == "code":
        def empty(*args, **kwargs):
            ...

        def unimplemented(*args, **kwargs):
            raise NotImplementedError
        blanks = (..., None, empty, unimplemented)
    for blank in blanks:
        ok, printed = run(C.check, ex_id, blank)
        assert not ok and "not answered yet" in printed, printed
    if ex.kind == "code":   # nbgrader's stub raises: the message says what the function still does
        assert "it still returns nothing" in run(C.check, ex_id, blanks[2])[1]
        assert "it still raises NotImplementedError" in run(C.check, ex_id, blanks[3])[1]


def test_solution_prints_the_worked_solution_without_markers():
    ok, printed = run(C.solution, "05-lora-forward")
    assert "def lora_forward" in printed and "alpha / math.sqrt(r)" in printed and "### " not in printed


def test_solution_without_the_solutions_folder_says_so(monkeypatch, tmp_path):
    monkeypatch.setattr(C, "SOLUTIONS_DIR", tmp_path / "solutions")
    with pytest.raises(FileNotFoundError, match="handed out separately"):
        C.solution("05-lora-forward")


# ------------------------------------------------------------------ wrong answers: hints, never the answer

QUICK_MISTAKES = [(ex.id, wrong, hint) for ex in E.EXERCISES.values() if ex.kind == "quick"
                  for wrong, hint in ex.mistakes]


@pytest.mark.parametrize("ex_id, wrong, hint", QUICK_MISTAKES, ids=[f"{m[0]}-{k}" for k, m in enumerate(QUICK_MISTAKES)])
def test_common_wrong_number_gets_its_hint_not_the_answer(ex_id, wrong, hint):
    ex = E.get(ex_id)
    expected = float(ex.expected())
    answer = wrong(expected)
    ok, printed = run(C.check, ex_id, answer)
    assert not ok and hint in printed, printed
    assert not mentions(printed, expected), printed


@pytest.mark.parametrize("wrong, kind", [(lambda e: 2 * e, "twice too large"), (lambda e: e / 2, "half"),
                                         (lambda e: 8 * e, "bits vs bytes"), (lambda e: e * 1e9 / 2**30, "GiB")])
def test_generic_mistakes_are_named(wrong, kind):
    ok, printed = run(C.check, "01-full-ft-gb", wrong(208.0))
    assert not ok and kind in printed and not mentions(printed, 208), printed


def test_hints_grade_with_each_wrong_try_and_never_print_the_answer():
    expected = float(E.get("05-lora-params").expected())
    outputs = [run(C.check, "05-lora-params", 1234)[1] for _ in range(3)]
    assert "Reread" not in outputs[0] and "Reread" in outputs[1] and "notebook's section" in outputs[1]
    assert 'solution("05-lora-params")' in outputs[2] and 'solution(' not in outputs[1]
    assert not any(mentions(o, expected) for o in outputs)
    assert run(C.check, "05-lora-params", expected)[0]  # a right answer after wrong ones


def test_numbers_of_any_numeric_type_are_accepted():
    for answer in (30720, 30720.0, np.int64(30720), np.float32(30720), np.array(30720), torch.tensor(30720),
                   torch.tensor(30720.0)):
        assert run(C.check, "05-lora-params", answer)[0], type(answer)


@pytest.mark.parametrize("answer, message", [(True, "is not a number"), ("30720", "is not a number"),
                                             ([30720], "is not a number"), (torch.tensor([30720]), "is not a number"),
                                             (float("nan"), "not a finite number"), (np.bool_(True), "not a number")])
def test_bad_input_gets_a_clear_message(answer, message):
    ok, printed = run(C.check, "05-lora-params", answer)
    assert not ok and message in printed and "30720" not in printed.replace(repr(answer), "")


def test_tolerance_is_applied():
    assert run(C.check, "07-base-gb", 33.5)[0]          # within ±0.05 of the answer (33.53)
    assert not run(C.check, "07-base-gb", 33.4)[0]


def test_unknown_id_and_wrong_entry_point_are_clear_errors():
    with pytest.raises(KeyError, match="unknown exercise id '05-lora-frward'.*05-lora-forward"):
        C.check("05-lora-frward", 1)
    with pytest.raises(TypeError, match="an exercise id is a string"):
        C.check(5, 1)
    with pytest.raises(ValueError, match="is a prediction: commit it with predict"):
        C.check("05-lora-first-grad", "B")
    with pytest.raises(ValueError, match="answer it with check"):
        C.predict("05-lora-params", 3)


def test_array_answers_compare_shapes_and_layout():
    ok, printed = run(C.check, "08-magnitude", [13.0, 5.0, 1.0, 12.0])  # one norm per column: the wrong axis
    assert not ok and "shape (4,)" in printed
    ok, printed = run(C.check, "08-magnitude", torch.tensor([[3.0, 4, 0, 12], [0, 0, 5, 0]]).abs().sum(1))
    assert not ok and "L1 norm" in printed and not mentions(printed, 13)
    ok, printed = run(C.check, "08-magnitude", "13, 5")
    assert not ok and "not an array of numbers" in printed
    assert run(C.check, "08-magnitude", np.array([13.0, 5.0]))[0]


# wrong functions a student plausibly writes, with the kind of mistake the checker must name
def lora_no_scaling(x, W0, b, A, B, alpha, r):   # 05's layer: GPT-2 Conv1D (W0 is (in, out)), rsLoRA's α/√r
    return x @ W0 + b + x @ A.T @ B.T


def lora_no_bias(x, W0, b, A, B, alpha, r):
    return x @ W0 + alpha / r ** 0.5 * x @ A.T @ B.T


def lora_detached(x, W0, b, A, B, alpha, r):
    return (x @ W0 + b + alpha / r ** 0.5 * x @ A.T @ B.T).detach()


def lora_transposed(x, W0, b, A, B, alpha, r):
    return (x @ W0 + b + alpha / r ** 0.5 * x @ A.T @ B.T).T


def lora_crashes(x, W0, b, A, B, alpha, r):
    return x @ W0.T + b


WRONG_CODE = {
    "01-bitfit": [(lambda model, n_classes: model, "nothing changed"),
                  (lambda model, n_classes: cnn.prepare(model, "full", n_classes), "everything still trains"),
                  (lambda model, n_classes: cnn.prepare(model, "feature-based", n_classes), "only the new layer trains")],
    "02-svd-truncate": [(lambda M, r: (lambda U, S, Vh: U[:, :r] @ Vh[:r])(*torch.linalg.svd(M, full_matrices=False)),
                         "singular values are missing"),
                        (lambda M, r: M, "nothing was truncated")],
    "03-parallel-adapter": [(lambda x, sublayer_out, W_down, b_down, W_up, b_up, scale:
                             sublayer_out + torch.nn.functional.gelu(x @ W_down.T + b_down) @ W_up.T + b_up,
                             "scaling factor is missing"),
                            (lambda x, sublayer_out, W_down, b_down, W_up, b_up, scale: sublayer_out + scale * (
                                torch.nn.functional.gelu(sublayer_out @ W_down.T + b_down) @ W_up.T + b_up),
                             "reads the sublayer's output")],
    "04-mixed-prompts": [(lambda model, prompts, task_ids, input_ids: torch.cat(
        [model.get_input_embeddings()(input_ids), prompts[task_ids]], 1), "come after"),
                         (lambda model, prompts, task_ids, input_ids: torch.cat(
        [prompts[0].expand(len(task_ids), -1, -1), model.get_input_embeddings()(input_ids)], 1), "first task's prompt")],
    "05-lora-forward": [(lora_no_scaling, "scaling α/√r is missing"), (lora_no_bias, "bias b is missing"),
                        (lora_detached, "no gradient flows back"), (lora_transposed, "transposed"),
                        (lora_crashes, "your function raised RuntimeError")],
    "06-q4-1-block": [(lambda block: torch.round(block / block.abs().max() * 7).long() + 7, "that is absmax int4"),
                      (lambda block: torch.round(block / ((block.max() - block.min()) / 15)).clamp(0, 15),
                       "the minimum m is missing")],
    "07-double-quant": [(lambda absmax: (lambda blocks: (
        __import__("peftcourse").quant.nearest(blocks / blocks.abs().amax(1, keepdim=True),
                                               __import__("peftcourse").quant.dynamic_code()).flatten(),
        blocks.abs().amax(1), torch.tensor(0.0)))(absmax.view(-1, 256)), "the offset is missing")],
    "08-dora-weight": [(lambda W0, A, B, m, scaling: (lambda V: m * V / V.norm(dim=1, keepdim=True))(
        W0 + scaling * (B @ A).T), "norm per input row"),   # 08's layer: GPT-2 Conv1D, W0 and W' are (in, out)
                       (lambda W0, A, B, m, scaling: (lambda V: V / V.norm(dim=0, keepdim=True))(W0 + scaling * (B @ A).T),
                        "magnitude m is missing")],
    "09-sharing": [(lambda M, in_features, out_features: (lambda r: (
        torch.arange(out_features)[:, None] % r == torch.arange(r)).float() @ M @ (
        torch.arange(in_features) % r == torch.arange(r)[:, None]).float())(M.shape[0]), "not with zeros")],
    "10-fb-grad": [(lambda x, grad_out, indices, scaling: grad_out[:, indices].T @ x, "scaling α/r is missing"),
                   (lambda x, grad_out, indices, scaling: scaling * x.T @ grad_out[:, indices], "transposed")],
    "11-merge": [(lambda W0, updates: W0.clone().index_copy(0, torch.cat([i for i, _ in updates]),
                                                            torch.cat([u.T for _, u in updates], 0)),
                  "replaced the chosen input features' rows"),
                 (lambda W0, updates: W0.T.clone().index_add(1, torch.cat([i for i, _ in updates]),   # W as (out, in)
                                                             torch.cat([u for _, u in updates], 1)),
                  "your result is transposed")],
    "12-state-bytes": [(lambda model: 12 * sum(p.numel() for p in model.parameters()), "frozen weights too"),
                       (lambda model: 16 * sum(p.numel() for p in model.parameters() if p.requires_grad),
                        "weights themselves")],
    "13-position-ids": [(lambda attention_mask: torch.arange(attention_mask.shape[1]).expand_as(attention_mask).clone(),
                         "the padding is counted"),
                        (lambda attention_mask: attention_mask.cumsum(-1) - 1, "padded positions are -1")],
}
CODE_MISTAKES = [(ex_id, fn, hint) for ex_id, items in WRONG_CODE.items() for fn, hint in items]


def test_every_code_exercise_has_wrong_functions_to_test():
    assert set(WRONG_CODE) == {ex.id for ex in E.EXERCISES.values() if ex.kind == "code"}


@pytest.mark.parametrize("ex_id, fn, hint", CODE_MISTAKES, ids=[f"{m[0]}-{k}" for k, m in enumerate(CODE_MISTAKES)])
def test_common_wrong_function_gets_its_hint(ex_id, fn, hint):
    ok, printed = run(C.check, ex_id, fn)
    assert not ok and hint in printed, printed


@pytest.mark.parametrize("ex_id, fn, hint", [
    ("01-bitfit", lambda model, n_classes: model.head.append(torch.nn.Linear(10, n_classes)) and model,
     "different number of weight tensors"),
    ("01-bitfit", lambda model, n_classes: n_classes, "return the model"),
    ("04-mixed-prompts", lambda model, prompts, task_ids, input_ids: prompts, "the model needs (batch, n + seq, d)"),
    ("07-double-quant", lambda absmax: absmax, "return three things"),
])
def test_results_that_cannot_be_compared_are_explained(ex_id, fn, hint):
    ok, printed = run(C.check, ex_id, fn)
    assert not ok and hint in printed, printed


def test_a_function_is_expected_not_its_result():
    ok, printed = run(C.check, "05-lora-forward", torch.zeros(3))
    assert not ok and "is not a function" in printed


# ------------------------------------------------------------------ predictions

def test_prediction_validates_options_and_reveals_only_after_commitment():
    ex = E.get("05-lora-first-grad")
    measured = ex.measure()
    ok, printed = run(C.predict, "05-lora-first-grad", "C")
    assert not ok and "not one of the options" in printed
    ok, printed = run(C.reveal, "05-lora-first-grad", measured)
    assert not ok and "not answered yet" in printed and "Largest" not in printed
    assert run(C.predict, "05-lora-first-grad", " a ")[0]  # case and spaces do not matter
    ok, printed = run(C.reveal, "05-lora-first-grad", measured)
    assert not ok and "the measurement says 'neither'" in printed and "Reread" in printed
    assert run(C.predict, "02-rank-i-plus-j", 2)[0]         # a number names a numeric option
    assert run(C.reveal, "02-rank-i-plus-j", E.get("02-rank-i-plus-j").measure())[0]


@pytest.mark.parametrize("ex_id", [i for i in IDS if E.get(i).kind == "predict"])
def test_every_wrong_prediction_is_explained(ex_id):
    ex = E.get(ex_id)
    measured = ex.measure()
    truth = ex.outcome(measured)
    for option in ex.options:
        if option != truth:
            run(C.predict, ex_id, option)
            ok, printed = run(C.reveal, ex_id, measured)
            assert not ok and f"the measurement says {truth!r}" in printed and "Reread" in printed


def test_every_checker_and_measurement_runs():
    """Each exercise's reference cases, measurement or expected answer can be computed (how long they take is
    tests/bench_exercises.py's business: a benchmark, since a busy machine would fail a timed test)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_exercises", ROOT / "tests" / "bench_exercises.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.time_exercises()
    assert sorted(ex_id for ex_id, _, _ in rows) == IDS
    assert all(cpu >= 0 and wall >= 0 for _, cpu, wall in rows)
    assert math.isfinite(float(E.get("12-llama-ratio").measure()))


def test_nbgrader_source_notebooks_hold_every_solution(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_source", ROOT / "solutions" / "make_nbgrader_source.py")
    make_source = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_source)
    written = run(make_source.main, str(tmp_path / "source"))[0]
    assert len(written) == len(E.NOTEBOOKS)   # every notebook, 00 (the demonstration) too
    assert "c.ClearOutput.enabled = False" in (tmp_path / "nbgrader_config.py").read_text()
    for path in written:
        cells = json.loads(path.read_text())["cells"]
        meta = [c["metadata"].get("nbgrader", {}) for c in cells]
        solved = [c for c, m in zip(cells, meta) if m.get("solution")]
        graded = [c for c, m in zip(cells, meta) if m.get("grade")]
        exs = E.for_notebook(path.name[:2])
        assert len(solved) == len(exs) and len(graded) == sum(ex.kind != "predict" for ex in exs)
        assert all("### BEGIN SOLUTION" in "".join(c["source"]) and "solution" in c["metadata"]["tags"] for c in solved)
        # the checker is imported in locked cells only: a student's `check = ...` or a deleted line cannot grade
        assert not any("from peftcourse.check import" in "".join(c["source"]) for c in solved)
        first = min(i for i, m in enumerate(meta) if m.get("solution"))
        imports = [i for i, m in enumerate(meta) if m.get("locked") and not m.get("grade")
                   and "from peftcourse.check import" in "".join(cells[i]["source"])]
        assert imports == [first - 1], "one locked import cell, just before the first exercise"
        for c in graded:
            lines = "".join(c["source"]).splitlines()
            assert lines[0] == "from peftcourse.check import check as _graded_check", lines
            assert lines[1].startswith("assert _graded_check(") and c["metadata"]["nbgrader"]["locked"]
