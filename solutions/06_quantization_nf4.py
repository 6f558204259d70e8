"""Worked solutions of notebooks/06_quantization_nf4.ipynb's exercises (not for the student notebooks).

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


# %% [06-bits-256]
### BEGIN SOLUTION
answer_bits = 4 + 32 / 256   # one fp32 absmax per 256 weights
### END SOLUTION
check("06-bits-256", answer_bits);


# %% [06-nf4-index]
### BEGIN SOLUTION
answer_index = 12   # 0.05 / 0.1 = 0.5 lies below the midpoint of code[12] and code[13]
### END SOLUTION
check("06-nf4-index", answer_index);


# %% [06-nf4-block]
from peftcourse import quant

def nf4_block(block):
    """NF4 indices (0..15) of one block of weights: absmax scaling to [-1, 1], then the nearest of quant.nf4_code()."""
    ### BEGIN SOLUTION
    code = quant.nf4_code()                          # 16 sorted values, -1 ... 1
    scaled = block / block.abs().max()               # absmax = max |w|
    return (scaled[:, None] - code[None, :]).abs().argmin(dim=1)   # the nearest level
    ### END SOLUTION


check("06-nf4-block", nf4_block);


# %% [06-outlier]
### BEGIN SOLUTION
prediction = 'c'
### END SOLUTION
predict("06-outlier", prediction);
