"""Every method on a Llama-architecture model (SmolLM2's: q/k/v/o_proj, gate/up/down_proj, grouped-query
attention, RMSNorm), injected by name and cross-checked against peft where peft has the method. The model is
a tiny random LlamaForCausalLM built here in SmolLM2's shape family (hidden 192, 2 layers, 6 query heads of 32 sharing
2 key/value heads, 3 to 1 as in SmolLM2's 9 and 3; input and output embeddings tied, as in SmolLM2; every width
a multiple of 64, the NF4 block size, as all of SmolLM2's are): nothing is downloaded."""
import copy

import pytest
import torch
from peft import LoraConfig, PrefixTuningConfig, PromptTuningConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

import peftcourse as pc
from peftcourse.adapters import SeriesAdapter, adapter_param_count, add_adapters, freeze_all_but_top
from peftcourse.dora import DoRALinear, copy_to_peft
from peftcourse.inject import adapter_layers, linear_module_names
from peftcourse.prompts import PrefixTuning, PromptTuning
from peftcourse.qlora import QLoRALinear, bnb_qlora_model

ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]
MLP = ["gate_proj", "up_proj", "down_proj"]
ALL = ATTENTION + MLP
TOL = dict(atol=1e-5, rtol=1e-4)


def tiny_llama(seed=0):
    torch.manual_seed(seed)
    cfg = LlamaConfig(hidden_size=192, num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=2,
                      intermediate_size=128, vocab_size=256, max_position_embeddings=64, tie_word_embeddings=True)
    return LlamaForCausalLM(cfg).eval()


def batch(seq_len=10):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 256, (3, seq_len), generator=g)
    mask = torch.ones_like(ids)
    mask[0, :2] = 0   # left padding in one row: the extended masks matter
    labels = ids.clone()
    labels[:, :3] = -100
    return ids, mask, labels


def base_logits(ids, mask=None):
    with torch.no_grad():
        return tiny_llama()(input_ids=ids, attention_mask=mask).logits


def peft_line(model):
    trainable, total = model.get_nb_trainable_parameters()
    return f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {100 * trainable / total:.4f}"


def randomise_B(model, std=0.05):
    """B = 0 at init makes every adapter the identity; a random B makes the comparison mean something."""
    torch.manual_seed(2)
    with torch.no_grad():
        for _, layer in adapter_layers(model):
            layer.B.normal_(std=std)


