"""Worked solutions of notebooks/10_sbora.ipynb's exercises (not for the student notebooks).

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


# %% [10-fa-params]
### BEGIN SOLUTION
answer = 4096 * 32   # FA trains B only: out x r
### END SOLUTION
check("10-fa-params", answer);


# %% [10-fb-forward]
def sbora_fb_forward(x, W0, b, A, indices, scaling):
    """SBoRA-FB's output for x (batch, in): the frozen layer's W0 x + b, with scaling * (A x) added into the r
    outputs listed in indices. A is (r, in). Use index_add; no one-hot matrix.
    """
    ### BEGIN SOLUTION
    return (x @ W0.T + b).index_add(-1, indices, scaling * x @ A.T)
    ### END SOLUTION


check("10-fb-forward", sbora_fb_forward);


# %% [10-fa-region]
### BEGIN SOLUTION
prediction = 'b'
### END SOLUTION
predict("10-fa-region", prediction);
