"""Worked solutions of notebooks/07_qlora.ipynb's exercises (not for the student notebooks).

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


# %% [07-base-gb]
### BEGIN SOLUTION
answer_gb = 65e9 * 4.127 / 8 / 1e9   # bits -> bytes -> GB
### END SOLUTION
check("07-base-gb", answer_gb);


# %% [07-bytes-trainable]
### BEGIN SOLUTION
answer_bytes = 2 + 2 + 4 + 2 * 1   # bf16 weight and gradient, fp32 master copy, two 8-bit moments
### END SOLUTION
check("07-bytes-trainable", answer_bytes);


# %% [07-double-quant]
from peftcourse import quant

def double_quantize_absmax(absmax):
    """QLoRA's double quantization of the fp32 absmax constants (1-d, length a multiple of 256).

    Return (q, scale, offset): 8-bit indices into quant.dynamic_code() (use quant.nearest),
    one fp32 scale per 256 values, and the fp32 offset.
    """
    ### BEGIN SOLUTION
    offset = absmax.mean()                            # centre the (all positive) constants
    blocks = (absmax - offset).view(-1, 256)          # blocks of 256
    scale = blocks.abs().amax(dim=1)                  # absmax of each block
    q = quant.nearest(blocks / scale[:, None], quant.dynamic_code()).flatten()
    return q, scale, offset
    ### END SOLUTION


check("07-double-quant", double_quantize_absmax);


# %% [07-dq-changes-weights]
### BEGIN SOLUTION
prediction = 'b'
### END SOLUTION
predict("07-dq-changes-weights", prediction);
