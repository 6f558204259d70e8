"""ΔD / ΔM (DoRA paper §3.2) on hand-made matrices, snapshots of adapted layers, spectra and sparsity helpers."""
import math

import matplotlib
import pytest
import torch
from torch import nn

from peftcourse import analysis
from peftcourse.dora import DoRALinear
from peftcourse.lora import LoRALinear

matplotlib.use("Agg")


def test_hand_made_magnitude_and_direction():
    W0 = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    Wt = torch.tensor([[6.0, 8.0], [0.0, 1.0]])  # row 0: same direction, norm 5 -> 10; row 1: rotated 90°, norm 1
    dD, dM = analysis.magnitude_direction_change(W0, Wt)
    assert dD == pytest.approx((0 + 1) / 2)
    assert dM == pytest.approx((5 + 0) / 2)


def test_rows_not_columns():
    # scaling one OUTPUT row changes only the magnitude; a per-column norm would also report a direction change
    W0 = torch.tensor([[1.0, 2.0, 2.0], [0.0, 3.0, 4.0]])
    Wt = W0 * torch.tensor([[2.0], [1.0]])
    dD, dM = analysis.magnitude_direction_change(W0, Wt)
    assert dD == pytest.approx(0.0, abs=1e-12)
    assert dM == pytest.approx(3.0 / 2)


def test_small_rotation_is_precise():
    theta = 1e-4
    W0 = torch.tensor([[1.0, 0.0]])
    Wt = torch.tensor([[math.cos(theta), math.sin(theta)]])
    dD, dM = analysis.magnitude_direction_change(W0, Wt)
    assert dD == pytest.approx(1 - math.cos(theta), rel=1e-3)  # ~5e-9: computed in float64
    assert dM == pytest.approx(0.0, abs=1e-7)


def test_bad_input():
    W = torch.ones(3, 4)
    with pytest.raises(TypeError, match="torch.Tensor"):
        analysis.magnitude_direction_change(W.numpy(), W)
    with pytest.raises(ValueError, match="2-D"):
        analysis.magnitude_direction_change(torch.ones(4), torch.ones(4))
    with pytest.raises(ValueError, match="same shape"):
        analysis.magnitude_direction_change(W, torch.ones(4, 3))
    with pytest.raises(ValueError, match="NaN"):
        analysis.magnitude_direction_change(W, W * float("nan"))
    zero_row = W.clone()
    zero_row[1] = 0
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        analysis.magnitude_direction_change(W, zero_row)
    with pytest.raises(ValueError, match="energy"):
        analysis.energy_rank(W, energy=1.5)
    with pytest.raises(ValueError, match="at least 3"):
        analysis.regression([1, 2], [3, 4])


def test_dora_magnitude_is_the_merged_row_norm():
    torch.manual_seed(0)
    layer = DoRALinear(nn.Linear(8, 6), r=2, alpha=2)
    with torch.no_grad():
        layer.B.normal_()
        layer.m.mul_(torch.linspace(0.5, 1.5, 6))
    W0 = layer.base_weight().detach().clone()
    Wt = analysis.merged_weight(layer).detach()
    _, dM = analysis.magnitude_direction_change(W0, Wt)
    assert dM == pytest.approx((layer.m - W0.norm(dim=1)).abs().mean().item(), rel=1e-5)


def test_snapshots_and_row_groups():
    from transformers import GPT2Config, GPT2LMHeadModel
    from peftcourse import inject
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=20, n_positions=8,
                                       bos_token_id=0, eos_token_id=0))
    names = ["transformer.h.0.attn.c_attn"]
    first = analysis.weight_snapshot(model, names)
    assert first[names[0]].shape == (48, 16)  # Conv1D (16, 48) reported as (out, in)
    inject(model, "lora", ["c_attn"], r=2, alpha=2)
    layer = model.get_submodule(names[0])
    with torch.no_grad():
        layer.B[32:].normal_()  # change only the value rows
    changes = analysis.layer_changes(first, analysis.weight_snapshot(model, names),
                                     row_groups={"q": slice(0, 16), "v": slice(32, 48)})
    assert set(changes) == {names[0] + ".q", names[0] + ".v"}
    assert changes[names[0] + ".q"] == pytest.approx((0.0, 0.0), abs=1e-12)
    assert changes[names[0] + ".v"][0] > 0 and changes[names[0] + ".v"][1] > 0
    layer.merge()  # a merged layer reports the same weight
    torch.testing.assert_close(analysis.weight_snapshot(model, names)[names[0]],
                               first[names[0]] + layer.delta_weight().detach())


