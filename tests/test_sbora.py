import copy

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.pytorch_utils import Conv1D

from peftcourse import inject, load_adapter, papers, save_adapter, trainable_report
from peftcourse.inject import adapter_layers, adapter_state_dict
from peftcourse.lora import LoRALinear
from peftcourse.sbora import SBoRALinear


def trained(layer, seed=0):
    """Give the zero-initialised trainable factor random values, as training would."""
    with torch.no_grad():
        (layer.B if layer.variant == "FA" else layer.A).normal_(generator=torch.Generator().manual_seed(seed))
    return layer


def tiny_gpt2(seed=0):
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=50, n_positions=16)).eval()


@pytest.mark.parametrize("variant", ["FA", "FB"])
@pytest.mark.parametrize("conv", [False, True], ids=["linear", "conv1d"])
def test_forward_equals_explicit_one_hot_formula(variant, conv):
    torch.manual_seed(0)
    base = Conv1D(10, 12) if conv else nn.Linear(12, 10)  # in 12, out 10 either way
    layer = trained(SBoRALinear(base, 3, 6, variant, generator=torch.Generator().manual_seed(1)))
    x = torch.randn(2, 4, 12)
    s = 6 / 3
    if variant == "FA":
        A_sb = torch.eye(12)[layer.indices]            # r rows of the identity (lecture's A_sb)
        delta = s * layer.B @ A_sb
    else:
        B_sb = torch.eye(10)[:, layer.indices]         # r columns of the identity (B_sb)
        delta = s * B_sb @ layer.A
    torch.testing.assert_close(layer(x), layer.base(x) + x @ delta.T, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(layer.delta_weight(), delta)
    torch.testing.assert_close(layer.standard_basis(), A_sb if variant == "FA" else B_sb)


@pytest.mark.parametrize("variant", ["FA", "FB"])
def test_delta_weight_and_merge_touch_exactly_the_indices(variant):
    torch.manual_seed(0)
    layer = trained(SBoRALinear(nn.Linear(16, 12), 4, 8, variant, generator=torch.Generator().manual_seed(2)))
    axis = 0 if variant == "FA" else 1  # FA: nonzero columns (reduce over rows); FB: nonzero rows
    dw = layer.delta_weight().detach()
    nonzero = (dw != 0).any(dim=axis).nonzero().flatten().tolist()
    assert nonzero == sorted(layer.indices.tolist())
    x = torch.randn(3, 16)
    expected = layer(x)
    w0 = layer.base.weight.clone()
    layer.merge()
    changed = (layer.base.weight != w0).any(dim=axis).nonzero().flatten().tolist()
    assert changed == sorted(layer.indices.tolist())  # every other column/row is bit-for-bit the same
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)
    layer.unmerge()
    torch.testing.assert_close(layer.base.weight, w0, atol=1e-6, rtol=0)


@pytest.mark.parametrize("variant", ["FA", "FB"])
def test_merge_into_conv1d_layout(variant):
    torch.manual_seed(0)
    base = Conv1D(10, 12)
    layer = trained(SBoRALinear(base, 3, 3, variant))
    x = torch.randn(5, 12)
    expected = layer(x)
    layer.merge()
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", ["FA", "FB"])
def test_trainable_factor_starts_at_zero_and_counts(variant):
    layer = SBoRALinear(nn.Linear(16, 12), 4, 8, variant)
    trainable = [p for p in layer.parameters() if p.requires_grad]
    assert len(trainable) == 1
    factor = layer.B if variant == "FA" else layer.A
    assert trainable[0] is factor and torch.count_nonzero(factor) == 0
    assert factor.numel() == (12 * 4 if variant == "FA" else 16 * 4)  # FA out·r, FB in·r
    assert not hasattr(layer, "A" if variant == "FA" else "B")        # the fixed factor has no weights
    x = torch.randn(3, 16)
    assert torch.equal(layer(x), layer.base(x))
    layer(x).pow(2).sum().backward()
    assert factor.grad.abs().sum() > 0
    assert layer.scaling == 2.0


@pytest.mark.parametrize("variant", ["FA", "FB"])
def test_forward_has_no_one_hot_matmul(variant):
    layer = trained(SBoRALinear(nn.Linear(64, 48), 4, 4, variant))
    x = torch.randn(10, 64)
    with FlopCounterMode(display=False) as counter:
        layer.adapter_forward(x)
    # FA: a gather then (10 x 4) @ (4 x 48); FB: (10 x 64) @ (64 x 4) then a scatter-add. A one-hot
    # matmul would add 2·10·64·4 (FA) or 2·10·4·48 (FB) more.
    assert counter.get_total_flops() == (2 * 10 * 4 * 48 if variant == "FA" else 2 * 10 * 64 * 4)


