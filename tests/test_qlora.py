"""QLoRALinear: NF4 base + LoRA, merging by re-quantization, injection; cross-checked against
transformers + bitsandbytes + peft QLoRA on the CPU."""
import pytest
import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.pytorch_utils import Conv1D

import peftcourse as pc
from peftcourse.lora import LoRALinear
from peftcourse.qlora import (QLoRALinear, QuantLinear, bnb_qlora_model, keep_training_layout, merge_to_full_precision,
                              stored_bytes)
from peftcourse.quant import quantize_absmax, quantize_fp4, quantize_nf4


def tiny_gpt2(seed=0):
    torch.manual_seed(seed)
    config = GPT2Config(n_embd=64, n_layer=2, n_head=2, vocab_size=100, n_positions=32, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config).eval()


def make_base(kind):
    torch.manual_seed(0)
    if kind == "linear":
        return nn.Linear(64, 96)
    conv = Conv1D(96, 64)  # GPT-2 layout: weight (in, out)
    nn.init.normal_(conv.weight, std=0.05)
    nn.init.normal_(conv.bias, std=0.05)
    return conv


@pytest.mark.parametrize("kind", ["linear", "conv1d"])
@pytest.mark.parametrize("double_quant", [False, True])
def test_output_is_dequantized_base_plus_lora(kind, double_quant):
    base = make_base(kind)
    w = base.weight.detach().T if kind == "conv1d" else base.weight.detach()
    bias = base.bias.detach().clone()
    layer = QLoRALinear(base, r=4, alpha=8, double_quant=double_quant)
    with torch.no_grad():
        layer.B.normal_(std=0.1)
    w_nf4 = quantize_nf4(w, 64, double_quant).dequantize()
    x = torch.randn(2, 5, 64)
    expected = x @ w_nf4.T + bias + 2.0 * (x @ layer.A.T) @ layer.B.T
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(layer.delta_weight(), 2.0 * layer.B @ layer.A)
    torch.testing.assert_close(layer.base_weight(), w_nf4)
    assert not any(isinstance(m, (nn.Linear, Conv1D)) for m in layer.modules())  # the fp32 base is gone


@pytest.mark.parametrize("quant_type, quantize", [("fp4", lambda w: quantize_fp4(w, 64)),
                                                  ("int8", lambda w: quantize_absmax(w, 8, 64))])
def test_other_formats_of_table_3(quant_type, quantize):
    base = make_base("linear")
    w, bias = base.weight.detach().clone(), base.bias.detach().clone()
    layer = QLoRALinear(base, r=4, alpha=8, quant_type=quant_type, double_quant=False)
    x = torch.randn(5, 64)
    torch.testing.assert_close(layer(x), x @ quantize(w).dequantize().T + bias, atol=1e-5, rtol=0)


def test_lora_part_is_lora_linear():
    torch.manual_seed(1)
    lora = LoRALinear(nn.Linear(64, 32), r=4, alpha=16)
    torch.manual_seed(1)
    qlora = QLoRALinear(nn.Linear(64, 32), r=4, alpha=16)
    assert isinstance(qlora, LoRALinear)
    assert torch.equal(qlora.A, lora.A) and torch.equal(qlora.B, lora.B) and qlora.scaling == lora.scaling


def test_only_lora_trains_and_input_gradient_is_exact():
    layer = QLoRALinear(make_base("linear"), r=4, alpha=8, double_quant=True)
    with torch.no_grad():
        layer.B.normal_(std=0.1)
    trainable = {n for n, p in layer.named_parameters() if p.requires_grad}
    assert trainable == {"lora_A.default", "lora_B.default"}
    x = torch.randn(3, 64, requires_grad=True)
    g = torch.randn(3, 96)
    (layer(x) * g).sum().backward()
    w = layer.base.weight + layer.delta_weight().detach()  # dequantized W0 + ΔW
    torch.testing.assert_close(x.grad, g @ w, atol=1e-5, rtol=0)  # DequantMatmul's backward
    assert layer.A.grad is not None and layer.B.grad is not None


def test_compute_dtype_bf16():
    layer = QLoRALinear(make_base("linear"), r=4, alpha=8, compute_dtype=torch.bfloat16)
    x = torch.randn(3, 64)
    y = layer(x)
    assert y.dtype == torch.float32
    expected = (x.bfloat16() @ layer.base.quantized.dequantize(torch.bfloat16).T + layer.base.bias.bfloat16()).float()
    torch.testing.assert_close(y, expected)  # B = 0 at init: the base alone


def test_merge_requantizes_and_changes_outputs():
    layer = QLoRALinear(make_base("linear"), r=4, alpha=8)
    with torch.no_grad():
        layer.B.normal_(std=0.05)
    x = torch.randn(16, 64)
    before = layer(x).detach()
    expected_w = quantize_nf4(layer.base.weight + layer.delta_weight().detach(), 64, True).dequantize()
    layer.merge()
    assert layer.merged
    torch.testing.assert_close(layer.base.weight, expected_w, atol=0, rtol=0)
    after = layer(x).detach()
    assert not torch.equal(before, after)  # rounding W0 + ΔW to NF4 again changes the outputs
    torch.testing.assert_close(after, before, atol=0.2, rtol=0)  # ... by about one quantization step
    with pytest.raises(RuntimeError, match="already merged"):
        layer.merge()
    layer.unmerge()
    with pytest.raises(RuntimeError, match="not merged"):
        layer.unmerge()


