"""The notebooks' exercises, keyed by id ("NN-slug"): expected values, reference checks and hints.

This file is the answer key, kept out of the notebooks: an exercise cell holds only `...` and a call such as
check("05-lora-params", answer). Expected values are computed from the package wherever it can (a refactor of a
layer keeps the key right), and every code exercise runs the student's function against the package's public
classes on random inputs. Worked solutions are in solutions/NN_topic.py (see solution_file).

Kinds: "quick" (a number), "array" (a small tensor), "code" (a function to write), "predict" (commit, then measure).
"""
import functools
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from . import validate
from .runtime import count_params

KINDS = ("quick", "array", "code", "predict")


class Feedback(Exception):
    """Raised by a case's wrapper when a student's result cannot be compared; its message is the hint."""


@dataclass(frozen=True)
class Case:
    """One random trial of a code exercise: the inputs, the package's output, and typical wrong outputs."""
    inputs: dict
    expected: torch.Tensor
    wrong: tuple = ()          # (wrong output, hint naming the kind of mistake)
    grads: dict = field(default_factory=dict)  # input name -> the package's gradient of (output * probe).sum()
    probe: torch.Tensor = None
    shape_note: str = ""       # what the shapes should be, said without giving the result
    wrap: Callable = None      # student function -> the function actually compared (e.g. one that summarises)


@dataclass(frozen=True)
class Exercise:
    id: str
    kind: str
    title: str
    name: str                  # the variable or function the student fills in
    hint: str                  # the first nudge when no known mistake matches
    reread: str                # notebook section and lecture slide, shown from the second wrong try
    explain: str = ""          # said once the answer is right (predict: after the measurement; {m} = measured)
    expected: Callable = None  # quick/array: () -> value
    tol: float = 0.0
    mistakes: tuple = ()       # quick/array: (expected -> a typical wrong value, hint)
    cases: Callable = None     # code: () -> [Case, ...]
    options: dict = None       # predict: option -> what it means
    outcome: Callable = None   # predict: measured -> the option that happened
    measure: Callable = None   # predict: () -> a measurement like the notebook's (used by the tests)

    def __post_init__(self):
        """A malformed entry fails when the module loads, naming what is wrong."""
        if self.kind not in KINDS:
            raise ValueError(f"exercise {self.id!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if isinstance(self.tol, bool) or not isinstance(self.tol, (int, float)) or not 0 <= self.tol < math.inf:
            raise ValueError(f"exercise {self.id!r}: tol must be a finite number >= 0, got {self.tol!r}")
        needs = {"quick": ("expected",), "array": ("expected",), "code": ("cases",),
                 "predict": ("options", "outcome", "measure")}[self.kind]
        missing = [n for n in needs if getattr(self, n) is None]
        if missing:
            raise ValueError(f"exercise {self.id!r} ({self.kind}) needs {', '.join(missing)}")

    @property
    def notebook(self):
        return self.id[:2]

    @property
    def solution_file(self):
        return SOLUTION_FILES[self.notebook]


SOLUTION_FILES = {
    "00": "00_start_here.py",
    "01": "01_finetuning_approaches.py", "02": "02_rank_and_low_rank.py", "03": "03_adapters.py",
    "04": "04_prompt_and_prefix_tuning.py", "05": "05_lora.py", "06": "06_quantization_nf4.py", "07": "07_qlora.py",
    "08": "08_dora.py", "09": "09_mora.py", "10": "10_sbora.py", "11": "11_multi_sbora.py", "12": "12_compare.py",
}

# Mistakes any numeric answer can make; an exercise's own mistakes are tried first. None of these hints
# contains a number derived from the expected value.
COMMON_MISTAKES = (
    (lambda e: 2 * e, "your answer is twice too large: something is counted twice (both factors? two of each?)."),
    (lambda e: e / 2, "your answer is half of what it should be: a factor of 2 is missing (A and B? key and value? "
                      "two per block?)."),
    (lambda e: 8 * e, "bits vs bytes: your answer looks like bits where bytes are asked (1 byte = 8 bits)."),
    (lambda e: e / 8, "bits vs bytes: your answer looks like bytes where bits are asked (1 byte = 8 bits)."),
    (lambda e: e * 1e9 / 2**30, "GB vs GiB: the course counts GB = 10⁹ bytes, as the lecture does, "
                                "not GiB = 2³⁰."),
    (lambda e: e * 2**30 / 1e9, "GB vs GiB: the course counts GB = 10⁹ bytes; your answer is off by 2³⁰/10⁹."),
    (lambda e: 100 * e, "a percentage where a fraction is asked (or the other way round): a factor of 100."),
    (lambda e: e / 100, "a fraction where a percentage is asked (or the other way round): a factor of 100."),
    (lambda e: -e, "the sign is wrong."),
)


def _rand(*shape, g):
    return torch.randn(*shape, generator=g)


# ============================================================ 01 · fine-tuning approaches

def _full_ft_gb():
    from . import memory
    return memory.gb(memory.estimate(13e9, memory.LECTURE_FULL_FT)["total"])


def _feature_based_cases():
    from . import cnn
    cases = []
    for seed, n_classes in ((0, 5), (1, 3)):
        torch.manual_seed(seed)
        model = cnn.SmallCNN()
        reference = cnn.prepare(_copy(model), "feature-based", n_classes)
        expected = torch.tensor([p.requires_grad for p in reference.parameters()], dtype=torch.float32)
        shapes = torch.tensor(list(reference.head[-1].weight.shape), dtype=torch.float32)
        everything = torch.ones_like(expected)
        head_frozen = torch.zeros_like(expected)
        old_shape = torch.tensor(list(model.head[-1].weight.shape), dtype=torch.float32)
        cases.append(Case(
            inputs={"model": model, "n_classes": n_classes},
            expected=torch.cat([expected, shapes]),
            wrong=((torch.cat([everything, shapes]), "everything still trains: freeze the pretrained layers "
                                                     "(requires_grad_(False)) before adding the new classifier."),
                   (torch.cat([head_frozen, shapes]), "nothing trains: the new classifier must stay trainable "
                                                      "(create it after freezing, or unfreeze it)."),
                   (torch.cat([everything, old_shape]), "nothing changed: freeze the pretrained layers, then replace "
                                                        "model.head[-1] by a new nn.Linear with n_classes outputs."),
                   (torch.cat([expected, old_shape]), "the last layer still has the source task's outputs: replace it "
                                                      "by a new nn.Linear with n_classes outputs.")),
            shape_note="Return the model itself (prepared in place)."))
    return cases


def _copy(model):
    import copy
    return copy.deepcopy(model)


def _feature_based_adapter(student_fn):
    """Run a student's feature_based(model, n_classes) and summarise what it did as one tensor."""
    def run(model, n_classes):
        m = student_fn(_copy(model), n_classes)  # a copy: the pretrained model stays as it was
        if m is None or m is Ellipsis:
            return m
        if not isinstance(m, nn.Module):
            raise Feedback(f"your function returned a {type(m).__name__}; return the model.")
        if len(list(m.parameters())) != len(list(model.parameters())):
            raise Feedback("the model has a different number of weight tensors: replace model.head[-1], "
                           "do not add or remove layers.")
        last = m.head[-1]
        flags = torch.tensor([p.requires_grad for p in m.parameters()], dtype=torch.float32)
        return torch.cat([flags, torch.tensor(list(last.weight.shape), dtype=torch.float32)])
    return run


def _fewest_top_layer_measure():
    from . import cnn
    model = cnn.prepare(cnn.SmallCNN(n_classes=5, image_size=12), "top-layer", 5)   # notebook 01: digits in a 12x12 frame
    return count_params(model, trainable_only=True) / count_params(model)


# ============================================================ 02 · rank

def _svd_cases():
    from . import linalg
    cases = []
    for seed, (m, n, r) in ((0, (7, 5, 2)), (1, (6, 9, 3))):
        g = torch.Generator().manual_seed(seed)
        M = _rand(m, n, g=g).double()
        U, S, Vh = torch.linalg.svd(M, full_matrices=False)
        cases.append(Case(
            inputs={"M": M, "r": r}, expected=linalg.svd_truncate(M, r),
            wrong=(((U[:, :r + 1] * S[:r + 1]) @ Vh[:r + 1], "off by one: keep exactly r singular values, S[:r]."),
                   ((U[:, :r - 1] * S[:r - 1]) @ Vh[:r - 1], "off by one: keep exactly r singular values, S[:r]."),
                   ((U[:, -r:] * S[-r:]) @ Vh[-r:], "you kept the smallest singular values: torch.linalg.svd sorts "
                                                    "them largest first, keep the first r."),
                   (U[:, :r] @ Vh[:r], "the singular values are missing: U_r diag(S_r) V_rᵀ."),
                   (M, "nothing was truncated: the result is M itself.")),
            shape_note="M is m × n; the result is m × n too."))
    return cases


def _i_plus_j_measure():
    from . import linalg
    i = torch.arange(100, dtype=torch.float64)
    return linalg.numerical_rank(i[:, None] + i[None, :])


# ============================================================ 03 · adapters

def _adapter_cases():
    from .adapters import BottleneckAdapter
    cases = []
    for seed, (d, b) in ((0, (16, 4)), (1, (10, 3))):
        torch.manual_seed(seed)
        layer = BottleneckAdapter(d, b)
        with torch.no_grad():  # a trained adapter: up is no longer zero
            layer.up.weight.normal_()
            layer.up.bias.normal_()
        h = torch.randn(3, 5, d)
        Wd, bd, Wu, bu = (t.detach().clone()
                          for t in (layer.down.weight, layer.down.bias, layer.up.weight, layer.up.bias))
        act = nn.functional.gelu
        probe = torch.randn(3, 5, d)
        out = layer(h)
        (out * probe).sum().backward()
        cases.append(Case(
            inputs={"h": h, "W_down": Wd, "b_down": bd, "W_up": Wu, "b_up": bu},
            expected=out.detach(),
            wrong=((act(h @ Wd.T + bd) @ Wu.T + bu, "the skip connection is missing: the adapter returns h + up(...)."),
                   (h + nn.functional.relu(h @ Wd.T + bd) @ Wu.T + bu, "wrong nonlinearity: the adapter uses GELU."),
                   (h + act(h @ Wd.T) @ Wu.T, "the biases are missing: both projections have one."),
                   (h + (h @ Wd.T + bd) @ Wu.T + bu, "the nonlinearity is missing: without it down and up collapse "
                                                     "into one low-rank linear map.")),
            grads={"W_down": layer.down.weight.grad, "W_up": layer.up.weight.grad}, probe=probe,
            shape_note="h is (..., d); W_down is (b, d) and W_up is (d, b) in nn.Linear layout (out, in)."))
    return cases


def _adapter_identity_measure():
    from .adapters import BottleneckAdapter
    torch.manual_seed(0)
    h = torch.randn(4, 16)
    return (BottleneckAdapter(16, 4)(h) - h).abs().max().item()


# ============================================================ 04 · prompt and prefix tuning

@functools.lru_cache(maxsize=1)
def tiny_gpt2(n_layer=2):
    """A tiny random GPT-2 (the architecture of TinyGPT, a few thousand weights): light enough for a checker."""
    import transformers
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=50, n_positions=32, n_embd=16, n_layer=n_layer, n_head=2)
    return transformers.GPT2LMHeadModel(config).eval()


