"""Benchmark (not a test): one QLoRA training step on SmolLM2-135M-Instruct, the from-scratch NF4 base
(peftcourse.qlora: QLoRALinear, dequantized in forward and again in backward) vs bitsandbytes' Linear4bit
with peft's LoRA (peftcourse.qlora.bnb_qlora_model: transformers + bitsandbytes + peft).

    python -m peftcourse.models fetch-smollm2        # once: the converted model both load
    python tests/bench_qlora_smollm2.py [--steps 8] [--batch 4] [--seq 64] [--targets q_proj,v_proj,...]

Both: NF4 with double quantization, blocks of 64, fp32 compute, LoRA r = 8, alpha = 16 on the same projections
(default: all seven of every layer, as QLoRA does). Forward + backward, the two models timed in turns
(analysis.compare_step_costs, so a busy machine slows both alike; the optimizer step, the same for both, is left
out). Prints the median step time of each and their ratio. Not a test: pytest does not collect it.
"""
import argparse

import torch

import peftcourse as pc
from peftcourse import models, smollm2
from peftcourse.analysis import compare_step_costs
from peftcourse.qlora import bnb_qlora_model

ALL = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"


def main(argv=None, path=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8, help="timed steps per model")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--targets", default=ALL)
    args = ap.parse_args(argv)
    targets = args.targets.split(",")
    pc.seed_everything(0)
    base, _ = models.load_smollm2(path=path)
    ours = pc.inject(base, "qlora", targets, r=args.r, alpha=args.alpha, double_quant=True)
    ref = bnb_qlora_model(smollm2.cache_dir(path), targets, r=args.r, alpha=args.alpha, double_quant=True,
                          device="cpu")
    ours_trainable, ref_trainable = pc.count_params(ours, trainable_only=True), ref.get_nb_trainable_parameters()[0]
    if ours_trainable != ref_trainable:
        raise RuntimeError(f"the two models train different numbers of weights: {ours_trainable} vs {ref_trainable}")
    vocab = base.config.vocab_size
    ids = torch.randint(0, vocab, (args.batch, args.seq), generator=torch.Generator().manual_seed(0))
    cost = compare_step_costs({"from scratch": ours, "bitsandbytes": ref}, {"input_ids": ids, "labels": ids},
                              repeats=args.steps)
    print(f"SmolLM2-135M QLoRA training step (forward + backward), batch {args.batch} x {args.seq} tokens, "
          f"NF4 + double quantization, fp32 compute, r={args.r}, alpha={args.alpha}, {len(targets)} projections per "
          f"layer, {ours_trainable:,d} trainable weights, torch threads={torch.get_num_threads()}, "
          f"{args.steps} steps each, in turns")
    for name, c in cost.items():
        print(f"  {name:>13}: median {c['time_ms'] / 1000:6.2f} s/step, {c['saved_mb']:.0f} MB kept for backward")
    ratio = cost["from scratch"]["time_ms"] / cost["bitsandbytes"]["time_ms"]
    print(f"  ratio from scratch / bitsandbytes = {ratio:.2f}")
    return ratio


if __name__ == "__main__":
    main()
