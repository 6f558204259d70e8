import math

import pytest
import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel

from peftcourse.train import train


def regression_batches(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(4, 1, generator=g)
    batches = []
    for _ in range(n):
        x = torch.randn(16, 4, generator=g)
        batches.append((x, x @ w))
    return batches


def test_any_model_with_loss_fn_learns_and_records_history():
    model = nn.Linear(4, 1)
    calls = []
    h = train(model, regression_batches(), steps=60, lr=0.05, loss_fn=nn.functional.mse_loss,
              eval_fn=lambda m: calls.append(1) or {"w_norm": m.weight.norm().item()}, eval_every=20,
              progress=False)
    assert h.steps == list(range(1, 61))
    assert h.losses[-1] < 0.1 * h.losses[0]
    assert [e["step"] for e in h.evals] == [20, 40, 60] and len(calls) == 3
    assert h.peak_mem_mb > 0 and h.wall_time > 0
    assert h.metric("w_norm")[0] == [20, 40, 60]
    with pytest.raises(KeyError, match="w_norm"):
        h.metric("accuracy")


def test_only_trainable_parameters_change():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    model[0].requires_grad_(False)
    frozen = model[0].weight.clone()
    head = model[2].weight.clone()
    train(model, regression_batches(), steps=5, loss_fn=nn.functional.mse_loss, progress=False)
    assert torch.equal(model[0].weight, frozen)
    assert not torch.equal(model[2].weight, head)


def test_hf_model_with_labels_is_deterministic():
    def run():
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=50, n_positions=16))
        ids = torch.randint(0, 50, (4, 12), generator=torch.Generator().manual_seed(1))
        h = train(model, [{"input_ids": ids, "labels": ids}], steps=5, lr=1e-2, seed=3, progress=False)
        return h.losses
    a, b = run(), run()
    assert a == b
    assert a[-1] < a[0]


def test_nan_loss_stops_with_the_step_named():
    model = nn.Linear(4, 1)
    x = torch.randn(8, 4)
    batches = [(x, torch.zeros(8, 1)), (x, torch.full((8, 1), math.nan))]
    with pytest.raises(FloatingPointError, match="step 2"):
        train(model, batches, steps=5, loss_fn=nn.functional.mse_loss, progress=False)


def test_bad_arguments_are_named():
    model = nn.Linear(4, 1)
    data = regression_batches(1)
    with pytest.raises(ValueError, match="steps"):
        train(model, data, steps=0, loss_fn=nn.functional.mse_loss)
    with pytest.raises(ValueError, match="lr"):
        train(model, data, steps=1, lr=-1, loss_fn=nn.functional.mse_loss)
    with pytest.raises(ValueError, match="optimizer"):
        train(model, data, steps=1, optimizer="lion", loss_fn=nn.functional.mse_loss)
    with pytest.raises(ValueError, match="no batches"):
        train(model, [], steps=1, loss_fn=nn.functional.mse_loss)
    with pytest.raises(TypeError, match="dict"):
        train(model, data, steps=1)  # (x, y) batches need a loss_fn
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        train(model, data, steps=1, loss_fn=nn.functional.mse_loss)
