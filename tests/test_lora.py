"""LoRALinear against peft's LoRA layer: copied weights give the same outputs, merges and gradients."""
import math
from collections import OrderedDict

import pytest
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D
from peft import LoraConfig, get_peft_model

from peftcourse.lora import LoRALinear

# (in, out, r, alpha, rslora, bias) on random shapes: wide, tall, r = min(in, out), rsLoRA
CASES = [(7, 5, 2, 8, False, True), (16, 33, 4, 4, True, False), (9, 9, 9, 3.5, False, True), (32, 12, 1, 16, True, True)]


def make_base(kind, n_in, n_out, bias=True):
    if kind == "linear":
        return nn.Linear(n_in, n_out, bias=bias)
    conv = Conv1D(n_out, n_in)  # GPT-2's layer: weight stored (in, out)
    nn.init.normal_(conv.weight, std=0.2)
    nn.init.normal_(conv.bias, std=0.2)
    return conv


def pair(kind, n_in, n_out, r, alpha, rslora=False, bias=True, dropout=0.0, seed=0):
    """Our LoRALinear and peft's LoRA layer on identical base weights, with the same random A and nonzero B."""
    torch.manual_seed(seed)
    base = make_base(kind, n_in, n_out, bias)
    ref_model = nn.Sequential(OrderedDict(fc=make_base(kind, n_in, n_out, bias)))
    ref_model.fc.load_state_dict(base.state_dict())
    ref_model = get_peft_model(ref_model, LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, use_rslora=rslora,
                                                     target_modules=["fc"], fan_in_fan_out=(kind == "conv1d")))
    ours = LoRALinear(base, r=r, alpha=alpha, dropout=dropout, rslora=rslora)
    with torch.no_grad():
        ours.B.normal_(std=0.1)  # a trained-looking B, so ΔW != 0
        ref = ref_model.base_model.model.fc
        ref.lora_A["default"].weight.copy_(ours.A)
        ref.lora_B["default"].weight.copy_(ours.B)
    return ours, ref_model, ref


@pytest.mark.parametrize("kind", ["linear", "conv1d"])
@pytest.mark.parametrize("case", CASES)
def test_outputs_merge_and_grads_match_peft(kind, case):
    n_in, n_out, r, alpha, rslora, bias = case
    ours, ref_model, ref = pair(kind, n_in, n_out, r, alpha, rslora, bias)
    assert ours.scaling == ref.scaling["default"] == (alpha / math.sqrt(r) if rslora else alpha / r)
    x = torch.randn(3, 4, n_in)
    y_ours, y_ref = ours(x), ref_model(x)
    torch.testing.assert_close(y_ours, y_ref, atol=1e-6, rtol=0)
    # ΔW in nn.Linear layout, and forward == base + x ΔWᵀ (the shared adapter interface)
    delta_ref = ref.get_delta_weight("default")
    torch.testing.assert_close(ours.delta_weight(), delta_ref.T if kind == "conv1d" else delta_ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(y_ours, ours.base(x) + x @ ours.delta_weight().T, atol=1e-5, rtol=0)
    # gradients of A, B and of the input
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    g = torch.randn_like(y_ours)
    (ours(x1) * g).sum().backward()
    (ref_model(x2) * g).sum().backward()
    torch.testing.assert_close(ours.A.grad, ref.lora_A["default"].weight.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.B.grad, ref.lora_B["default"].weight.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-5, rtol=1e-5)
    assert ours.base.weight.grad is None  # the base stays frozen
    # merged weights equal, merged outputs equal
    with torch.no_grad():
        ours.merge()
        ref.merge()
        torch.testing.assert_close(ours.base.weight, ref.base_layer.weight, atol=1e-6, rtol=0)
        torch.testing.assert_close(ours(x), ref_model(x), atol=1e-5, rtol=1e-6)
        ours.unmerge()
        torch.testing.assert_close(ours(x), y_ours, atol=1e-5, rtol=0)


def test_init_is_peft_init():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(50, 40), r=8, alpha=16)
    bound = 1 / math.sqrt(50)  # kaiming_uniform(a=√5): bound = sqrt(6 / ((1 + 5) · fan_in))
    assert layer.A.shape == (8, 50) and layer.B.shape == (40, 8)
    assert layer.A.abs().max() <= bound and layer.A.abs().max() > 0.9 * bound
    assert torch.all(layer.B == 0)
    x = torch.randn(5, 50)
    torch.testing.assert_close(layer(x), layer.base(x), atol=0, rtol=0)  # a no-op at the start
    assert [n for n, p in layer.named_parameters() if p.requires_grad] == ["lora_A.default", "lora_B.default"]