def _prompt_cases():
    from .prompts import PromptTuning
    cases = []
    for seed, (n, batch, seq) in ((0, (4, 2, 5)), (1, (3, 3, 6))):
        torch.manual_seed(seed)
        tuned = PromptTuning(_copy(tiny_gpt2()), n, init="random").eval()
        ids = torch.randint(0, 50, (batch, seq))
        logits = tuned(ids).logits
        probe = torch.randn_like(logits)
        (logits * probe).sum().backward()
        base = tuned.base
        wte = base.get_input_embeddings()
        prompt = tuned.prompt.detach().clone()
        embeds = wte(ids).detach()
        after = torch.cat([embeds, prompt.expand(batch, -1, -1)], dim=1)
        cases.append(Case(
            inputs={"model": base, "prompt": prompt, "input_ids": ids}, expected=logits.detach(),
            wrong=((base(inputs_embeds=after).logits.detach(), "your virtual tokens come after the real ones: "
                                                               "prompt tuning puts them first."),),
            grads={"prompt": tuned.prompt.grad}, probe=probe,
            shape_note="Return the model's logits for [prompt; embeddings of input_ids]: (batch, n + seq, vocab)."))
    return cases


def _prompt_logits_adapter(student_fn):
    """The student's function returns inputs_embeds; the checker feeds them to the frozen model."""
    def run(model, prompt, input_ids):
        embeds = student_fn(model, prompt, input_ids)
        if embeds is None or embeds is Ellipsis or not torch.is_tensor(embeds):
            return embeds
        want = (input_ids.shape[0], prompt.shape[0] + input_ids.shape[1], prompt.shape[1])
        if tuple(embeds.shape) != want:
            raise Feedback(f"your inputs_embeds have shape {tuple(embeds.shape)}; the model needs (batch, n + seq, d) "
                           f"= {want}.")
        return model(inputs_embeds=embeds).logits
    return run


def _prefix_vs_prompt_measure():
    from .prompts import PrefixTuning, PromptTuning
    model = tiny_gpt2(n_layer=4)
    return (count_params(PrefixTuning(_copy(model), 8), trainable_only=True)
            / count_params(PromptTuning(_copy(model), 8), trainable_only=True))


# ============================================================ 05 · LoRA

def _lora_cases():
    from .lora import LoRALinear
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


def _lora_first_grad_measure():
    from .lora import LoRALinear
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(16, 16), r=4, alpha=8)
    layer(torch.randn(8, 16)).pow(2).sum().backward()
    return {"A": layer.A.grad.abs().max().item(), "B": layer.B.grad.abs().max().item()}


def _first_grad_outcome(measured):
    moved = {k for k, v in measured.items() if v > 0}
    return {frozenset(): "neither", frozenset({"A"}): "A", frozenset({"B"}): "B",
            frozenset({"A", "B"}): "both"}[frozenset(moved)]


# ============================================================ 06 · NF4

def _bits_256():
    from . import quant
    return quant.quantize_nf4(torch.randn(256, 256), 256).bits_per_param()


