"""Checkers for the notebooks' exercises: they say what kind of mistake an answer looks like, never the answer.

Three kinds of exercise (ids, expected values and reference implementations live in peftcourse/exercises/,
one module per notebook):

    check("05-lora-params", answer)        a number (or array) to work out
    check("05-lora-forward", lora_forward) a function to write, run against the package on random inputs
    predict("05-lora-first-grad", "B")     commit to a prediction ...
    reveal("05-lora-first-grad", measured) ... then the next cell measures, and the checker compares and explains

A wrong answer gets graded hints: first the kind of mistake (a factor of 2, bits vs bytes, a missing bias,
a transposed layout, ...), on a further wrong try the notebook section and lecture slide to reread, and then
the way to see the worked solution on purpose: solution("05-lora-params"). A blank answer (`...` or None)
reports "not answered yet" and never raises, so a notebook runs top to bottom before anyone answers.
"""
import math
import pathlib
import re

import numpy as np
import torch

from . import exercises
from .runtime import ROOT
from .validate import as_number

SOLUTIONS_DIR = pathlib.Path(ROOT) / "solutions"

_tries = {}        # exercise id -> wrong answers so far (the hints get more specific with each)
_predictions = {}  # exercise id -> the committed prediction


def reset():
    """Forget every try and prediction (a fresh start, as after a kernel restart)."""
    _tries.clear()
    _predictions.clear()


def _blank(answer):
    return answer is None or answer is Ellipsis


def _say(ex, mark, text):
    print(f"[{mark}] {ex.id} ({ex.title}): {text}")


def _wrong(ex, first_hint):
    """A wrong try: the kind of mistake first; the place to reread from the second try; the way out from the third."""
    n = _tries[ex.id] = _tries.get(ex.id, 0) + 1
    _say(ex, " ", f"not yet. {first_hint or ex.hint}")
    if n >= 2:
        print(f"    Reread: {ex.reread}")
    if n >= 3:
        print(f'    Stuck? solution("{ex.id}") shows a worked solution.')
    return False


def _right(ex, text):
    _tries.pop(ex.id, None)
    _say(ex, "x", text)
    return True


# ------------------------------------------------------------------ numbers

def _close(a, b, tol):
    return abs(a - b) <= max(tol, 1e-9 * max(abs(a), abs(b)))


def _numeric_mistake(ex, answer, expected):
    """The hint of the first known mistake whose wrong value the answer equals (exercise-specific first)."""
    for wrong, hint in list(ex.mistakes) + list(exercises.COMMON_MISTAKES):
        value = wrong(expected)
        if value is not None and not _close(value, expected, ex.tol) and _close(answer, value, ex.tol):
            return hint
    return None


def _check_number(ex, answer):
    value = as_number(answer)
    if value is None:
        _say(ex, " ", f"{type(answer).__name__} {answer!r} is not a number: the answer is one number "
                      f"(an int or a float; numpy and 0-d torch scalars are fine, True/False are not)")
        return False
    if not math.isfinite(value):
        _say(ex, " ", f"{answer!r} is not a finite number")
        return False
    expected = float(ex.expected())
    if _close(value, expected, ex.tol):
        return _right(ex, f"correct ({answer!r}). {ex.explain}")
    hint = _numeric_mistake(ex, value, expected)
    if hint is None and abs(value - expected) <= 0.05 * abs(expected):
        hint = "close, but outside the tolerance: check your rounding and use exact figures, not rounded ones."
    return _wrong(ex, hint)


def _as_array(value):
    if torch.is_tensor(value):
        return value.detach().cpu().numpy()
    if isinstance(value, (np.ndarray, list, tuple)):
        return np.asarray(value)
    return None


