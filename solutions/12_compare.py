"""Worked solutions of notebooks/12_compare.ipynb's exercises (not for the student notebooks).

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


# %% [12-lora-bytes]
### BEGIN SOLUTION
answer_lora = 12 * 49_152   # LoRA r=4 trains 49,152 weights
### END SOLUTION
check("12-lora-bytes", answer_lora);


# %% [12-full-bytes]
### BEGIN SOLUTION
answer_full = 12 * 2_615_424   # every one of TinyGPT's weights trains
### END SOLUTION
check("12-full-bytes", answer_full);


# %% [12-state-bytes]
def grad_and_adamw_bytes(model):
    """Bytes of gradients plus AdamW state that training `model` in fp32 needs (after the first step)."""
    ### BEGIN SOLUTION
    return 12 * sum(p.numel() for p in model.parameters() if p.requires_grad)   # 4 (gradient) + 2 x 4 (moments)
    ### END SOLUTION


check("12-state-bytes", grad_and_adamw_bytes);


# %% [12-llama-ratio]
### BEGIN SOLUTION
prediction = '200x'
### END SOLUTION
predict("12-llama-ratio", prediction);
