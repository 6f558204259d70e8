import math

import pytest
import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.pytorch_utils import Conv1D

from peftcourse import inject, trainable_report
from peftcourse.inject import adapter_layers, adapter_state_dict
from peftcourse.mora import MoRALinear, mora_rank

TYPES = [1, 6, "truncation", "decoupling"]
# (in, out, r): square, wide (in > out), tall (out > in), r̂ >= in, r̂ > 2·in, in not a multiple of r̂
SHAPES = [(32, 32, 2), (48, 20, 2), (20, 48, 2), (8, 40, 6), (6, 60, 6), (30, 30, 3)]


def random_mora(n_in, n_out, r, mora_type, seed=0, base=None):
    torch.manual_seed(seed)
    layer = MoRALinear(base if base is not None else nn.Linear(n_in, n_out), r, mora_type)
    with torch.no_grad():
        layer.M.normal_()
    return layer


def oracle_delta(M, n_in, n_out, mora_type):
    """ΔW of the reference's types 1 and 6 built element by element from their definitions."""
    r = M.shape[0]
    n = math.ceil(n_in / r)
    pad = torch.zeros(n * r, n_in)  # padded position p holds x[p mod in] (the reference wraps x's start around)
    for p in range(n * r):
        pad[p, p % n_in] = 1
    if mora_type == 1:
        comp = torch.zeros(r, n * r)
        for p in range(n * r):
            comp[p % r, p] = 1  # sharing: slot p mod r sums its features
        core = M @ comp @ pad
    else:
        h = r // 2
        blocks = []
        for b in range(n):
            R = torch.zeros(r, r)
            for j in range(h):  # RoPE: pair (j, j + r/2), angle b·θ_j, θ_j = 10000^(-2j/r)
                a = b * 10000 ** (-2 * j / r)
                R[j, j], R[j, j + h] = math.cos(a), -math.sin(a)
                R[j + h, j], R[j + h, j + h] = math.sin(a), math.cos(a)
            blocks.append(M @ R)
        core = torch.block_diag(*blocks) @ pad
    out = torch.zeros(n_out, core.shape[0])
    for i in range(n_out):
        out[i, i % core.shape[0]] = 1  # decompress: cut, or tile when out is longer
    return out @ core


