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


# %% [06-q4-1-block]
def q4_1_block(block):
    """Q4_1 indices (0..15) of one block of 32 weights: 16 evenly spaced levels from the block's minimum m
    to its maximum, w ≈ d·q + m with d = (max − m)/15."""
    ### BEGIN SOLUTION
    m = block.min()                                  # the lowest level is the block's minimum
    d = (block.max() - m) / 15                       # 16 levels, 15 equal steps up to the maximum
    return torch.round((block - m) / d).clamp(0, 15)   # the nearest level, as an index
    ### END SOLUTION


check("06-q4-1-block", q4_1_block);


# %% [06-outlier]
### BEGIN SOLUTION
prediction = 'b'
### END SOLUTION
predict("06-outlier", prediction);
