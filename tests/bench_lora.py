"""Benchmark: one LoRA training step on TinyGPT, peftcourse's LoRALinear vs peft's LoRA (same configuration).

    python tests/bench_lora.py [--steps 30] [--batch 8] [--seq 128] [--targets c_attn,c_proj]

Forward + backward + AdamW step, the two models timed in alternating rounds (so a busy machine slows
both alike); reports the median step time of each and their ratio (target: ours <= 1.15 x peft).
Not a test: pytest does not collect it.
"""
import argparse
import copy
import statistics
import time

import torch
from peft import LoraConfig, get_peft_model

import peftcourse as pc
from peftcourse.models import load_tinygpt


def step_fn(model, batch):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)

    def step():
        loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30, help="timed steps per model")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (steps are split across them)")
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
    steps = {"peftcourse": step_fn(ours, batch), "peft": step_fn(ref, batch)}
    times = {name: [] for name in steps}
    for name, step in steps.items():  # warm-up (allocator, optimizer state)
        for _ in range(3):
            step()
    per_round = max(1, args.steps // args.rounds)
    for _ in range(args.rounds):
        for name, step in steps.items():
            for _ in range(per_round):
                t = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - t)
    med = {name: statistics.median(v) for name, v in times.items()}
    print(f"TinyGPT LoRA training step (batch {args.batch} x {args.seq} tokens, r={args.r}, alpha={args.alpha}, "
          f"targets={targets}, torch threads={torch.get_num_threads()}, {len(times['peft'])} steps each)")
    print(pc.trainable_report(ours))
    for name in steps:
        print(f"  {name:>10}: median {1000 * med[name]:7.1f} ms/step  (min {1000 * min(times[name]):.1f})")
    ratio = med["peftcourse"] / med["peft"]
    print(f"  ratio peftcourse / peft = {ratio:.3f}  (target <= 1.15)")
    return ratio


if __name__ == "__main__":
    main()
