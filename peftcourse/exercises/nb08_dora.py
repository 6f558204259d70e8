"""Answer key of notebooks/08_dora.ipynb (worked solutions: solutions/08_dora.py)."""
import torch
from torch import nn

from ..dora import DoRALinear
from .core import Case, Exercise, where

_W = [[3.0, 4, 0, 12], [0, 0, 5, 0]]   # the question's weight matrix


def _initial_magnitudes():
    base = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        base.weight.copy_(torch.tensor(_W))
    return DoRALinear(base, r=1, alpha=1).m.detach()


MAGNITUDE = Exercise(
    "08-magnitude", "array", "initial magnitudes of W = [[3, 4, 0, 12], [0, 0, 5, 0]]", "answer_m",
    hint="DoRA's m starts as the norm of each output row of W₀ (one number per output neuron).",
    reread=where("1 (Magnitude and direction)", "'DoRA: Weight Decomposition Analysis'"),
    explain="One Euclidean norm per output row: PyTorch's (out, in) layout turns the paper's column norm "
            "into a row norm.",
    expected=_initial_magnitudes, tol=1e-4,
    mistakes=((lambda e: torch.tensor(_W).abs().sum(1), "that is the L1 norm (sum of |w|); DoRA uses the Euclidean norm."),
              (lambda e: torch.tensor(_W).pow(2).sum(1), "the square root is missing.")))

EXTRA_PARAMS = Exercise(
    "08-extra-params", "quick", "DoRA's extra trainable parameters on GPT-2 small", "answer",
    hint="m has one entry per output feature of every adapted layer; 'c_proj' matches two layers per block.",
    reread=where("2 (The DoRA layer)", "'DoRA Methodology'"),
    explain="One magnitude per output feature: 3·768 + 768 + 3072 + 768 per block, times 12 blocks; about 0.07 % "
            "of GPT-2 small's 124 M weights.",
    expected=lambda: 12 * (3 * 768 + 768 + 3072 + 768),
    mistakes=((lambda e: 12 * (3 * 768 + 768 + 3072), "'c_proj' matches two layers per block: the attention's and "
                                                      "the MLP's output projections."),
              (lambda e: 12 * (768 + 768 + 768 + 3072), "per input feature: m has one entry per output "
                                                        "feature (row) of W."),
              (lambda e: e / 12, "that is one block: GPT-2 small has 12.")))


def _dora_cases():
    # the variant the notebook's listings do not show: GPT-2's Conv1D layout, W0 and W' stored (in, out),
    # so that the paper's column norm is a column norm again (dim=0), one per output
    cases = []
    for seed, (d_in, d_out, r, alpha) in ((0, (12, 6, 2, 4)), (1, (5, 9, 3, 3))):
        torch.manual_seed(seed)
        layer = DoRALinear(nn.Linear(d_in, d_out), r=r, alpha=alpha)
        with torch.no_grad():
            layer.B.normal_()
            layer.m.mul_(torch.rand(d_out) + 0.5)  # a trained magnitude
        W = (layer.base_weight() + layer.delta_weight()).T   # (in, out), as Conv1D stores it
        probe = torch.randn_like(W)
        (W * probe).sum().backward()
        W0, A, B, m = (t.detach().clone() for t in (layer.base_weight().T, layer.A, layer.B, layer.m))
        s = layer.scaling
        V = W0 + s * (B @ A).T
        cases.append(Case(
            inputs={"W0": W0, "A": A, "B": B, "m": m, "scaling": s}, expected=W.detach(),
            wrong=((m * V / V.norm(dim=1, keepdim=True),
                    "norm per input row: in Conv1D's (in, out) layout each output is a COLUMN, so one norm per column."),
                   (m * (W0 + (B @ A).T) / (W0 + (B @ A).T).norm(dim=0, keepdim=True),
                    "the scaling is missing in V = W₀ + (α/r)·(B A)ᵀ."),
                   (V, "V is not normalised: W' = m ⊙ V / ‖V‖, column by column."),
                   (V / V.norm(dim=0, keepdim=True), "the magnitude m is missing: W' = m ⊙ V / ‖V‖.")),
            grads={"m": layer.m.grad}, probe=probe,
            shape_note="W0 is (in, out) (Conv1D layout), A (r, in), B (out, r), m (out,); W' has W0's shape."))
    return cases


DORA_WEIGHT = Exercise(
    "08-dora-weight", "code", "DoRA's merged weight in GPT-2's Conv1D layout", "dora_weight",
    hint="B A is (out, in): transpose it to add it to W₀ (in, out); then one norm per output, which is a column here.",
    reread=where("1 (Magnitude and direction) and 2 (The DoRA layer)", "'DoRA Methodology'"),
    explain="W' = m ⊙ V/‖V‖ per output: a row in nn.Linear's (out, in) layout, a column in Conv1D's (in, out), "
            "which is the paper's own convention.",
    cases=_dora_cases)


def _row_norm_change():
    torch.manual_seed(0)
    layer = DoRALinear(nn.Linear(32, 16), r=4, alpha=8)
    with torch.no_grad():
        layer.B.normal_()  # a large LoRA update, m left at its initial value
        W = layer.base_weight() + layer.delta_weight()
        return (W.norm(dim=1) - layer.base_weight().norm(dim=1)).abs().max().item()


ROW_NORMS = Exercise(
    "08-row-norms", "predict", "row norms of DoRA's weight after a LoRA-style update, m unchanged", "prediction",
    hint="", reread=where("2 (The DoRA layer)", "'DoRA Methodology'"),
    explain="Largest change of a row norm: {m:.1e}, rounding only. W' = m ⊙ V/‖V‖ has row norms exactly m: B A "
            "can only turn the rows (direction); their length is m's job alone.",
    options={"a": "unchanged: equal to ‖W₀‖ row by row", "b": "larger", "c": "some larger, some smaller"},
    outcome=lambda d: "a" if d < 1e-4 else "c", measure=_row_norm_change)

EXERCISES = (MAGNITUDE, EXTRA_PARAMS, DORA_WEIGHT, ROW_NORMS)
