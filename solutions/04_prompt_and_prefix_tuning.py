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


# %% [04-mixed-prompts]
def mixed_task_inputs(model, prompts, task_ids, input_ids):
    """Prompt tuning for several tasks in one batch: each sequence of input_ids (batch, seq) goes behind the soft
    prompt of its task. prompts is (tasks, n, d), one prompt per task; task_ids (batch,) names each sequence's task.

    Return inputs_embeds of shape (batch, n + seq, d) for the frozen model.
    """
    ### BEGIN SOLUTION
    embeds = model.get_input_embeddings()(input_ids)              # (batch, seq, d)
    return torch.cat([prompts[task_ids], embeds], dim=1)          # prompts[task_ids]: (batch, n, d), one per row
    ### END SOLUTION


check("04-mixed-prompts", mixed_task_inputs);


# %% [04-prefix-vs-prompt]
### BEGIN SOLUTION
prediction = '72'
### END SOLUTION
predict("04-prefix-vs-prompt", prediction);
