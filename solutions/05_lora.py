"""Worked solutions of notebooks/05_lora.ipynb's exercises (not for the student notebooks).

Each "# %% [id]" block is the solved exercise cell; the lines between ### BEGIN SOLUTION and
### END SOLUTION are what a student writes (nbgrader replaces them in the generated assignment).
A student reveals one on purpose with peftcourse.check.solution("id").
"""


# %% [setup]
import math

import torch
from torch import nn

from peftcourse import quant
from peftcourse.check import check, predict, reveal, solution


# %% [05-lora-params]
### BEGIN SOLUTION
answer = 4 * 2 * (4 * 192 + 768 * 4)   # blocks x matrices x (A + B), the same for both shapes
### END SOLUTION
check("05-lora-params", answer);


# %% [05-scaling]
### BEGIN SOLUTION
scaling = 16 / 64   # alpha / r
### END SOLUTION
check("05-scaling", scaling);


# %% [05-lora-forward]
def lora_forward(x, W0, b, A, B, alpha, r):
    """LoRA around GPT-2's Conv1D with rsLoRA's scaling, for a batch x (batch, in).

    W0 (in, out) and b (out,) are the frozen Conv1D layer (weight stored transposed);
    A (r, in) and B (out, r) the adapter, scaled by alpha / sqrt(r) (rsLoRA).
    """
    ### BEGIN SOLUTION
    return x @ W0 + b + (alpha / math.sqrt(r)) * (x @ A.T) @ B.T   # Conv1D: x @ W0; two thin matmuls: in -> r -> out
    ### END SOLUTION


check("05-lora-forward", lora_forward);


# %% [05-lora-first-grad]
### BEGIN SOLUTION
prediction = 'neither'
### END SOLUTION
predict("05-lora-first-grad", prediction);
