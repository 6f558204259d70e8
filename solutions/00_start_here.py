"""Worked solution of notebooks/00_start_here.ipynb's demonstration exercise (not for the student notebooks).

The "# %% [id]" block is the solved exercise cell; the lines between ### BEGIN SOLUTION and ### END SOLUTION are
what a student writes. A student reveals it on purpose with peftcourse.check.solution("00-adapter-weights").
"""


# %% [setup]
from peftcourse.check import check, solution


# %% [00-adapter-weights]
### BEGIN SOLUTION
answer = 1024 * 24 + 24 * 1024   # the down-projection and the up-projection
### END SOLUTION
check("00-adapter-weights", answer);