@pytest.mark.parametrize("mora_type", TYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_forward_equals_base_plus_delta_weight(shape, mora_type):
    n_in, n_out, r = shape
    layer = random_mora(n_in, n_out, r, mora_type)
    x = torch.randn(3, 5, n_in)
    dw = layer.delta_weight()
    assert dw.shape == (n_out, n_in)
    torch.testing.assert_close(layer(x), layer.base(x) + x @ dw.T, atol=1e-4, rtol=1e-4)
    # the closed form equals the forward pushed through the identity (column j = response to e_j)
    torch.testing.assert_close(dw, layer.adapter_forward(torch.eye(n_in)).T, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mora_type", [1, 6])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_reference_types_match_their_definition(shape, mora_type):
    n_in, n_out, r = shape
    layer = random_mora(n_in, n_out, r, mora_type)
    torch.testing.assert_close(layer.delta_weight(), oracle_delta(layer.M.detach(), n_in, n_out, mora_type),
                               atol=1e-5, rtol=1e-5)


def test_r_hat_is_rounded_like_the_reference():
    assert mora_rank(4096, 4096, 8, 1) == mora_rank(4096, 4096, 8, 6) == 256  # the lecture's 256 x 256
    assert mora_rank(64, 64, 3, 1) == 20        # √384 = 19.6: nearest, not the paper's floor (19)
    assert mora_rank(64, 64, 5, 1) == 25        # √640 = 25.3
    assert mora_rank(64, 64, 5, 6) == 24        # rotation pairs features: rounded down to even
    assert mora_rank(64, 64, 5, "rotation") == 24 and mora_rank(64, 64, 5, "truncation") == 25


@pytest.mark.parametrize("mora_type", TYPES)
def test_m_is_the_only_trainable_weight_and_starts_at_zero(mora_type):
    layer = MoRALinear(nn.Linear(64, 64), 5, mora_type)
    trainable = [p for p in layer.parameters() if p.requires_grad]
    assert len(trainable) == 1 and trainable[0] is layer.M
    assert layer.M.shape == (layer.r_hat, layer.r_hat) and layer.M.numel() == layer.r_hat ** 2
    assert torch.count_nonzero(layer.M) == 0
    x = torch.randn(4, 64)
    assert torch.equal(layer(x), layer.base(x))
    layer(x).pow(2).sum().backward()
    assert layer.M.grad is not None and layer.M.grad.abs().sum() > 0  # zero init still gets a gradient


def test_rank_of_delta_weight():
    n, r = 64, 2  # r̂ = 16: four blocks of 16 in a 64 x 64 layer
    ranks = {t: torch.linalg.matrix_rank(random_mora(n, n, r, t).delta_weight().detach()).item() for t in TYPES}
    assert ranks[1] == 16 and ranks["truncation"] == 16           # low rank: r̂
    assert ranks[6] == 64 and ranks["decoupling"] == 64           # block diagonal: full rank
    lora_rank = r
    assert ranks[6] > 8 * lora_rank                                # LoRA at the same parameter count: rank 2


def test_rotation_blocks_differ_and_decoupling_blocks_repeat():
    layer = random_mora(32, 32, 4, 6)  # r̂ = 16: two blocks
    dw = layer.delta_weight().detach()
    b0, b1 = dw[:16, :16], dw[16:, 16:]
    torch.testing.assert_close(b0, layer.M.detach())  # block 0 is not rotated (angle 0)
    assert not torch.allclose(b0, b1)
    assert torch.count_nonzero(dw[:16, 16:]) == 0 and torch.count_nonzero(dw[16:, :16]) == 0
    plain = random_mora(32, 32, 4, "decoupling").delta_weight().detach()
    torch.testing.assert_close(plain[:16, :16], plain[16:, 16:])


@pytest.mark.parametrize("mora_type", TYPES)
def test_merge_unmerge_and_conv1d(mora_type):
    torch.manual_seed(0)
    conv = Conv1D(24, 10)  # GPT-2 layout: weight (in=10, out=24)
    layer = random_mora(10, 24, 4, mora_type, base=conv)
    x = torch.randn(2, 3, 10)
    expected = layer(x)
    w0 = conv.weight.clone()
    torch.testing.assert_close(expected, x @ (w0.T + layer.delta_weight()).T + conv.bias, atol=1e-4, rtol=1e-4)
    layer.merge()
    torch.testing.assert_close(layer(x), expected, atol=1e-4, rtol=1e-4)
    with pytest.raises(RuntimeError, match="already merged"):
        layer.merge()
    layer.unmerge()
    torch.testing.assert_close(conv.weight, w0, atol=1e-5, rtol=0)


def test_r_hat_at_least_in_features_merges_without_crash():
    layer = random_mora(6, 60, 6, 6)  # r̂ = 20 > 2 · in
    assert layer.r_hat >= layer.in_features
    x = torch.randn(5, 6)
    expected = layer(x)
    layer.merge()
    torch.testing.assert_close(layer(x), expected, atol=1e-4, rtol=1e-4)


def test_inject_into_gpt2_counts_r_hat_squared():
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=50, n_positions=16)).eval()
    ids = torch.randint(0, 50, (2, 8))
    before = model(ids).logits
    inject(model, "mora", ["c_attn", "c_proj"], r=4, mora_type=6)
    layers = adapter_layers(model)
    assert len(layers) == 6 and all(isinstance(m, MoRALinear) for _, m in layers)
    expected = sum(m.r_hat ** 2 for _, m in layers)
    assert trainable_report(model).startswith(f"trainable params: {expected:,d} ||")
    # the adapter state is M alone (cos/sin are recomputed, not saved)
    assert sorted(adapter_state_dict(model)) == sorted(f"{n}.M" for n, _ in layers)
    assert torch.equal(before, model(ids).logits)  # M = 0: the injected model is the base model


@pytest.mark.parametrize("bad", [2, 0, "rope", True, None, 6.0])
def test_unknown_mora_type_is_rejected(bad):
    with pytest.raises(ValueError, match="mora_type"):
        MoRALinear(nn.Linear(16, 16), 2, bad)


def test_bad_rank_is_rejected():
    with pytest.raises(ValueError, match="min"):
        MoRALinear(nn.Linear(16, 8), 9)
    with pytest.raises(ValueError, match="positive"):
        MoRALinear(nn.Linear(16, 8), 0)
    with pytest.raises(TypeError, match="nn.Linear"):
        MoRALinear(nn.Conv2d(3, 3, 1), 1)