def _nf4_index():
    from . import quant
    block = torch.zeros(64)
    block[0], block[1] = 0.1, 0.05
    return int(quant.quantize_nf4(block).indices()[1])


def _nf4_block_cases():
    from . import quant
    cases = []
    for seed in (0, 1):
        g = torch.Generator().manual_seed(seed)
        block = _rand(64, g=g) * 0.02
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
            shape_note="block is 64 weights; return the 64 indices (0..15) in the same order."))
    return cases


def _nf4_index_adapter(student_fn):
    def run(block):
        out = student_fn(block)
        return out.to(torch.float32) if torch.is_tensor(out) else out
    return run


def _outlier_measure():
    from . import quant
    torch.manual_seed(0)
    block = torch.randn(64) * 0.02
    block[0] = 2.0  # one outlier, 100x the spread of the others
    idx = quant.quantize_nf4(block).indices()
    zero = int((quant.nf4_code() == 0).nonzero())
    return int((idx[1:] == zero).sum())


# ============================================================ 07 · QLoRA

def _dq_cases():
    from . import quant
    cases = []
    for seed in (0, 1):
        g = torch.Generator().manual_seed(seed)
        absmax = _rand(512, g=g).abs() * 0.05 + 0.01
        ref = quant.double_quantize(absmax)
        expected = torch.cat([ref["q"].to(torch.float32), ref["scale"], ref["offset"].reshape(1)])
        blocks, scale = quant.split_blocks(absmax, quant.DQ_BLOCKSIZE)
        no_offset = quant.nearest(blocks / scale[:, None], quant.dynamic_code()).flatten()
        no_offset = torch.cat([no_offset.to(torch.float32), scale, torch.zeros(1)])
        cases.append(Case(
            inputs={"absmax": absmax}, expected=expected,
            wrong=((no_offset, "the offset is missing: subtract the mean of the absmax values first (they are all "
                               "positive, so centring them puts the 8-bit code's signed range to use)."),),
            shape_note="absmax holds 512 values: return (q: 512 uint8 indices, scale: one per 256, offset: a scalar)."))
    return cases


def _dq_adapter(student_fn):
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


def _dq_change_measure():
    from . import quant
    torch.manual_seed(0)
    w = torch.randn(256, 256)
    plain, dq = quant.quantize_nf4(w).dequantize(), quant.quantize_nf4(w, double_quant=True).dequantize()
    return {"changed": (plain != dq).float().mean().item(),
            "max relative": ((plain - dq).abs() / plain.abs().clamp(min=1e-12)).max().item()}


# ============================================================ 08 · DoRA

def _dora_cases():
    from .dora import DoRALinear
    cases = []
    for seed, (d_in, d_out, r, alpha) in ((0, (12, 6, 2, 4)), (1, (5, 9, 3, 3))):
        torch.manual_seed(seed)
        layer = DoRALinear(nn.Linear(d_in, d_out), r=r, alpha=alpha)
        with torch.no_grad():
            layer.B.normal_()
            layer.m.mul_(torch.rand(d_out) + 0.5)  # a trained magnitude
        W = layer.base_weight() + layer.delta_weight()
        probe = torch.randn_like(W)
        (W * probe).sum().backward()
        W0, A, B, m = (t.detach().clone() for t in (layer.base_weight(), layer.A, layer.B, layer.m))
        s = layer.scaling
        V = W0 + s * B @ A
        cases.append(Case(
            inputs={"W0": W0, "A": A, "B": B, "m": m, "scaling": s}, expected=W.detach(),
            wrong=((m[:, None] * V / V.norm(dim=0, keepdim=True),
                    "norm per column: in PyTorch's (out, in) layout the paper's column norm is one norm per ROW."),
                   (m[:, None] * (W0 + B @ A) / (W0 + B @ A).norm(dim=1, keepdim=True),
                    "the scaling is missing in V = W₀ + (α/r)·B A."),
                   (V, "V is not normalised: W' = m ⊙ V / ‖V‖, row by row."),
                   (V / V.norm(dim=1, keepdim=True), "the magnitude m is missing: W' = m ⊙ V / ‖V‖.")),
            grads={"m": layer.m.grad}, probe=probe,
            shape_note="W0 is (out, in), A (r, in), B (out, r), m (out,); W' has W0's shape."))
    return cases


def _dora_norm_measure():
    from .dora import DoRALinear
    torch.manual_seed(0)
    layer = DoRALinear(nn.Linear(32, 16), r=4, alpha=8)
    with torch.no_grad():
        layer.B.normal_()  # a large LoRA update, m left at its initial value
        W = layer.base_weight() + layer.delta_weight()
        return (W.norm(dim=1) - layer.base_weight().norm(dim=1)).abs().max().item()


# ============================================================ 09 · MoRA

def _mora_cases():
    from .mora import MoRALinear
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


def _mora_rank_measure():
    from .lora import LoRALinear
    from .mora import MoRALinear
    torch.manual_seed(0)
    lora, mora = LoRALinear(nn.Linear(256, 256), r=2, alpha=2), MoRALinear(nn.Linear(256, 256), r=2, mora_type=1)
    with torch.no_grad():
        lora.B.normal_()
        mora.M.normal_()
        return {"LoRA": int(torch.linalg.matrix_rank(lora.delta_weight())),
                "MoRA": int(torch.linalg.matrix_rank(mora.delta_weight()))}


# ============================================================ 10 · SBoRA

def _sbora_fb_cases():
    from .sbora import SBoRALinear
    cases = []
    for seed, (d_in, d_out, r, alpha) in ((0, (9, 12, 3, 6)), (1, (6, 5, 2, 2))):
        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        layer = SBoRALinear(nn.Linear(d_in, d_out), r=r, alpha=alpha, variant="FB", generator=g)
        with torch.no_grad():
            layer.A.normal_()
        x = torch.randn(4, d_in)
        out = layer(x)
        probe = torch.randn_like(out)
        (out * probe).sum().backward()
        W0, b, A, idx = (t.detach().clone() for t in (layer.base.weight, layer.base.bias, layer.A, layer.indices))
        s = layer.scaling
        base = x @ W0.T + b
        upd = s * x @ A.T
        overwrite = base.clone()
        overwrite[:, idx] = upd
        cases.append(Case(
            inputs={"x": x, "W0": W0, "b": b, "A": A, "indices": idx, "scaling": s}, expected=out.detach(),
            wrong=((base.index_add(-1, idx, x @ A.T), "the scaling α/r is missing."),
                   (overwrite, "you replaced the chosen outputs; index_add adds the update to W₀x + b there."),
                   (base.index_add(-1, idx, s * x @ A.T) - b, "the base layer's bias b is missing.")),
            grads={"A": layer.A.grad}, probe=probe,
            shape_note="x is (batch, in), A is (r, in), indices holds r output positions; the result is (batch, out)."))
    return cases


