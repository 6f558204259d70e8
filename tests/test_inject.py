"""inject / trainable_report / save-load / merge_and_unload against peft's get_peft_model on small GPT-2 and BERT."""
import copy
import re
import warnings

import pytest
import torch
from torch import nn
from safetensors.torch import load_file
from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel
from transformers.pytorch_utils import Conv1D
from peft import LoraConfig, get_peft_model
from peft.tuners.lora import LoraLayer

import peftcourse as pc
from peftcourse.inject import adapter_layers, add_adapter, set_adapter, linear_module_names, adapter_state_dict
from peftcourse.lora import LoRALinear


def tiny_gpt2():
    torch.manual_seed(0)
    cfg = GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=100, n_positions=16,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(cfg).eval()


def tiny_bert():
    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48,
                     vocab_size=100, max_position_embeddings=16, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    return BertModel(cfg).eval()


def both(make, targets, r=4, alpha=8, rslora=False):
    """The same model injected by peftcourse and by peft, with identical random A and B copied across."""
    model = make()
    ref = get_peft_model(copy.deepcopy(model), LoraConfig(r=r, lora_alpha=alpha, use_rslora=rslora,
                                                           target_modules=targets, lora_dropout=0.0))
    pc.inject(model, "lora", targets, r=r, alpha=alpha, rslora=rslora)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, layer in adapter_layers(model):
            layer.B.normal_(std=0.05)
            peft_layer = ref.base_model.model.get_submodule(name)
            peft_layer.lora_A["default"].weight.copy_(layer.A)
            peft_layer.lora_B["default"].weight.copy_(layer.B)
    return model, ref


def peft_line(ref, capsys):
    capsys.readouterr()
    ref.print_trainable_parameters()
    return capsys.readouterr().out.strip()


def wrapped_names(model):
    return sorted(n for n, m in model.named_modules() if isinstance(m, (LoRALinear, LoraLayer)))


IDS = torch.randint(0, 100, (2, 10), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("targets", [["c_attn"], ["c_attn", "c_proj"], r".*\.1\.mlp\.c_fc", ["lm_head", "c_fc"]])
def test_gpt2_matches_peft(targets, capsys):
    model, ref = both(tiny_gpt2, targets)
    assert pc.trainable_report(model) == peft_line(ref, capsys)
    out, out_ref = model(IDS).logits, ref(IDS).logits
    torch.testing.assert_close(out, out_ref, atol=1e-6, rtol=0)
    assert not torch.allclose(out, GPT2LMHeadModel.forward(tiny_gpt2(), IDS).logits, atol=1e-4)  # ΔW matters
    # gradients of every adapter factor
    model(IDS, labels=IDS).loss.backward()
    ref(input_ids=IDS, labels=IDS).loss.backward()
    for name, layer in adapter_layers(model):
        peft_layer = ref.base_model.model.get_submodule(name)
        torch.testing.assert_close(layer.A.grad, peft_layer.lora_A["default"].weight.grad, atol=1e-6, rtol=1e-4)
        torch.testing.assert_close(layer.B.grad, peft_layer.lora_B["default"].weight.grad, atol=1e-6, rtol=1e-4)
    assert all(p.grad is None for n, p in model.named_parameters() if "lora_" not in n)  # the rest is frozen


def test_bert_query_value_matches_peft(capsys):
    model, ref = both(tiny_bert, ["query", "value"], r=2, alpha=16, rslora=True)
    assert pc.trainable_report(model) == peft_line(ref, capsys)
    ids = IDS[:, :8]
    torch.testing.assert_close(model(ids).last_hidden_state, ref(input_ids=ids).last_hidden_state, atol=1e-6, rtol=0)
    assert wrapped_names(model) == [n.removeprefix("base_model.model.") for n in wrapped_names(ref)]


def test_trainable_report_format():
    model = nn.Sequential(nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 40))
    pc.inject(model, "lora", ["0"], r=8, alpha=8)
    # 2 base layers 2·(1600+40) = 3280, plus A and B: 8·40 + 40·8 = 640
    assert pc.trainable_report(model) == "trainable params: 640 || all params: 3,920 || trainable%: 16.3265"


