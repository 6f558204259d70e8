"""Tests and notebooks run in fast mode (smoke sizes) and offline; set before any kernel starts,
so nbval's notebook kernels inherit it."""
import os

os.environ.setdefault("PEFTCOURSE_FAST", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# no MPLBACKEND here: the kernels draw inline, as for a student, so a checked cell that ends in a figure
# (the cached evidence plots) shows it as in the committed output; test modules pick Agg themselves
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# every figure a notebook shows is checked (peftcourse.plots.check_shown_figures): legends over no other panel,
# methods in their colours
os.environ.setdefault("PEFTCOURSE_CHECK_FIGURES", "1")
# idle OpenMP threads sleep instead of spinning: bitsandbytes' CPU kernels slow down badly otherwise
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
