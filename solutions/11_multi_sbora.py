"""Worked solutions of notebooks/11_multi_sbora.ipynb's exercises (not for the student notebooks).

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


# %% [11-tasks-fit]
### BEGIN SOLUTION
answer = 192 // 16   # the smallest layer decides
### END SOLUTION
check("11-tasks-fit", answer);


# %% [11-merge]
def merge_task_updates(W0, updates):
    """The Multi-SBoRA-FA merge into a GPT-2 Conv1D weight W0, stored (in, out): W0 plus every task's update added
    into that task's input features.

    updates is a list of (indices, U): r input features and their scaled update U (out, r), as SBoRALinear.update().
    """
    ### BEGIN SOLUTION
    W = W0.clone()
    for indices, U in updates:
        W.index_add_(0, indices, U.T)   # input features are rows of the stored (in, out) weight
    return W
    ### END SOLUTION


check("11-merge", merge_task_updates);


# %% [11-interference]
### BEGIN SOLUTION
prediction = 'identical'
### END SOLUTION
predict("11-interference", prediction);
