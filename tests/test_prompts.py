"""Prompt tuning and prefix tuning against peft: equal trainable counts, equal outputs with copied weights,
shapes, gradients only on the virtual tokens, saving, and clear errors."""
import copy

import pytest
import torch
from peft import PrefixTuningConfig, PromptTuningConfig, get_peft_model
from transformers import GPT2Config, GPT2LMHeadModel

from peftcourse import load_adapter, save_adapter, train, trainable_report
from peftcourse.prompts import PrefixTuning, PromptTuning

N_CTX = 32


def tiny_gpt2():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_embd=64, n_layer=2, n_head=2, vocab_size=100, n_positions=N_CTX)).eval()


def batch(seq_len=7):
    torch.manual_seed(1)
    ids = torch.randint(0, 100, (3, seq_len))
    mask = torch.ones_like(ids)
    mask[0, :2] = 0  # some padding, so the extended attention mask matters
    labels = ids.clone()
    labels[:, :3] = -100  # a masked "question" part
    return ids, mask, labels


def peft_prompt(n):
    return get_peft_model(tiny_gpt2(), PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=n)).eval()


def peft_prefix(n, projection=False, hidden=None):
    cfg = PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=n, prefix_projection=projection,
                             encoder_hidden_size=hidden)
    return get_peft_model(tiny_gpt2(), cfg).eval()


@pytest.mark.parametrize("n", [1, 5, 20])
def test_prompt_tuning_count_equals_peft(n):
    ours = PromptTuning(tiny_gpt2(), n)
    assert trainable_report(ours) == trainable_report(peft_prompt(n))
    assert sum(p.numel() for p in ours.parameters() if p.requires_grad) == n * 64


@pytest.mark.parametrize("n,projection,hidden", [(1, False, None), (5, False, None), (5, True, None), (3, True, 16)])
def test_prefix_tuning_count_equals_peft(n, projection, hidden):
    ours = PrefixTuning(tiny_gpt2(), n, projection=projection, encoder_hidden_size=hidden)
    assert trainable_report(ours) == trainable_report(peft_prefix(n, projection, hidden))
    d, layers = 64, 2
    h = hidden or d
    expected = n * d + (d * h + h) + (h * layers * 2 * d + layers * 2 * d) if projection else n * layers * 2 * d
    assert sum(p.numel() for p in ours.parameters() if p.requires_grad) == expected


def test_prompt_tuning_equals_peft_with_copied_weights():
    ids, mask, labels = batch()
    ref = peft_prompt(5)
    ours = PromptTuning(tiny_gpt2(), 5).eval()
    with torch.no_grad():
        ours.prompt.copy_(ref.prompt_encoder["default"].embedding.weight)
    a = ref(input_ids=ids, attention_mask=mask, labels=labels)
    b = ours(input_ids=ids, attention_mask=mask, labels=labels)
    assert b.logits.shape == (3, 5 + 7, 100)  # the virtual tokens produce (ignored) outputs too
    assert torch.allclose(a.logits, b.logits, atol=1e-5) and torch.allclose(a.loss, b.loss, atol=1e-6)


@pytest.mark.parametrize("projection", [False, True])
def test_prefix_tuning_equals_peft_with_copied_weights(projection):
    ids, mask, labels = batch()
    ref = peft_prefix(4, projection)
    ours = PrefixTuning(tiny_gpt2(), 4, projection=projection).eval()
    encoder = ref.prompt_encoder["default"]
    with torch.no_grad():
        ours.prefix.copy_(encoder.embedding.weight)
        if projection:
            ours.mlp.load_state_dict(encoder.transform.state_dict())
    a = ref(input_ids=ids, attention_mask=mask, labels=labels)
    b = ours(input_ids=ids, attention_mask=mask, labels=labels)
    assert b.logits.shape == (3, 7, 100)  # a prefix adds keys/values, not outputs
    assert torch.allclose(a.logits, b.logits, atol=1e-5) and torch.allclose(a.loss, b.loss, atol=1e-6)


def test_prefix_changes_every_layer_and_positions_shift():
    """The prefix must reach the attention of every layer (not only the first), as past keys/values."""
    model = PrefixTuning(tiny_gpt2(), 3).eval()
    ids, mask, _ = batch()
    kv = model.key_values(batch=3)
    assert len(kv) == 2 and kv[0][0].shape == (3, 2, 3, 32)  # (batch, heads, n, head_dim)
    with torch.no_grad():
        base_out = model(input_ids=ids, attention_mask=mask).logits
        model.prefix[:, 2 * 64:].mul_(2.0)  # change only layer 1's keys/values
        assert not torch.allclose(model(input_ids=ids, attention_mask=mask).logits, base_out)


@pytest.mark.parametrize("make,name", [(lambda m: PromptTuning(m, 4), "prompt"),
                                       (lambda m: PrefixTuning(m, 4), "prefix"),
                                       (lambda m: PrefixTuning(m, 4, projection=True), None)])
def test_only_virtual_tokens_get_gradients(make, name):
    model = make(tiny_gpt2())
    ids, mask, labels = batch()
    model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
    got = {n for n, p in model.named_parameters() if p.grad is not None}
    want = {n for n, p in model.named_parameters() if not n.startswith("base.")}
    assert got == want and got
    assert all(not p.requires_grad for p in model.base.parameters())
    if name:
        assert got == {name}


@pytest.mark.parametrize("cls", [PromptTuning, PrefixTuning])
def test_train_save_load_roundtrip(cls, tmp_path):
    model = cls(tiny_gpt2(), 4)
    ids, mask, labels = batch()
    data = [{"input_ids": ids, "attention_mask": mask, "labels": labels}]
    hist = train(model, data, steps=8, lr=0.1, progress=False, device="cpu")
    assert hist.losses[-1] < hist.losses[0]
    path = save_adapter(model, tmp_path / "virtual_tokens.safetensors")
    fresh = cls(tiny_gpt2(), 4)
    load_adapter(fresh, path)
    model.eval(), fresh.eval()
    assert torch.equal(fresh(input_ids=ids).logits, model(input_ids=ids).logits)


@pytest.mark.parametrize("cls", [PromptTuning, PrefixTuning])
@pytest.mark.parametrize("n", [0, -1, 2.5, N_CTX, N_CTX + 5])
def test_bad_number_of_virtual_tokens(cls, n):
    with pytest.raises(ValueError, match="n_virtual_tokens"):
        cls(tiny_gpt2(), n)


@pytest.mark.parametrize("cls", [PromptTuning, PrefixTuning])
def test_sequence_that_no_longer_fits_the_context(cls):
    model = cls(tiny_gpt2(), 10)
    model(input_ids=torch.zeros(1, N_CTX - 10, dtype=torch.long))  # exactly fits
    with pytest.raises(ValueError, match="context of 32 positions"):
        model(input_ids=torch.zeros(1, N_CTX - 9, dtype=torch.long))


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="init"):
        PromptTuning(tiny_gpt2(), 4, init="text")
    with pytest.raises(ValueError, match="projection=True"):
        PrefixTuning(tiny_gpt2(), 4, encoder_hidden_size=16)
    with pytest.raises(TypeError, match="causal LM"):
        PromptTuning(torch.nn.Linear(4, 4), 2)


def test_prompt_init_vocab_uses_real_token_embeddings():
    base = tiny_gpt2()
    torch.manual_seed(3)
    model = PromptTuning(base, 6)
    wte = base.get_input_embeddings().weight
    assert all((wte == row).all(dim=1).any() for row in model.prompt.detach())
    assert not PromptTuning(copy.deepcopy(base), 6, init="random").prompt.detach().allclose(model.prompt.detach())
