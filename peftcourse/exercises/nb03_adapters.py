"""Answer key of notebooks/03_adapters.ipynb (worked solutions: solutions/03_adapters.py)."""
import torch
from torch import nn

from ..adapters import BottleneckAdapter, adapter_param_count
from .core import Case, Exercise, where

ADAPTER_PARAMS = Exercise(
    "03-adapter-params", "quick", "adapter parameters in MiniLM at b=32", "answer",
    hint="one adapter holds a down-projection d → b and an up-projection b → d, each with a bias; count the "
         "adapters per block.",
    reread=where("1 (The bottleneck adapter) and 2 (Where the adapters go)",
                 "'Adapter Tuning (Houlsby and Giurgiu et al., 2019-02)'"),
    explain="2·d·b + d + b per adapter, two adapters per block (after attention and after the FFN).",
    expected=lambda: 6 * 2 * adapter_param_count(384, 32),
    mistakes=((lambda e: 6 * 2 * 2 * 384 * 32, "the biases are missing: the down projection has b, the up "
                                              "projection d."),
              (lambda e: e / 6, "that is one block: MiniLM has 6."),
              (lambda e: 6 * 2 * (2 * 384 * 32 + 2 * 32), "the up projection's bias has d entries, not b.")))


def _adapter_cases():
    cases = []
    for seed, (d, b) in ((0, (16, 4)), (1, (10, 3))):
        torch.manual_seed(seed)
        layer = BottleneckAdapter(d, b)
        with torch.no_grad():  # a trained adapter: up is no longer zero
            layer.up.weight.normal_()
            layer.up.bias.normal_()
        h = torch.randn(3, 5, d)
        Wd, bd, Wu, bu = (t.detach().clone()
                          for t in (layer.down.weight, layer.down.bias, layer.up.weight, layer.up.bias))
        act = nn.functional.gelu
        probe = torch.randn(3, 5, d)
        out = layer(h)
        (out * probe).sum().backward()
        cases.append(Case(
            inputs={"h": h, "W_down": Wd, "b_down": bd, "W_up": Wu, "b_up": bu},
            expected=out.detach(),
            wrong=((act(h @ Wd.T + bd) @ Wu.T + bu, "the skip connection is missing: the adapter returns h + up(...)."),
                   (h + nn.functional.relu(h @ Wd.T + bd) @ Wu.T + bu, "wrong nonlinearity: the adapter uses GELU."),
                   (h + act(h @ Wd.T) @ Wu.T, "the biases are missing: both projections have one."),
                   (h + (h @ Wd.T + bd) @ Wu.T + bu, "the nonlinearity is missing: without it down and up collapse "
                                                     "into one low-rank linear map.")),
            grads={"W_down": layer.down.weight.grad, "W_up": layer.up.weight.grad}, probe=probe,
            shape_note="h is (..., d); W_down is (b, d) and W_up is (d, b) in nn.Linear layout (out, in)."))
    return cases


ADAPTER_FORWARD = Exercise(
    "03-adapter-forward", "code", "a bottleneck adapter's forward", "bottleneck_adapter",
    hint="down-project, GELU, up-project, and add the input back.",
    reread=where("1 (The bottleneck adapter)", "'Why Adapter Layer with 2 Fully Connected Layers?'"),
    explain="h + W_up·GELU(W_down·h + b_down) + b_up: with W_up = 0 it is the identity.",
    cases=_adapter_cases)


def _identity_at_init():
    torch.manual_seed(0)
    h = torch.randn(4, 16)
    return (BottleneckAdapter(16, 4)(h) - h).abs().max().item()


IDENTITY_AT_INIT = Exercise(
    "03-identity-at-init", "predict", "a fresh adapter's effect on its input", "prediction",
    hint="", reread=where("1 (The bottleneck adapter)", "'Adapter Tuning (Houlsby and Giurgiu et al., 2019-02)'"),
    explain="The largest |adapter(h) − h| is {m}: W_up and b_up start at zero, so the up-projection adds "
            "exactly nothing and the adapted network starts as the pretrained one (Houlsby et al. §2.1, "
            "near-identity initialisation, made exact).",
    options={"a": "exactly h", "b": "close to h, not exact", "c": "far from h"},
    outcome=lambda diff: "a" if diff == 0 else "b" if diff < 1e-2 else "c", measure=_identity_at_init)

EXERCISES = (ADAPTER_PARAMS, ADAPTER_FORWARD, IDENTITY_AT_INIT)
