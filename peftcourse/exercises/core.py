"""What every notebook's answer key is made of: an Exercise, the random Case a code exercise is checked on, and the
mistakes any numeric answer can make. The checker (peftcourse/check.py) reads these; it never computes an answer."""
import math
from dataclasses import dataclass, field
from typing import Callable

import torch

KINDS = ("quick", "array", "code", "predict")

# notebook number -> the name shared by notebooks/<name>.ipynb, its answer key peftcourse/exercises/nb<name>.py and
# its worked solutions solutions/<name>.py
NOTEBOOKS = {
    "00": "00_start_here", "01": "01_finetuning_approaches", "02": "02_rank_and_low_rank", "03": "03_adapters",
    "04": "04_prompt_and_prefix_tuning", "05": "05_lora", "06": "06_quantization_nf4", "07": "07_qlora",
    "08": "08_dora", "09": "09_mora", "10": "10_sbora", "11": "11_multi_sbora", "12": "12_compare",
    "13": "13_chat_model",
}


class Feedback(Exception):
    """Raised by a case's wrapper when a student's result cannot be compared; its message is the hint."""


@dataclass(frozen=True)
class Case:
    """One random trial of a code exercise: the inputs, the package's output, and typical wrong outputs."""
    inputs: dict
    expected: torch.Tensor
    wrong: tuple = ()          # (wrong output, hint naming the kind of mistake)
    grads: dict = field(default_factory=dict)  # input name -> the package's gradient of (output * probe).sum()
    probe: torch.Tensor = None
    shape_note: str = ""       # what the shapes should be, said without giving the result
    wrap: Callable = None      # student function -> the function actually compared (e.g. one that summarises)


@dataclass(frozen=True)
class Exercise:
    id: str
    kind: str
    title: str
    name: str                  # the variable or function the student fills in
    hint: str                  # the first nudge when no known mistake matches
    reread: str                # notebook section and lecture slide, shown from the second wrong try
    explain: str = ""          # said once the answer is right (predict: after the measurement; {m} = measured)
    expected: Callable = None  # quick/array: () -> value
    tol: float = 0.0
    mistakes: tuple = ()       # quick/array: (expected -> a typical wrong value, hint)
    cases: Callable = None     # code: () -> [Case, ...]
    options: dict = None       # predict: option -> what it means
    outcome: Callable = None   # predict: measured -> the option that happened
    measure: Callable = None   # predict: () -> a measurement like the notebook's (used by the tests)

    def __post_init__(self):
        """A malformed entry fails when its module loads, naming what is wrong."""
        if self.kind not in KINDS:
            raise ValueError(f"exercise {self.id!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if isinstance(self.tol, bool) or not isinstance(self.tol, (int, float)) or not 0 <= self.tol < math.inf:
            raise ValueError(f"exercise {self.id!r}: tol must be a finite number >= 0, got {self.tol!r}")
        needs = {"quick": ("expected",), "array": ("expected",), "code": ("cases",),
                 "predict": ("options", "outcome", "measure")}[self.kind]
        missing = [n for n in needs if getattr(self, n) is None]
        if missing:
            raise ValueError(f"exercise {self.id!r} ({self.kind}) needs {', '.join(missing)}")

    @property
    def notebook(self):
        return self.id[:2]

    @property
    def solution_file(self):
        return NOTEBOOKS[self.notebook] + ".py"


def where(section, slide):
    """The `reread` text: a section of the exercise's notebook and a slide of the lecture."""
    return f"the notebook's section {section}, and the lecture slide {slide}."


# Mistakes any numeric answer can make; an exercise's own mistakes are tried first. None of these hints
# contains a number derived from the expected value.
COMMON_MISTAKES = (
    (lambda e: 2 * e, "your answer is twice too large: something is counted twice (both factors? two of each?)."),
    (lambda e: e / 2, "your answer is half of what it should be: a factor of 2 is missing (A and B? key and value? "
                      "two per block?)."),
    (lambda e: 8 * e, "bits vs bytes: your answer looks like bits where bytes are asked (1 byte = 8 bits)."),
    (lambda e: e / 8, "bits vs bytes: your answer looks like bytes where bits are asked (1 byte = 8 bits)."),
    (lambda e: e * 1e9 / 2**30, "GB vs GiB: the course counts GB = 10⁹ bytes, as the lecture does, "
                                "not GiB = 2³⁰."),
    (lambda e: e * 2**30 / 1e9, "GB vs GiB: the course counts GB = 10⁹ bytes; your answer is off by 2³⁰/10⁹."),
    (lambda e: 100 * e, "a percentage where a fraction is asked (or the other way round): a factor of 100."),
    (lambda e: e / 100, "a fraction where a percentage is asked (or the other way round): a factor of 100."),
    (lambda e: -e, "the sign is wrong."),
)