def _check_array(ex, answer):
    got, expected = _as_array(answer), np.asarray(ex.expected())
    if got is None or got.dtype.kind not in "iuf":
        _say(ex, " ", f"{type(answer).__name__} is not an array of numbers: answer with a torch tensor, "
                      f"a numpy array or a list of numbers")
        return False
    if got.shape != expected.shape:
        transposed = got.ndim == 2 and got.shape == expected.shape[::-1]
        return _wrong(ex, "your array is the transpose of what is asked: check the layout (rows = outputs)."
                      if transposed else f"your array has shape {got.shape}; the answer has shape {expected.shape}.")
    if np.allclose(got, expected, rtol=0, atol=max(ex.tol, 1e-9)):
        return _right(ex, f"correct. {ex.explain}")
    for wrong, hint in ex.mistakes:
        value = np.asarray(wrong(expected))
        if value.shape == got.shape and np.allclose(got, value, rtol=0, atol=max(ex.tol, 1e-9)):
            return _wrong(ex, hint)
    return _wrong(ex, None)


def check(exercise_id, answer):
    """Check a quick exercise's number (or array), or a code exercise's function. Returns True or False.

    Prints a one-line verdict: correct, not answered yet, or a hint that never gives the expected value.
    """
    ex = exercises.get(exercise_id)
    if ex.kind == "predict":
        raise ValueError(f"{exercise_id!r} is a prediction: commit it with predict({exercise_id!r}, ...) and let "
                         f"the next cell call reveal({exercise_id!r}, measured)")
    if _blank(answer):
        _say(ex, " ", "not answered yet — replace the ... with your answer and run the cell again")
        return False
    if ex.kind == "code":
        return _check_code(ex, answer)
    if ex.kind == "array":
        return _check_array(ex, answer)
    return _check_number(ex, answer)


# ------------------------------------------------------------------ code

def _leaves(inputs, grad_names):
    """Fresh copies of the inputs (a student's function must not change ours); grad_names require grad."""
    out = {}
    for k, v in inputs.items():
        if torch.is_tensor(v):
            v = v.detach().clone().requires_grad_(k in grad_names)
        out[k] = v
    return out


def _compare(case, student_fn):
    """None if the student's function reproduces the case, else the hint that describes the difference."""
    inputs = _leaves(case.inputs, case.grads)
    fn = student_fn if case.wrap is None else case.wrap(student_fn)
    try:
        got = fn(**inputs)
    except NotImplementedError:  # nbgrader's stub in a student version
        return "blank: raises NotImplementedError"
    except exercises.Feedback as feedback:  # the result could not be compared; the message says why
        return str(feedback)
    except Exception as err:  # the student's code: report what it raised, as a hint, without stopping the notebook
        return f"your function raised {type(err).__name__}: {err}. {case.shape_note}"
    if _blank(got):
        return "blank: returns nothing"
    if not torch.is_tensor(got):
        return f"your function returned a {type(got).__name__}; it should return a torch tensor."
    want = case.expected
    if got.shape != want.shape:
        if got.dim() == 2 and tuple(got.shape) == tuple(want.shape)[::-1]:
            return "your result is transposed: PyTorch keeps weights as (out, in) and activations as (..., features)."
        return f"your result has shape {tuple(got.shape)}, the package's has {tuple(want.shape)}. {case.shape_note}"
    got_values = got.detach().to(want.dtype)
    if got_values.dtype.is_floating_point:
        same = torch.allclose(got_values, want, rtol=1e-4, atol=1e-5)
    else:
        same = torch.equal(got_values, want)
    if not same:
        for wrong, hint in case.wrong:
            if wrong.shape == want.shape and torch.allclose(got_values.to(wrong.dtype), wrong, rtol=1e-4, atol=1e-5):
                return hint
        return "the shapes are right but the values differ from the package's on random inputs."
    if case.grads:
        if not got.requires_grad:
            return ("the values are right but no gradient flows back: did you use .detach(), .data, "
                    "torch.no_grad() or build a new tensor from numbers?")
        (got * case.probe).sum().backward()
        for name, want_grad in case.grads.items():
            grad = inputs[name].grad
            if grad is None or not torch.allclose(grad, want_grad, rtol=1e-4, atol=1e-5):
                return (f"the values are right but the gradient with respect to {name} differs: "
                        f"does {name} enter the result exactly as in the method (not detached, not copied)?")
    return None


