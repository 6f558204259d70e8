"""Benchmark: one training step (forward + backward) of a layer with LoRA, SBoRA-FA, SBoRA-FB and a
one-hot-matmul SBoRA-FA, at equal rank. Not a test (no timings are asserted); run it and read the numbers:

    python tests/bench_sbora.py [--dim 1024] [--tokens 2048] [--r 16]
"""
import argparse
import statistics
import time

import torch
from torch import nn

from peftcourse.lora import LoRALinear
from peftcourse.sbora import SBoRALinear


class OneHotFA(SBoRALinear):
    """SBoRA-FA computed the naive way, x @ A_sbᵀ with a dense one-hot A_sb: what the gather avoids."""

    def adapter_forward(self, x):
        return x @ self.standard_basis().T @ self.B.T * self.scaling


def step_ms(layer, x, repeats):
    times = []
    for i in range(repeats + 1):  # the first step warms up
        start = time.perf_counter()
        layer(x).pow(2).mean().backward()
        if i:
            times.append(1000 * (time.perf_counter() - start))
        layer.zero_grad(set_to_none=True)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--r", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    base = nn.Linear(args.dim, args.dim)
    x = torch.randn(args.tokens, args.dim, requires_grad=True)  # as inside a network: x needs its gradient
    layers = {"LoRA": LoRALinear(base, args.r, 2 * args.r),
              "SBoRA-FA": SBoRALinear(base, args.r, 2 * args.r, "FA"),
              "SBoRA-FB": SBoRALinear(base, args.r, 2 * args.r, "FB"),
              "SBoRA-FA one-hot": OneHotFA(base, args.r, 2 * args.r, "FA")}
    frozen = step_ms(base.requires_grad_(False), x, args.repeats)
    print(f"{args.dim}x{args.dim} layer, {args.tokens} tokens, r={args.r}, torch threads {torch.get_num_threads()}")
    print(f"{'frozen base only':<18} {frozen:8.2f} ms")
    for name, layer in layers.items():
        ms = step_ms(layer, x, args.repeats)
        n = sum(p.numel() for p in layer.parameters() if p.requires_grad)
        print(f"{name:<18} {ms:8.2f} ms  adapter overhead {ms - frozen:7.2f} ms  trainable {n:,}")


if __name__ == "__main__":
    main()
