"""Answer key of notebooks/12_compare.ipynb (worked solutions: solutions/12_compare.py)."""
import functools
import math

import torch
import transformers
from torch import nn

from .. import memory, models, validate
from ..inject import inject
from ..runtime import count_params
from .core import Case, Exercise, where


@functools.lru_cache(maxsize=1)
def tinygpt_counts():
    """TinyGPT's parameters, all of them and LoRA r=4's trainable ones (the notebook's table)."""
    transformers.utils.logging.disable_progress_bar()  # as every notebook does: no bar in a checker's answer
    model, _ = models.load_tinygpt()
    full = count_params(model)
    lora = inject(model, "lora", ["c_attn", "c_proj", "c_fc"], r=4, alpha=8)
    return {"full FT": full, "LoRA r=4": count_params(lora, trainable_only=True)}


# gradient + AdamW bytes: the usual slips, as factors of the right answer (12 bytes per weight)
STATE_BYTES_MISTAKES = ((lambda e: e * 16 / 12, "the question asks for gradient and optimizer state only, not the "
                                                "weights themselves."),
                        (lambda e: e * 8 / 12, "the gradient is missing."),
                        (lambda e: e / 4, "those are numbers, not bytes: 4 bytes per fp32 value."))

LORA_BYTES = Exercise(
    "12-lora-bytes", "quick", "LoRA r=4: gradient + AdamW bytes", "answer_lora",
    hint="take LoRA r=4's trainable count from the table; each trainable fp32 weight has a gradient and two "
         "AdamW moments.",
    reread=where("1 (The contenders)", "'How does QLoRA reduce memory to 14GB?'"),
    explain="12 bytes per trainable weight.",
    expected=lambda: 12 * tinygpt_counts()["LoRA r=4"],
    mistakes=STATE_BYTES_MISTAKES)

FULL_BYTES = Exercise(
    "12-full-bytes", "quick", "full FT: gradient + AdamW bytes", "answer_full",
    hint="every weight of TinyGPT trains: take its parameter count from the table.",
    reread=where("1 (The contenders)", "'Naively Fine-Tuning LLaMA-3-8B takes 128GB of RAM!'"),
    explain="12 bytes per weight: the state that LoRA avoids.",
    expected=lambda: 12 * tinygpt_counts()["full FT"],
    mistakes=STATE_BYTES_MISTAKES)


def _number_as_tensor(student_fn):
    def run(model):
        out = student_fn(model)
        if out is None or out is Ellipsis:
            return out
        value = validate.as_number(out)
        return torch.tensor(value) if value is not None else out
    return run


def _state_cases():
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
            shape_note="Return one number: bytes (fp32 = 4 bytes per value).", wrap=_number_as_tensor))
    return cases


STATE_BYTES = Exercise(
    "12-state-bytes", "code", "gradient + AdamW bytes of any model", "grad_and_adamw_bytes",
    hint="sum over the parameters that require grad: a gradient and two AdamW moments, each 4 bytes in fp32.",
    reread=where("4 (What a training step costs)", "'How does QLoRA reduce memory to 14GB?'"),
    explain="Your count equals memory.measure_state after a real AdamW step.",
    cases=_state_cases)


def _llama_ratio():
    layers, d, kv, ffn, r = 32, 4096, 1024, 14336, 16
    shapes = [(d, d), (d, kv), (d, kv), (d, d), (d, ffn), (d, ffn), (ffn, d)]  # q, k, v, o, gate, up, down
    lora = layers * sum(r * (n_in + n_out) for n_in, n_out in shapes)
    full_recipe, lora_recipe = memory.recipe("full", optimizer="adamw"), memory.recipe("lora", optimizer="adamw")

    def grad_and_state(est):
        return sum(v for k, v in est.items() if k.startswith(("gradient", "optimizer")))
    return grad_and_state(memory.estimate(8.03e9, full_recipe)) / grad_and_state(
        memory.estimate(8.03e9, lora_recipe, trainable=lora))


def _nearest_factor(ratio):
    return min(("20x", "200x", "2000x"), key=lambda o: abs(math.log10(ratio) - math.log10(float(o[:-1]))))


LLAMA_RATIO = Exercise(
    "12-llama-ratio", "predict", "full FT vs LoRA r=16 on LLaMA-3-8B: gradient + AdamW bytes", "prediction",
    hint="", reread=where("5 (Quality against cost)", "'Reduce the Number of Parameters by PEFT'"),
    explain="The calculator gives {m:.0f}×. LoRA r=16 on all seven projections trains about 42 M weights, "
            "0.5 % of 8 B: the gradient and optimizer state shrink by the same factor, while the frozen "
            "weights stay (which is why QLoRA quantizes them).",
    options={"20x": "about 20 times", "200x": "about 200 times", "2000x": "about 2,000 times"},
    outcome=_nearest_factor, measure=_llama_ratio)

EXERCISES = (LORA_BYTES, FULL_BYTES, STATE_BYTES, LLAMA_RATIO)
