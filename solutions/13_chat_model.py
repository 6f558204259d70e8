"""Worked solutions of notebooks/13_chat_model.ipynb's exercises (not for the student notebooks).

Each "# %% [id]" block is the solved exercise cell; the lines between ### BEGIN SOLUTION and
### END SOLUTION are what a student writes (nbgrader replaces them in the generated assignment).
A student reveals one on purpose with peftcourse.check.solution("id").
"""


# %% [setup]
import torch

from peftcourse.check import check, predict, reveal, solution


# %% [13-ko-params]
### BEGIN SOLUTION
answer = 30 * (4 * (576 + 192) + 4 * (576 + 576))   # k_proj 576 -> 192 (3 kv heads x 64), o_proj 576 -> 576
### END SOLUTION
check("13-ko-params", answer);


# %% [13-position-ids]
def position_ids(attention_mask):
    """Positions of left-padded prompts: each row's real tokens count 0, 1, 2, ...; padding gets 0.
    attention_mask: (batch, width), 0 for padding (on the left), 1 for real tokens."""
    ### BEGIN SOLUTION
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)
    ### END SOLUTION


check("13-position-ids", position_ids);


# %% [13-fresh-lora]
### BEGIN SOLUTION
prediction = 'a'
### END SOLUTION
predict("13-fresh-lora", prediction);
