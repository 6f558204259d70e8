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


def _nf4_block_cases():
    cases = []
    for seed in (0, 1):
        g = torch.Generator().manual_seed(seed)
        block = torch.randn(64, generator=g) * 0.02
        block[seed] = -0.09  # the absmax may come from a negative weight
        q = quant.quantize_nf4(block)
        expected = q.indices().to(torch.float32)
        code = quant.nf4_code()
        by_max = quant.nearest(block / block.max(), code).to(torch.float32)
        int4 = torch.round(block / block.abs().max() * 7).to(torch.float32) + 7
        cases.append(Case(
            inputs={"block": block}, expected=expected,
            wrong=((by_max, "you scaled by the largest value, not the largest |value|: absmax = max |w|."),
                   (int4, "that is int4 (round to one of 15 evenly spaced levels); NF4 picks the nearest of the "
                          "16 values of quant.nf4_code().")),
            shape_note="block is 64 weights; return the 64 indices (0..15) in the same order.",
            wrap=_indices_as_float))
    return cases


NF4_BLOCK = Exercise(
    "06-nf4-block", "code", "NF4 indices of one block", "nf4_block",
    hint="absmax = max |w|; scale the block to [−1, 1]; pick the nearest NF4 value for each weight.",
    reread=where("1 (Absmax quantization) and 2 (NF4)", "'Block-wise k-bit Quantization' and '4-bit NormalFloat (NF4)'"),
    explain="Nearest code value after absmax scaling; quant.nearest breaks exact ties towards the lower index, "
            "as bitsandbytes does.",
    cases=_nf4_block_cases)


def _zeros_beside_an_outlier():
    torch.manual_seed(0)
    block = torch.randn(64) * 0.02
    block[0] = 2.0  # one outlier, 100x the spread of the others
    idx = quant.quantize_nf4(block).indices()
    zero = int((quant.nf4_code() == 0).nonzero())
    return int((idx[1:] == zero).sum())


OUTLIER = Exercise(
    "06-outlier", "predict", "what one outlier does to the other 63 weights of its block", "prediction",
    hint="", reread=where("1 (Absmax quantization, and why blocks)", "'Block-wise k-bit Quantization'"),
    explain="{m} of the 63 other weights were stored as NF4's exact 0. The outlier sets the absmax, so the "
            "others scale to about ±0.01 and fall below the first level (≈ 0.08): small blocks keep "
            "such damage local, which is why QLoRA uses blocks of 64.",
    options={"a": "hardly any of them become 0", "b": "about half", "c": "nearly all of them become 0"},
    outcome=lambda n: "a" if n < 16 else "b" if n < 48 else "c", measure=_zeros_beside_an_outlier)

EXERCISES = (BITS_256, NF4_INDEX, NF4_BLOCK, OUTLIER)
