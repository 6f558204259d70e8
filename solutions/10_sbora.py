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


# %% [10-fb-grad]
def sbora_fb_grad(x, grad_out, indices, scaling):
    """∂loss/∂A of SBoRA-FB (r, in), for y = W0 x + b + scaling · B_sb A x on x (batch, in), given the upstream
    gradient grad_out = ∂loss/∂y (batch, out); B_sb holds the columns `indices` of the identity. No one-hot matrix.
    """
    ### BEGIN SOLUTION
    return scaling * grad_out[:, indices].T @ x   # only the r chosen outputs' gradients reach A
    ### END SOLUTION


check("10-fb-grad", sbora_fb_grad);


# %% [10-fa-region]
### BEGIN SOLUTION
prediction = 'b'
### END SOLUTION
predict("10-fa-region", prediction);