def same_outputs_then_backward(ours, ref, tol=TOL):
    """The same logits and loss on one batch; then both losses' backward passes. Returns (ours', peft's) outputs."""
    ids, mask, labels = batch()
    a = ours(input_ids=ids, attention_mask=mask, labels=labels)
    b = ref(input_ids=ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(a.logits, b.logits, **tol)
    torch.testing.assert_close(a.loss, b.loss, **tol)
    a.loss.backward()
    b.loss.backward()
    return a, b


def assert_same_as_peft(ours, ref, tol=TOL):
    """The same logits and loss on one batch, then the same gradient for every adapter weight (A, B, and DoRA's m)."""
    a, _ = same_outputs_then_backward(ours, ref, tol)
    for name, layer in adapter_layers(ours):
        theirs = ref.base_model.model.get_submodule(name)
        torch.testing.assert_close(layer.A.grad, theirs.lora_A["default"].weight.grad, **tol)
        torch.testing.assert_close(layer.B.grad, theirs.lora_B["default"].weight.grad, **tol)
        if hasattr(layer, "m"):
            torch.testing.assert_close(layer.m.grad, theirs.lora_magnitude_vector["default"].weight.grad, **tol)
    return a


def test_names_are_the_llama_projections():
    names = {n.rsplit(".", 1)[-1] for n in linear_module_names(tiny_llama())}
    assert names == set(ALL) | {"lm_head"}


@pytest.mark.parametrize("targets", [ALL, ["q_proj", "v_proj"], r"model\.layers\.1\.mlp\.(gate|up)_proj"])
def test_lora_matches_peft(targets):
    ours = pc.inject(tiny_llama(), "lora", targets, r=4, alpha=8)
    ref = get_peft_model(tiny_llama(), LoraConfig(r=4, lora_alpha=8, target_modules=targets, lora_dropout=0.0))
    randomise_B(ours)
    with torch.no_grad():
        for name, layer in adapter_layers(ours):
            theirs = ref.base_model.model.get_submodule(name)
            theirs.lora_A["default"].weight.copy_(layer.A)
            theirs.lora_B["default"].weight.copy_(layer.B)
    assert pc.trainable_report(ours) == peft_line(ref)
    a = assert_same_as_peft(ours, ref)
    ids, mask, _ = batch()
    assert not torch.allclose(a.logits, base_logits(ids, mask), atol=1e-4)   # ΔW matters
    assert all(p.grad is None for n, p in ours.named_parameters() if ".lora_" not in n)   # the rest is frozen


def test_dora_matches_peft():
    ours = pc.inject(tiny_llama(), "dora", ALL, r=4, alpha=8)
    ref = get_peft_model(tiny_llama(), LoraConfig(r=4, lora_alpha=8, target_modules=ALL, lora_dropout=0.0,
                                                  use_dora=True))
    randomise_B(ours)
    with torch.no_grad():
        for _, layer in adapter_layers(ours):
            layer.m.mul_(1.1)   # a trained magnitude, not the initial row norms
    assert copy_to_peft(ours, ref) == 2 * len(ALL)
    assert pc.trainable_report(ours) == peft_line(ref)
    assert_same_as_peft(ours, ref)


@pytest.mark.parametrize("variant", ["FA", "FB"])
def test_sbora_equals_peft_lora_holding_its_one_hot_factor(variant):
    """peft has no SBoRA, but its LoRA with A (FA) or B (FB) set to SBoRA's one-hot factor is the same model: the
    same logits and loss, and the trained factor gets the same gradient, on every projection of the Llama."""
    ours = pc.inject(tiny_llama(), "sbora", ALL, r=4, alpha=8, variant=variant)
    ref = get_peft_model(tiny_llama(), LoraConfig(r=4, lora_alpha=8, target_modules=ALL, lora_dropout=0.0))
    torch.manual_seed(2)
    with torch.no_grad():
        for name, layer in adapter_layers(ours):
            trained = layer.B if variant == "FA" else layer.A
            trained.normal_(std=0.05)   # a trained factor, not its zero start
            theirs = ref.base_model.model.get_submodule(name)
            one_hot, other = ("lora_A", "lora_B") if variant == "FA" else ("lora_B", "lora_A")
            getattr(theirs, one_hot)["default"].weight.copy_(layer.standard_basis())
            getattr(theirs, other)["default"].weight.copy_(trained)
    a, _ = same_outputs_then_backward(ours, ref)
    ids, mask, _ = batch()
    assert not torch.allclose(a.logits, base_logits(ids, mask), atol=1e-4)   # ΔW matters
    for name, layer in adapter_layers(ours):
        theirs = ref.base_model.model.get_submodule(name)
        mine, peft_grad = ((layer.B, theirs.lora_B) if variant == "FA" else (layer.A, theirs.lora_A))
        torch.testing.assert_close(mine.grad, peft_grad["default"].weight.grad, **TOL)


@pytest.mark.parametrize("method, kwargs", [("lora", dict(r=4, alpha=8)), ("dora", dict(r=4, alpha=8)),
                                            ("mora", dict(r=8)), ("mora", dict(r=8, mora_type=1)),
                                            ("sbora", dict(r=4, alpha=8, variant="FA")),
                                            ("sbora", dict(r=4, alpha=8, variant="FB")),
                                            ("qlora", dict(r=4, alpha=8))])
def test_every_method_injects_trains_merges_and_saves(method, kwargs, tmp_path):
    """Starts as the base model (QLoRA: as its 4-bit copy), trains only its own weights, merges back
    into a plain Llama (QLoRA: through full precision), and its adapter file loads into a fresh model."""
    model = pc.inject(tiny_llama(), method, ALL, **kwargs)
    assert len(adapter_layers(model)) == 2 * len(ALL)
    ids, mask, labels = batch()
    with torch.no_grad():
        start = model(input_ids=ids, attention_mask=mask).logits
    tol = 0.2 if method == "qlora" else 1e-5   # NF4 rounding of every base weight
    torch.testing.assert_close(start, base_logits(ids, mask), atol=tol, rtol=0)
    hist = pc.train(model, [{"input_ids": ids, "attention_mask": mask, "labels": labels}], steps=5, lr=1e-2,
                    progress=False, device="cpu")
    assert hist.losses[-1] < hist.losses[0]
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all(".base." not in n and "embed" not in n for n in trained)
    model.eval()
    with torch.no_grad():
        adapted = model(input_ids=ids, attention_mask=mask).logits
    path = pc.save_adapter(model, tmp_path / f"{method}.safetensors")
    fresh = pc.inject(tiny_llama(), method, ALL, **kwargs)
    pc.load_adapter(fresh, path)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(input_ids=ids, attention_mask=mask).logits, adapted, atol=1e-5, rtol=0)
    if method == "qlora":
        from peftcourse.qlora import merge_to_full_precision
        merged = merge_to_full_precision(model)
    else:
        merged = pc.merge_and_unload(model)
    assert not adapter_layers(merged) and type(merged.model.layers[0].self_attn.q_proj) is torch.nn.Linear
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids, attention_mask=mask).logits, adapted, atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def saved_llama(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_llama")
    tiny_llama().save_pretrained(path)
    return path


@pytest.mark.parametrize("double_quant", [False, True])
def test_qlora_from_scratch_equals_bitsandbytes_peft(saved_llama, double_quant):
    """Both store the same NF4 codes and absmax: the same 4-bit weights (with double quantization, up to a few
    absmax codes). With LoRA's A and B copied across (B random), the same logits, loss and gradients."""
    import bitsandbytes.functional as bnbF
    ref = bnb_qlora_model(saved_llama, ALL, r=4, alpha=8, double_quant=double_quant, device="cpu")
    ours = pc.inject(tiny_llama(), "qlora", ALL, r=4, alpha=8, double_quant=double_quant)
    assert pc.trainable_report(ours) == peft_line(ref)
    randomise_B(ours)
    for name, layer in ours.named_modules():
        if isinstance(layer, QLoRALinear):
            theirs = ref.base_model.model.get_submodule(name)
            bnb_weight = bnbF.dequantize_4bit(theirs.base_layer.weight.data, theirs.base_layer.weight.quant_state)
            # double quantization: a few blocks' absmax get a neighbouring 8-bit code (as on GPT-2, test_qlora.py)
            close = dict(atol=0.02 * bnb_weight.abs().max().item(), rtol=0) if double_quant else dict(atol=0, rtol=0)
            torch.testing.assert_close(layer.base.weight, bnb_weight, **close)
            with torch.no_grad():
                theirs.lora_A["default"].weight.copy_(layer.A)
                theirs.lora_B["default"].weight.copy_(layer.B)
    ours.train(), ref.train()   # bitsandbytes' training path (no dropout: the same computation)
    assert_same_as_peft(ours, ref, dict(atol=5e-3, rtol=5e-3) if double_quant else dict(atol=1e-4, rtol=1e-4))


def test_houlsby_adapters_wrap_o_proj_and_down_proj():
    model = add_adapters(tiny_llama(), bottleneck=8)
    wrapped = sorted(n for n, m in model.named_modules() if isinstance(m, SeriesAdapter))
    assert wrapped == [f"model.layers.{i}.{p}" for i in range(2) for p in ("mlp.down_proj", "self_attn.o_proj")]
    assert pc.count_params(model, trainable_only=True) == 4 * adapter_param_count(192, 8)
    ids, mask, labels = batch()
    with torch.no_grad():   # W_up = 0: the adapted model starts as the pretrained one
        torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).logits, base_logits(ids, mask),
                                   atol=0, rtol=0)
    model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
    assert {n for n, p in model.named_parameters() if p.grad is not None} == \
        {n for n, p in model.named_parameters() if p.requires_grad}


