"""Benchmark (not a test): quantize_nf4 vs bitsandbytes' CPU quantize_4bit on a 4096×4096 fp32 matrix.

    python tests/bench_quant.py [--repeats 5]

Target: ours within 2× of bitsandbytes. Prints the best-of-N times and the ratio; exits 1 when over 2×.
"""
import argparse
import sys
import time

import torch
import bitsandbytes.functional as bnbF

from peftcourse.quant import quantize_nf4


def best_time(fn, repeats):
    fn()  # warm-up (allocations, lazy initialisation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=4096)
    args = parser.parse_args()
    torch.manual_seed(0)
    w = torch.randn(args.size, args.size) * 0.02
    print(f"{args.size}x{args.size} fp32, torch threads: {torch.get_num_threads()}, best of {args.repeats}")
    rows = []
    for dq in (False, True):
        ours = best_time(lambda: quantize_nf4(w, 64, double_quant=dq), args.repeats)
        ref = best_time(lambda: bnbF.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=dq),
                        args.repeats)
        rows.append(ours / ref)
        print(f"double_quant={dq!s:5}  quantize_nf4 {ours:.3f} s  bitsandbytes {ref:.3f} s  ratio {ours / ref:.2f}")
    ours_q, ref_q = quantize_nf4(w), bnbF.quantize_4bit(w, blocksize=64, quant_type="nf4")
    deq_ours = best_time(ours_q.dequantize, args.repeats)
    deq_ref = best_time(lambda: bnbF.dequantize_4bit(*ref_q), args.repeats)
    print(f"dequantize:           ours {deq_ours:.3f} s  bitsandbytes {deq_ref:.3f} s  ratio {deq_ours / deq_ref:.2f}")
    worst = max(rows)
    print(f"worst quantize ratio {worst:.2f} (target <= 2)")
    return 0 if worst <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