def _check_code(ex, student_fn):
    if not callable(student_fn):
        _say(ex, " ", f"{type(student_fn).__name__} is not a function: pass the function itself, "
                      f"e.g. check({ex.id!r}, {ex.name}), without calling it")
        return False
    for case in ex.cases():
        problem = _compare(case, student_fn)
        if problem is not None and problem.startswith("blank: "):
            _say(ex, " ", f"not answered yet — write the function's body (it still {problem[7:]})")
            return False
        if problem is not None:
            return _wrong(ex, problem)
    return _right(ex, f"your function matches the package on random inputs. {ex.explain}")


# ------------------------------------------------------------------ predictions

def _norm_option(ex, prediction):
    """The option key a prediction names (case and surrounding spaces ignored), or None."""
    if as_number(prediction) is not None and float(prediction).is_integer():
        prediction = str(int(prediction))  # 2 for the option "2"
    if isinstance(prediction, str):
        key = prediction.strip().lower()
        for option in ex.options:
            if option.lower() == key:
                return option
    return None


def predict(exercise_id, prediction):
    """Commit to a prediction before the measuring cell runs. Returns True once a valid prediction is recorded."""
    ex = exercises.get(exercise_id)
    if ex.kind != "predict":
        raise ValueError(f"{exercise_id!r} is not a prediction exercise: answer it with check({exercise_id!r}, ...)")
    if _blank(prediction):
        _predictions.pop(ex.id, None)
        _say(ex, " ", "not answered yet — replace the ... with one of " + ", ".join(repr(o) for o in ex.options))
        return False
    option = _norm_option(ex, prediction)
    if option is None:
        _say(ex, " ", f"{prediction!r} is not one of the options: write one of "
                      + ", ".join(repr(o) for o in ex.options))
        return False
    _predictions[ex.id] = option
    _say(ex, "~", f"prediction recorded: {option!r} ({ex.options[option]}). Now run the next cell to measure.")
    return True


def _readable(measured):
    """A dict of measurements as 'A 0, B 18.6'; a single number stays a number for the explanation's format."""
    if isinstance(measured, dict):
        return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in measured.items())
    return measured


def reveal(exercise_id, measured):
    """Compare the committed prediction with what the cell measured, and explain the outcome.

    Without a committed prediction it says so and shows nothing of the measurement.
    """
    ex = exercises.get(exercise_id)
    if ex.kind != "predict":
        raise ValueError(f"{exercise_id!r} is not a prediction exercise")
    if ex.id not in _predictions:
        _say(ex, " ", "not answered yet — commit a prediction in the cell above (and run it) before measuring")
        return False
    outcome = ex.outcome(measured)
    guess = _predictions[ex.id]
    explanation = ex.explain.format(m=_readable(measured))
    if guess == outcome:
        return _right(ex, f"you predicted {guess!r} and the measurement agrees. {explanation}")
    _say(ex, " ", f"you predicted {guess!r}; the measurement says {outcome!r} ({ex.options[outcome]}). {explanation}")
    print(f"    Reread: {ex.reread}")
    return False


# ------------------------------------------------------------------ solutions

def solution_source(exercise_id):
    """The worked solution of one exercise, from solutions/ (kept out of the student notebooks)."""
    ex = exercises.get(exercise_id)
    path = SOLUTIONS_DIR / ex.solution_file
    if not path.exists():
        raise FileNotFoundError(f"this copy of the course has no {path.relative_to(SOLUTIONS_DIR.parent)}: "
                                "the solutions are handed out separately (ask your lecturer)")
    blocks = re.split(r"^# %% \[([\w-]+)\]\s*$", path.read_text(), flags=re.M)
    found = dict(zip(blocks[1::2], blocks[2::2]))
    if ex.id not in found:
        raise KeyError(f"{path.name} holds no solution block '# %% [{ex.id}]'")
    lines = [line for line in found[ex.id].strip("\n").splitlines() if not line.strip().startswith("### ")]
    return "\n".join(lines).strip() + "\n"


def solution(exercise_id):
    """Print the worked solution of one exercise: to be called on purpose, after trying."""
    print(f"# solution of {exercise_id} ({exercises.get(exercise_id).title})\n{solution_source(exercise_id)}")