def test_indices_are_seeded_distinct_and_saved(tmp_path):
    g = lambda: torch.Generator().manual_seed(7)
    a = SBoRALinear(nn.Linear(32, 32), 8, 8, "FA", generator=g())
    b = SBoRALinear(nn.Linear(32, 32), 8, 8, "FA", generator=g())
    assert torch.equal(a.indices, b.indices) and a.indices.unique().numel() == 8
    assert int(a.indices.min()) >= 0 and int(a.indices.max()) < 32
    # inject: one shared generator gives every layer its own draw, reproducibly
    m1, m2 = tiny_gpt2(), tiny_gpt2()
    for m in (m1, m2):
        inject(m, "sbora", ["c_attn", "c_fc"], r=4, alpha=8, variant="FA", generator=g())
    idx1 = [layer.indices for _, layer in adapter_layers(m1)]
    idx2 = [layer.indices for _, layer in adapter_layers(m2)]
    assert all(torch.equal(i, j) for i, j in zip(idx1, idx2))
    assert len({tuple(i.tolist()) for i in idx1}) == len(idx1) == 4
    # the indices are part of the adapter: saving and loading restores them into a fresh injection
    for _, layer in adapter_layers(m1):
        trained(layer)
    path = save_adapter(m1, tmp_path / "sbora.safetensors")
    assert any(k.endswith(".indices") for k in adapter_state_dict(m1))
    m3 = inject(tiny_gpt2(), "sbora", ["c_attn", "c_fc"], r=4, alpha=8, variant="FA")
    load_adapter(m3, path)
    ids = torch.randint(0, 50, (2, 8))
    assert torch.equal(m1(ids).logits, m3(ids).logits)


def test_trainable_report_is_half_of_lora_for_square_layers():
    model = tiny_gpt2()
    inject(model, "sbora", ["c_proj"], r=4, alpha=8, variant="FA")
    # attn.c_proj 32->32 and mlp.c_proj 128->32 in 2 layers: FA trains out·r = 32·4 each
    assert trainable_report(model).startswith(f"trainable params: {4 * 32 * 4:,d} ||")


def test_cross_check_with_peft_lora_holding_a_one_hot_factor():
    """peft's LoRA with A (FA) or B (FB) set to the one-hot factor computes the same layer."""
    from peft import LoraConfig, get_peft_model
    for variant in ("FA", "FB"):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(12, 10))
        ours = trained(SBoRALinear(copy.deepcopy(net[0]), 3, 6, variant))
        ref = get_peft_model(copy.deepcopy(net), LoraConfig(r=3, lora_alpha=6, target_modules=["0"]))
        lin = ref.base_model.model[0]
        with torch.no_grad():
            if variant == "FA":
                lin.lora_A["default"].weight.copy_(ours.standard_basis())
                lin.lora_B["default"].weight.copy_(ours.B)
            else:
                lin.lora_A["default"].weight.copy_(ours.A)
                lin.lora_B["default"].weight.copy_(ours.standard_basis())
        x = torch.randn(4, 12)
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours.delta_weight(), lin.get_delta_weight("default"), atol=1e-6, rtol=0)


@pytest.mark.parametrize("indices,match", [
    ([1, 1, 2], "distinct"), ([0, 1, 12], r"\[0, 12\)"), ([-1, 0, 1], r"\[0, 12\)"),
    ([0, 1], "exactly r"), ([0.0, 1.0, 2.0], "ints"),
])
def test_bad_indices_are_rejected(indices, match):
    with pytest.raises(ValueError, match=match):
        SBoRALinear(nn.Linear(12, 10), 3, 6, "FA", indices=indices)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="input features"):
        SBoRALinear(nn.Linear(4, 10), 5, 8, "FA")      # FA picks r of the 4 inputs
    with pytest.raises(ValueError, match="output features"):
        SBoRALinear(nn.Linear(10, 4), 5, 8, "FB")      # FB picks r of the 4 outputs
    SBoRALinear(nn.Linear(10, 4), 5, 8, "FA")          # ... but FA there is fine
    for bad in ("FC", "A", None, 1):
        with pytest.raises(ValueError, match="variant"):
            SBoRALinear(nn.Linear(10, 10), 2, 4, bad)
    with pytest.raises(ValueError, match="alpha"):
        SBoRALinear(nn.Linear(10, 10), 2, 0)


# LLaMA projections adapted in the paper's tables (q, k, v, up, down), (in, out) per layer, 32 layers.
LLAMA_SHAPES = {"LLaMA-7B": [(4096, 4096)] * 3 + [(4096, 11008), (11008, 4096)],
                "LLaMA3-8B": [(4096, 4096), (4096, 1024), (4096, 1024), (4096, 14336), (14336, 4096)]}


@pytest.mark.parametrize("task", list(papers.SBORA_AVERAGES))
def test_paper_trainable_parameters_follow_from_the_architectures(task):
    # counts the layers' trainable weights on the meta device (no memory) and rounds like the paper (0.1 M)
    def count(method, model, r):
        total = 0
        for n_in, n_out in LLAMA_SHAPES[model]:
            base = nn.Linear(n_in, n_out, device="meta")
            layer = (LoRALinear(base, r, 2 * r) if method == "LoRA"
                     else SBoRALinear(base, r, 2 * r, method[-2:]))
            total += sum(p.numel() for p in layer.parameters() if p.requires_grad)
        return f"{32 * total / 1e6:.1f}M"

    for (model, r), row in papers.SBORA_AVERAGES[task].items():
        for method in ("LoRA", "SBoRA-FA", "SBoRA-FB"):
            assert count(method, model, r) == row[method][0], (model, r, method)
    assert "LLaMA3-8B" in papers.sbora_averages_table() and papers.sbora_averages_table().count("\n") == 1 + sum(
        len(rows) for rows in papers.SBORA_AVERAGES.values())
