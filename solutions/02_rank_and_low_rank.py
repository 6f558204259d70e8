"""Worked solutions of notebooks/02_rank_and_low_rank.ipynb's exercises (not for the student notebooks).

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


# %% [02-lowrank-params]
### BEGIN SOLUTION
answer = 4096 * 16 + 16 * 4096   # B is n x r, A is r x n
### END SOLUTION
check("02-lowrank-params", answer);


# %% [02-fraction]
### BEGIN SOLUTION
fraction = 2 * 16 * 4096 / 4096**2   # 2r/n
### END SOLUTION
check("02-fraction", fraction);


# %% [02-svd-truncate]
def svd_truncate(M, r):
    """The best rank-r approximation of the matrix M (Eckart–Young), from its SVD."""
    ### BEGIN SOLUTION
    U, S, Vh = torch.linalg.svd(M, full_matrices=False)   # singular values sorted, largest first
    return U[:, :r] @ torch.diag(S[:r]) @ Vh[:r]
    ### END SOLUTION


check("02-svd-truncate", svd_truncate);


# %% [02-rank-i-plus-j]
### BEGIN SOLUTION
prediction = '2'
### END SOLUTION
predict("02-rank-i-plus-j", prediction);
