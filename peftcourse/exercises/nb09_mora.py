"""Answer key of notebooks/09_mora.ipynb (worked solutions: solutions/09_mora.py)."""
import math

import torch
from torch import nn

from ..lora import LoRALinear
from ..mora import MoRALinear, mora_rank
from .core import Case, Exercise, where

RHAT = Exercise(
    "09-rhat", "quick", "r̂ of a 4096 -> 11008 layer at r = 8 (rotation)", "answer",
    hint="r̂ = √((in + out)·r), rounded to the nearest integer, then down to an even number for rotation.",
    reread=where("1 (Same parameters, higher rank)", "'Parameter Efficiency of MoRA'"),
    explain="r̂² ≈ (in + out)·r: M has about as many weights as LoRA at rank r.",
    expected=lambda: mora_rank(4096, 11008, 8, 6),
    mistakes=((lambda e: e + 1, "rotation pairs features (RoPE), so r̂ must be even: round down to even."),
              (lambda e: e - 2, "round to the NEAREST integer first (the reference code adds 0.5), then down to even."),
              (lambda e: int(math.sqrt(2 * 4096 * 8)), "the layer is not square: use in + out, not 2·in.")))


def _mora_cases():
    cases = []
    for seed, (d_in, d_out, r) in ((0, (10, 14, 2)), (1, (13, 7, 3))):
        torch.manual_seed(seed)
        layer = MoRALinear(nn.Linear(d_in, d_out), r=r, mora_type=1)
        with torch.no_grad():
            layer.M.normal_()
        M = layer.M.detach().clone()
        r_hat = layer.r_hat
        x = torch.randn(4, d_in)
        out = layer.adapter_forward(x)
        probe = torch.randn_like(out)
        (out * probe).sum().backward()
        n = math.ceil(d_in / r_hat)
        zero_pad = nn.functional.pad(x, (0, n * r_hat - d_in)).view(4, n, r_hat).sum(1) @ M.T
        wrapped = x[:, torch.arange(n * r_hat) % d_in].view(4, n, r_hat).sum(1) @ M.T
        rows = torch.arange(d_out) % r_hat
        cut = nn.functional.pad(wrapped, (0, max(0, d_out - r_hat)))[:, :d_out]
        cases.append(Case(
            inputs={"x": x, "M": M, "out_features": d_out}, expected=out.detach(),
            wrong=((zero_pad[:, rows], "padding: the reference pads x by wrapping its first features around, not "
                                       "with zeros."),
                   (cut, "decompress repeats (tiles) the r̂ outputs until out_features are filled; it does not pad "
                         "with zeros.")),
            grads={"M": layer.M.grad}, probe=probe,
            shape_note="x is (batch, in), M is (r̂, r̂); the result is (batch, out_features)."))
    return cases


SHARING = Exercise(
    "09-sharing", "code", "MoRA's sharing compress and decompress", "mora_sharing",
    hint="wrap-pad x to a multiple of r̂, sum the groups of r̂, multiply by M, tile the r̂ outputs to out_features.",
    reread=where("3 (Compress and decompress, made visible)", "'Non-Parameterized Compress and Decompress'"),
    explain="ΔW[i, j] = M[i mod r̂, j mod r̂] (plus the wrap): rank r̂ from r̂² weights.",
    cases=_mora_cases)


def _delta_ranks():
    torch.manual_seed(0)
    lora, mora = LoRALinear(nn.Linear(256, 256), r=2, alpha=2), MoRALinear(nn.Linear(256, 256), r=2, mora_type=1)
    with torch.no_grad():
        lora.B.normal_()
        mora.M.normal_()
        return {"LoRA": int(torch.linalg.matrix_rank(lora.delta_weight())),
                "MoRA": int(torch.linalg.matrix_rank(mora.delta_weight()))}


RANK_256 = Exercise(
    "09-rank-256", "predict", "rank of ΔW on a 256×256 layer: LoRA r=2 vs MoRA sharing", "prediction",
    hint="", reread=where("4 (ΔW and its rank)", "'MoRA: High-Rank Updating for PEFT'"),
    explain="Measured ranks: {m}. Both train 1,024 weights; LoRA's ΔW = B A has rank r = 2, MoRA's tiles a random "
            "32×32 M and has rank r̂ = 32.",
    options={"a": "both 2", "b": "LoRA 2, MoRA 32", "c": "both 32", "d": "LoRA 2, MoRA 256"},
    outcome=lambda m: {(2, 2): "a", (2, 32): "b", (32, 32): "c", (2, 256): "d"}.get((m["LoRA"], m["MoRA"]), "d"),
    measure=_delta_ranks)

EXERCISES = (RHAT, SHARING, RANK_256)
