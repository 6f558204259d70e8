"""Benchmark: one DoRA training step (forward and backward) with peftcourse's DoRALinear vs peft's use_dora=True.

Same model, targets, rank, batch; the two are timed in turns (analysis.compare_step_costs) and the medians
compared. The optimizer step is left out: both update the same number of weights.
Target: ours / peft <= 1.15.   Run:  python3 tests/bench_dora.py [--steps N]
"""
import argparse
import copy

import torch
from peft import LoraConfig, get_peft_model
from transformers import GPT2Config, GPT2LMHeadModel

from peftcourse import inject
from peftcourse.analysis import compare_step_costs

TARGETS = ["c_attn", "c_fc"]


def make_models(n_embd, n_layer, r):
    torch.manual_seed(0)
    config = GPT2Config(n_embd=n_embd, n_layer=n_layer, n_head=4, vocab_size=2000, n_positions=128,
                        bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(config)
    ours = inject(copy.deepcopy(model), "dora", TARGETS, r=r, alpha=2 * r)
    theirs = get_peft_model(copy.deepcopy(model), LoraConfig(r=r, lora_alpha=2 * r, target_modules=TARGETS,
                                                             fan_in_fan_out=True, use_dora=True))
    return ours, theirs


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--n-embd", type=int, default=256)
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="1 keeps timings stable on a shared CPU")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ours, theirs = make_models(args.n_embd, args.n_layer, args.r)
    ids = torch.randint(0, 2000, (args.batch, args.seq), generator=torch.Generator().manual_seed(1))
    batch = {"input_ids": ids, "labels": ids}
    cost = compare_step_costs({"peftcourse": ours, "peft": theirs}, batch, repeats=args.steps)
    med = {k: v["time_ms"] for k, v in cost.items()}
    print(f"GPT-2 n_embd={args.n_embd} n_layer={args.n_layer}, DoRA r={args.r} on {TARGETS}, "
          f"batch {args.batch}x{args.seq}, {args.steps} steps, torch threads {torch.get_num_threads()}")
    for k, v in med.items():
        print(f"  {k:<10} median step {v:8.2f} ms")
    print("  activation memory kept for backward: " + ", ".join(f"{k} {v['saved_mb']:.1f} MB" for k, v in cost.items()))
    ratio = med["peftcourse"] / med["peft"]
    print(f"ratio peftcourse / peft = {ratio:.3f}  (target <= 1.15: {'OK' if ratio <= 1.15 else 'MISSED'})")


if __name__ == "__main__":
    main()
