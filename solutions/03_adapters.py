"""Worked solutions of notebooks/03_adapters.ipynb's exercises (not for the student notebooks).

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


# %% [03-adapter-params]
### BEGIN SOLUTION
answer = 6 * 2 * (2 * 384 * 32 + 384 + 32)   # blocks x adapters x (down + up weights + biases)
### END SOLUTION
check("03-adapter-params", answer);


# %% [03-adapter-forward]
def bottleneck_adapter(h, W_down, b_down, W_up, b_up):
    """A Houlsby bottleneck adapter applied to h (..., d): down-project to b, GELU, up-project to d, plus h.

    Weights in nn.Linear layout (out, in): W_down is (b, d), W_up is (d, b).
    """
    ### BEGIN SOLUTION
    return h + torch.nn.functional.gelu(h @ W_down.T + b_down) @ W_up.T + b_up
    ### END SOLUTION


check("03-adapter-forward", bottleneck_adapter);


# %% [03-identity-at-init]
### BEGIN SOLUTION
prediction = 'a'
### END SOLUTION
predict("03-identity-at-init", prediction);