def test_houlsby_adapters_with_trainable_norms():
    model = add_adapters(tiny_llama(), bottleneck=8,
                         modules_to_save=["input_layernorm", "post_attention_layernorm", "model.norm"])
    norms = {n for n, p in model.named_parameters() if p.requires_grad and "norm" in n}
    assert len(norms) == 2 * 2 + 1


def test_freeze_all_but_top_reads_llama_layer_names():
    model = freeze_all_but_top(tiny_llama(), 1, head="lm_head")
    trained = {n.split(".")[2] if n.startswith("model.layers.") else n
               for n, p in model.named_parameters(remove_duplicate=False) if p.requires_grad}
    # the head is tied to the input embedding, as in SmolLM2: one tensor, trained under both names
    assert trained == {"1", "lm_head.weight", "model.embed_tokens.weight"}


def test_prompt_tuning_matches_peft():
    ref = get_peft_model(tiny_llama(), PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=5)).eval()
    ours = PromptTuning(tiny_llama(), 5).eval()
    with torch.no_grad():
        ours.prompt.copy_(ref.prompt_encoder["default"].embedding.weight)
    assert pc.trainable_report(ours) == peft_line(ref)
    same_outputs_then_backward(ours, ref)
    torch.testing.assert_close(ours.prompt.grad, ref.prompt_encoder["default"].embedding.weight.grad, **TOL)


