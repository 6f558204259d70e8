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
    def run(model, prompts, task_ids, input_ids):
        embeds = student_fn(model, prompts, task_ids, input_ids)
        if embeds is None or embeds is Ellipsis or not torch.is_tensor(embeds):
            return embeds
        want = (input_ids.shape[0], prompts.shape[1] + input_ids.shape[1], prompts.shape[2])
        if tuple(embeds.shape) != want:
            raise Feedback(f"your inputs_embeds have shape {tuple(embeds.shape)}; the model needs (batch, n + seq, d) "
                           f"= {want}.")
        return model(inputs_embeds=embeds).logits
    return run


def _mixed_prompt_cases():
    """Several tasks in one batch: each sequence behind its own task's soft prompt. The reference runs the package's
    PromptTuning once per task, on that task's sequences, and puts the rows back in batch order."""
    cases = []
    for seed, (tasks, n, task_ids, seq) in ((0, (3, 4, [2, 0, 2, 1], 5)), (1, (2, 3, [1, 1, 0], 6))):
        torch.manual_seed(seed)
        base = copy.deepcopy(tiny_gpt2())
        task_ids = torch.tensor(task_ids)
        ids = torch.randint(0, 50, (len(task_ids), seq))
        per_task = [PromptTuning(base, n, init="random").eval() for _ in range(tasks)]   # one prompt per task, one base
        prompts = torch.stack([t.prompt.detach().clone() for t in per_task])             # (tasks, n, d)
        logits = torch.zeros(len(task_ids), n + seq, base.config.vocab_size)
        for t, tuned in enumerate(per_task):
            rows = (task_ids == t).nonzero().flatten()
            if len(rows):
                logits = logits.index_put((rows,), tuned(ids[rows]).logits)
        probe = torch.randn_like(logits)
        (logits * probe).sum().backward()
        grads = torch.stack([t.prompt.grad if t.prompt.grad is not None else torch.zeros_like(t.prompt)
                             for t in per_task])
        embeds = base.get_input_embeddings()(ids).detach()
        batch = len(task_ids)
        wrong_inputs = (torch.cat([embeds, prompts[task_ids]], dim=1),                      # prompts after the text
                        torch.cat([prompts[0].expand(batch, -1, -1), embeds], dim=1),       # task 0's for every row
                        torch.cat([prompts.mean(0).expand(batch, -1, -1), embeds], dim=1))  # the tasks' average
        with torch.no_grad():   # one forward pass for all the wrong versions
            wrong = base(inputs_embeds=torch.cat(wrong_inputs)).logits.split(batch)
        cases.append(Case(
            inputs={"model": base, "prompts": prompts, "task_ids": task_ids, "input_ids": ids},
            expected=logits.detach(),
            wrong=((wrong[0], "your virtual tokens come after the real ones: prompt tuning puts them first."),
                   (wrong[1], "every sequence got the first task's prompt: index prompts with task_ids, one prompt "
                              "per sequence."),
                   (wrong[2], "you mixed the tasks' prompts: each sequence gets exactly its own task's prompt, not "
                              "an average.")),
            grads={"prompts": grads}, probe=probe,
            shape_note="prompts is (tasks, n, d), task_ids (batch,), input_ids (batch, seq); return inputs_embeds "
                       "(batch, n + seq, d).",
            wrap=_logits_of_inputs_embeds))
    return cases


MIXED_PROMPTS = Exercise(
    "04-mixed-prompts", "code", "several tasks' soft prompts in one batch", "mixed_task_inputs",
    hint="embed input_ids with the model's input embeddings; pick each sequence's prompt with prompts[task_ids]; put "
         "it in front.",
    reread=where("1 (Prompt tuning)", "'PEFT Techniques' (3. Prompt Tuning)"),
    explain="One frozen model serves every task in the same batch: only the n × d prompt differs per sequence "
            "(Lester et al. 2021). Adapters or LoRA would need a different weight per task inside every layer.",
    cases=_mixed_prompt_cases)


def _prefix_vs_prompt_ratio_36():
    model = tiny_gpt2(n_layer=36)   # GPT-2 large's depth; the width does not change the ratio
    return (count_params(PrefixTuning(copy.deepcopy(model), 8), trainable_only=True)
            / count_params(PromptTuning(copy.deepcopy(model), 8), trainable_only=True))


PREFIX_VS_PROMPT = Exercise(
    "04-prefix-vs-prompt", "predict", "prefix vs prompt tuning at equal n, in a GPT-2 of 36 blocks", "prediction",
    hint="", reread=where("2 (Prefix tuning)", "'PEFT Techniques'"),
    explain="With 36 blocks prefix tuning trains {m:g}× the weights of prompt tuning at the same n: a key and a value "
            "(2) for every block (36), against one input embedding. The ratio is 2L whatever the width: prefix "
            "tuning's cost grows with depth, prompt tuning's does not.",
    options={"8": "eight times, as in TinyGPT", "36": "36 times, one per block", "72": "72 times"},
    outcome=lambda ratio: min(("8", "36", "72"), key=lambda o: abs(ratio - int(o))),
    measure=_prefix_vs_prompt_ratio_36)

EXERCISES = (PREFIX_PARAMS, MIXED_PROMPTS, PREFIX_VS_PROMPT)
