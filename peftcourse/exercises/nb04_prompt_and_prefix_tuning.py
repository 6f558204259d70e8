"""Answer key of notebooks/04_prompt_and_prefix_tuning.ipynb
(worked solutions: solutions/04_prompt_and_prefix_tuning.py)."""
import copy
import functools

import torch
import transformers

from ..prompts import PrefixTuning, PromptTuning
from ..runtime import count_params
from .core import Case, Exercise, Feedback, where

PREFIX_PARAMS = Exercise(
    "04-prefix-params", "quick", "prefix tuning, n=10, TinyGPT", "answer",
    hint="each virtual token gives every layer a key vector and a value vector of size d.",
    reread=where("2 (Prefix tuning)", "'PEFT Techniques' (2. Prefix Tuning)"),
    explain="n · layers · 2 · d: a key and a value per layer and virtual token.",
    expected=lambda: 10 * 4 * 2 * 192,
    mistakes=((lambda e: 10 * 192, "that is prompt tuning's count (one embedding per virtual token); prefix "
                                   "tuning feeds every layer."),
              (lambda e: 10 * 2 * 192, "that is one layer: TinyGPT has 4.")))


@functools.lru_cache(maxsize=2)
def tiny_gpt2(n_layer=2):
    """A tiny random GPT-2 (the architecture of TinyGPT, a few thousand weights): light enough for a checker."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=50, n_positions=32, n_embd=16, n_layer=n_layer, n_head=2,
                                     bos_token_id=0, eos_token_id=0)  # special tokens inside its 50-token vocabulary
    return transformers.GPT2LMHeadModel(config).eval()


def _logits_of_inputs_embeds(student_fn):
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


def _prompt_cases():
    cases = []
    for seed, (n, batch, seq) in ((0, (4, 2, 5)), (1, (3, 3, 6))):
        torch.manual_seed(seed)
        tuned = PromptTuning(copy.deepcopy(tiny_gpt2()), n, init="random").eval()
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
            shape_note="Return the model's logits for [prompt; embeddings of input_ids]: (batch, n + seq, vocab).",
            wrap=_logits_of_inputs_embeds))
    return cases


SOFT_PROMPT = Exercise(
    "04-soft-prompt", "code", "a soft prompt in front of the input", "soft_prompt_inputs",
    hint="embed input_ids with the model's input embeddings, then put the prompt in front of every sequence.",
    reread=where("1 (Prompt tuning)", "'PEFT Techniques' (3. Prompt Tuning)"),
    explain="The model never sees the prompt as tokens: only as n trainable vectors in front of the embeddings.",
    cases=_prompt_cases)


def _prefix_vs_prompt_ratio():
    model = tiny_gpt2(n_layer=4)
    return (count_params(PrefixTuning(copy.deepcopy(model), 8), trainable_only=True)
            / count_params(PromptTuning(copy.deepcopy(model), 8), trainable_only=True))


PREFIX_VS_PROMPT = Exercise(
    "04-prefix-vs-prompt", "predict", "prefix vs prompt tuning, trainable weights at equal n", "prediction",
    hint="", reread=where("2 (Prefix tuning)", "'PEFT Techniques'"),
    explain="On a 4-layer GPT-2 prefix tuning trains {m:g}× the weights of prompt tuning at the same n: a key and "
            "a value (2) for every layer (4), against one input embedding.",
    options={"1": "the same", "2": "twice as many", "8": "eight times as many"},
    outcome=lambda ratio: min(("1", "2", "8"), key=lambda o: abs(ratio - int(o))),
    measure=_prefix_vs_prompt_ratio)

EXERCISES = (PREFIX_PARAMS, SOFT_PROMPT, PREFIX_VS_PROMPT)