MATCH_SPECS = [
    ["c_attn"], ["attn.c_attn"], ["c_proj"], ["h.1.mlp.c_fc"], ["transformer.h.0.attn.c_proj"],
    r".*\.0\.attn\.c_attn", r".*(c_attn|c_fc)", r"transformer\.h\.\d\.mlp\.c_proj",
]


@pytest.mark.parametrize("targets", MATCH_SPECS)
def test_target_matching_rules_are_peft_rules(targets):
    """A string is a regex that must match the WHOLE name; a list entry must equal the name or be a '.'-suffix."""
    model, ref = tiny_gpt2(), get_peft_model(tiny_gpt2(), LoraConfig(target_modules=targets))
    pc.inject(model, "lora", targets, r=2, alpha=2)
    assert wrapped_names(model) == [n.removeprefix("base_model.model.") for n in wrapped_names(ref)]
    assert wrapped_names(model)


@pytest.mark.parametrize("targets, message", [
    ("c_attn", r"no module of GPT2LMHeadModel matches target_modules='c_attn'"),  # regex must fullmatch
    (["q_proj", "v_proj"], r"no module of GPT2LMHeadModel matches"),              # LLaMA names on GPT-2
    (["_attn"], r"no module of GPT2LMHeadModel matches"),                           # suffix after '.', not substring
    (["attn"], r"GPT2Attention"),                                                   # matches, but not a linear layer
])
def test_bad_targets_fail_like_peft_with_the_layer_list(targets, message):
    with pytest.raises(ValueError):
        get_peft_model(tiny_gpt2(), LoraConfig(target_modules=targets))
    with pytest.raises(ValueError, match=message) as err:
        pc.inject(tiny_gpt2(), "lora", targets, r=2, alpha=2)
    for name in ["c_attn", "c_proj", "c_fc", "lm_head"]:  # the error lists what can be adapted
        assert name in str(err.value)


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="target_modules is empty"):
        pc.inject(tiny_gpt2(), "lora", [], r=2, alpha=2)
    with pytest.raises(TypeError, match="regex string or a list"):
        pc.inject(tiny_gpt2(), "lora", 3, r=2, alpha=2)
    with pytest.raises(ValueError, match="unknown method 'lorax'"):
        pc.inject(tiny_gpt2(), "lorax", ["c_attn"], r=2, alpha=2)
    with pytest.raises(ValueError, match=r"r=64 exceeds min"):
        pc.inject(tiny_gpt2(), "lora", ["c_attn"], r=64, alpha=2)
    model = pc.inject(tiny_gpt2(), "lora", ["c_attn"], r=2, alpha=2)
    with pytest.raises(ValueError, match="already carry an adapter.*add_adapter"):
        pc.inject(model, "lora", ["c_attn"], r=2, alpha=2)


def test_names_containing_base_are_matched():
    model = nn.Sequential()
    model.add_module("baseline", nn.Linear(6, 6))
    model.add_module("head", nn.Sequential())
    model.head.add_module("base_proj", nn.Linear(6, 2))
    pc.inject(model, "lora", ["baseline", "base_proj"], r=2, alpha=2)
    assert [n for n, _ in adapter_layers(model)] == ["baseline", "head.base_proj"]
    assert linear_module_names(model) == []  # the frozen layers inside adapters are not offered again


def test_freezes_everything_but_adapters_and_modules_to_save():
    model = pc.inject(tiny_bert(), "lora", ["query"], modules_to_save=["pooler.dense"], r=2, alpha=2)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"encoder.layer.{i}.attention.self.query.lora_{f}.default" for i in (0, 1) for f in "AB"} | {
        "pooler.dense.weight", "pooler.dense.bias"}


