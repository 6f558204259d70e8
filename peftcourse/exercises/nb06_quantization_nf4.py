"""Answer key of notebooks/06_quantization_nf4.ipynb (worked solutions: solutions/06_quantization_nf4.py)."""
import torch

from .. import quant
from .core import Case, Exercise, where

BITS_256 = Exercise(
    "06-bits-256", "quick", "bits per weight, NF4, blocks of 256, no double quantization", "answer_bits",
    hint="4 bits of index per weight, plus one fp32 absmax shared by the block.",
    reread=where("5 (Block size) and 6 (Double quantization)", "'Double Quantization' (0.5 bits per parameter at 64)"),
    explain="4 + 32/blocksize bits.",
    expected=lambda: quant.quantize_nf4(torch.randn(256, 256), 256).bits_per_param(), tol=1e-3,
    mistakes=((lambda e: 4.0, "the absmax constants are missing: one fp32 number per block."),
              (lambda e: 4 + 32 / 64, "that is blocks of 64; the question has 256."),
              (lambda e: 4 + 16 / 256, "the absmax constants are fp32 (32 bits), not 16-bit."),
              (lambda e: 4 + 4 / 256, "bits vs bytes: the constant costs 32 bits, not 4.")))


def _nf4_index():
    block = torch.zeros(64)
    block[0], block[1] = 0.1, 0.05
    return int(quant.quantize_nf4(block).indices()[1])


NF4_INDEX = Exercise(
    "06-nf4-index", "quick", "NF4 index of 0.05 in a block whose absmax is 0.1", "answer_index",
    hint="scale by the absmax, then find the nearest of the 16 NF4 values (quant.nf4_code(), index 0 is −1).",
    reread=where("2 (NF4: 16 levels from normal quantiles)", "'4-bit NormalFloat (NF4)'"),
    explain="0.05/0.1 = 0.5 lies just below the midpoint between two NF4 values: nearest wins.",
    expected=_nf4_index,
    mistakes=((lambda e: e + 1, "one too high: 0.5 sits below the midpoint of its two neighbours, so it rounds down."),
              (lambda e: e - 1, "one too low: NF4's levels are not evenly spaced — compare 0.5 with "
                                "the midpoints between neighbouring NF4 values.")))


def _indices_as_float(student_fn):
    def run(block):
        out = student_fn(block)
        return out.to(torch.float32) if torch.is_tensor(out) else out
    return run


def _q4_1_indices(block, steps=15, subtract_min=True):
    """llama.cpp's Q4_1 (asymmetric): 16 evenly spaced levels from the block's minimum m to its maximum,
    w ≈ d·q + m with d = (max − m)/15, q = round((w − m)/d) in 0..15."""
    m = block.min() if subtract_min else torch.zeros(())
    d = (block.max() - block.min()) / steps
    return torch.round((block - m) / d).clamp(0, 15).to(torch.float32)


def _q4_1_block_cases():
    cases = []
    for seed in (0, 1):
        g = torch.Generator().manual_seed(seed)
        block = torch.randn(32, generator=g) * 0.02 + 0.004 * (seed + 1)   # not centred on 0: the minimum matters
        int4 = torch.round(block / block.abs().max() * 7).to(torch.float32) + 7
        cases.append(Case(
            inputs={"block": block}, expected=_q4_1_indices(block),
            wrong=((int4, "that is absmax int4 (levels spread symmetrically around 0); Q4_1 spreads its 16 "
                          "levels from the block's own minimum to its maximum."),
                   (_q4_1_indices(block, subtract_min=False), "the minimum m is missing: measure each weight "
                                                               "from the block's minimum, (w − m)/d."),
                   (_q4_1_indices(block, steps=16), "16 levels have 15 steps between them: d = (max − min)/15.")),
            shape_note="block is 32 weights; return the 32 indices (0..15) in the same order.",
            wrap=_indices_as_float))
    return cases


Q4_1_BLOCK = Exercise(
    "06-q4-1-block", "code", "Q4_1 indices of one block (SmolLM2's on-disk format)", "q4_1_block",
    hint="m = the block's minimum, d = (max − m)/15; each index is (w − m)/d rounded to the nearest integer.",
    reread=where("7 (A real LLM in 4 bits: SmolLM2)", "'Block-wise k-bit Quantization'"),
    explain="Q4_1 is asymmetric: its 16 levels span [min, max] of the block instead of [−absmax, absmax], so "
            "no level is wasted on the side the block does not reach; the price is a second constant per block.",
    cases=_q4_1_block_cases)


def _zeros_beside_a_large_weight():
    torch.manual_seed(0)
    block = torch.randn(64) * 0.02
    block[0] = 0.2  # one weight 10x the spread of the others
    idx = quant.quantize_nf4(block).indices()
    zero = int((quant.nf4_code() == 0).nonzero())
    return int((idx[1:] == zero).sum())


OUTLIER = Exercise(
    "06-outlier", "predict", "how many of the other 63 weights a weight 10x their spread turns into NF4's 0",
    "prediction", hint="", reread=where("2 (NF4: 16 levels from normal quantiles)", "'4-bit NormalFloat (NF4)'"),
    explain="{m} of the 63 other weights were stored as NF4's exact 0. The large weight sets the absmax (0.2), and "
            "NF4's 0 takes every scaled value between the midpoints to its neighbours, about −0.046 and +0.040, "
            "i.e. weights within about ±0.0085: some 0.4 of the spread, about a third of normally distributed "
            "weights. A 100x outlier would zero nearly all of them; NF4's levels crowd near 0, so a moderate one "
            "costs far less than with evenly spaced int4.",
    options={"a": "hardly any (fewer than 10)", "b": "between 10 and 40", "c": "nearly all (more than 50)"},
    outcome=lambda n: "a" if n < 10 else "b" if n <= 40 else "c", measure=_zeros_beside_a_large_weight)

EXERCISES = (BITS_256, NF4_INDEX, Q4_1_BLOCK, OUTLIER)
