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


def _parallel_adapter_cases():
    """He et al. 2022's parallel adapter, built from the package's BottleneckAdapter: the bottleneck reads the
    sublayer's input x and its branch, times `scale`, is added to the sublayer's output."""
    cases = []
    for seed, (d, b, scale) in ((0, (16, 4, 4.0)), (1, (10, 3, 0.5))):
        torch.manual_seed(seed)
        layer = BottleneckAdapter(d, b)
        with torch.no_grad():  # a trained adapter: up is no longer zero
            layer.up.weight.normal_()
            layer.up.bias.normal_()
        x, sublayer_out = torch.randn(3, 5, d), torch.randn(3, 5, d)
        Wd, bd, Wu, bu = (t.detach().clone()
                          for t in (layer.down.weight, layer.down.bias, layer.up.weight, layer.up.bias))
        probe = torch.randn(3, 5, d)
        out = sublayer_out + scale * (layer(x) - x)   # BottleneckAdapter adds its input back: take the branch alone
        (out * probe).sum().backward()

        def branch(inp, act=nn.functional.gelu):
            return act(inp @ Wd.T + bd) @ Wu.T + bu

        cases.append(Case(
            inputs={"x": x, "sublayer_out": sublayer_out, "W_down": Wd, "b_down": bd, "W_up": Wu, "b_up": bu,
                    "scale": scale},
            expected=out.detach(),
            wrong=((sublayer_out + scale * branch(sublayer_out), "the bottleneck reads the sublayer's output: that is "
                                                                 "the series (Houlsby) adapter. A parallel adapter "
                                                                 "reads the sublayer's input x."),
                   (sublayer_out + branch(x), "the scaling factor is missing: the branch is multiplied by scale."),
                   (x + scale * branch(x), "you added the branch to x: a parallel adapter adds it to the sublayer's "
                                           "output (the block's own residual adds x later)."),
                   (x + sublayer_out + scale * branch(x), "x is added as well: the block's own residual adds x "
                                                          "later; the adapter adds only its branch."),
                   (scale * branch(x), "only the adapter's branch: the sublayer's output is part of the result."),
                   (sublayer_out + scale * branch(x, nn.functional.relu), "wrong nonlinearity: the course's adapters "
                                                                          "use GELU."),
                   (sublayer_out + scale * (branch(x) - bu) + bu, "the scaling covers the whole branch, the "
                                                                  "up-projection's bias included.")),
            grads={"W_down": layer.down.weight.grad, "W_up": layer.up.weight.grad}, probe=probe,
            shape_note="x and sublayer_out are (..., d); W_down is (b, d) and W_up is (d, b) in nn.Linear layout "
                       "(out, in); the result is (..., d)."))
    return cases


PARALLEL_ADAPTER = Exercise(
    "03-parallel-adapter", "code", "a parallel adapter beside a sublayer", "parallel_adapter",
    hint="feed x (not the sublayer's output) through down-projection, GELU and up-projection, scale the result, and "
         "add it to the sublayer's output.",
    reread=where("1 (The bottleneck adapter) and Other types of adapter", "'Adapter (He et al. 2022)'"),
    explain="sublayer(x) + s·(W_up·GELU(W_down·x + b_down) + b_up): the same d → b → d module and the same 2db + d + b "
            "parameters as the series adapter, placed beside the sublayer. He et al. 2022 scale the branch (s = 4 for "
            "their feed-forward adapters); with W_up = 0 it is again the identity at the start.",
    cases=_parallel_adapter_cases)


def _all_zero_start():
    """Which parameters of an adapter whose weights and biases all start at zero move in 100 Adam steps."""
    torch.manual_seed(0)
    adapter = BottleneckAdapter(16, 4)
    for p in adapter.parameters():
        nn.init.zeros_(p)
    start = {n: p.detach().clone() for n, p in adapter.named_parameters()}
    h, target = torch.randn(32, 16), torch.randn(32, 16)
    optimizer = torch.optim.Adam(adapter.parameters(), lr=1e-2)
    for _ in range(100):
        optimizer.zero_grad()
        (adapter(h) - target).pow(2).mean().backward()
        optimizer.step()
    return {n: (p - start[n]).abs().max().item() for n, p in adapter.named_parameters()}


def _which_moved(moved):
    changed = {name for name, change in moved.items() if change > 0}
    if changed == set(moved):
        return "a"
    if changed == {"up.bias"}:
        return "b"
    if not changed:
        return "c"
    if changed == {"up.weight", "up.bias"}:
        return "d"
    raise ValueError(f"moved {sorted(changed)}: none of the options; measure as the notebook's cell does")


ALL_ZERO_START = Exercise(
    "03-all-zero-start", "predict", "an adapter whose weights and biases all start at zero", "prediction",
    hint="", reread=where("1 (The bottleneck adapter)", "'Adapter Tuning (Houlsby and Giurgiu et al., 2019-02)'"),
    explain="Largest change per parameter: {m}. With W_down = 0 and b_down = 0 the bottleneck's activations are "
            "GELU(0) = 0, so W_up's gradient (upstream gradient × activations) is 0, and W_down and b_down get theirs "
            "through W_up = 0. Only b_up, added straight to the output, learns: the adapter is stuck as a constant "
            "shift. That is why W_down starts random while W_up starts at zero.",
    options={"a": "all four", "b": "only b_up, the up-projection's bias", "c": "none of them",
             "d": "only the up-projection, W_up and b_up"},
    outcome=_which_moved, measure=_all_zero_start)

EXERCISES = (ADAPTER_PARAMS, PARALLEL_ADAPTER, ALL_ZERO_START)