def test_save_load_round_trip_and_same_tensors_as_peft(tmp_path):
    model, ref = both(tiny_gpt2, ["c_attn", "c_fc"])
    path = pc.save_adapter(model, tmp_path / "adapter.safetensors")
    saved = load_file(str(path))
    assert all(re.search(r"\.lora_[AB]\.default$", k) for k in saved) and len(saved) == 8  # no base weights
    ref.save_pretrained(tmp_path / "peft")
    peft_saved = load_file(str(tmp_path / "peft" / "adapter_model.safetensors"))
    assert {f"base_model.model.{k[:-len('.default')]}.weight" for k in saved} == set(peft_saved)
    for k, v in saved.items():
        torch.testing.assert_close(v, peft_saved[f"base_model.model.{k[:-len('.default')]}.weight"], atol=0, rtol=0)
    fresh = pc.inject(tiny_gpt2(), "lora", ["c_attn", "c_fc"], r=4, alpha=8)
    pc.load_adapter(fresh, path)
    torch.testing.assert_close(fresh(IDS).logits, model(IDS).logits, atol=0, rtol=0)
    other = pc.inject(tiny_gpt2(), "lora", ["c_attn"], r=4, alpha=8)
    with pytest.raises(ValueError, match="does not fit this model"):
        pc.load_adapter(other, path)


def test_merge_and_unload_matches_peft():
    model, ref = both(tiny_gpt2, ["c_attn", "c_proj"])
    before = model(IDS).logits
    merged = pc.merge_and_unload(model)
    merged_ref = ref.merge_and_unload()
    assert not adapter_layers(merged) and isinstance(merged.transformer.h[0].attn.c_attn, Conv1D)
    assert sum(p.numel() for p in merged.parameters()) == sum(p.numel() for p in merged_ref.parameters())
    torch.testing.assert_close(merged(IDS).logits, merged_ref(IDS).logits, atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(merged(IDS).logits, before, atol=1e-5, rtol=1e-6)
    for (n, p), (n_ref, p_ref) in zip(merged.state_dict().items(), merged_ref.state_dict().items()):
        assert n == n_ref
        torch.testing.assert_close(p, p_ref, atol=1e-6, rtol=0)


def test_merge_then_unload_is_peft_merge_adapter_then_unmerge_adapter_and_unload():
    model, ref = both(tiny_gpt2, ["c_attn", "c_proj"])
    base = tiny_gpt2()
    adapted = model(IDS).logits
    pc.merge(model)
    ref.merge_adapter()
    assert all(layer.merged for _, layer in adapter_layers(model))   # the layers stay, merged
    torch.testing.assert_close(model(IDS).logits, adapted, atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(model(IDS).logits, ref(IDS).logits, atol=1e-5, rtol=1e-6)
    pc.merge(model)   # merging a merged model again adds nothing
    torch.testing.assert_close(model(IDS).logits, adapted, atol=1e-5, rtol=1e-6)
    unloaded = pc.unload(model)
    ref.unmerge_adapter()
    unloaded_ref = ref.unload()   # peft's unload alone would keep ΔW in a merged weight
    assert not adapter_layers(unloaded) and isinstance(unloaded.transformer.h[0].attn.c_attn, Conv1D)
    states = [m.state_dict() for m in (unloaded, unloaded_ref, base)]
    assert list(states[0]) == list(states[1]) == list(states[2])
    for name, weight in states[0].items():   # W0 back, up to the unmerge's float rounding, as in peft
        torch.testing.assert_close(weight, states[1][name], atol=1e-6, rtol=0)
        torch.testing.assert_close(weight, states[2][name], atol=1e-6, rtol=0)
    assert not torch.allclose(adapted, base(IDS).logits, atol=1e-3)   # the adapter did change the model


@pytest.mark.parametrize("method", ["dora", "mora", "sbora"])
def test_merge_then_unload_gives_back_the_base_for_other_methods(method):
    kwargs = {"dora": {"r": 2, "alpha": 4}, "mora": {"r": 4}, "sbora": {"r": 2, "alpha": 4}}[method]
    model, base = pc.inject(tiny_gpt2(), method, ["c_attn"], **kwargs), tiny_gpt2()
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))   # every trainable factor away from its no-op start
    adapted = model(IDS).logits
    assert not torch.allclose(adapted, base(IDS).logits, atol=1e-4)
    torch.testing.assert_close(pc.merge(model)(IDS).logits, adapted, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pc.unload(model)(IDS).logits, base(IDS).logits, atol=1e-5, rtol=1e-5)
    assert not adapter_layers(model)


