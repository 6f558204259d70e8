"""Benchmark (not a test): peftcourse's NF4 quantize and dequantize vs bitsandbytes' CPU kernels.

    python tests/bench_quant.py [--repeats 15] [--size 4096]

Two workloads, each timed in turns with bitsandbytes (ours, theirs, ours, ...: a busy machine slows both alike):
- one size x size fp32 matrix (quantize with and without double quantization, then dequantize);
- the 210 projection matrices of SmolLM2-135M (30 layers of q, k, v, o 576 x 576 / 192 x 576, gate and up
  1536 x 576, down 576 x 1536; random weights of those shapes), dequantized one after the other, each shape on
  its own and then all of them: what a from-scratch QLoRA forward pass on SmolLM2 does once per step (and its
  backward pass once more).

Targets: quantize within 2x of bitsandbytes' CPU time, dequantize within 1.5x. Prints the median CPU and wall time
of each and the ratio of the CPU times; exits 1 when a target is missed. `--threads 1` (the default) keeps
torch's and bitsandbytes' kernels on one core, so that no time is spent waiting for a second one.
"""
import argparse
import statistics
import sys
import time

import torch
import bitsandbytes.functional as bnbF

from peftcourse.quant import quantize_nf4
from peftcourse.runtime import bnb_cpu_kernels

QUANTIZE_TARGET, DEQUANTIZE_TARGET = 2.0, 1.5
SMOLLM2_SHAPES = [(576, 576), (192, 576), (192, 576), (576, 576), (1536, 576), (1536, 576), (576, 1536)]


def in_turns(fns, repeats):
    """{name: (median CPU seconds, median wall seconds)} of each function, called in turns after one warm-up
    round. CPU time (this process, all its threads) is what the targets compare: on a shared machine it counts
    the work done, where wall time also counts the waiting for a core."""
    cpu, wall = {name: [] for name in fns}, {name: [] for name in fns}
    for i in range(repeats + 1):
        for name, fn in fns.items():
            start_cpu, start_wall = time.process_time(), time.perf_counter()
            fn()
            if i:
                cpu[name].append(time.process_time() - start_cpu)
                wall[name].append(time.perf_counter() - start_wall)
    return {name: (statistics.median(cpu[name]), statistics.median(wall[name])) for name in fns}


def report(label, timed, target):
    (ours_cpu, ours_wall), (ref_cpu, ref_wall) = timed["ours"], timed["bitsandbytes"]
    ratio = ours_cpu / ref_cpu
    print(f"{label:<38} CPU time: ours {1000 * ours_cpu:7.1f} ms, bitsandbytes {1000 * ref_cpu:7.1f} ms, ratio "
          f"{ratio:.2f} (target <= {target})   wall: {1000 * ours_wall:7.1f} vs {1000 * ref_wall:7.1f} ms")
    return ratio


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--layers", type=int, default=30, help="SmolLM2 decoder layers to dequantize")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: leave torch's setting)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    kernels = bnb_cpu_kernels()
    print(f"torch threads: {torch.get_num_threads()}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"bitsandbytes dequantize kernel: {'native AVX-512' if kernels['avx512_dequant'] else 'portable'}; "
          f"median of {args.repeats} turns; this CPU {'has' if kernels['avx512_bf16'] else 'lacks'} AVX-512 BF16")
    torch.manual_seed(0)
    w = torch.randn(args.size, args.size) * 0.02
    quantize_ratios = []
    for dq in (False, True):
        quantize_ratios.append(report(f"quantize {args.size}x{args.size}, double_quant={dq}", in_turns({
            "ours": lambda: quantize_nf4(w, 64, double_quant=dq),
            "bitsandbytes": lambda: bnbF.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=dq),
        }, args.repeats), QUANTIZE_TARGET))
    dequantize_ratios = []
    for dq in (False, True):
        ours_q = quantize_nf4(w, 64, double_quant=dq)
        ref_q = bnbF.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=dq)
        dequantize_ratios.append(report(f"dequantize {args.size}x{args.size}, double_quant={dq}", in_turns({
            "ours": ours_q.dequantize, "bitsandbytes": lambda: bnbF.dequantize_4bit(*ref_q)}, args.repeats),
            DEQUANTIZE_TARGET))
    layers = [torch.randn(shape) * 0.02 for _ in range(args.layers) for shape in SMOLLM2_SHAPES]
    ours_all = [quantize_nf4(m, 64, double_quant=True) for m in layers]
    ref_all = [bnbF.quantize_4bit(m, blocksize=64, quant_type="nf4", compress_statistics=True) for m in layers]
    # each shape on its own (a small matrix pays each call's fixed costs on fewer weights), then all of them
    for rows, cols in sorted(set(SMOLLM2_SHAPES), key=lambda shape: shape[0] * shape[1]):
        ours = [q for q, m in zip(ours_all, layers) if m.shape == (rows, cols)]
        ref = [q for q, m in zip(ref_all, layers) if m.shape == (rows, cols)]
        dequantize_ratios.append(report(f"dequantize {len(ours)} x SmolLM2 {rows}x{cols}", in_turns({
            "ours": lambda: [q.dequantize() for q in ours],
            "bitsandbytes": lambda: [bnbF.dequantize_4bit(*q) for q in ref]}, args.repeats), DEQUANTIZE_TARGET))
    dequantize_ratios.append(report(f"dequantize SmolLM2's {len(layers)} matrices", in_turns({
        "ours": lambda: [q.dequantize() for q in ours_all],
        "bitsandbytes": lambda: [bnbF.dequantize_4bit(*q) for q in ref_all]}, args.repeats), DEQUANTIZE_TARGET))
    ok = max(quantize_ratios) <= QUANTIZE_TARGET and max(dequantize_ratios) <= DEQUANTIZE_TARGET
    print(f"worst quantize ratio {max(quantize_ratios):.2f} (target <= {QUANTIZE_TARGET}), worst dequantize ratio "
          f"{max(dequantize_ratios):.2f} (target <= {DEQUANTIZE_TARGET}): {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
