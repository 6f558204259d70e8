"""Worked solutions of notebooks/08_dora.ipynb's exercises (not for the student notebooks).

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


# %% [08-magnitude]
### BEGIN SOLUTION
answer_m = torch.tensor([[3.0, 4, 0, 12], [0, 0, 5, 0]]).norm(dim=1)   # one norm per output row
### END SOLUTION
check("08-magnitude", answer_m);


# %% [08-extra-params]
### BEGIN SOLUTION
answer = 12 * (3 * 768 + 768 + 3072 + 768)   # one magnitude per output: c_attn, attn.c_proj, c_fc, mlp.c_proj
### END SOLUTION
check("08-extra-params", answer);


# %% [08-dora-weight]
def dora_weight(W0, A, B, m, scaling):
    """DoRA's merged weight W' = m * V / ||V|| with V = W0 + scaling * (B A)^T, in GPT-2's Conv1D layout:
    W0 and W' are (in, out); A is (r, in), B (out, r), m (out,): one magnitude per output, i.e. per column."""
    ### BEGIN SOLUTION
    V = W0 + scaling * (B @ A).T
    return m * V / V.norm(dim=0, keepdim=True)   # one norm per output column
    ### END SOLUTION


check("08-dora-weight", dora_weight);


# %% [08-row-norms]
### BEGIN SOLUTION
prediction = 'a'
### END SOLUTION
predict("08-row-norms", prediction);
