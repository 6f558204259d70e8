"""Worked solutions of notebooks/01_finetuning_approaches.ipynb's exercises (not for the student notebooks).

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


# %% [01-full-ft-gb]
### BEGIN SOLUTION
answer = 13e9 * 16 / 1e9   # 16 bytes per parameter; GB = 10**9 bytes
### END SOLUTION
check("01-full-ft-gb", answer);


# %% [01-bitfit]
from torch import nn

def bitfit(model, n_classes):
    """BitFit on the pretrained SmallCNN: every bias trains, every weight stays frozen, and a new last layer with
    n_classes outputs trains whole.

    The last layer is model.head[-1] (an nn.Linear). Change the model in place and return it.
    """
    ### BEGIN SOLUTION
    for name, p in model.named_parameters():
        p.requires_grad_(name.endswith("bias"))                   # biases train, weights and kernels stay frozen
    model.head[-1] = nn.Linear(model.head[-1].in_features, n_classes)   # a new layer trains by default, weight too
    return model
    ### END SOLUTION


check("01-bitfit", bitfit);


# %% [01-top-layer-share]
### BEGIN SOLUTION
prediction = 'c'
### END SOLUTION
predict("01-top-layer-share", prediction);
