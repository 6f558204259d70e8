"""Answer key of notebooks/05_lora.ipynb (worked solutions: solutions/05_lora.py)."""
import math

import torch
from torch import nn

from ..base import conv1d_class
from ..linalg import lowrank_params
from ..lora import LoRALinear
from .core import Case, Exercise, where

LORA_PARAMS = Exercise(
    "05-lora-params", "quick", "LoRA r=4 on the MLP of TinyGPT", "answer",
    hint="per adapted matrix A is r × in and B is out × r; count both MLP matrices over all blocks.",
    reread=where("1 (The LoRA layer)", "'Applying LoRA to Feed-Forward Networks'"),
    explain="2 matrices × 4 blocks × r·(192 + 768): a k → d matrix costs r·(k + d), whichever way round.",
    expected=lambda: 4 * 2 * lowrank_params(768, 4, 192),
    mistakes=((lambda e: e / 4, "that is one block: TinyGPT has 4."),
              (lambda e: 4 * 2 * lowrank_params(192, 4),
               "the MLP's matrices are not square: c_fc maps 192 → 768, so A is r × 192 and B is 768 × r."),
              (lambda e: 4 * 2 * 192 * 768, "that is the full matrices; LoRA adds only A and B.")))

SCALING = Exercise(
    "05-scaling", "quick", "scaling at r=64 with α=16", "scaling",
    hint="LoRA multiplies B A by a factor made of α and r.",
    reread=where("3 (The scaling factor α)", "'Scaling Factor α'"),
    explain="s = α/r: at fixed α a larger rank takes smaller steps per unit of B A.",
    expected=lambda: LoRALinear(nn.Linear(64, 64), r=64, alpha=16).scaling, tol=1e-9,
    mistakes=((lambda e: 64 / 16, "upside down: the scaling is α/r, not r/α."),
              (lambda e: 16 / math.sqrt(64), "that is rsLoRA's α/√r; plain LoRA uses α/r.")))


def _lora_cases():
    # the variant the notebook's listings do not show: GPT-2's Conv1D layout (W0 stored (in, out)) and
    # rsLoRA's scaling α/√r; one square case, so that a transposed W0 gives wrong values, not only a shape error
    Conv1D = conv1d_class()
    cases = []
    for seed, (d_in, d_out, r, alpha) in ((0, (12, 10, 3, 6)), (1, (8, 8, 4, 16))):
        torch.manual_seed(seed)
        layer = LoRALinear(Conv1D(d_out, d_in), r=r, alpha=alpha, rslora=True)
        with torch.no_grad():
            layer.base.bias.normal_()
            layer.B.normal_()  # a trained adapter: B is no longer zero
        x = torch.randn(5, d_in)
        out = layer(x)
        probe = torch.randn_like(out)
        (out * probe).sum().backward()
        W0, b, A, B = (t.detach().clone() for t in (layer.base.weight, layer.base.bias, layer.A, layer.B))
        s = alpha / math.sqrt(r)
        update = x @ A.T @ B.T
        wrong = [(x @ W0 + b + (alpha / r) * update, "that is plain LoRA's α/r; rsLoRA scales by α/√r."),
                 (x @ W0 + b + update, "the scaling α/√r is missing."),
                 (x @ W0 + s * update, "the base layer's bias b is missing."),
                 (s * update, "only the update: the frozen base output x W₀ + b is part of h too.")]
        if d_in == d_out:
            wrong.append((x @ W0.T + b + s * update,
                          "W0 is stored as GPT-2's Conv1D stores it, (in, out): the base output is x @ W0, not x @ W0.T."))
        cases.append(Case(
            inputs={"x": x, "W0": W0, "b": b, "A": A, "B": B, "alpha": alpha, "r": r},
            expected=out.detach(), wrong=tuple(wrong),
            grads={"A": layer.A.grad, "B": layer.B.grad}, probe=probe,
            shape_note="x is (batch, in); W0 is (in, out) (Conv1D layout), b (out,), A (r, in), B (out, r)."))
    return cases


LORA_FORWARD = Exercise(
    "05-lora-forward", "code", "LoRA's forward on a Conv1D layer with rsLoRA's scaling", "lora_forward",
    hint="h = x W₀ + b + (α/√r)·x Aᵀ Bᵀ: W₀ is already (in, out), A and B keep LoRA's layout.",
    reread=where("1 (The LoRA layer) and 3 (The scaling factor α)", "'LoRA (Low-Rank Adaptation)' and 'Scaling Factor α'"),
    explain="Two thin matmuls (in → r → out) instead of the out × in matrix ΔW; the layout of the frozen weight "
            "changes only the base term, and rsLoRA changes only the factor.",
    cases=_lora_cases)


def _first_grads():
    # not the layer's own initialisation (its listing says B gets gradients at once): A and B both start at zero
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(16, 16), r=4, alpha=8)
    with torch.no_grad():
        layer.A.zero_()
    layer(torch.randn(8, 16)).pow(2).sum().backward()
    return {"A": layer.A.grad.abs().max().item(), "B": layer.B.grad.abs().max().item()}


def _which_moved(measured):
    moved = {k for k, v in measured.items() if v > 0}
    return {frozenset(): "neither", frozenset({"A"}): "A", frozenset({"B"}): "B",
            frozenset({"A", "B"}): "both"}[frozenset(moved)]


LORA_FIRST_GRAD = Exercise(
    "05-lora-first-grad", "predict", "which LoRA factor gets a gradient if A and B both start at zero", "prediction",
    hint="", reread=where("1 (The LoRA layer)", "'LoRA (Low-Rank Adaptation)' (A random, B = 0)"),
    explain="Largest |gradient|: {m}. ∂L/∂A = (α/r)·Bᵀ(∂L/∂h)xᵀ = 0 because B = 0, and ∂L/∂B = (α/r)·(∂L/∂h)(A x)ᵀ = 0 "
            "because A = 0: neither factor ever moves. That is why LoRA starts A random and only B at zero: "
            "ΔW = BA is still 0, but B gets a gradient on the first step and A from the second on.",
    options={"A": "only A", "B": "only B", "both": "both", "neither": "neither"},
    outcome=_which_moved, measure=_first_grads)

EXERCISES = (LORA_PARAMS, SCALING, LORA_FORWARD, LORA_FIRST_GRAD)
