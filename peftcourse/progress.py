"""The training loop's progress line: live while it runs, a one-line summary when it is done.

In a notebook a tqdm bar is a widget; a saved notebook keeps only its text fallback, written when the
bar was created ("train:   0%|          | 0/300"), so every committed run would read 0 %. Here a
notebook gets one plain text line instead, updated in place while training (at most twice a second)
and replaced at the end by "LoRA r=8: 300 steps in 12.3 s, final loss 2.4102": that is what a saved
notebook shows. In a terminal (scripts, tests) it stays an ordinary tqdm bar.
"""
import time

from tqdm import tqdm


def progress(steps, desc="train", enabled=True):
    """An iterable over `steps` with tqdm's set_postfix(loss=...) and close()."""
    shell = kernel_shell()
    if enabled and shell is not None:
        return NotebookLine(steps, desc)
    return tqdm(steps, desc=desc, disable=not enabled, leave=False)


def kernel_shell():
    """The IPython shell when running in a Jupyter kernel (where a display can be updated), else None."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return shell if shell is not None and getattr(shell, "kernel", None) is not None else None


class NotebookLine:
    """A text output that tracks the steps and ends as a summary line."""

    interval_s = 0.5

    def __init__(self, steps, desc):
        from IPython.display import display
        self.steps, self.desc = list(steps), desc
        self.postfix, self.done, self.shown_at = {}, 0, 0.0
        self.start = time.perf_counter()
        self.handle = display({"text/plain": f"{desc}: {len(self.steps)} steps to go"}, raw=True, display_id=True)

    def __iter__(self):
        for step in self.steps:
            yield step
            self.done += 1
            now = time.perf_counter()
            if now - self.shown_at >= self.interval_s:
                self.shown_at = now
                self.show(f"{self.desc}: {self.done}/{len(self.steps)} steps{self.details()}, {now - self.start:.0f} s")

    def set_postfix(self, **values):
        self.postfix = values

    def details(self):
        return "".join(f", {k} {v}" for k, v in self.postfix.items())

    def show(self, text):
        self.handle.update({"text/plain": text}, raw=True)

    def close(self):
        elapsed = time.perf_counter() - self.start
        final = "".join(f", final {k} {v}" for k, v in self.postfix.items())
        self.show(f"{self.desc}: {self.done} steps in {elapsed:.1f} s{final}")