def test_unload_of_an_unmerged_model_gives_back_the_very_base_weights():
    model = pc.inject(tiny_gpt2(), "lora", ["c_attn"], r=2, alpha=4)
    weight = model.transformer.h[0].attn.c_attn.base.weight
    with torch.no_grad():
        model.transformer.h[0].attn.c_attn.B.normal_()
    pc.unload(model)
    assert model.transformer.h[0].attn.c_attn.weight is weight
    assert torch.equal(weight, tiny_gpt2().transformer.h[0].attn.c_attn.weight)
    with pytest.raises(ValueError, match="no adapter layers to unload"):
        pc.unload(model)
    with pytest.raises(ValueError, match="no adapter layers to merge"):
        pc.merge(model)


def test_two_task_adapters_switch_like_peft(capsys):
    model, ref = both(tiny_gpt2, ["c_attn"])
    add_adapter(model, "task_b", r=2, alpha=4)
    ref.add_adapter("task_b", LoraConfig(r=2, lora_alpha=4, target_modules=["c_attn"]))
    ref.set_adapter("task_b")
    assert pc.trainable_report(model) == peft_line(ref, capsys)
    with torch.no_grad():
        for name, layer in adapter_layers(model):
            layer.B.normal_(std=0.05)
            peft_layer = ref.base_model.model.get_submodule(name)
            peft_layer.lora_A["task_b"].weight.copy_(layer.A)
            peft_layer.lora_B["task_b"].weight.copy_(layer.B)
    outs = {}
    for name in ["task_b", "default"]:
        set_adapter(model, name)
        ref.set_adapter(name)
        outs[name] = model(IDS).logits
        torch.testing.assert_close(outs[name], ref(IDS).logits, atol=1e-6, rtol=0)
    assert not torch.allclose(outs["task_b"], outs["default"], atol=1e-4)
    assert len(adapter_state_dict(model)) == 8  # both adapters of both layers are saved
    with pytest.raises(ValueError, match="no adapter named"):
        set_adapter(model, "task_c")


def test_two_inject_calls_keep_the_first_adapters_trainable():
    from peftcourse.lora import FusedLoRALinear
    model = pc.inject(tiny_gpt2(), FusedLoRALinear, ["c_attn"], r=2, alpha=4, enable=("q", "k", "v"))
    pc.inject(model, "lora", ["attn.c_proj"], r=2, alpha=4)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == 2 * (3 * 2 * (32 + 32) + 2 * (32 + 32))  # 2 blocks × (q, k, v, o at r = 2)
    assert [n for n, _ in adapter_layers(model)] == [f"transformer.h.{i}.attn.{m}" for i in (0, 1) for m in ("c_attn", "c_proj")]


def test_gpt2_attention_weights_at_equal_budget():
    from peftcourse.lora import inject_gpt2_attention
    counts = {}
    for weights, r in [("q", 8), ("k", 8), ("v", 8), ("o", 8), ("qk", 4), ("qv", 4), ("qkvo", 2)]:
        model = inject_gpt2_attention(tiny_gpt2(), tuple(weights), r=r, alpha=16)
        counts[weights] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert set(counts.values()) == {2 * 8 * (32 + 32)}  # the lecture's table: one budget for every column
    with pytest.raises(ValueError, match="weights must be distinct names"):
        inject_gpt2_attention(tiny_gpt2(), ("q", "x"), r=2, alpha=2)


def test_merging_a_tied_weight_warns():
    model = pc.inject(tiny_gpt2(), "lora", ["lm_head"], r=2, alpha=2)
    with pytest.warns(UserWarning, match=r"lm_head's weight is tied to \['transformer.wte.weight'\]"):
        pc.merge_and_unload(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pc.merge_and_unload(pc.inject(tiny_gpt2(), "lora", ["c_attn"], r=2, alpha=2))
