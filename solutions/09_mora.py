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

def sharing_delta(M, in_features, out_features):
    """MoRA sharing's ΔW (out_features, in_features) as D @ M @ C, from two fixed 0/1 matrices.

    C (r̂, in) is compress: x is wrap-padded to a multiple of r̂ and padded position p adds input feature
    p mod in into slot p mod r̂. D (out, r̂) is decompress: output i reads slot i mod r̂ (the r̂ outputs tiled).
    """
    ### BEGIN SOLUTION
    r_hat = M.shape[0]
    padded = torch.arange(math.ceil(in_features / r_hat) * r_hat)          # the padded positions p
    C = torch.zeros(r_hat, in_features).index_put((padded % r_hat, padded % in_features),
                                                  torch.ones(len(padded)), accumulate=True)
    rows = torch.arange(out_features)
    D = torch.zeros(out_features, r_hat).index_put((rows, rows % r_hat), torch.ones(out_features))
    return D @ M @ C
    ### END SOLUTION


check("09-sharing", sharing_delta);


# %% [09-rank-256]
### BEGIN SOLUTION
prediction = 'b'
### END SOLUTION
predict("09-rank-256", prediction);
