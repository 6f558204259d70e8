"""Worked solutions of notebooks/04_prompt_and_prefix_tuning.ipynb's exercises (not for the student notebooks).

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


# %% [04-prefix-params]
### BEGIN SOLUTION
answer = 10 * 4 * 2 * 192   # a key and a value of size d per layer and virtual token
### END SOLUTION
check("04-prefix-params", answer);


# %% [04-soft-prompt]
def soft_prompt_inputs(model, prompt, input_ids):
    """Prompt tuning's input: the soft prompt (n, d) in front of the embedded tokens of input_ids (batch, seq).

    Return inputs_embeds of shape (batch, n + seq, d) for the frozen model.
    """
    ### BEGIN SOLUTION
    embeds = model.get_input_embeddings()(input_ids)              # (batch, seq, d)
    prompt = prompt.expand(input_ids.shape[0], -1, -1)              # the same prompt for every sequence
    return torch.cat([prompt, embeds], dim=1)
    ### END SOLUTION


check("04-soft-prompt", soft_prompt_inputs);


# %% [04-prefix-vs-prompt]
### BEGIN SOLUTION
prediction = '8'
### END SOLUTION
predict("04-prefix-vs-prompt", prediction);
