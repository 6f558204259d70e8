"""Answer key of notebooks/11_multi_sbora.ipynb (worked solutions: solutions/11_multi_sbora.py)."""
import copy

import torch
from torch import nn

from ..multi_sbora import merge_tasks, task_indices
from ..sbora import SBoRALinear
from .core import Case, Exercise, where

TASKS_FIT = Exercise(
    "11-tasks-fit", "quick", "tasks that fit at r = 16", "answer",
    hint="each task needs r input features of its own in every layer; the smallest layer limits all.",
    reread=where("5 (How many tasks fit?)", "'Multi-SBoRA: Diffusion Model based Text-to-Image Generation'"),
    explain="⌊192 / r⌋ disjoint slices of one permutation.",
    expected=lambda: 192 // 16,
    mistakes=((lambda e: 768 // 16, "that is the largest input dimension; every layer must fit, so the "
                                   "smallest one decides."),
              (lambda e: 576 // 16, "c_attn's 576 are its OUTPUT features; SBoRA-FA picks input features.")))


def _task_layers(base, r, alpha, n_tasks, seed):
    """One trained SBoRA-FA layer per task on copies of `base`, each on its own disjoint input columns."""
    layers = []
    for task in range(n_tasks):
        idx = task_indices(base.in_features, r, task, n_tasks, torch.Generator().manual_seed(seed))
        layer = SBoRALinear(copy.deepcopy(base), r, alpha=alpha, variant="FA", indices=idx)
        with torch.no_grad():
            layer.B.normal_()
        layers.append(layer)
    merged = merge_tasks(nn.Sequential(copy.deepcopy(base)), [nn.Sequential(layer) for layer in layers])
    return layers, merged


def _merge_cases():
    cases = []
    for seed, (d_in, d_out, r, n_tasks) in ((0, (12, 5, 2, 3)), (1, (8, 6, 3, 2))):
        torch.manual_seed(seed)
        base = nn.Linear(d_in, d_out)
        layers, merged = _task_layers(base, r, 2 * r, n_tasks, seed)
        W0 = base.weight.detach().clone()
        updates = [(layer.indices.clone(), layer.update().detach().clone()) for layer in layers]
        copied = W0.clone()
        for idx, u in updates:
            copied[:, idx] = u
        cases.append(Case(
            inputs={"W0": W0, "updates": updates}, expected=merged[0].weight.detach(),
            wrong=((copied, "you replaced the chosen columns with the updates; the merge adds them: W₀ + ΔW."),
                   (W0, "W₀ came back unchanged: index_add (without the underscore) returns a new tensor — use its "
                        "result, or index_add_ in place on a copy.")),
            shape_note="W0 is (out, in); each update is (indices: r input columns, U: out × r, already scaled)."))
    return cases


MERGE = Exercise(
    "11-merge", "code", "the Multi-SBoRA merge", "merge_task_updates",
    hint="start from a copy of W₀ and add each task's update into its own columns with index_add.",
    reread=where("3 (Merge)", "'Multi-SBoRA: Diffusion Model based Text-to-Image Generation'"),
    explain="Disjoint columns: each task's region holds exactly its own update.",
    cases=_merge_cases)


def _task_one_after_merge():
    torch.manual_seed(0)
    layers, merged = _task_layers(nn.Linear(12, 6), 3, 3, 2, seed=0)
    x = torch.randn(4, 12)
    with torch.no_grad():
        return (merged(x) - layers[0](x)).abs().max().item()


INTERFERENCE = Exercise(
    "11-interference", "predict", "task 1's output after merging task 2 into another region", "prediction",
    hint="", reread=where("4 (Does each task survive the merge?)", "'Summary of SBoRA'"),
    explain="Largest output difference: {m:.3f}. The regions are disjoint in W, but an input x feeds every "
            "column: Δy = B₁·x[idx₁] + B₂·x[idx₂]. Task 2's columns answer to features that task 1's inputs "
            "have too, so the merged model is not task 1's model.",
    options={"identical": "identical outputs", "different": "different outputs"},
    outcome=lambda diff: "identical" if diff < 1e-6 else "different", measure=_task_one_after_merge)

EXERCISES = (TASKS_FIT, MERGE, INTERFERENCE)