def test_regression_and_plot():
    slope, corr = analysis.regression([0, 1, 2, 3], [1, 3, 5, 7])
    assert slope == pytest.approx(2.0) and corr == pytest.approx(1.0)
    changes = {10: {"a": (0.1, 0.3), "b": (0.2, 0.2)}, 20: {"a": (0.3, 0.1), "b": (0.4, 0.0)}}
    slope, corr = analysis.plot_direction_magnitude(changes, "LoRA")
    assert slope == pytest.approx(-1.0) and corr == pytest.approx(-1.0)


def test_spectrum_rank_and_sparsity():
    torch.manual_seed(0)
    lora = LoRALinear(nn.Linear(20, 16), r=3, alpha=3)
    with torch.no_grad():
        lora.B.normal_()
    delta = lora.delta_weight().detach()
    s = analysis.spectrum(delta)
    assert s.shape == (16,) and torch.all(s[:-1] >= s[1:])
    assert analysis.energy_rank(delta, energy=0.999999) == 3
    assert analysis.energy_rank(torch.zeros(4, 4)) == 0
    sparse = torch.zeros(6, 5)
    sparse[:, [1, 3]] = 1.0  # two changed columns, as SBoRA-FA with r = 2
    assert analysis.sparsity(sparse) == pytest.approx(1 - 12 / 30)
    assert analysis.changed_rows_cols(sparse) == (6, 2)


def test_change_tracker_records_each_eval_of_train():
    from peftcourse import inject, train
    torch.manual_seed(0)
    net = inject(nn.Sequential(nn.Linear(6, 5)), "dora", ["0"], r=2, alpha=2)
    tracker = analysis.ChangeTracker(net, ["0"])
    X, y = torch.randn(16, 6), torch.randn(16, 5)
    history = train(net, [(X, y)], steps=4, lr=1e-2, loss_fn=nn.functional.mse_loss,
                    eval_fn=tracker, eval_every=2, progress=False)
    changes = tracker.by_step(history)
    assert sorted(changes) == [2, 4]
    assert changes[4]["0"][0] > changes[2]["0"][0] > 0  # direction keeps moving
    assert history.metric("ΔM")[0] == [2, 4]


def test_plot_decomposition_runs_on_a_layer():
    W = torch.randn(12, 8)
    axes = analysis.plot_decomposition(W, "test")
    assert len(axes) == 3 and axes[0].get_lines()[0].get_ydata().shape == (12,)


def test_compare_step_costs_counts_saved_activations():
    torch.manual_seed(0)
    small, wide = nn.Sequential(nn.Linear(8, 4)), nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 4))
    batch = (torch.randn(16, 8), torch.randn(16, 4))
    costs = analysis.compare_step_costs({"small": small, "wide": wide}, batch,
                                        loss_fn=nn.functional.mse_loss, repeats=2)
    assert set(costs) == {"small", "wide"} and all(c["time_ms"] > 0 for c in costs.values())
    # the wide net keeps its 16 x 64 hidden activation (at least once) for backward; parameters are not counted
    assert costs["wide"]["saved_mb"] - costs["small"]["saved_mb"] >= 16 * 64 * 4 / 2**20
    assert costs["small"]["saved_mb"] < 8 * 4 * 4 / 2**20 + 16 * 8 * 4 / 2**20 + 16 * 4 * 8 / 2**20
    with pytest.raises(ValueError, match="repeats"):
        analysis.compare_step_costs({"small": small}, batch, repeats=0)
