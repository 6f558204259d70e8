"""Answer key of notebooks/13_chat_model.ipynb (worked solutions: solutions/13_chat_model.py)."""
import torch

from .core import Case, Exercise, where

# SmolLM2-135M: hidden size 576, 9 query heads and 3 key/value heads of 64 dimensions (grouped-query attention)
HIDDEN, KV, BLOCKS = 576, 3 * 64, 30

KO_PARAMS = Exercise(
    "13-ko-params", "quick", "LoRA r=4 on k_proj and o_proj of SmolLM2", "answer",
    hint="An adapted matrix with k inputs and d outputs adds r·(k + d). k_proj maps 576 → 192 (3 key/value heads "
         "of 64: grouped-query attention), o_proj 576 → 576; SmolLM2 has 30 blocks.",
    reread=where("2 (LoRA on the chat model)", "'LoRA: ΔW = BA'"),
    explain="4·(576 + 192) + 4·(576 + 576) per block, times 30: about 0.17 % of the 135 M weights, a file of under "
            "a megabyte in fp32.",
    expected=lambda: BLOCKS * (4 * (HIDDEN + KV) + 4 * (HIDDEN + HIDDEN)),
    mistakes=((lambda e: BLOCKS * 4 * 4 * HIDDEN, "k_proj does not map 576 → 576: SmolLM2 has only 3 key/value "
                                                  "heads of 64 dimensions (grouped-query attention)."),
              (lambda e: e / BLOCKS, "that is one block: SmolLM2 has 30.")))


def _position_cases():
    cases = []
    for seed, (batch, width) in ((0, (5, 9)), (1, (3, 14))):
        g = torch.Generator().manual_seed(seed)
        lengths = torch.randint(1, width + 1, (batch,), generator=g)
        lengths[0] = width                      # one row without padding
        mask = (torch.arange(width) >= (width - lengths)[:, None]).long()   # left padding: zeros first
        expected = (mask.cumsum(-1) - 1).clamp(min=0)
        cases.append(Case(
            inputs={"attention_mask": mask}, expected=expected,
            wrong=((torch.arange(width).expand(batch, width).clone(),
                    "the padding is counted: a left-padded prompt must read as if it started at position 0."),
                   (mask.cumsum(-1) - 1, "the padded positions are -1: clamp them to 0 (they are masked out anyway)."),
                   (mask.cumsum(-1), "off by one: the first real token is at position 0.")),
            shape_note="attention_mask is (batch, width) of 0 (padding, on the left) and 1; the result has its shape."))
    return cases


POSITION_IDS = Exercise(
    "13-position-ids", "code", "position ids of left-padded prompts", "position_ids",
    hint="Count the real tokens from the left edge of each row: a running sum of the mask does it.",
    reread=where("1 (The task through the chat template)", "'Applying LoRA To Transformers'"),
    explain="Left padding puts every answer position last, so one column of logits serves the whole batch; the "
            "positions must then skip the padding, or each prompt's rotary positions shift with its padding.",
    cases=_position_cases)


def _fresh_lora_difference():
    """The largest change of a tiny Llama's logits when LoRA (B = 0, untrained) is injected into q_proj, v_proj."""
    import copy

    from transformers import LlamaConfig, LlamaForCausalLM

    from ..inject import inject
    torch.manual_seed(0)
    llama = LlamaForCausalLM(LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                         num_key_value_heads=2, intermediate_size=128, vocab_size=64)).eval()
    lora = inject(copy.deepcopy(llama), "lora", ["q_proj", "v_proj"], r=8, alpha=16).eval()
    ids = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        return (lora(ids).logits - llama(ids).logits).abs().max().item()


FRESH_LORA = Exercise(
    "13-fresh-lora", "predict", "logits of a chat model with LoRA injected, before any training step", "prediction",
    hint="", reread=where("2 (LoRA on the chat model)", "'LoRA: ΔW = BA'"),
    explain="Largest difference: {m:.1e}. B starts at zero, so the side path adds exactly 0 to every output: the "
            "injected model is the base model until the first step moves B, however random A is.",
    options={"a": "identical (difference exactly 0)", "b": "rounding-size differences (about 1e-6)",
             "c": "visibly different (A is random)"},
    outcome=lambda d: "a" if d == 0 else ("b" if d < 1e-4 else "c"), measure=_fresh_lora_difference)

EXERCISES = (KO_PARAMS, POSITION_IDS, FRESH_LORA)
