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


def _sharing_cases():
    """Widths that are not multiples of r̂ (the wrap-around), out both above r̂ (tiled) and below it (cut)."""
    cases = []
    for seed, (d_in, d_out, r) in ((0, (10, 14, 2)), (1, (13, 7, 3))):
        torch.manual_seed(seed)
        layer = MoRALinear(nn.Linear(d_in, d_out), r=r, mora_type=1)
        with torch.no_grad():
            layer.M.normal_()
        M, r_hat = layer.M.detach().clone(), layer.r_hat
        out = layer.delta_weight()
        probe = torch.randn_like(out)
        (out * probe).sum().backward()
        tile = (torch.arange(d_out)[:, None] % r_hat == torch.arange(r_hat)).float()            # D, (out, r̂)
        zero_pad = (torch.arange(d_in) % r_hat == torch.arange(r_hat)[:, None]).float()         # C without the wrap
        padded = torch.arange(math.ceil(d_in / r_hat) * r_hat)
        wrapped = torch.zeros(r_hat, d_in).index_put((padded % r_hat, padded % d_in), torch.ones(len(padded)),
                                                     accumulate=True)
        cut = torch.eye(d_out, r_hat)                                                           # D without the tiling
        cases.append(Case(
            inputs={"M": M, "in_features": d_in, "out_features": d_out}, expected=out.detach(),
            wrong=((tile @ M @ zero_pad, "padding: the reference pads x by wrapping its first features around, not "
                                         "with zeros, so the last padded positions add input features 0, 1, … again."),
                   (cut @ M @ wrapped, "decompress repeats (tiles) the r̂ outputs until out_features are filled; it "
                                       "does not pad with zeros.")),
            grads={"M": layer.M.grad}, probe=probe,
            shape_note="M is (r̂, r̂), C (r̂, in), D (out, r̂); ΔW = D @ M @ C is (out_features, in_features)."))
    return cases


SHARING = Exercise(
    "09-sharing", "code", "MoRA sharing's ΔW from its compress and decompress matrices", "sharing_delta",
    hint="C[s, j] counts the padded positions p with p mod r̂ = s and p mod in = j (p runs over ⌈in / r̂⌉·r̂ "
         "positions); D[i, s] = 1 when s = i mod r̂; return D @ M @ C.",
    reread=where("3 (Compress and decompress, made visible)", "'Non-Parameterized Compress and Decompress'"),
    explain="ΔW = D·M·C: two fixed 0/1 matrices around the trained M, which is why MoRA merges like LoRA; with "
            "sharing, rank(ΔW) ≤ r̂ from r̂² weights.",
    cases=_sharing_cases)


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