def test_dropout_only_on_the_lora_branch_like_peft():
    ours, ref_model, _ = pair("linear", 12, 10, 4, 8, dropout=0.5)
    ours.train()
    ref_model.train()
    x = torch.randn(6, 12)
    torch.manual_seed(123)
    y_ours = ours(x)
    torch.manual_seed(123)
    y_ref = ref_model(x)
    torch.testing.assert_close(y_ours, y_ref, atol=1e-6, rtol=0)
    torch.manual_seed(123)
    mask = nn.functional.dropout(torch.ones_like(x), 0.5)
    torch.testing.assert_close(y_ours, ours.base(x) + (mask * x) @ ours.delta_weight().T, atol=1e-5, rtol=0)
    ours.eval()
    torch.testing.assert_close(ours(x), ours.base(x) + x @ ours.delta_weight().T, atol=1e-5, rtol=0)


def test_forward_never_builds_delta_w(monkeypatch):
    layer = LoRALinear(nn.Linear(8, 6), r=2, alpha=2)
    monkeypatch.setattr(layer, "delta_weight", lambda: (_ for _ in ()).throw(AssertionError("ΔW built in forward")))
    layer(torch.randn(2, 8)).sum().backward()


def test_merge_guards():
    layer = LoRALinear(nn.Linear(8, 6), r=2, alpha=2)
    with pytest.raises(RuntimeError, match="not merged"):
        layer.unmerge()
    layer.merge()
    with pytest.raises(RuntimeError, match="already merged"):
        layer.merge()
    with pytest.raises(RuntimeError, match="unmerge"):
        layer.add_adapter("other", 2, 2)  # switching to a new adapter while merged would silently keep the old ΔW


def test_named_adapters_switch_like_peft():
    ours, ref_model, ref = pair("conv1d", 10, 14, 3, 6)
    ref_model.add_adapter("task_b", LoraConfig(r=2, lora_alpha=5, target_modules=["fc"], fan_in_fan_out=True))
    ours.add_adapter("task_b", r=2, alpha=5)
    assert ours.active_adapter == "task_b" and ours.A.shape == (2, 10) and ours.scaling == 2.5
    with torch.no_grad():
        ours.B.normal_()
        ref.lora_A["task_b"].weight.copy_(ours.A)
        ref.lora_B["task_b"].weight.copy_(ours.B)
    x = torch.randn(4, 10)
    for name in ["default", "task_b", "default"]:
        ours.set_adapter(name)
        ref_model.set_adapter(name)
        torch.testing.assert_close(ours(x), ref_model(x), atol=1e-6, rtol=0)
        trainable = {n for n, p in ours.named_parameters() if p.requires_grad}
        assert trainable == {f"lora_A.{name}", f"lora_B.{name}"}  # only the active adapter trains, as in peft
    assert not torch.allclose(ours(x), (ours.set_adapter("task_b"), ours(x))[1])
    with pytest.raises(ValueError, match="no adapter named 'task_c'.*'default', 'task_b'"):
        ours.set_adapter("task_c")
    with pytest.raises(ValueError, match="already has an adapter named"):
        ours.add_adapter("task_b", 2, 2)
    with pytest.raises(ValueError, match="identifier"):
        ours.add_adapter("task b", 2, 2)