def _fa_columns_measure():
    from .sbora import SBoRALinear
    torch.manual_seed(0)
    layer = SBoRALinear(nn.Linear(16, 16), r=4, alpha=4, variant="FA", generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        layer.B.normal_()
        dw = layer.delta_weight()
    return {"nonzero columns": int((dw != 0).any(0).sum()), "nonzero rows": int((dw != 0).any(1).sum())}


def _fa_columns_outcome(measured):
    if measured["nonzero rows"] == 16 and measured["nonzero columns"] == 4:
        return "columns"
    if measured["nonzero rows"] == 4:
        return "rows"
    return "all"


# ============================================================ 11 · Multi-SBoRA

def _merge_cases():
    from . import multi_sbora, sbora
    cases = []
    for seed, (d_in, d_out, r, n_tasks) in ((0, (12, 5, 2, 3)), (1, (8, 6, 3, 2))):
        torch.manual_seed(seed)
        base = nn.Linear(d_in, d_out)
        layers = []
        for task in range(n_tasks):
            idx = multi_sbora.task_indices(d_in, r, task, n_tasks, torch.Generator().manual_seed(seed))
            layer = sbora.SBoRALinear(_copy(base), r, alpha=2 * r, variant="FA", indices=idx)
            with torch.no_grad():
                layer.B.normal_()
            layers.append(layer)
        merged = multi_sbora.merge_tasks(nn.Sequential(_copy(base)), [nn.Sequential(layer) for layer in layers])
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


def _interference_measure():
    from . import multi_sbora, sbora
    torch.manual_seed(0)
    base = nn.Linear(12, 6)
    layers = []
    for task in range(2):
        idx = multi_sbora.task_indices(12, 3, task, 2, torch.Generator().manual_seed(0))
        layer = sbora.SBoRALinear(_copy(base), 3, alpha=3, variant="FA", indices=idx)
        with torch.no_grad():
            layer.B.normal_()
        layers.append(layer)
    merged = multi_sbora.merge_tasks(nn.Sequential(_copy(base)), [nn.Sequential(layer) for layer in layers])
    x = torch.randn(4, 12)
    with torch.no_grad():
        return (merged(x) - layers[0](x)).abs().max().item()


# ============================================================ 12 · compare

@functools.lru_cache(maxsize=1)
def _tinygpt_counts():
    import transformers
    from . import inject, models
    transformers.utils.logging.disable_progress_bar()  # as every notebook does: no bar in a checker's answer
    model, _ = models.load_tinygpt()
    full = count_params(model)
    lora = inject(model, "lora", ["c_attn", "c_proj", "c_fc"], r=4, alpha=8)
    return {"full FT": full, "LoRA r=4": count_params(lora, trainable_only=True)}


def _state_cases():
    from . import memory
    cases = []
    for seed, frozen in ((0, (0,)), (1, (1, 2))):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 8), nn.Linear(8, 3))
        for i in frozen:
            if isinstance(model[i], nn.Linear):
                model[i].requires_grad_(False)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        model(torch.randn(4, 10)).sum().backward()
        opt.step()
        state = memory.measure_state(model, opt)
        expected = torch.tensor(float(state["gradients"] + state["optimizer state"]))
        all_params = count_params(model)
        trainable = count_params(model, trainable_only=True)
        cases.append(Case(
            inputs={"model": model}, expected=expected,
            wrong=((torch.tensor(12.0 * all_params), "you counted the frozen weights too: only parameters with "
                                                     "requires_grad have a gradient and AdamW moments."),
                   (torch.tensor(16.0 * trainable), "you counted the weights themselves too: the question is the "
                                                    "gradient plus the optimizer state."),
                   (torch.tensor(8.0 * trainable), "the gradient is missing: AdamW's two moments plus one gradient."),
                   (torch.tensor(4.0 * trainable), "AdamW keeps two moments per weight, plus the gradient."),
                   (torch.tensor(3.0 * trainable), "those are numbers, not bytes: each fp32 value takes 4 bytes.")),
            shape_note="Return one number: bytes (fp32 = 4 bytes per value)."))
    return cases


def _number_adapter(student_fn):
    def run(model):
        out = student_fn(model)
        if out is None or out is Ellipsis:
            return out
        value = validate.as_number(out)
        return torch.tensor(value) if value is not None else out
    return run


def _llama_ratio_measure():
    from . import memory
    layers, d, kv, ffn, r = 32, 4096, 1024, 14336, 16
    shapes = [(d, d), (d, kv), (d, kv), (d, d), (d, ffn), (d, ffn), (ffn, d)]  # q, k, v, o, gate, up, down
    lora = layers * sum(r * (n_in + n_out) for n_in, n_out in shapes)
    full_recipe, lora_recipe = memory.recipe("full", optimizer="adamw"), memory.recipe("lora", optimizer="adamw")

    def grad_and_state(est):
        return sum(v for k, v in est.items() if k.startswith(("gradient", "optimizer")))
    return grad_and_state(memory.estimate(8.03e9, full_recipe)) / grad_and_state(
        memory.estimate(8.03e9, lora_recipe, trainable=lora))


def _ratio_outcome(ratio):
    return min(("20x", "200x", "2000x"), key=lambda o: abs(math.log10(ratio) - math.log10(float(o[:-1]))))


# ============================================================ the registry

def _nb(section, slide):
    return f"the notebook's section {section}, and the lecture slide {slide}."


# gradient + AdamW bytes (notebook 12): the usual slips, as factors of the right answer (12 bytes per weight)
STATE_BYTES_MISTAKES = ((lambda e: e * 16 / 12, "the question asks for gradient and optimizer state only, not the "
                                                "weights themselves."),
                        (lambda e: e * 8 / 12, "the gradient is missing."),
                        (lambda e: e / 4, "those are numbers, not bytes: 4 bytes per fp32 value."))

