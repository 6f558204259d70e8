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


# %% [03-parallel-adapter]
def parallel_adapter(x, sublayer_out, W_down, b_down, W_up, b_up, scale):
    """He et al.'s parallel adapter: the bottleneck (down-project to b, GELU, up-project to d) reads the sublayer's
    input x; its result, times scale, is added to the sublayer's output sublayer_out. Both are (..., d).

    Weights in nn.Linear layout (out, in): W_down is (b, d), W_up is (d, b).
    """
    ### BEGIN SOLUTION
    branch = torch.nn.functional.gelu(x @ W_down.T + b_down) @ W_up.T + b_up   # the bottleneck on the input
    return sublayer_out + scale * branch                                        # beside the sublayer, scaled
    ### END SOLUTION


check("03-parallel-adapter", parallel_adapter);


# %% [03-all-zero-start]
### BEGIN SOLUTION
prediction = 'b'
### END SOLUTION
predict("03-all-zero-start", prediction);
