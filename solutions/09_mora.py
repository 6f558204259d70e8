"""Worked solutions of notebooks/09_mora.ipynb's exercises (not for the student notebooks).

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


# %% [09-rhat]
### BEGIN SOLUTION
import math
answer = int(math.sqrt((4096 + 11008) * 8) + 0.5) // 2 * 2   # nearest, then down to even
### END SOLUTION
check("09-rhat", answer);


# %% [09-sharing]
import math

def mora_sharing(x, M, out_features):
    """MoRA's sharing branch (mora_type=1) for x (batch, in): compress to r̂ features, apply M (r̂, r̂), decompress.

    Compress: pad x to a multiple of r̂ by wrapping its first features around, then sum the groups of r̂.
    Decompress: repeat the r̂ outputs until out_features are filled.
    """
    ### BEGIN SOLUTION
    r_hat, n_in = M.shape[0], x.shape[-1]
    n_blocks = math.ceil(n_in / r_hat)
    padded = x[..., torch.arange(n_blocks * r_hat) % n_in]             # wrap-pad
    compressed = padded.view(*x.shape[:-1], n_blocks, r_hat).sum(-2)   # sum the groups
    h = compressed @ M.T
    return h[..., torch.arange(out_features) % r_hat]                  # tile
    ### END SOLUTION


check("09-sharing", mora_sharing);


# %% [09-rank-256]
### BEGIN SOLUTION
prediction = 'b'
### END SOLUTION
predict("09-rank-256", prediction);
