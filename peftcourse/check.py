"""Checkers for the notebooks' "check yourself" exercises: they say what is right, never just 'wrong'."""
import math


def check(name, answer, expected, tol=0.0):
    """Compare a student's answer to the expected value (numbers within tol, anything else exactly).

    Prints a one-line verdict and returns True/False, so a notebook cell can also assert on it.
    """
    if answer is None or answer is Ellipsis:
        print(f"[ ] {name}: not answered yet — replace the ... with your answer")
        return False
    if isinstance(expected, (int, float)) and isinstance(answer, (int, float)):
        ok = math.isfinite(answer) and abs(answer - expected) <= tol
    else:
        ok = answer == expected
    if ok:
        print(f"[x] {name}: correct ({answer})")
    else:
        hint = f" (within ±{tol})" if tol else ""
        print(f"[ ] {name}: {answer!r} is not right; expected {expected!r}{hint}")
    return ok
