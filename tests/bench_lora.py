"""Benchmark: one LoRA training step on TinyGPT, peftcourse's LoRALinear vs peft's LoRA (same configuration).

    python tests/bench_lora.py [--steps 30] [--batch 8] [--seq 128] [--targets c_attn,c_proj]

Forward + backward, the two models timed in turns (analysis.compare_step_costs, so a busy machine slows
both alike; the optimizer step is left out, both update the same weights); reports the median step time
of each, the activation memory kept for backward, and their ratio (target: ours <= 1.15 x peft).
Not a test: pytest does not collect it.
"""
import argparse
import copy

import torch
from peft import LoraConfig, get_peft_model

import peftcourse as pc
from peftcourse.analysis import compare_step_costs
from peftcourse.models import load_tinygpt


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30, help="timed steps per model")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--targets", default="c_attn,c_proj,c_fc")
    args = ap.parse_args(argv)
    targets = args.targets.split(",")
    pc.seed_everything(0)
    base, _ = load_tinygpt()
    base.train()
    ours = pc.inject(copy.deepcopy(base), "lora", targets, r=args.r, alpha=args.alpha)
    ref = get_peft_model(copy.deepcopy(base), LoraConfig(r=args.r, lora_alpha=args.alpha, lora_dropout=0.0,
                                                          target_modules=targets))
    assert pc.trainable_report(ours) == "trainable params: {:,d} || all params: {:,d} || trainable%: {:.4f}".format(
        *ref.get_nb_trainable_parameters(), 100 * ref.get_nb_trainable_parameters()[0] / ref.get_nb_trainable_parameters()[1])
    ids = torch.randint(0, base.config.vocab_size, (args.batch, args.seq), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "labels": ids}
    cost = compare_step_costs({"peftcourse": ours, "peft": ref}, batch, repeats=args.steps)
    med = {name: c["time_ms"] for name, c in cost.items()}
    print(f"TinyGPT LoRA training step (batch {args.batch} x {args.seq} tokens, r={args.r}, alpha={args.alpha}, "
          f"targets={targets}, torch threads={torch.get_num_threads()}, {args.steps} steps each)")
    print(pc.trainable_report(ours))
    for name, c in cost.items():
        print(f"  {name:>10}: median {c['time_ms']:7.1f} ms/step, {c['saved_mb']:.1f} MB kept for backward")
    ratio = med["peftcourse"] / med["peft"]
    print(f"  ratio peftcourse / peft = {ratio:.3f}  (target <= 1.15)")
    return ratio


if __name__ == "__main__":
    main()
