"""Bottleneck adapters: identity at init, the parameter formula, Houlsby placement in GPT-2 and BERT,
gradients only where intended, saving, and clear errors."""
import pytest
import torch
from torch import nn
from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel

from peftcourse import load_adapter, save_adapter, train, trainable_report
from peftcourse.adapters import (BottleneckAdapter, SeriesAdapter, adapter_param_count, add_adapters,
                                 freeze_all_but_top)
from peftcourse.inject import adapter_state_dict, inject


def tiny_gpt2():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_embd=64, n_layer=2, n_head=2, vocab_size=100, n_positions=32)).eval()


def tiny_bert():
    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, vocab_size=100)
    return BertModel(cfg).eval()


def randomise_up(model, std=0.1):
    """Give every adapter a non-zero up-projection so that placement actually matters."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, BottleneckAdapter):
                m.up.weight.normal_(0, std)
                m.up.bias.normal_(0, std)


def test_identity_at_init():
    torch.manual_seed(0)
    adapter = BottleneckAdapter(32, 4)
    h = torch.randn(3, 5, 32)
    assert torch.equal(adapter(h), h)
    assert adapter.up.weight.abs().sum() == 0 and adapter.down.weight.abs().sum() > 0  # down random: up gets gradients


@pytest.mark.parametrize("d,b", [(1024, 24), (64, 8), (384, 1)])
def test_parameter_count_formula(d, b):
    adapter = BottleneckAdapter(d, b)
    assert sum(p.numel() for p in adapter.parameters()) == adapter_param_count(d, b) == 2 * d * b + d + b
    weights = adapter.down.weight.numel() + adapter.up.weight.numel()
    assert weights == 2 * d * b
    if d == 1024:
        assert weights == 49_152 and nn.Linear(1024, 1024, bias=False).weight.numel() == 1_048_576  # the lecture


@pytest.mark.parametrize("make", [tiny_gpt2, tiny_bert])
def test_adapted_model_equals_base_at_init(make):
    model = make()
    ids = torch.randint(0, 100, (2, 9))
    before = model(ids)[0]
    add_adapters(model, 8)
    assert torch.equal(model(ids)[0], before)


def test_gpt2_placement_matches_houlsby():
    """Block output = h1 + A_mlp(mlp(ln_2(h1))), h1 = x + A_attn(attn(ln_1(x))): adapters before each residual add."""
    model = tiny_gpt2()
    block = model.transformer.h[0]
    attn_proj, mlp_proj = block.attn.c_proj, block.mlp.c_proj
    add_adapters(model, 8)
    randomise_up(model)
    x = torch.randn(2, 6, 64)
    with torch.no_grad():
        got = block(x)
        a_attn, a_mlp = block.attn.c_proj.adapter, block.mlp.c_proj.adapter
        block.attn.c_proj, block.mlp.c_proj = attn_proj, mlp_proj          # the plain block's sublayers
        h1 = x + a_attn(block.attn(block.ln_1(x))[0])
        want = h1 + a_mlp(block.mlp(block.ln_2(h1)))
    assert torch.allclose(got, want, atol=1e-6)


def test_bert_placement_matches_houlsby():
    """BertSelfOutput / BertOutput = LayerNorm(A(dense(h)) + input): the adapter sits before residual + LayerNorm."""
    model = tiny_bert()
    add_adapters(model, 8)
    randomise_up(model)
    layer = model.encoder.layer[0]
    for out, d_in in ((layer.attention.output, 64), (layer.output, 128)):
        h, residual = torch.randn(2, 5, d_in), torch.randn(2, 5, 64)
        with torch.no_grad():
            want = out.LayerNorm(out.dense.adapter(out.dense.base(h)) + residual)
            assert torch.allclose(out(h, residual), want, atol=1e-6)
            # and it is NOT an adapter after the LayerNorm
            wrong = out.dense.adapter(out.LayerNorm(out.dense.base(h) + residual))
            assert not torch.allclose(out(h, residual), wrong, atol=1e-3)


@pytest.mark.parametrize("make,per_layer", [(tiny_gpt2, 2), (tiny_bert, 2)])
def test_counts_and_only_adapters_get_gradients(make, per_layer):
    model = make()
    n_layers = model.config.num_hidden_layers
    add_adapters(model, 4)
    expected = n_layers * per_layer * adapter_param_count(64, 4)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == expected
    total = sum(p.numel() for p in model.parameters())
    assert trainable_report(model) == (f"trainable params: {expected:,d} || all params: {total:,d} "
                                       f"|| trainable%: {100 * expected / total:.4f}")
    randomise_up(model)
    model(torch.randint(0, 100, (2, 7)))[0].pow(2).mean().backward()
    got_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert got_grad == {n for n, p in model.named_parameters() if ".adapter." in n}
    assert len(got_grad) == n_layers * per_layer * 4  # down/up weight and bias per adapter


def test_modules_to_save_keeps_layernorms_trainable():
    model = tiny_bert()
    add_adapters(model, 4, modules_to_save=["LayerNorm"])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("LayerNorm" in n for n in trainable) and all(".adapter." in n or "LayerNorm" in n for n in trainable)


def test_output_shapes():
    adapter = BottleneckAdapter(64, 8)
    assert adapter(torch.randn(4, 64)).shape == (4, 64)
    assert adapter(torch.randn(2, 3, 64)).shape == (2, 3, 64)
    model = add_adapters(tiny_gpt2(), 8)
    assert model(torch.randint(0, 100, (2, 7))).logits.shape == (2, 7, 100)


def test_train_save_and_load_roundtrip(tmp_path):
    model = add_adapters(tiny_gpt2(), 4)
    ids = torch.randint(0, 100, (4, 8))
    hist = train(model, [{"input_ids": ids, "labels": ids}], steps=5, lr=1e-2, progress=False, device="cpu")
    assert hist.losses[-1] < hist.losses[0]
    state = adapter_state_dict(model)
    assert set(state) == {n for n, p in model.named_parameters() if p.requires_grad}
    path = save_adapter(model, tmp_path / "adapter.safetensors")
    fresh = add_adapters(tiny_gpt2(), 4)
    load_adapter(fresh, path)
    model.eval()
    assert torch.equal(fresh(ids).logits, model(ids).logits)


def test_inject_accepts_series_adapter_directly():
    model = tiny_gpt2()
    inject(model, SeriesAdapter, ["mlp.c_proj"], bottleneck=4)
    assert sum(isinstance(m, SeriesAdapter) for m in model.modules()) == 2


@pytest.mark.parametrize("b", [0, -3, 64, 100, 2.0, True])
def test_bad_bottleneck_is_a_clear_error(b):
    with pytest.raises(ValueError, match="bottleneck"):
        BottleneckAdapter(64, b)
    model = tiny_gpt2()
    with pytest.raises(ValueError, match="bottleneck"):
        add_adapters(model, b)
    assert all(p.requires_grad for p in model.parameters())  # nothing was frozen half-way


def test_unknown_architecture_and_activation():
    with pytest.raises(TypeError, match="Houlsby positions"):
        add_adapters(nn.Sequential(nn.Linear(4, 4)), 2)
    with pytest.raises(ValueError, match="activation"):
        BottleneckAdapter(64, 8, activation="swishy")


def test_freeze_all_but_top_trains_only_the_top_blocks_and_head():
    from transformers import BertForSequenceClassification
    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=64, num_hidden_layers=3, num_attention_heads=2, intermediate_size=128,
                     vocab_size=100, num_labels=4)
    model = BertForSequenceClassification(cfg)
    freeze_all_but_top(model, 1)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("bert.encoder.layer.2.", "bert.pooler.", "classifier.")) for n in trainable)
    assert any(n.startswith("bert.encoder.layer.2.") for n in trainable)
    freeze_all_but_top(model, 0)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        "bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight", "classifier.bias"}
    freeze_all_but_top(model, 3)
    assert all(p.requires_grad for n, p in model.named_parameters() if not n.startswith("bert.embeddings."))
    gpt = tiny_gpt2()
    freeze_all_but_top(gpt, 1, head="ln_f")  # a single name works too
    assert {n.split(".")[2] for n, p in gpt.named_parameters() if p.requires_grad and ".h." in n} == {"1"}
    for bad in (-1, 4, 1.0, True):
        with pytest.raises(ValueError, match="k must be"):
            freeze_all_but_top(model, bad)