def test_dtype_and_attributes():
    layer = LoRALinear(nn.Linear(6, 4).double(), r=2, alpha=2)
    assert layer.A.dtype == torch.float64 and layer(torch.randn(3, 6, dtype=torch.float64)).dtype == torch.float64
    half = LoRALinear(nn.Linear(6, 4).to(torch.bfloat16), r=2, alpha=2)
    assert half.A.dtype == torch.float32  # like peft's autocast_adapter_dtype: fp32 adapters on a 16-bit base
    assert half(torch.randn(3, 6, dtype=torch.bfloat16)).dtype == torch.bfloat16


@pytest.mark.parametrize("kwargs, message", [
    (dict(r=0, alpha=8), "r must be a positive int"),
    (dict(r=-2, alpha=8), "r must be a positive int"),
    (dict(r=2.0, alpha=8), "r must be a positive int"),
    (dict(r=7, alpha=8), r"r=7 exceeds min\(in_features, out_features\) = min\(8, 6\)"),
    (dict(r=2, alpha=0), "alpha must be a positive number"),
    (dict(r=2, alpha=-1), "alpha must be a positive number"),
    (dict(r=2, alpha=float("nan")), "alpha must be a positive number"),
    (dict(r=2, alpha=8, dropout=1.0), r"dropout must be a probability in \[0, 1\)"),
    (dict(r=2, alpha=8, dropout=-0.1), r"dropout must be a probability in \[0, 1\)"),
])
def test_bad_inputs(kwargs, message):
    base = nn.Linear(8, 6)
    with pytest.raises(ValueError, match=message):
        LoRALinear(base, **kwargs)
    assert base.weight.requires_grad  # a failed construction leaves the base untouched


def test_unsupported_base():
    with pytest.raises(TypeError, match="nn.Linear or transformers' Conv1D, got Conv2d"):
        LoRALinear(nn.Conv2d(3, 3, 1), r=1, alpha=1)
    with pytest.raises(TypeError, match="got Embedding"):
        LoRALinear(nn.Embedding(10, 4), r=1, alpha=1)


def test_fused_qkv_lora_equals_separate_lora_on_each_block():
    """LoRA on the q and v blocks of GPT-2's fused c_attn == separate LoRALinears on W_q and W_v."""
    from peftcourse.lora import FusedLoRALinear
    torch.manual_seed(0)
    d, r = 8, 2
    c_attn = make_base("conv1d", d, 3 * d)
    fused = FusedLoRALinear(c_attn, r=r, alpha=6, enable=("q", "v"))
    assert sum(p.numel() for p in fused.parameters() if p.requires_grad) == 2 * r * (d + d)
    W, b = c_attn.weight.T, c_attn.bias  # (3d, d) in nn.Linear layout: rows [q | k | v]
    x = torch.randn(5, d)
    expected = []
    for i, part in enumerate("qkv"):
        lin = nn.Linear(d, d)
        with torch.no_grad():
            lin.weight.copy_(W[i * d:(i + 1) * d])
            lin.bias.copy_(b[i * d:(i + 1) * d])
        if part in fused.enable:
            layer = LoRALinear(lin, r=r, alpha=6)
            with torch.no_grad():
                fused.lora_B[part].normal_()
                layer.A.copy_(fused.lora_A[part])
                layer.B.copy_(fused.lora_B[part])
            lin = layer
        expected.append(lin(x))
    torch.testing.assert_close(fused(x), torch.cat(expected, dim=-1), atol=1e-6, rtol=0)
    torch.testing.assert_close(fused(x), c_attn(x) + x @ fused.delta_weight().T, atol=1e-5, rtol=0)
    assert torch.all(fused.delta_weight()[d:2 * d] == 0)  # W_k is not adapted
    fused.merge()
    torch.testing.assert_close(fused(x), torch.cat(expected, dim=-1), atol=1e-5, rtol=0)


def test_fused_bad_inputs():
    from peftcourse.lora import FusedLoRALinear
    with pytest.raises(ValueError, match=r"does not split into 3 equal blocks"):
        FusedLoRALinear(nn.Linear(4, 10), r=1, alpha=1)
    with pytest.raises(ValueError, match="enable must name distinct blocks"):
        FusedLoRALinear(nn.Linear(4, 12), r=1, alpha=1, enable=("q", "x"))
    with pytest.raises(ValueError, match=r"r=5 exceeds min"):
        FusedLoRALinear(nn.Linear(4, 12), r=5, alpha=1)


