"""Answer key of notebooks/05_lora.ipynb (worked solutions: solutions/05_lora.py)."""
import math

import torch
from torch import nn

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
    reread=where("4 (The scaling factor α)", "'Scaling Factor α'"),
    explain="s = α/r: at fixed α a larger rank takes smaller steps per unit of B A.",
    expected=lambda: LoRALinear(nn.Linear(64, 64), r=64, alpha=16).scaling, tol=1e-9,
    mistakes=((lambda e: 64 / 16, "upside down: the scaling is α/r, not r/α."),
              (lambda e: 16 / math.sqrt(64), "that is rsLoRA's α/√r; plain LoRA uses α/r.")))


def _lora_cases():
    cases = []
    for seed, (d_in, d_out, r, alpha) in ((0, (12, 10, 3, 6)), (1, (8, 16, 4, 16))):
        torch.manual_seed(seed)
        layer = LoRALinear(nn.Linear(d_in, d_out), r=r, alpha=alpha)
        with torch.no_grad():
            layer.B.normal_()  # a trained adapter: B is no longer zero
        x = torch.randn(5, d_in)
        out = layer(x)
        probe = torch.randn_like(out)
        (out * probe).sum().backward()
        W0, b, A, B = (t.detach().clone() for t in (layer.base.weight, layer.base.bias, layer.A, layer.B))
        s = alpha / r
        cases.append(Case(
            inputs={"x": x, "W0": W0, "b": b, "A": A, "B": B, "alpha": alpha, "r": r},
            expected=out.detach(),
            wrong=((x @ W0.T + b + x @ A.T @ B.T, "the scaling α/r is missing: h = W₀x + b + (α/r)·B A x."),
                   (x @ W0.T + b + (r / alpha) * x @ A.T @ B.T, "the scaling is upside down: it is α/r, not r/α."),
                   (x @ W0.T + b + alpha / math.sqrt(r) * x @ A.T @ B.T,
                    "that is rsLoRA's α/√r; plain LoRA scales by α/r."),
                   (x @ W0.T + s * x @ A.T @ B.T, "the base layer's bias b is missing."),
                   (s * x @ A.T @ B.T, "only the update: the frozen base output W₀x + b is part of h too.")),
            grads={"A": layer.A.grad, "B": layer.B.grad}, probe=probe,
            shape_note="x is (batch, in); W0 is (out, in), A is (r, in), B is (out, r): nn.Linear layout."))
    return cases


LORA_FORWARD = Exercise(
    "05-lora-forward", "code", "LoRA's forward", "lora_forward",
    hint="h = W₀x + b + (α/r)·B A x, with x as rows (x @ W.T in PyTorch).",
    reread=where("1 (The LoRA layer)", "'LoRA (Low-Rank Adaptation)' and 'Scaling Factor α'"),
    explain="Two thin matmuls (in → r → out) instead of the out × in matrix ΔW.",
    cases=_lora_cases)


def _first_grads():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(16, 16), r=4, alpha=8)
    layer(torch.randn(8, 16)).pow(2).sum().backward()
    return {"A": layer.A.grad.abs().max().item(), "B": layer.B.grad.abs().max().item()}


def _which_moved(measured):
    moved = {k for k, v in measured.items() if v > 0}
    return {frozenset(): "neither", frozenset({"A"}): "A", frozenset({"B"}): "B",
            frozenset({"A", "B"}): "both"}[frozenset(moved)]


LORA_FIRST_GRAD = Exercise(
    "05-lora-first-grad", "predict", "which LoRA factor gets a gradient on the first step", "prediction",
    hint="", reread=where("1 (The LoRA layer)", "'LoRA (Low-Rank Adaptation)' (A random, B = 0)"),
    explain="Largest |gradient|: {m}. B = 0 at the start, so ∂L/∂A = (α/r)·Bᵀ(∂L/∂h)xᵀ = 0, while "
            "∂L/∂B = (α/r)·(∂L/∂h)(A x)ᵀ ≠ 0 because A is random. After the first step B ≠ 0 and A "
            "trains too. Had both started at zero, neither would ever move.",
    options={"A": "only A", "B": "only B", "both": "both", "neither": "neither"},
    outcome=_which_moved, measure=_first_grads)

EXERCISES = (LORA_PARAMS, SCALING, LORA_FORWARD, LORA_FIRST_GRAD)
