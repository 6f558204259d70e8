"""The notebooks' exercises, keyed by id ("NN-slug"): expected values, reference checks and hints.

This package is the answer key, kept out of the notebooks: an exercise cell holds only `...` and a call such as
check("05-lora-params", answer). One module per notebook, in the notebook's order, each helper just above the
exercise that uses it:

    notebooks/05_lora.ipynb  <->  peftcourse/exercises/nb05_lora.py  <->  solutions/05_lora.py (worked solutions)

core.py holds what they are made of (Exercise, Case, the common mistakes). Expected values are computed from the
package wherever it can (a refactor of a layer keeps the key right), and every code exercise runs the student's
function against the package's public classes on random inputs. A notebook's module is imported on its first
check, so a notebook loads only its own answer key.

Kinds: "quick" (a number), "array" (a small tensor), "code" (a function to write), "predict" (commit, then measure).
"""
import importlib

from .core import COMMON_MISTAKES, KINDS, NOTEBOOKS, Case, Exercise, Feedback, where  # noqa: F401 (the public names)

SOLUTION_FILES = {nn_: name + ".py" for nn_, name in NOTEBOOKS.items()}


def module(nn_):
    """The answer-key module of notebook 'NN' (imported on first use)."""
    if nn_ not in NOTEBOOKS:
        raise KeyError(f"no notebook {nn_!r}: the notebooks are " + ", ".join(NOTEBOOKS))
    return importlib.import_module(f"{__name__}.nb{NOTEBOOKS[nn_]}")


def for_notebook(nn_):
    """The exercises of notebook 'NN', in order."""
    return list(module(nn_).EXERCISES)


def all_exercises():
    """Every exercise of the course, by id, in notebook order."""
    return {ex.id: ex for nn_ in NOTEBOOKS for ex in for_notebook(nn_)}


def get(exercise_id):
    """The exercise with this id; a clear error for an unknown one."""
    if not isinstance(exercise_id, str):
        raise TypeError(f"an exercise id is a string like '05-lora-params', got {exercise_id!r}")
    prefix = exercise_id[:2]
    same = {ex.id: ex for ex in for_notebook(prefix)} if prefix in NOTEBOOKS else {}
    if exercise_id not in same:
        known = list(same) or sorted(all_exercises())
        raise KeyError(f"unknown exercise id {exercise_id!r}; known ids" + (f" for notebook {prefix}" if same else "")
                       + ": " + ", ".join(known))
    return same[exercise_id]


def __getattr__(name):
    """EXERCISES: every exercise by id, as all_exercises() (loads every notebook's module)."""
    if name == "EXERCISES":
        return all_exercises()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