def test_copy_to_peft_gives_peft_the_same_llama_and_refuses_a_mismatch():
    import copy
    from transformers import LlamaConfig, LlamaForCausalLM
    from peftcourse import inject
    from peftcourse.lora import copy_to_peft
    torch.manual_seed(0)
    llama = LlamaForCausalLM(LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                         num_key_value_heads=2, intermediate_size=128, vocab_size=64)).eval()
    ours = inject(copy.deepcopy(llama), "lora", ["q_proj", "v_proj"], r=4, alpha=8)
    with torch.no_grad():
        for m in ours.modules():
            if isinstance(m, LoRALinear):
                m.B.normal_()   # B = 0 would make the outputs equal whatever is copied
    ref = get_peft_model(copy.deepcopy(llama), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    ids = torch.randint(0, 64, (2, 7))
    with torch.no_grad():
        assert not torch.allclose(ours(ids).logits, ref(ids).logits, atol=1e-3)
        assert copy_to_peft(ours, ref) == 4
        torch.testing.assert_close(ours(ids).logits, ref(ids).logits, atol=1e-5, rtol=1e-5)
    other = get_peft_model(copy.deepcopy(llama), LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    before = other.base_model.model.model.layers[0].self_attn.q_proj.lora_B["default"].weight.clone()
    with pytest.raises(ValueError, match="scales B A by 4, ours by 2"):
        copy_to_peft(ours, other)
    assert torch.equal(other.base_model.model.model.layers[0].self_attn.q_proj.lora_B["default"].weight, before)
    with pytest.raises(ValueError, match="no LoRALinear layer"):
        copy_to_peft(llama, ref)
    with pytest.raises(ValueError, match="not a peft LoRA model"):
        copy_to_peft(ours, llama)


def test_save_for_peft_writes_an_adapter_peft_loads_onto_the_base(tmp_path):
    import copy
    from peft import PeftModel
    from transformers import LlamaConfig, LlamaForCausalLM
    from peftcourse import inject
    from peftcourse.lora import save_for_peft
    torch.manual_seed(0)
    llama = LlamaForCausalLM(LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                         num_key_value_heads=2, intermediate_size=128, vocab_size=64)).eval()
    ours = inject(copy.deepcopy(llama), "lora", ["q_proj", "v_proj"], r=4, alpha=8).eval()
    with torch.no_grad():
        for m in ours.modules():
            if isinstance(m, LoRALinear):
                m.B.normal_()
    files = save_for_peft(ours, tmp_path)
    assert set(files) >= {"adapter_config.json", "adapter_model.safetensors"} and files["adapter_model.safetensors"] > 0
    loaded = PeftModel.from_pretrained(copy.deepcopy(llama), tmp_path).eval()
    assert type(loaded).__name__ == "PeftModelForCausalLM"
    assert sorted(loaded.peft_config["default"].target_modules) == ["q_proj", "v_proj"]
    ids = torch.randint(0, 64, (2, 7))
    with torch.no_grad():
        assert not torch.allclose(ours(ids).logits, llama(ids).logits, atol=1e-3)
        torch.testing.assert_close(loaded(input_ids=ids).logits, ours(ids).logits, atol=1e-5, rtol=1e-5)
    mixed = inject(copy.deepcopy(llama), "lora", ["q_proj"], r=4, alpha=8)
    inject(mixed, "lora", ["v_proj"], r=2, alpha=8)
    with pytest.raises(ValueError, match="one r and alpha"):
        save_for_peft(mixed, tmp_path / "mixed")
    with pytest.raises(ValueError, match="no LoRALinear layer"):
        save_for_peft(llama, tmp_path / "none")
    assert not (tmp_path / "mixed").exists() and not (tmp_path / "none").exists()
