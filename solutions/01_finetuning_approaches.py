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


# %% [01-feature-based]
from torch import nn

def feature_based(model, n_classes):
    """Approach (2): freeze the pretrained SmallCNN and give it a new, trainable last layer with n_classes outputs.

    The last layer is model.head[-1] (an nn.Linear). Change the model in place and return it.
    """
    ### BEGIN SOLUTION
    for p in model.parameters():
        p.requires_grad_(False)                       # the pretrained network becomes a fixed feature extractor
    model.head[-1] = nn.Linear(model.head[-1].in_features, n_classes)   # a new layer trains by default
    return model
    ### END SOLUTION


check("01-feature-based", feature_based);


# %% [01-top-layer-share]
### BEGIN SOLUTION
prediction = 'c'
### END SOLUTION
predict("01-top-layer-share", prediction);