@pytest.mark.parametrize("projection", [False, True])
def test_prefix_tuning_matches_peft_with_grouped_query_attention(projection):
    """Llama keeps 2 key/value heads for 6 query heads: the prefix holds keys and values of width 2 · 32 = 64
    per layer, not d_model = 192 (peft sizes it the same way)."""
    cfg = PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4, prefix_projection=projection)
    ref = get_peft_model(tiny_llama(), cfg).eval()
    ours = PrefixTuning(tiny_llama(), 4, projection=projection).eval()
    encoder = ref.prompt_encoder["default"]
    with torch.no_grad():
        ours.prefix.copy_(encoder.embedding.weight)
        if projection:
            ours.mlp.load_state_dict(encoder.transform.state_dict())
    assert pc.trainable_report(ours) == peft_line(ref)
    if not projection:
        assert ours.prefix.shape == (4, 2 * 2 * 64)   # n × layers · 2 · (kv heads · head size)
    assert ours.key_values(batch=3)[0][0].shape == (3, 2, 4, 32)   # (batch, kv heads, n, head size)
    same_outputs_then_backward(ours, ref)
    assert {n for n, p in ours.named_parameters() if p.grad is not None} == \
        ({"prefix"} | ({"mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias"} if projection else set()))
    torch.testing.assert_close(ours.prefix.grad, encoder.embedding.weight.grad, **TOL)
    if projection:
        for name, p in ours.mlp.named_parameters():
            torch.testing.assert_close(p.grad, encoder.transform.get_parameter(name).grad, **TOL)


def test_multi_sbora_merges_disjoint_tasks_into_a_plain_llama():
    from peftcourse import multi_sbora
    ids, mask, _ = batch()
    energy = multi_sbora.input_energy(tiny_llama(), [{"input_ids": ids, "attention_mask": mask}], ALL)
    assert len(energy) == 2 * len(ALL)
    tasks = []
    for task in range(2):
        model = multi_sbora.inject_task(tiny_llama(), ALL, task, 2, r=4, alpha=8)
        with torch.no_grad():
            for _, layer in adapter_layers(model):
                layer.B.normal_(std=0.05)
        tasks.append(model)
    merged = multi_sbora.merge_tasks(tiny_llama(), tasks)
    name = "model.layers.1.mlp.down_proj"
    expected = tiny_llama().get_submodule(name).weight + sum(t.get_submodule(name).delta_weight() for t in tasks)
    torch.testing.assert_close(merged.get_submodule(name).weight, expected.detach(), atol=1e-6, rtol=0)