EXERCISES = {ex.id: ex for ex in [
    # ---------------------------------------------------------------- 00: how the checker answers
    Exercise("00-adapter-weights", "quick", "weights of the lecture's 1024 → 24 → 1024 adapter", "answer",
             hint="count the weights of the down-projection (1024 → 24) and of the up-projection (24 → 1024).",
             reread="notebook 03's section 1 (The bottleneck adapter), and the lecture slide "
                    "'Adapter Tuning (Houlsby and Giurgiu et al., 2019-02)'.",
             explain="A down- and an up-projection: 2 · 1024 · 24 weights, a few percent of a 1024 × 1024 layer.",
             expected=lambda: 2 * 1024 * 24),
    # ---------------------------------------------------------------- 01
    Exercise("01-full-ft-gb", "quick", "13B full fine-tuning, GB", "answer",
             hint="multiply the parameters by the lecture's bytes per parameter, then convert to GB (10⁹ bytes).",
             reread=_nb("3 (What does fine-tuning cost in memory?)",
                        "'Naively Fine-Tuning LLaMA-3-8B takes 128GB of RAM!'"),
             explain="16 bytes per parameter: fp16 weight and gradient (2 + 2) plus Adam's fp32 master copy and two "
                     "moments (12).",
             expected=_full_ft_gb, tol=1.0,
             mistakes=((lambda e: e / 4, "only the fp16 weights: the gradient and Adam's states cost more than "
                                         "the weights."),
                       (lambda e: e * 12 / 16, "the fp16 weight and gradient are missing: 2 + 2 bytes more per "
                                               "parameter."))),
    Exercise("01-feature-based", "code", "feature-based fine-tuning", "feature_based",
             hint="freeze every pretrained parameter, then give the model a new, trainable last layer.",
             reread=_nb("2 (Three ways to adapt it)",
                        "'Finetuning of Convolutional Neural Networks (CNNs)', approach (2)"),
             explain="Only the new classifier trains: a logistic regression on the frozen 64-d features.",
             cases=lambda: [_adapt(c, "feature") for c in _feature_based_cases()]),
    Exercise("01-top-layer-share", "predict", "share of weights top-layer fine-tuning trains", "prediction",
             hint="", reread=_nb("2 (Three ways to adapt it)",
                                 "'Finetuning of Convolutional Neural Networks (CNNs)', approach (3)"),
             explain="Top-layer fine-tuning trains {m:.0%} of SmallCNN: the last conv block and the dense head hold most "
                     "of the weights, while the early layers, which see every pixel, are small. 'Top layers only' "
                     "saves compute on the frozen part, not necessarily parameters.",
             options={"a": "under 10 %", "b": "10 to 50 %", "c": "over 50 %"},
             outcome=lambda share: "a" if share < 0.1 else "b" if share <= 0.5 else "c",
             measure=_fewest_top_layer_measure),
    # ---------------------------------------------------------------- 02
    Exercise("02-lowrank-params", "quick", "rank-16 factors of a 4096×4096 matrix", "answer",
             hint="count the entries of B (n × r) and of A (r × n).",
             reread=_nb("2 (Decomposition)", "'Rep: Rank Matrix Decomposition' (n² ⇒ 2rn)"),
             explain="r·(d + k) = 2·r·n numbers instead of n².",
             expected=lambda: _linalg().lowrank_params(4096, 16),
             mistakes=((lambda e: 4096 ** 2, "that is the full matrix, n²; the factorisation holds B and A only."),
                       (lambda e: 16 * 16, "r × r is neither factor: B is n × r and A is r × n."))),
    Exercise("02-fraction", "quick", "fraction of n² the factors hold", "fraction",
             hint="divide the factors' entries by the full matrix's n² entries.",
             reread=_nb("2 (Decomposition)", "'Rep: Rank Matrix Decomposition'"),
             explain="2r/n: the saving grows with the matrix size.",
             expected=lambda: _linalg().lowrank_params(4096, 16) / 4096 ** 2, tol=1e-6,
             mistakes=((lambda e: 1 / e, "upside down: the fraction is (factor entries) / n², which is below 1."),)),
    Exercise("02-svd-truncate", "code", "best rank-r approximation by SVD", "svd_truncate",
             hint="torch.linalg.svd(M, full_matrices=False) gives U, S, Vh; keep the r largest singular values.",
             reread=_nb("3 (SVD truncation)", "'Recap: Matrix Rank' and 'What is LoRA?'"),
             explain="Eckart–Young: dropping the smallest singular values is the best rank-r approximation.",
             cases=_svd_cases),
    Exercise("02-rank-i-plus-j", "predict", "rank of the 100×100 matrix M[i, j] = i + j", "prediction",
             hint="", reread=_nb("1 (Rank)", "'Rank-1 Matrix', 'Rank-2 Matrix'"),
             explain="numerical_rank says {m}. Every row is i·(1, 1, ..., 1) + (0, 1, ..., 99): a combination of two "
                     "fixed rows, so M = i·1ᵀ + 1·jᵀ is a sum of two outer products, whatever its size.",
             options={"1": "rank 1", "2": "rank 2", "100": "full rank"},
             outcome=lambda rank: str(rank) if rank in (1, 2, 100) else "100", measure=_i_plus_j_measure),
    # ---------------------------------------------------------------- 03
    Exercise("03-adapter-params", "quick", "adapter parameters in MiniLM at b=32", "answer",
             hint="one adapter holds a down-projection d → b and an up-projection b → d, each with a bias; count the "
                  "adapters per block.",
             reread=_nb("1 (The bottleneck adapter) and 2 (Where the adapters go)",
                        "'Adapter Tuning (Houlsby and Giurgiu et al., 2019-02)'"),
             explain="2·d·b + d + b per adapter, two adapters per block (after attention and after the FFN).",
             expected=lambda: 6 * 2 * _adapters().adapter_param_count(384, 32),
             mistakes=((lambda e: 6 * 2 * 2 * 384 * 32, "the biases are missing: the down projection has b, the up "
                                                       "projection d."),
                       (lambda e: e / 6, "that is one block: MiniLM has 6."),
                       (lambda e: 6 * 2 * (2 * 384 * 32 + 2 * 32), "the up projection's bias has d entries, not b."))),
    Exercise("03-adapter-forward", "code", "a bottleneck adapter's forward", "bottleneck_adapter",
             hint="down-project, GELU, up-project, and add the input back.",
             reread=_nb("1 (The bottleneck adapter)", "'Why Adapter Layer with 2 Fully Connected Layers?'"),
             explain="h + W_up·GELU(W_down·h + b_down) + b_up: with W_up = 0 it is the identity.",
             cases=_adapter_cases),
    Exercise("03-identity-at-init", "predict", "a fresh adapter's effect on its input", "prediction",
             hint="", reread=_nb("1 (The bottleneck adapter)", "'Adapter Tuning (Houlsby and Giurgiu et al., 2019-02)'"),
             explain="The largest |adapter(h) − h| is {m}: W_up and b_up start at zero, so the up-projection adds "
                     "exactly nothing and the adapted network starts as the pretrained one (Houlsby et al. §2.1, "
                     "near-identity initialisation, made exact).",
             options={"a": "exactly h", "b": "close to h, not exact", "c": "far from h"},
             outcome=lambda diff: "a" if diff == 0 else "b" if diff < 1e-2 else "c", measure=_adapter_identity_measure),
    # ---------------------------------------------------------------- 04
    Exercise("04-prefix-params", "quick", "prefix tuning, n=10, TinyGPT", "answer",
             hint="each virtual token gives every layer a key vector and a value vector of size d.",
             reread=_nb("2 (Prefix tuning)", "'PEFT Techniques' (2. Prefix Tuning)"),
             explain="n · layers · 2 · d: a key and a value per layer and virtual token.",
             expected=lambda: 10 * 4 * 2 * 192,
             mistakes=((lambda e: 10 * 192, "that is prompt tuning's count (one embedding per virtual token); prefix "
                                            "tuning feeds every layer."),
                       (lambda e: 10 * 2 * 192, "that is one layer: TinyGPT has 4."))),
    Exercise("04-soft-prompt", "code", "a soft prompt in front of the input", "soft_prompt_inputs",
             hint="embed input_ids with the model's input embeddings, then put the prompt in front of every sequence.",
             reread=_nb("1 (Prompt tuning)", "'PEFT Techniques' (3. Prompt Tuning)"),
             explain="The model never sees the prompt as tokens: only as n trainable vectors in front of the embeddings.",
             cases=lambda: [_adapt(c, "prompt") for c in _prompt_cases()]),
    Exercise("04-prefix-vs-prompt", "predict", "prefix vs prompt tuning, trainable weights at equal n", "prediction",
             hint="", reread=_nb("2 (Prefix tuning)", "'PEFT Techniques'"),
             explain="On a 4-layer GPT-2 prefix tuning trains {m:g}× the weights of prompt tuning at the same n: a key and "
                     "a value (2) for every layer (4), against one input embedding.",
             options={"1": "the same", "2": "twice as many", "8": "eight times as many"},
             outcome=lambda ratio: min(("1", "2", "8"), key=lambda o: abs(ratio - int(o))),
             measure=_prefix_vs_prompt_measure),
    # ---------------------------------------------------------------- 05
    Exercise("05-lora-params", "quick", "LoRA r=4 on the MLP of TinyGPT", "answer",
             hint="per adapted matrix A is r × in and B is out × r; count both MLP matrices over all blocks.",
             reread=_nb("1 (The LoRA layer)", "'Applying LoRA to Feed-Forward Networks'"),
             explain="2 matrices × 4 blocks × r·(192 + 768): a k → d matrix costs r·(k + d), whichever way round.",
             expected=lambda: 4 * 2 * _linalg().lowrank_params(768, 4, 192),
             mistakes=((lambda e: e / 4, "that is one block: TinyGPT has 4."),
                       (lambda e: 4 * 2 * _linalg().lowrank_params(192, 4),
                        "the MLP's matrices are not square: c_fc maps 192 → 768, so A is r × 192 and B is 768 × r."),
                       (lambda e: 4 * 2 * 192 * 768, "that is the full matrices; LoRA adds only A and B."))),
    Exercise("05-scaling", "quick", "scaling at r=64 with α=16", "scaling",
             hint="LoRA multiplies B A by a factor made of α and r.",
             reread=_nb("4 (The scaling factor α)", "'Scaling Factor α'"),
             explain="s = α/r: at fixed α a larger rank takes smaller steps per unit of B A.",
             expected=lambda: _lora_scaling(64, 16), tol=1e-9,
             mistakes=((lambda e: 64 / 16, "upside down: the scaling is α/r, not r/α."),
                       (lambda e: 16 / math.sqrt(64), "that is rsLoRA's α/√r; plain LoRA uses α/r."))),
    Exercise("05-lora-forward", "code", "LoRA's forward", "lora_forward",
             hint="h = W₀x + b + (α/r)·B A x, with x as rows (x @ W.T in PyTorch).",
             reread=_nb("1 (The LoRA layer)", "'LoRA (Low-Rank Adaptation)' and 'Scaling Factor α'"),
             explain="Two thin matmuls (in → r → out) instead of the out × in matrix ΔW.",
             cases=_lora_cases),
    Exercise("05-lora-first-grad", "predict", "which LoRA factor gets a gradient on the first step", "prediction",
             hint="", reread=_nb("1 (The LoRA layer)", "'LoRA (Low-Rank Adaptation)' (A random, B = 0)"),
             explain="Largest |gradient|: {m}. B = 0 at the start, so ∂L/∂A = (α/r)·Bᵀ(∂L/∂h)xᵀ = 0, while "
                     "∂L/∂B = (α/r)·(∂L/∂h)(A x)ᵀ ≠ 0 because A is random. After the first step B ≠ 0 and A "
                     "trains too. Had both started at zero, neither would ever move.",
             options={"A": "only A", "B": "only B", "both": "both", "neither": "neither"},
             outcome=_first_grad_outcome, measure=_lora_first_grad_measure),
    # ---------------------------------------------------------------- 06
    Exercise("06-bits-256", "quick", "bits per weight, NF4, blocks of 256, no double quantization", "answer_bits",
             hint="4 bits of index per weight, plus one fp32 absmax shared by the block.",
             reread=_nb("5 (Block size) and 6 (Double quantization)", "'Double Quantization' (0.5 bits per parameter at 64)"),
             explain="4 + 32/blocksize bits.",
             expected=_bits_256, tol=1e-3,
             mistakes=((lambda e: 4.0, "the absmax constants are missing: one fp32 number per block."),
                       (lambda e: 4 + 32 / 64, "that is blocks of 64; the question has 256."),
                       (lambda e: 4 + 16 / 256, "the absmax constants are fp32 (32 bits), not 16-bit."),
                       (lambda e: 4 + 4 / 256, "bits vs bytes: the constant costs 32 bits, not 4."))),
    Exercise("06-nf4-index", "quick", "NF4 index of 0.05 in a block whose absmax is 0.1", "answer_index",
             hint="scale by the absmax, then find the nearest of the 16 NF4 values (quant.nf4_code(), index 0 is −1).",
             reread=_nb("2 (NF4: 16 levels from normal quantiles)", "'4-bit NormalFloat (NF4)'"),
             explain="0.05/0.1 = 0.5 lies just below the midpoint between two NF4 values: nearest wins.",
             expected=_nf4_index,
             mistakes=((lambda e: e + 1, "one too high: 0.5 sits below the midpoint of its two neighbours, so it "
                                         "rounds down."),
                       (lambda e: e - 1, "one too low: NF4's levels are not evenly spaced — compare 0.5 with "
                                         "the midpoints between neighbouring NF4 values."))),
    Exercise("06-nf4-block", "code", "NF4 indices of one block", "nf4_block",
             hint="absmax = max |w|; scale the block to [−1, 1]; pick the nearest NF4 value for each weight.",
             reread=_nb("1 (Absmax quantization) and 2 (NF4)", "'Block-wise k-bit Quantization' and '4-bit NormalFloat (NF4)'"),
             explain="Nearest code value after absmax scaling; quant.nearest breaks exact ties towards the lower index, "
                     "as bitsandbytes does.",
             cases=lambda: [_adapt(c, "nf4") for c in _nf4_block_cases()]),
    Exercise("06-outlier", "predict", "what one outlier does to the other 63 weights of its block", "prediction",
             hint="", reread=_nb("1 (Absmax quantization, and why blocks)", "'Block-wise k-bit Quantization'"),
             explain="{m} of the 63 other weights were stored as NF4's exact 0. The outlier sets the absmax, so the "
                     "others scale to about ±0.01 and fall below the first level (≈ 0.08): small blocks keep "
                     "such damage local, which is why QLoRA uses blocks of 64.",
             options={"a": "hardly any of them become 0", "b": "about half", "c": "nearly all of them become 0"},
             outcome=lambda n: "a" if n < 16 else "b" if n < 48 else "c", measure=_outlier_measure),
    # ---------------------------------------------------------------- 07
    Exercise("07-base-gb", "quick", "LLaMA-2-70B NF4 + DQ base, GB", "answer_gb",
             hint="weights × bits per weight gives bits; divide by 8 for bytes and by 10⁹ for GB.",
             reread=_nb("7 (The lecture's LLaMA-3-8B arithmetic)", "'How does QLoRA reduce memory to 14GB?'"),
             explain="70e9 × 4.127 / 8 bytes: a 70 B model fits one 48 GB GPU.",
             expected=lambda: _memory().gb(70e9 * 4.127 / 8), tol=0.05,
             mistakes=((lambda e: _memory().gb(70e9 * 4 / 8), "the quantization constants are missing: 4.127 bits, not 4."),
                       (lambda e: _memory().gb(70e9 * 4.5 / 8), "that is without double quantization (4.5 bits)."))),
    Exercise("07-bytes-trainable", "quick", "bytes per trainable parameter, fp32 LoRA with AdamW", "answer_bytes",
             hint="add the fp32 weight, its fp32 gradient and AdamW's two fp32 moments.",
             reread=_nb("4 (Memory)", "'How does QLoRA reduce memory to 14GB?'"),
             explain="4 + 4 + 2 × 4 bytes; no master copy is needed when the weights are fp32 already.",
             expected=lambda: _memory().recipe("qlora", trainable_dtype="fp32", optimizer="adamw").bytes_per_trainable,
             mistakes=((lambda e: e - 4, "one fp32 tensor is missing: weight, gradient and two moments."),
                       (lambda e: e + 4, "one fp32 tensor too many: with fp32 weights there is no separate master copy."),
                       (lambda e: e / 4, "those are numbers per parameter; each fp32 number is 4 bytes."))),
    Exercise("07-double-quant", "code", "double quantization of the absmax constants", "double_quantize_absmax",
             hint="subtract the mean; in blocks of 256 divide by each block's absmax; take the nearest value of "
                  "quant.dynamic_code() with quant.nearest.",
             reread=_nb("6 (Double quantization) of notebook 06", "'Double Quantization: Reduce absmax constant size'"),
             explain="The 8-bit codes cost 8 bits per block of 64 weights, the fp32 scales 32 per 256 blocks: "
                     "8/64 + 32/(64·256) ≈ 0.127 bits per weight instead of 0.5.",
             cases=lambda: [_adapt(c, "dq") for c in _dq_cases()]),
    Exercise("07-dq-changes-weights", "predict", "does double quantization change the dequantized weights?", "prediction",
             hint="", reread=_nb("6 (Double quantization) of notebook 06", "'Double Quantization'"),
             explain="Measured: {m}. The absmax constants themselves are now rounded to 8 bits, so every block is "
                     "rescaled by a slightly wrong factor: the indices stay, the values shift by a fraction of a "
                     "percent. QLoRA accepts this for 0.37 bits per weight.",
             options={"a": "identical", "b": "slightly different (under 1 % relative)", "c": "very different"},
             outcome=lambda m: "a" if m["changed"] == 0 else "b" if m["max relative"] < 0.01 else "c",
             measure=_dq_change_measure),
    # ---------------------------------------------------------------- 08
    Exercise("08-magnitude", "array", "initial magnitudes of W = [[3, 4, 0, 12], [0, 0, 5, 0]]", "answer_m",
             hint="DoRA's m starts as the norm of each output row of W₀ (one number per output neuron).",
             reread=_nb("1 (Magnitude and direction)", "'DoRA: Weight Decomposition Analysis'"),
             explain="One Euclidean norm per output row: PyTorch's (out, in) layout turns the paper's column norm "
                     "into a row norm.",
             expected=lambda: _dora_magnitudes(), tol=1e-4,
             mistakes=((lambda e: torch.tensor([[3.0, 4, 0, 12], [0, 0, 5, 0]]).abs().sum(1),
                        "that is the L1 norm (sum of |w|); DoRA uses the Euclidean norm."),
                       (lambda e: torch.tensor([[3.0, 4, 0, 12], [0, 0, 5, 0]]).pow(2).sum(1),
                        "the square root is missing."))),
    Exercise("08-extra-params", "quick", "DoRA's extra trainable parameters", "answer",
             hint="m has one entry per output feature of every adapted layer; 'c_proj' matches two layers per block.",
             reread=_nb("2 (The DoRA layer)", "'DoRA Methodology'"),
             explain="One magnitude per output feature: 576 + 192 + 768 + 192 per block.",
             expected=lambda: 4 * (576 + 192 + 768 + 192),
             mistakes=((lambda e: 4 * (576 + 192 + 768), "'c_proj' matches two layers per block: the attention's and "
                                                         "the MLP's output projections."),
                       (lambda e: 4 * (192 + 192 + 192 + 768), "per input feature: m has one entry per output "
                                                               "feature (row) of W."))),
    Exercise("08-dora-weight", "code", "DoRA's merged weight", "dora_weight",
             hint="V = W₀ + s·B A; divide every row of V by its norm; multiply row i by m[i].",
             reread=_nb("2 (The DoRA layer)", "'DoRA Methodology'"),
             explain="W' = m ⊙ V/‖V‖ row-wise: magnitude and direction trained separately.",
             cases=_dora_cases),
    Exercise("08-row-norms", "predict", "row norms of DoRA's weight after a LoRA-style update, m unchanged",
             "prediction", hint="", reread=_nb("2 (The DoRA layer)", "'DoRA Methodology'"),
             explain="Largest change of a row norm: {m:.1e}, rounding only. W' = m ⊙ V/‖V‖ has row norms exactly m: B A "
                     "can only turn the rows (direction); their length is m's job alone.",
             options={"a": "unchanged: equal to ‖W₀‖ row by row", "b": "larger", "c": "some larger, some smaller"},
             outcome=lambda d: "a" if d < 1e-4 else "c", measure=_dora_norm_measure),
    # ---------------------------------------------------------------- 09
    Exercise("09-rhat", "quick", "r̂ of a 4096 -> 11008 layer at r = 8 (rotation)", "answer",
             hint="r̂ = √((in + out)·r), rounded to the nearest integer, then down to an even number for rotation.",
             reread=_nb("1 (Same parameters, higher rank)", "'Parameter Efficiency of MoRA'"),
             explain="r̂² ≈ (in + out)·r: M has about as many weights as LoRA at rank r.",
             expected=lambda: _mora().mora_rank(4096, 11008, 8, 6),
             mistakes=((lambda e: e + 1, "rotation pairs features (RoPE), so r̂ must be even: round down to even."),
                       (lambda e: e - 2, "round to the NEAREST integer first (the reference code adds 0.5), then down to even."),
                       (lambda e: int(math.sqrt(2 * 4096 * 8)), "the layer is not square: use in + out, not 2·in."))),
    Exercise("09-sharing", "code", "MoRA's sharing compress and decompress", "mora_sharing",
             hint="wrap-pad x to a multiple of r̂, sum the groups of r̂, multiply by M, tile the r̂ outputs to out_features.",
             reread=_nb("3 (Compress and decompress, made visible)", "'Non-Parameterized Compress and Decompress'"),
             explain="ΔW[i, j] = M[i mod r̂, j mod r̂] (plus the wrap): rank r̂ from r̂² weights.",
             cases=_mora_cases),
    Exercise("09-rank-256", "predict", "rank of ΔW on a 256×256 layer: LoRA r=2 vs MoRA sharing", "prediction",
             hint="", reread=_nb("4 (ΔW and its rank)", "'MoRA: High-Rank Updating for PEFT'"),
             explain="Measured ranks: {m}. Both train 1,024 weights; LoRA's ΔW = B A has rank r = 2, MoRA's tiles a random "
                     "32×32 M and has rank r̂ = 32.",
             options={"a": "both 2", "b": "LoRA 2, MoRA 32", "c": "both 32", "d": "LoRA 2, MoRA 256"},
             outcome=lambda m: {(2, 2): "a", (2, 32): "b", (32, 32): "c", (2, 256): "d"}.get((m["LoRA"], m["MoRA"]), "d"),
             measure=_mora_rank_measure),
    # ---------------------------------------------------------------- 10
    Exercise("10-fa-params", "quick", "SBoRA-FA weights on 4096 x 4096 at r = 32", "answer",
             hint="SBoRA-FA fixes A as r one-hot rows; only B (out × r) trains.",
             reread=_nb("1 (The layer)", "'SBoRA-FA and SBoRA-FB'"),
             explain="out × r: half of LoRA's r·(in + out) on a square layer.",
             expected=lambda: 4096 * 32,
             mistakes=((lambda e: 32 * (4096 + 4096), "that is LoRA's count: SBoRA-FA's A is fixed (one-hot), "
                                                      "only B trains."),)),
    Exercise("10-fb-forward", "code", "SBoRA-FB's forward with index_add", "sbora_fb_forward",
             hint="compute W₀x + b, then add s·(A x) into the r chosen outputs with index_add along the last dimension.",
             reread=_nb("3 (No one-hot matrix in the forward pass)", "'SBoRA-FB: Regional Weight Update Example'"),
             explain="FB changes exactly r rows of W: only the r chosen outputs move.",
             cases=_sbora_fb_cases),
    Exercise("10-fa-region", "predict", "which entries of W SBoRA-FA r=4 changes on a 16×16 layer", "prediction",
             hint="", reread=_nb("2 (The lecture's 4 × 4 examples)", "'SBoRA-FA: Regional Weight Update Example'"),
             explain="Measured: {m}. ΔW = B·A_sb with A_sb = r rows of the identity: column j of ΔW is nonzero only if "
                     "j is one of the r chosen inputs. FA changes r whole columns; FB would change r rows.",
             options={"columns": "4 whole columns", "rows": "4 whole rows", "all": "all 256 entries"},
             outcome=_fa_columns_outcome, measure=_fa_columns_measure),
    # ---------------------------------------------------------------- 11
    Exercise("11-tasks-fit", "quick", "tasks that fit at r = 16", "answer",
             hint="each task needs r input features of its own in every layer; the smallest layer limits all.",
             reread=_nb("5 (How many tasks fit?)", "'Multi-SBoRA: Diffusion Model based Text-to-Image Generation'"),
             explain="⌊192 / r⌋ disjoint slices of one permutation.",
             expected=lambda: 192 // 16,
             mistakes=((lambda e: 768 // 16, "that is the largest input dimension; every layer must fit, so the "
                                            "smallest one decides."),
                       (lambda e: 576 // 16, "c_attn's 576 are its OUTPUT features; SBoRA-FA picks input features."))),
    Exercise("11-merge", "code", "the Multi-SBoRA merge", "merge_task_updates",
             hint="start from a copy of W₀ and add each task's update into its own columns with index_add.",
             reread=_nb("3 (Merge)", "'Multi-SBoRA: Diffusion Model based Text-to-Image Generation'"),
             explain="Disjoint columns: each task's region holds exactly its own update.",
             cases=_merge_cases),
    Exercise("11-interference", "predict", "task 1's output after merging task 2 into another region", "prediction",
             hint="", reread=_nb("4 (Does each task survive the merge?)", "'Summary of SBoRA'"),
             explain="Largest output difference: {m:.3f}. The regions are disjoint in W, but an input x feeds every "
                     "column: Δy = B₁·x[idx₁] + B₂·x[idx₂]. Task 2's columns answer to features that task 1's inputs "
                     "have too, so the merged model is not task 1's model.",
             options={"identical": "identical outputs", "different": "different outputs"},
             outcome=lambda diff: "identical" if diff < 1e-6 else "different", measure=_interference_measure),
    # ---------------------------------------------------------------- 12
    Exercise("12-lora-bytes", "quick", "LoRA r=4: gradient + AdamW bytes", "answer_lora",
             hint="take LoRA r=4's trainable count from the table; each trainable fp32 weight has a gradient and two "
                  "AdamW moments.",
             reread=_nb("1 (The contenders)", "'How does QLoRA reduce memory to 14GB?'"),
             explain="12 bytes per trainable weight.",
             expected=lambda: 12 * _tinygpt_counts()["LoRA r=4"],
             mistakes=STATE_BYTES_MISTAKES),
    Exercise("12-full-bytes", "quick", "full FT: gradient + AdamW bytes", "answer_full",
             hint="every weight of TinyGPT trains: take its parameter count from the table.",
             reread=_nb("1 (The contenders)", "'Naively Fine-Tuning LLaMA-3-8B takes 128GB of RAM!'"),
             explain="12 bytes per weight: the state that LoRA avoids.",
             expected=lambda: 12 * _tinygpt_counts()["full FT"],
             mistakes=STATE_BYTES_MISTAKES),
    Exercise("12-state-bytes", "code", "gradient + AdamW bytes of any model", "grad_and_adamw_bytes",
             hint="sum over the parameters that require grad: a gradient and two AdamW moments, each 4 bytes in fp32.",
             reread=_nb("4 (What a training step costs)", "'How does QLoRA reduce memory to 14GB?'"),
             explain="Your count equals memory.measure_state after a real AdamW step.",
             cases=lambda: [_adapt(c, "number") for c in _state_cases()]),
    Exercise("12-llama-ratio", "predict", "full FT vs LoRA r=16 on LLaMA-3-8B: gradient + AdamW bytes", "prediction",
             hint="", reread=_nb("5 (Quality against cost)", "'Reduce the Number of Parameters by PEFT'"),
             explain="The calculator gives {m:.0f}×. LoRA r=16 on all seven projections trains about 42 M weights, "
                     "0.5 % of 8 B: the gradient and optimizer state shrink by the same factor, while the frozen "
                     "weights stay (which is why QLoRA quantizes them).",
             options={"20x": "about 20 times", "200x": "about 200 times", "2000x": "about 2,000 times"},
             outcome=_ratio_outcome, measure=_llama_ratio_measure),
]}


# ------------------------------------------------------------------ helpers used above

def _linalg():
    from . import linalg
    return linalg


def _adapters():
    from . import adapters
    return adapters


def _memory():
    from . import memory
    return memory


def _mora():
    from . import mora
    return mora


def _lora_scaling(r, alpha):
    from .lora import LoRALinear
    return LoRALinear(nn.Linear(r, r), r=r, alpha=alpha).scaling


def _dora_magnitudes():
    from .dora import DoRALinear
    base = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        base.weight.copy_(torch.tensor([[3.0, 4, 0, 12], [0, 0, 5, 0]]))
    return DoRALinear(base, r=1, alpha=1).m.detach()


_ADAPTERS = {"prompt": _prompt_logits_adapter, "nf4": _nf4_index_adapter, "dq": _dq_adapter,
             "number": _number_adapter, "feature": _feature_based_adapter}


def _adapt(case, how):
    """The case with the wrapper that turns the student's function into one whose result is compared."""
    from dataclasses import replace
    return replace(case, wrap=_ADAPTERS[how])


def get(exercise_id):
    """The exercise with this id; a clear error for an unknown one."""
    if not isinstance(exercise_id, str):
        raise TypeError(f"an exercise id is a string like '05-lora-params', got {exercise_id!r}")
    if exercise_id not in EXERCISES:
        prefix = exercise_id[:2]
        same = [k for k in EXERCISES if k.startswith(prefix)]
        known = same or sorted(EXERCISES)
        raise KeyError(f"unknown exercise id {exercise_id!r}; known ids" + (f" for notebook {prefix}" if same else "")
                       + ": " + ", ".join(known))
    return EXERCISES[exercise_id]


def for_notebook(nn_):
    """The exercises of notebook 'NN', in order."""
    return [ex for ex in EXERCISES.values() if ex.notebook == nn_]
