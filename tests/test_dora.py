"""DoRALinear against peft's use_dora=True with copied weights; the detached norm; zero rows; bad input."""
import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel

from peftcourse import inject
from peftcourse.dora import DoRALinear, OutputNormLoRALinear, copy_to_peft, magnitude_only

TOL = dict(atol=1e-5, rtol=1e-5)


class Net(nn.Module):
    def __init__(self, n_in=12, n_out=10):
        super().__init__()
        self.lin = nn.Linear(n_in, n_out)

    def forward(self, x):
        return self.lin(x)


def tiny_gpt2():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=50, n_positions=16,
                                      bos_token_id=0, eos_token_id=0)).eval()


def randomise(ours):
    """Give a layer non-trivial A, B, m (B = 0 at init would make every check trivial)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        ours.A.copy_(torch.randn(ours.A.shape, generator=g) * 0.3)
        ours.B.copy_(torch.randn(ours.B.shape, generator=g) * 0.3)
        ours.m.mul_(1 + 0.2 * torch.rand(ours.m.shape, generator=g))


def pair_linear(dropout=0.0):
    torch.manual_seed(0)
    net = Net()
    ours_net = copy.deepcopy(net)
    ours_net.lin = DoRALinear(ours_net.lin, r=4, alpha=8, dropout=dropout)
    peft_net = get_peft_model(copy.deepcopy(net), LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout,
                                                             target_modules=["lin"], use_dora=True))
    theirs = peft_net.base_model.model.lin
    randomise(ours_net.lin)
    assert copy_to_peft(ours_net, peft_net) == 1
    return ours_net, ours_net.lin, peft_net, theirs


def pair_gpt2():
    model = tiny_gpt2()
    ours_model = inject(copy.deepcopy(model), "dora", ["c_attn"], r=4, alpha=8)
    peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"],
                                                                 fan_in_fan_out=True, use_dora=True))
    ours_layers = [m for m in ours_model.modules() if isinstance(m, DoRALinear)]
    peft_layers = [m for n, m in peft_model.named_modules() if n.endswith("attn.c_attn")]
    assert len(ours_layers) == len(peft_layers) == 2
    for o in ours_layers:
        randomise(o)
    assert copy_to_peft(ours_model, peft_model) == 2
    return ours_model, ours_layers, peft_model, peft_layers


def test_init_magnitude_is_row_norm_and_output_unchanged():
    base = nn.Linear(12, 10)
    layer = DoRALinear(copy.deepcopy(base), r=4, alpha=8)
    assert layer.m.shape == (10,)
    torch.testing.assert_close(layer.m, base.weight.norm(dim=1))  # one norm per OUTPUT row, not per column
    x = torch.randn(3, 12)
    torch.testing.assert_close(layer(x), base(x), **TOL)


def test_linear_matches_peft_outputs_and_gradients():
    ours_net, ours, peft_net, theirs = pair_linear()
    x = torch.randn(2, 5, 12)
    target = torch.randn(2, 5, 10)
    y_ours, y_peft = ours_net(x), peft_net(x)
    torch.testing.assert_close(y_ours, y_peft, **TOL)
    assert not torch.allclose(y_ours, ours.base(x), atol=1e-3)  # the adapter does change the output
    (y_ours * target).sum().backward()
    (y_peft * target).sum().backward()
    torch.testing.assert_close(ours.A.grad, theirs.lora_A["default"].weight.grad, **TOL)
    torch.testing.assert_close(ours.B.grad, theirs.lora_B["default"].weight.grad, **TOL)
    torch.testing.assert_close(ours.m.grad, theirs.lora_magnitude_vector["default"].weight.grad, **TOL)


def test_dropout_matches_peft_with_the_same_mask():
    ours_net, ours, peft_net, theirs = pair_linear(dropout=0.3)
    ours_net.train(), peft_net.train()
    x = torch.randn(4, 12)
    torch.manual_seed(5)
    y_ours = ours_net(x)
    torch.manual_seed(5)
    y_peft = peft_net(x)
    torch.testing.assert_close(y_ours, y_peft, **TOL)


def test_gpt2_conv1d_matches_peft_outputs_gradients_and_merge():
    ours_model, ours_layers, peft_model, peft_layers = pair_gpt2()
    ids = torch.randint(0, 50, (2, 8))
    out_ours = ours_model(input_ids=ids, labels=ids)
    out_peft = peft_model(input_ids=ids, labels=ids)
    torch.testing.assert_close(out_ours.logits, out_peft.logits, **TOL)
    out_ours.loss.backward()
    out_peft.loss.backward()
    for o, t in zip(ours_layers, peft_layers):
        torch.testing.assert_close(o.A.grad, t.lora_A["default"].weight.grad, **TOL)
        torch.testing.assert_close(o.B.grad, t.lora_B["default"].weight.grad, **TOL)
        torch.testing.assert_close(o.m.grad, t.lora_magnitude_vector["default"].weight.grad, **TOL)
    for o, t in zip(ours_layers, peft_layers):
        o.merge()
        t.merge()
        torch.testing.assert_close(o.base.weight, t.base_layer.weight, **TOL)  # both (in, out) Conv1D layout
    with torch.no_grad():
        torch.testing.assert_close(ours_model(input_ids=ids).logits, out_peft.logits, **TOL)


def test_merge_unmerge_and_delta_weight():
    ours_net, ours, peft_net, theirs = pair_linear()
    x = torch.randn(3, 12)
    w0 = ours.base.weight.clone()
    y = ours(x)
    scale = ours.m / ours.direction_matrix().norm(dim=1)
    torch.testing.assert_close(ours.delta_weight(), scale[:, None] * ours.direction_matrix() - w0)
    torch.testing.assert_close(ours(x), x @ (w0 + ours.delta_weight()).T + ours.base.bias, **TOL)
    ours.merge()
    theirs.merge()
    torch.testing.assert_close(ours.base.weight, theirs.base_layer.weight, **TOL)
    torch.testing.assert_close(ours.base.weight.norm(dim=1), ours.m.detach(), **TOL)  # merged rows have norm m
    torch.testing.assert_close(ours(x), y, **TOL)
    with pytest.raises(RuntimeError, match="already merged"):
        ours.merge()
    ours.unmerge()
    torch.testing.assert_close(ours.base.weight, w0, **TOL)
    torch.testing.assert_close(ours(x), y, **TOL)


def test_detached_norm_changes_gradients_of_A_B_but_not_m():
    torch.manual_seed(0)
    base = nn.Linear(12, 10)
    grads = {}
    for detach in (True, False):
        layer = DoRALinear(copy.deepcopy(base), r=4, alpha=8, detach_norm=detach)
        with torch.no_grad():
            g = torch.Generator().manual_seed(2)
            layer.A.copy_(torch.randn(layer.A.shape, generator=g))
            layer.B.copy_(torch.randn(layer.B.shape, generator=g))
        layer(torch.randn(6, 12, generator=torch.Generator().manual_seed(3))).pow(2).sum().backward()
        grads[detach] = (layer.A.grad, layer.B.grad, layer.m.grad)
    assert not torch.allclose(grads[True][0], grads[False][0], atol=1e-4)
    assert not torch.allclose(grads[True][1], grads[False][1], atol=1e-4)
    torch.testing.assert_close(grads[True][2], grads[False][2])  # m is outside the norm: same gradient


def test_detached_norm_keeps_no_out_by_in_matrix_for_backward():
    from peftcourse.analysis import step_cost
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 48))
    batch = (torch.randn(2, 64), torch.randn(2, 48))
    mse = nn.functional.mse_loss
    costs = {}
    for detach in (True, False):
        model = copy.deepcopy(net)
        model[0] = DoRALinear(model[0], r=2, alpha=2, detach_norm=detach)
        costs[detach] = step_cost(model, batch, loss_fn=mse, repeats=1)["saved_mb"]
    assert costs[False] - costs[True] >= 64 * 48 * 4 / 2**20  # at least one extra fp32 out x in tensor


@pytest.mark.parametrize("detach", [True, False])
def test_zero_norm_row_gives_no_nan(detach):
    base = nn.Linear(6, 4)
    with torch.no_grad():
        base.weight[2] = 0.0
        base.bias.zero_()
    layer = DoRALinear(base, r=2, alpha=2, detach_norm=detach)
    assert layer.m[2] == 0
    x = torch.randn(3, 6)
    y = layer(x)
    assert torch.isfinite(y).all() and torch.all(y[:, 2] == 0)
    y.sum().backward()
    for p in (layer.A, layer.B, layer.m):
        assert torch.isfinite(p.grad).all()
    assert torch.isfinite(layer.delta_weight()).all()
    layer.merge()
    assert torch.isfinite(layer.base.weight).all()


def test_output_norm_variant_is_not_dora_and_not_linear():
    torch.manual_seed(0)
    base = nn.Linear(12, 10)
    dora = DoRALinear(copy.deepcopy(base), r=4, alpha=8)
    tut = OutputNormLoRALinear(copy.deepcopy(base), r=4, alpha=8)
    with torch.no_grad():
        tut.A.copy_(dora.A)
        tut.B.copy_(torch.randn(tut.B.shape))
        dora.B.copy_(tut.B)
    x = torch.randn(5, 12)
    extra_dora = dora(x) - base(x)
    extra_tut = tut(x) - base(x)
    assert not torch.allclose(extra_dora, extra_tut, atol=1e-3)
    torch.testing.assert_close(dora(2 * x) - base(2 * x), 2 * extra_dora, **TOL)  # DoRA: a linear layer
    torch.testing.assert_close(tut(2 * x) - base(2 * x), extra_tut, **TOL)         # variant: blind to x's scale
    with pytest.raises(TypeError, match="cannot be merged"):
        tut.merge()


def test_registry_and_trainable_parameters():
    model = inject(tiny_gpt2(), "dora", ["c_attn"], r=4, alpha=8)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"transformer.h.{i}.attn.c_attn.{k}" for i in range(2)
                         for k in ("lora_A.default", "lora_B.default", "magnitude.default")}


def test_bad_input():
    base = nn.Linear(8, 6)
    with pytest.raises(ValueError, match="r must be a positive int"):
        DoRALinear(base, r=0, alpha=8)
    with pytest.raises(ValueError, match="exceeds"):
        DoRALinear(base, r=7, alpha=8)
    with pytest.raises(ValueError, match="alpha"):
        DoRALinear(base, r=2, alpha=-1)
    with pytest.raises(ValueError, match="dropout"):
        DoRALinear(base, r=2, alpha=2, dropout=1.5)
    with pytest.raises(TypeError, match="detach_norm"):
        DoRALinear(base, r=2, alpha=2, detach_norm="yes")
    with pytest.raises(TypeError, match="nn.Linear"):
        DoRALinear(nn.Conv2d(3, 3, 1), r=1, alpha=1)


def test_keeps_no_more_for_backward_than_peft():
    from peftcourse.analysis import step_cost
    ours_model, _, peft_model, _ = pair_gpt2()
    ids = torch.randint(0, 50, (2, 8))
    batch = {"input_ids": ids, "labels": ids}
    ours = step_cost(ours_model, batch, repeats=1)["saved_mb"]
    theirs = step_cost(peft_model, batch, repeats=1)["saved_mb"]
    assert ours <= theirs


def test_magnitude_only_trains_m_alone_and_scales_the_base_rows():
    # paper Table 6, "m: QKVOGUD, V: QKV": direction trained in c_attn only, magnitudes everywhere
    model = inject(tiny_gpt2(), "dora", ["c_attn", "c_proj", "c_fc"], r=4, alpha=8)
    frozen = magnitude_only(model, ["attn.c_proj", "c_fc", "mlp.c_proj"])
    assert frozen == [f"transformer.h.{i}.{n}" for i in range(2) for n in ("attn.c_proj", "mlp.c_fc", "mlp.c_proj")]
    layer = model.get_submodule("transformer.h.0.mlp.c_fc")
    assert [n for n, p in layer.named_parameters() if p.requires_grad] == [
        n for n, _ in layer.named_parameters() if "magnitude" in n]
    assert model.get_submodule("transformer.h.0.attn.c_attn").A.requires_grad
    ids = torch.randint(0, 50, (2, 8), generator=torch.Generator().manual_seed(0))
    model.train()
    model(input_ids=ids, labels=ids).loss.backward()
    assert layer.A.grad is None and layer.B.grad is None and layer.m.grad.abs().sum() > 0
    with torch.no_grad():   # a trained magnitude only rescales W0's rows: W' = m ⊙ W0 / ‖W0‖
        layer.m.mul_(torch.linspace(0.5, 1.5, layer.m.numel()))
    W0 = layer.base_weight()
    assert torch.allclose(layer.delta_weight() + W0, layer.m[:, None] * W0 / W0.norm(dim=1, keepdim=True), **TOL)
    with pytest.raises(ValueError, match="no DoRA layer matches"):
        magnitude_only(model, ["lm_head"])
