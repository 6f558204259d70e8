"""Answer key of notebooks/07_qlora.ipynb (worked solutions: solutions/07_qlora.py)."""
import torch

from .. import memory, quant
from .core import Case, Exercise, Feedback, where

BASE_GB = Exercise(
    "07-base-gb", "quick", "LLaMA-65B NF4 + DQ base, GB", "answer_gb",
    hint="weights × bits per weight gives bits; divide by 8 for bytes and by 10⁹ for GB.",
    reread=where("7 (The lecture's LLaMA-3-8B arithmetic)", "'How does QLoRA reduce memory to 14GB?'"),
    explain="65e9 × 4.127 / 8 bytes: the base of the paper's largest Guanaco fits one 48 GB GPU, with room left "
            "for the adapter, its optimizer state and the activations.",
    expected=lambda: memory.gb(65e9 * 4.127 / 8), tol=0.05,
    mistakes=((lambda e: memory.gb(65e9 * 4 / 8), "the quantization constants are missing: 4.127 bits, not 4."),
              (lambda e: memory.gb(65e9 * 4.5 / 8), "that is without double quantization (4.5 bits).")))

BYTES_TRAINABLE = Exercise(
    "07-bytes-trainable", "quick", "bytes per trainable parameter, bf16 LoRA, fp32 master copy, 8-bit paged AdamW",
    "answer_bytes",
    hint="add the bf16 weight, its bf16 gradient, the fp32 master copy and the 8-bit optimizer's two one-byte moments.",
    reread=where("4 (Memory)", "'How does QLoRA reduce memory to 14GB?'"),
    explain="2 + 2 + 4 + 2 × 1 bytes: in mixed precision the fp32 master copy costs more than the 16-bit weight "
            "and gradient together, and the 8-bit optimizer saves 6 of AdamW's 8 bytes.",
    expected=lambda: memory.recipe("qlora", trainable_dtype="bf16", optimizer="paged_adamw_8bit").bytes_per_trainable,
    mistakes=((lambda e: e - 4, "the fp32 master copy is missing: mixed precision keeps one (4 bytes)."),
              (lambda e: e + 6, "those are fp32 AdamW moments (8 bytes); the 8-bit optimizer keeps 2."),
              (lambda e: e + 4, "the weight and gradient are bf16 (2 bytes each), not fp32.")))


def _q_scale_offset_as_one(student_fn):
    def run(absmax):
        out = student_fn(absmax)
        if out is None or out is Ellipsis:
            return out
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise Feedback("return three things: (q, scale, offset).")
        q, scale, offset = out
        if torch.as_tensor(q).numel() != absmax.numel() or torch.as_tensor(scale).numel() != absmax.numel() // 256:
            raise Feedback("q holds one code per absmax value and scale one number per block of 256.")
        return torch.cat([torch.as_tensor(q).to(torch.float32).flatten(), torch.as_tensor(scale).flatten().float(),
                          torch.as_tensor(offset).float().reshape(1)])
    return run


def _dq_cases():
    cases = []
    for seed in (0, 1):
        g = torch.Generator().manual_seed(seed)
        absmax = torch.randn(512, generator=g).abs() * 0.05 + 0.01
        ref = quant.double_quantize(absmax)
        expected = torch.cat([ref["q"].to(torch.float32), ref["scale"], ref["offset"].reshape(1)])
        blocks, scale = quant.split_blocks(absmax, quant.DQ_BLOCKSIZE)
        no_offset = quant.nearest(blocks / scale[:, None], quant.dynamic_code()).flatten()
        no_offset = torch.cat([no_offset.to(torch.float32), scale, torch.zeros(1)])
        cases.append(Case(
            inputs={"absmax": absmax}, expected=expected,
            wrong=((no_offset, "the offset is missing: subtract the mean of the absmax values first (they are all "
                               "positive, so centring them puts the 8-bit code's signed range to use)."),),
            shape_note="absmax holds 512 values: return (q: 512 uint8 indices, scale: one per 256, offset: a scalar).",
            wrap=_q_scale_offset_as_one))
    return cases


DOUBLE_QUANT = Exercise(
    "07-double-quant", "code", "double quantization of the absmax constants", "double_quantize_absmax",
    hint="subtract the mean; in blocks of 256 divide by each block's absmax; take the nearest value of "
         "quant.dynamic_code() with quant.nearest.",
    reread=where("6 (Double quantization) of notebook 06", "'Double Quantization: Reduce absmax constant size'"),
    explain="The 8-bit codes cost 8 bits per block of 64 weights, the fp32 scales 32 per 256 blocks: "
            "8/64 + 32/(64·256) ≈ 0.127 bits per weight instead of 0.5.",
    cases=_dq_cases)


def _dq_change():
    torch.manual_seed(0)
    w = torch.randn(256, 256)
    plain, dq = quant.quantize_nf4(w).dequantize(), quant.quantize_nf4(w, double_quant=True).dequantize()
    return {"changed": (plain != dq).float().mean().item(),
            "max relative": ((plain - dq).abs() / plain.abs().clamp(min=1e-12)).max().item()}


DQ_CHANGES_WEIGHTS = Exercise(
    "07-dq-changes-weights", "predict", "does double quantization change the dequantized weights?", "prediction",
    hint="", reread=where("6 (Double quantization) of notebook 06", "'Double Quantization'"),
    explain="Measured: {m}. The absmax constants themselves are now rounded to 8 bits, so every block is "
            "rescaled by a slightly wrong factor: the indices stay, the values shift by a fraction of a "
            "percent. QLoRA accepts this for 0.37 bits per weight.",
    options={"a": "identical", "b": "slightly different (under 1 % relative)", "c": "very different"},
    outcome=lambda m: "a" if m["changed"] == 0 else "b" if m["max relative"] < 0.01 else "c",
    measure=_dq_change)

EXERCISES = (BASE_GB, BYTES_TRAINABLE, DOUBLE_QUANT, DQ_CHANGES_WEIGHTS)
