"""Benchmark: one training step (forward + backward) of a single layer with LoRA, each MoRA type and
SBoRA-FA/FB (plus SBoRA-FA computed with a one-hot matmul, what the gather avoids). MoRA gets LoRA's
number of trainable weights (r̂ from r), SBoRA LoRA's rank. Not a test (no timings are asserted); run it
and read the numbers:

    python tests/bench_layers.py [--dim 1024] [--tokens 2048] [--r 8]
"""
import argparse
import time

import torch
from torch import nn

from peftcourse.analysis import compare_step_costs
from peftcourse.lora import LoRALinear
from peftcourse.mora import MoRALinear
from peftcourse.sbora import SBoRALinear


class OneHotFA(SBoRALinear):
    """SBoRA-FA computed the naive way, x @ A_sbᵀ with a dense one-hot A_sb."""

    def adapter_forward(self, x):
        return x @ self.standard_basis().T @ self.B.T * self.scaling


def mean_square(output, _):
    return output.pow(2).mean()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    base = nn.Linear(args.dim, args.dim)
    x = torch.randn(args.tokens, args.dim, requires_grad=True)  # as inside a network: x needs its gradient
    r = args.r
    layers = {f"LoRA r={r}": LoRALinear(base, r, 2 * r)}
    for mora_type in (1, 6, "truncation", "decoupling"):
        layer = MoRALinear(base, r, mora_type)
        layers[f"MoRA {layer.type_name} r̂={layer.r_hat}"] = layer
    for variant in ("FA", "FB"):
        layers[f"SBoRA-{variant} r={r}"] = SBoRALinear(base, r, 2 * r, variant)
    layers[f"SBoRA-FA one-hot r={r}"] = OneHotFA(base, r, 2 * r, "FA")
    cost = compare_step_costs({"frozen base only": base.requires_grad_(False), **layers}, (x, None),
                              loss_fn=mean_square, repeats=args.repeats)
    frozen = cost.pop("frozen base only")["time_ms"]
    print(f"{args.dim}x{args.dim} layer, {args.tokens} tokens, torch threads {torch.get_num_threads()}, "
          f"median of {args.repeats} steps")
    print(f"{'frozen base only':<26} {frozen:8.2f} ms")
    for name, layer in layers.items():
        ms, mb = cost[name]["time_ms"], cost[name]["saved_mb"]
        n = sum(p.numel() for p in layer.parameters() if p.requires_grad)
        start = time.perf_counter()
        layer.delta_weight()
        dw_ms = 1000 * (time.perf_counter() - start)
        print(f"{name:<26} {ms:8.2f} ms  adapter overhead {ms - frozen:7.2f} ms  saved for backward {mb:6.1f} MB  "
              f"trainable {n:>9,}  delta_weight() {dw_ms:6.2f} ms")


if __name__ == "__main__":
    main()