def test_merge_to_full_precision_keeps_outputs():
    model = pc.inject(tiny_gpt2(), "qlora", ["c_attn", "c_fc"], r=4, alpha=8)
    for layer in model.modules():
        if isinstance(layer, QLoRALinear):
            with torch.no_grad():
                layer.B.normal_(std=0.05)
    ids = torch.randint(0, 100, (2, 8))
    with torch.no_grad():
        before = model(input_ids=ids).logits
        merge_to_full_precision(model)
        after = model(input_ids=ids).logits
    assert not any(isinstance(m, QLoRALinear) for m in model.modules())
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == 4 + 1  # + lm_head
    torch.testing.assert_close(after, before, atol=1e-4, rtol=0)


def test_inject_qlora_and_adapter_state():
    model = tiny_gpt2()
    fp32_bytes = stored_bytes(model)
    pc.inject(model, "qlora", ["c_attn", "c_fc"], r=4, alpha=8)
    layers = [m for m in model.modules() if isinstance(m, QLoRALinear)]
    assert len(layers) == 4
    assert stored_bytes(model) < fp32_bytes
    from peftcourse.inject import adapter_state_dict
    assert all(k.split(".")[-2] in ("lora_A", "lora_B") for k in adapter_state_dict(model))
    ids = torch.randint(0, 100, (2, 8))
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    assert all(p.grad is None for n, p in model.named_parameters() if "lora_" not in n)


@pytest.fixture(scope="module")
def saved_tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny")
    tiny_gpt2().save_pretrained(path)
    return path


@pytest.mark.parametrize("double_quant", [False, True])
def test_from_scratch_equals_bitsandbytes_peft(saved_tiny, double_quant):
    targets = ["c_attn", "c_proj", "c_fc"]
    ref = bnb_qlora_model(saved_tiny, targets, r=4, alpha=8, double_quant=double_quant, device="cpu").eval()
    ours = pc.inject(tiny_gpt2(), "qlora", targets, r=4, alpha=8, double_quant=double_quant)
    assert pc.trainable_report(ours) == _peft_line(ref)  # 4-bit weights count 2 per byte in both
    import bitsandbytes.functional as bnbF
    for name, layer in ours.named_modules():
        if isinstance(layer, QLoRALinear):
            bnb_layer = ref.base_model.model.get_submodule(name).base_layer
            w_bnb = bnbF.dequantize_4bit(bnb_layer.weight.data, bnb_layer.weight.quant_state)
            close = dict(atol=0, rtol=0) if not double_quant else dict(atol=0.02 * w_bnb.abs().max().item(), rtol=0)
            torch.testing.assert_close(layer.base.weight, w_bnb, **close)
    ids = torch.randint(0, 100, (2, 8))
    with torch.no_grad():  # B = 0 in both: the quantized base models alone
        tol = 1e-4 if not double_quant else 5e-2
        torch.testing.assert_close(ours(input_ids=ids).logits, ref(input_ids=ids).logits, atol=tol, rtol=0)


def test_bnb_layers_never_switch_to_the_cpu_inference_layout(saved_tiny):
    """On CPUs with AVX-512 BF16, bitsandbytes repacks a Linear4bit for inference on its first eval-mode,
    no-grad forward; the loader switches that off for every layer it builds, whatever CPU runs this."""
    import bitsandbytes as bnb
    model = bnb_qlora_model(saved_tiny, ["c_attn", "c_proj", "c_fc"], r=4, alpha=8, device="cpu")
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(layers) == 8 and not any(m.support_avx512bf16_for_cpu for m in layers)
    ids = torch.randint(0, 100, (2, 8))
    model.eval()
    with torch.no_grad():
        before = model(input_ids=ids).logits   # what a notebook does first: measure the base model
    assert not any(getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in layers)
    model.train()
    model(input_ids=ids, labels=ids).loss.backward()   # then train: the training kernel, with a bias
    grads = [p.grad for n, p in model.named_parameters() if "lora_" in n]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, before, atol=0, rtol=0)  # B = 0 still


def test_keep_training_layout_refuses_a_repacked_layer():
    import bitsandbytes as bnb
    from bitsandbytes.functional import _convert_weight_packed_for_cpu
    model = nn.Sequential(bnb.nn.Linear4bit(64, 64, quant_type="nf4", compute_dtype=torch.float32).to("cpu"))
    assert keep_training_layout(model) == 1 and model[0].support_avx512bf16_for_cpu is False
    layer = model[0]
    layer.weight.data, layer.weight.quant_state = _convert_weight_packed_for_cpu(layer.weight.data, layer.weight.quant_state)
    with pytest.raises(RuntimeError, match="already repacked.*reload the model"):
        keep_training_layout(model)


def _peft_line(model):
    trainable, total = model.get_nb_trainable_parameters()
    return f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {100 * trainable / total:.4f}"


def test_bad_inputs():
    with pytest.raises(TypeError, match="nn.Linear or transformers' Conv1D"):
        QLoRALinear(nn.Conv2d(3, 3, 1), r=2, alpha=2)
    with pytest.raises(ValueError, match="r="):
        QLoRALinear(nn.Linear(64, 8), r=16, alpha=2)
    with pytest.raises(ValueError, match="compute_dtype"):
        QLoRALinear(nn.Linear(64, 8), r=2, alpha=2, compute_dtype=torch.int8)
    with pytest.raises(ValueError, match="blocksize"):
        QLoRALinear(nn.Linear(64, 8), r=2, alpha=2, blocksize=100)
    bad = nn.Linear(64, 8)
    with torch.no_grad():
        bad.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        QLoRALinear(bad, r=2, alpha=2)
    with pytest.raises(ValueError, match="compute_dtype"):
        QuantLinear(torch.randn(8, 64), compute_dtype="bf16")
    with pytest.raises(ValueError, match="quant_type"):
        QLoRALinear(nn.Linear(64, 8), r=2, alpha=2, quant_type="int4")
    with pytest.raises(ValueError, match="double_quant=False"):
        QLoRALinear(nn.Linear(64, 8), r=2, alpha=2, quant_type="int8")
