"""Answer key of notebooks/11_multi_sbora.ipynb (worked solutions: solutions/11_multi_sbora.py)."""
import copy

import torch
from torch import nn

from transformers.pytorch_utils import Conv1D

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
        idx = task_indices(base.weight.shape[0] if isinstance(base, Conv1D) else base.in_features, r, task, n_tasks,
                           torch.Generator().manual_seed(seed))
        layer = SBoRALinear(copy.deepcopy(base), r, alpha=alpha, variant="FA", indices=idx)
        with torch.no_grad():
            layer.B.normal_()
        layers.append(layer)
    merged = merge_tasks(nn.Sequential(copy.deepcopy(base)), [nn.Sequential(layer) for layer in layers])
    return layers, merged


def _merge_cases():
    """Tasks merged into a GPT-2 Conv1D weight, stored (in, out): an FA task's columns of W are rows here."""
    cases = []
    for seed, (d_in, d_out, r, n_tasks) in ((0, (12, 5, 2, 3)), (1, (8, 6, 3, 2))):
        torch.manual_seed(seed)
        base = Conv1D(d_out, d_in)
        with torch.no_grad():
            base.weight.normal_(std=0.5)
        layers, merged = _task_layers(base, r, 2 * r, n_tasks, seed)
        W0 = base.weight.detach().clone()
        updates = [(layer.indices.clone(), layer.update().detach().clone()) for layer in layers]
        copied = W0.clone()
        for idx, u in updates:
            copied[idx] = u.T
        cases.append(Case(
            inputs={"W0": W0, "updates": updates}, expected=merged[0].weight.detach(),
            wrong=((copied, "you replaced the chosen input features' rows with the updates; the merge adds them: "
                            "W₀ + ΔW."),
                   (W0, "W₀ came back unchanged: index_add (without the underscore) returns a new tensor — use its "
                        "result, or index_add_ in place on a copy.")),
            shape_note="W0 is GPT-2's (in, out); each update is (indices: r input features, U: out × r, already "
                       "scaled), so it goes into W0 transposed."))
    return cases


MERGE = Exercise(
    "11-merge", "code", "the Multi-SBoRA merge into a GPT-2 (Conv1D) weight", "merge_task_updates",
    hint="Conv1D stores Wᵀ, (in, out): a task's input features are rows of W0 here; add Uᵀ into them with index_add "
         "along dimension 0.",
    reread=where("3 (Merge)", "'Multi-SBoRA: Diffusion Model based Text-to-Image Generation'"),
    explain="Disjoint input features: each task's rows of the stored weight (its columns of W) hold exactly its own "
            "update, whichever layout the weight is stored in.",
    cases=_merge_cases)


def _task_one_on_its_own_features():
    """Task 1's output against the merged layer's, on inputs that are 0 on every feature of task 2's region."""
    torch.manual_seed(0)
    layers, merged = _task_layers(nn.Linear(12, 6), 3, 3, 2, seed=0)
    x = torch.randn(4, 12)
    x[:, layers[1].indices] = 0
    with torch.no_grad():
        return (merged(x) - layers[0](x)).abs().max().item()


INTERFERENCE = Exercise(
    "11-interference", "predict", "task 1's output after the merge, on inputs without task 2's features",
    "prediction", hint="", reread=where("4 (Does each task survive the merge?)", "'Summary of SBoRA'"),
    explain="Largest output difference: {m:.1e}, rounding only. The merged layer adds B₂·x[idx₂], and x[idx₂] = 0: "
            "task 2's columns see nothing. Disjoint weights give disjoint effects only when the tasks' inputs use "
            "different features — section 4c's task-feature columns aim at that; on real prompts both tasks' "
            "features are active (section 4).",
    options={"identical": "identical outputs (up to rounding)", "different": "different outputs"},
    outcome=lambda diff: "identical" if diff < 1e-4 else "different", measure=_task_one_on_its_own_features)

EXERCISES = (TASKS_FIT, MERGE, INTERFERENCE)
