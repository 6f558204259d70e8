"""Answer key of notebooks/00_start_here.ipynb: the one demonstration of how the checker answers
(worked solution: solutions/00_start_here.py)."""
from .core import Exercise

ADAPTER_WEIGHTS = Exercise(
    "00-adapter-weights", "quick", "weights of the lecture's 1024 → 24 → 1024 adapter", "answer",
    hint="count the weights of the down-projection (1024 → 24) and of the up-projection (24 → 1024).",
    reread="notebook 03's section 1 (The bottleneck adapter), and the lecture slide "
           "'Adapter Tuning (Houlsby and Giurgiu et al., 2019-02)'.",
    explain="A down- and an up-projection: 2 · 1024 · 24 weights, a few percent of a 1024 × 1024 layer.",
    expected=lambda: 2 * 1024 * 24)

EXERCISES = (ADAPTER_WEIGHTS,)
