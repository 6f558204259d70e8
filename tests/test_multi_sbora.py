"""Multi-SBoRA: disjoint task regions of one model, merged exactly; regions by the features each task uses."""
import copy

import pytest
import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel

from peftcourse import multi_sbora
from peftcourse.inject import adapter_layers
from peftcourse.multi_sbora import inject_task, merge_tasks, task_indices


def trained(layer, seed=0):
    """Give the zero-initialised trainable factor random values, as training would."""
    with torch.no_grad():
        (layer.B if layer.variant == "FA" else layer.A).normal_(generator=torch.Generator().manual_seed(seed))
    return layer


def tiny_gpt2(seed=0):
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=50, n_positions=16)).eval()


def test_multi_sbora_tasks_are_disjoint_and_merge_without_interference():
    base = tiny_gpt2()
    targets = ["c_attn", "c_fc"]
    tasks = []
    for t in range(3):
        m = inject_task(copy.deepcopy(base), targets, task=t, n_tasks=3, r=4, alpha=8, variant="FB", seed=5)
        for _, layer in adapter_layers(m):
            trained(layer, seed=t)
        tasks.append(m)
    merged = merge_tasks(copy.deepcopy(base), tasks)
    for name, _ in adapter_layers(tasks[0]):
        w0 = base.get_submodule(name).weight.T            # Conv1D: (in, out) -> (out, in)
        w = merged.get_submodule(name).weight.T
        regions = [dict(adapter_layers(m))[name] for m in tasks]
        all_idx = torch.cat([r.indices for r in regions])
        assert all_idx.unique().numel() == 3 * 4           # disjoint slices of one permutation
        for layer in regions:                               # each region holds exactly its own task's update
            rows = layer.indices
            torch.testing.assert_close(w[rows], w0[rows] + layer.delta_weight().detach()[rows], atol=0, rtol=0)
        untouched = torch.ones(w.shape[0], dtype=torch.bool)
        untouched[all_idx] = False
        assert torch.equal(w[untouched], w0[untouched])


def test_merge_tasks_refuses_overlapping_regions():
    base = tiny_gpt2()
    a = inject_task(copy.deepcopy(base), ["c_fc"], task=0, n_tasks=2, r=4, alpha=8, seed=1)
    b = inject_task(copy.deepcopy(base), ["c_fc"], task=0, n_tasks=2, r=4, alpha=8, seed=1)
    with pytest.raises(ValueError, match="overlap"):
        merge_tasks(copy.deepcopy(base), [a, b])


def test_input_energy_is_each_features_share_over_the_real_tokens_only():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    model.forward = lambda input_ids, attention_mask: model[0](input_ids)   # "tokens" are feature vectors here
    x = torch.tensor([[[1.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 100.0]]])     # the second position is padding
    shares = multi_sbora.input_energy(model, [{"input_ids": x, "attention_mask": torch.tensor([[1, 0]])}], ["0"])
    torch.testing.assert_close(shares["0"], torch.tensor([0.2, 0.8, 0.0, 0.0]))
    with pytest.raises(ValueError, match="empty"):
        multi_sbora.input_energy(model, [], ["0"])
    with pytest.raises(ValueError, match="matches no"):
        multi_sbora.input_energy(model, [], ["nope"])


def test_feature_regions_give_each_task_the_features_only_it_uses_disjointly():
    # task 0 uses features 0-3 (and a little of 4), task 1 features 4-7; feature 8 both, 9 neither
    use = [torch.tensor([4, 4, 4, 4, 1, 0, 0, 0, 5, 0.0]), torch.tensor([0, 0, 0, 0, 4, 4, 4, 4, 5, 0.0])]
    energies = [{"layer": u / u.sum()} for u in use]
    regions = multi_sbora.feature_regions(energies, r=4)
    assert sorted(regions[0]["layer"].tolist()) == [0, 1, 2, 3]
    assert sorted(regions[1]["layer"].tolist()) == [4, 5, 6, 7]
    three = multi_sbora.feature_regions(energies + [{"layer": torch.full((10,), 0.1)}], r=3)   # a third task: still disjoint
    picked = torch.cat([t["layer"] for t in three])
    assert picked.unique().numel() == 9
    with pytest.raises(ValueError, match="disjointly"):
        multi_sbora.feature_regions(energies, r=6)
    with pytest.raises(ValueError, match="same layers"):
        multi_sbora.feature_regions([energies[0], {"other": energies[1]["layer"]}], r=2)
    with pytest.raises(ValueError, match="at least two"):
        multi_sbora.feature_regions(energies[:1], r=2)


def test_inject_task_puts_each_layer_in_the_given_region():
    base = tiny_gpt2()
    names = [n for n, _ in base.named_modules() if n.endswith("c_fc")]
    regions = {n: torch.arange(3) + 5 * i for i, n in enumerate(names)}
    m = inject_task(copy.deepcopy(base), ["c_fc"], task=0, n_tasks=2, r=3, alpha=6, regions=regions)
    assert {n: layer.indices.tolist() for n, layer in adapter_layers(m)} == {n: r.tolist() for n, r in regions.items()}
    untouched = copy.deepcopy(base)
    with pytest.raises(ValueError, match="no indices for"):
        inject_task(untouched, ["c_fc"], task=0, n_tasks=2, r=3, alpha=6, regions={names[0]: regions[names[0]]})
    assert not adapter_layers(untouched)                # checked before anything was replaced
    with pytest.raises(TypeError, match="regions"):
        inject_task(copy.deepcopy(base), ["c_fc"], task=0, n_tasks=2, r=3, alpha=6, regions=[1, 2, 3])


def test_multi_sbora_matches_running_all_task_adapters():
    """A merged model computes W0 x + Σ_t ΔW_t x: check on one layer against the layers' own forwards."""
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(16, 16))
    tasks = [trained(inject_task(copy.deepcopy(base), ["0"], t, 2, 4, 8, "FA", seed=3)[0], seed=t) for t in range(2)]
    tasks = [nn.Sequential(layer) for layer in tasks]
    merged = merge_tasks(copy.deepcopy(base), tasks)
    x = torch.randn(3, 16)
    expected = base(x) + sum(m[0].adapter_forward(x) for m in tasks)
    torch.testing.assert_close(merged(x), expected, atol=1e-5, rtol=1e-5)


def test_task_indices_must_fit_disjointly_and_name_a_task():
    with pytest.raises(ValueError, match="disjointly"):
        task_indices(10, 4, 0, 3, torch.Generator())
    with pytest.raises(ValueError, match="task"):
        task_indices(10, 2, 3, 3, torch.Generator())
