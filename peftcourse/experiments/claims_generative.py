"""The generative claims registered on TinyGPT (C8, C9, C3, C4, C7, C10), in the order they were added. MoRA and
SBoRA are shown on causal LMs; C3, C4 and C7 are here too, on the kind of model or task their papers tune for.
Each size table gives the same settings at every size: smoke (tests), class (≤ 2 min), full (the cached run).
"""
from .merging import merge_prepare, run_random_columns, run_task_features
from .registry import FULL, TOP_LAYER, Spec, adapter, experiment
from .tinygpt import (arithmetic_prepare, domain_prepare, run_arithmetic, run_arithmetic_columns, run_domain,
                      run_uuids, uuid_prepare, with_settings)
from .verdict import better, fraction, parity

# Each parity margin with the sentence from the paper that justifies it (declared with the designs; the values
# are those they were registered with).
ANSWER_LOSS_MARGIN = dict(margin=0.1, why="SBoRA Tables 2-3 and Houlsby et al. Table 1 call a method level when it is "
                                          "within about a point of accuracy: on two-digit addition 0.1 nats of answer "
                                          "loss is the course's allowance for that")
PERPLEXITY_MARGIN = dict(margin=5.0, why="DoRA Fig. 5: at high rank DoRA's gain over LoRA shrinks to a few points (3.7 "
                                         "at r = 32, a sixth of its low-rank gain): 5 perplexity points on the license "
                                         "text is the course's allowance for level")

# ---------------------------------------------------------------- C8: memorizing new facts (MoRA)

UUID_SETTINGS = {"LoRA r=8": Spec("lora", r=8, alpha=16),                   # 98,304 trainable weights
                 "MoRA r=8": Spec("mora", r=8, extra={"mora_type": 1})}    # 98,388: MoRA's r̂ for LoRA r=8's budget
UUID_SIZES = {"smoke": {"n_pairs": 2, "steps": 2, "eval_every": 1},
              "class": {"n_pairs": 8, "steps": 60, "eval_every": 20},
              "full": {"n_pairs": 8, "steps": 160, "eval_every": 20}}

experiment(
    "mora_vs_lora_uuid", claim="C8",
    question="At an equal number of trainable weights, does MoRA (one square r̂ × r̂ matrix) memorize new facts "
             "(random UUID pairs) better than LoRA?",
    paper="MoRA (Jiang et al. 2024) Table 2 / Fig. 1: UUID pairs on LLaMA-2 7B, character accuracy after 900 steps, "
          "r = 8: MoRA 100 % vs LoRA 54.2 % (r = 256: 100 % vs 100 %); lecture slide 'Performance of MoRA'",
    metric="character accuracy on the memorized pairs", higher_is_better=True,
    sizes=with_settings(UUID_SETTINGS, UUID_SIZES),
    compare=[better("MoRA r=8", "LoRA r=8")], prepare=uuid_prepare)(run_uuids)

experiment(   # the control of C8: LoRA's chosen rate (1e-2) sits next to one that fails; at a shared safe rate?
    "mora_vs_lora_uuid_same_lr", claim="C8",
    question="Control: at one shared rate that is safe for both (3e-3, MoRA's own choice), does MoRA memorize the UUID "
             "pairs better than LoRA at an equal number of trainable weights?",
    paper="MoRA (Jiang et al. 2024) Table 2 / Fig. 1: UUID pairs on LLaMA-2 7B, r = 8: MoRA 100 % vs LoRA 54.2 % "
          "after 900 steps, one learning rate per method; lecture slide 'Performance of MoRA'",
    metric="character accuracy on the memorized pairs", higher_is_better=True,
    sizes=with_settings(UUID_SETTINGS, UUID_SIZES, lr_fixed=3e-3),
    compare=[better("MoRA r=8", "LoRA r=8")], prepare=uuid_prepare)(run_uuids)

# ---------------------------------------------------------------- two-digit addition: C9, C3, C4

SBORA_SETTINGS = {"LoRA r=4": Spec("lora", r=4, alpha=8),                                  # 49,152 weights
                  "SBoRA-FA r=4": Spec("sbora", r=4, alpha=8, extra={"variant": "FA"})}   # 27,648: B only
ARITHMETIC_SIZES = {"smoke": {"n_train": 16, "n_test": 8, "steps": 2, "eval_every": 1},
                    "class": {"n_train": 2000, "n_test": 200, "steps": 80, "eval_every": 20},
                    "full": {"n_train": 2000, "n_test": 200, "steps": 320, "eval_every": 40}}

experiment(
    "sbora_vs_lora", claim="C9",
    question="Does SBoRA-FA (A fixed to r standard-basis rows, only B trains) learn as well as LoRA at the same rank "
             "with about half the trainable weights, while its ΔW touches only r input columns?",
    paper="SBoRA (Po et al. 2024) Tables 2-3: commonsense and arithmetic reasoning on LLaMA, SBoRA-FA at the same "
          "rank as LoRA within about a point of it (sometimes above) with 40-50 % fewer trainable parameters; "
          "lecture slides 'SBoRA: Commonsense Reasoning Performance', 'SBoRA: Arithmetic Reasoning Performance'",
    metric="held-out answer loss (two-digit addition)", higher_is_better=False,
    sizes=with_settings(SBORA_SETTINGS, ARITHMETIC_SIZES),
    compare=[parity("SBoRA-FA r=4", "LoRA r=4", **ANSWER_LOSS_MARGIN)], prepare=arithmetic_prepare)(run_arithmetic_columns)

experiment(   # the control of C9: is SBoRA-FA's gap the halved budget or the fixed basis?
    "sbora_vs_lora_equal_budget", claim="C9",
    question="Control: at LoRA r = 4's number of trainable weights (SBoRA-FA r = 7), does SBoRA-FA learn as well as LoRA?",
    paper="SBoRA (Po et al. 2024) Tables 2-3 compare at equal rank; the lecture's claim is about the budget; "
          "lecture slides 'SBoRA: Commonsense Reasoning Performance', 'SBoRA: Arithmetic Reasoning Performance'",
    metric="held-out answer loss (two-digit addition)", higher_is_better=False,
    sizes=with_settings({"LoRA r=4": SBORA_SETTINGS["LoRA r=4"],
                         "SBoRA-FA r=7": Spec("sbora", r=7, alpha=14, extra={"variant": "FA"})},
                        ARITHMETIC_SIZES, lr_from="sbora_vs_lora"),
    compare=[parity("SBoRA-FA r=7", "LoRA r=4", **ANSWER_LOSS_MARGIN)], prepare=arithmetic_prepare)(run_arithmetic_columns)

# C3 on the kind of model its paper result comes from (GPT-3 on WikiSQL, a causal LM writing answers): TinyGPT
# learning addition, LoRA on the lecture's W_q alone at r = 8 vs W_q, W_v at r = 4, 12,288 weights each.
TARGET_SETTINGS = {"LoRA (q) r=8": Spec("lora_attention", ["q"], r=8, alpha=16),
                   "LoRA (q,v) r=4": Spec("lora_attention", ["q", "v"], r=4, alpha=8)}

experiment(
    "lora_targets_tinygpt", claim="C3",
    question="On a causal LM learning to write answers (TinyGPT, two-digit addition), at an equal budget, is adapting "
             "W_q and W_v at r = 4 better than W_q alone at r = 8?",
    paper="LoRA (Hu et al. 2021) Table 5: GPT-3 WikiSQL 73.7 (W_q, W_v, r = 4) vs 70.4 (W_q, r = 8), 18 M parameters "
          "each; lecture slide 'Which Weight Matrices?'",
    metric="held-out answer loss (two-digit addition)", higher_is_better=False,
    sizes=with_settings(TARGET_SETTINGS, ARITHMETIC_SIZES),
    compare=[better("LoRA (q,v) r=4", "LoRA (q) r=8")], prepare=arithmetic_prepare)(run_arithmetic)

# C4 where the lower layers must change: TinyGPT learning addition (on MiniLM's topic task the last block alone
# recovers nearly all of full fine-tuning, adapters_vs_top_layer_head_only). Houlsby et al. Fig. 1: adapters beat
# top-layer tuning even with fewer trained weights; here 2 % against the last block's 17 %.
HOULSBY_SETTINGS = {"full FT": FULL, "adapter b=16": adapter(16), "top-layer (last block)": TOP_LAYER}

experiment(
    "adapters_vs_top_layer_tinygpt", claim="C4",
    question="On a task whose lower layers must change (TinyGPT learning two-digit addition), do adapters match full "
             "fine-tuning with a few % of the weights, and beat tuning only the top layer, which trains far more?",
    paper="Houlsby et al. 2019 Table 1 and Fig. 1: BERT-large GLUE 80.0 (adapters, 3.6 % per task) vs 80.4 (full FT); "
          "top-layer tuning falls behind adapters, even with more trained parameters; lecture slide 'Adapter Performance on Finetuning BERT'",
    metric="held-out answer loss (two-digit addition)", higher_is_better=False,
    sizes=with_settings(HOULSBY_SETTINGS, ARITHMETIC_SIZES),
    compare=[parity("adapter b=16", "full FT", **ANSWER_LOSS_MARGIN), better("adapter b=16", "top-layer (last block)"),
             fraction("adapter b=16", 5.0)], prepare=arithmetic_prepare)(run_arithmetic)

# ---------------------------------------------------------------- C7: a new domain (DoRA)
# On the kind of task DoRA's paper tunes for (a causal LM adapting to text it did not see in pretraining):
# TinyGPT, pretrained on Python documentation, learns legal English (GNU licenses) and is tested on the GPL-3.

DORA_SETTINGS = {f"{name} r={r}": Spec(name.lower(), r=r, alpha=2 * r) for r in (1, 8) for name in ("LoRA", "DoRA")}
DOMAIN_SIZES = {"smoke": {"steps": 2, "eval_every": 1, "test_chars": 1500},
                "class": {"steps": 80, "eval_every": 40},
                "full": {"steps": 240, "eval_every": 40}}   # about 2.6 epochs of the 23k training tokens

experiment(
    "dora_vs_lora_tinygpt", claim="C7",
    question="On a causal LM adapting to a new domain (TinyGPT learning legal English), is DoRA at least as good as "
             "LoRA at the same rank, with the largest gain at a low rank?",
    paper="DoRA (Liu et al. 2024) Table 1 and Fig. 5: commonsense reasoning, LLaMA-7B, DoRA above LoRA at every rank, "
          "most at r = 4 (+22.4 points) vs r = 32 (+3.7); lecture slides 'DoRA Commonsense Reasoning Results', 'DoRA Ablations'",
    metric="test perplexity on the GPL-3 (held out)", higher_is_better=False,
    sizes=with_settings(DORA_SETTINGS, DOMAIN_SIZES),
    compare=[better("DoRA r=1", "LoRA r=1"), parity("DoRA r=8", "LoRA r=8", **PERPLEXITY_MARGIN)],
    prepare=domain_prepare)(run_domain)

experiment(   # the control of C7 on TinyGPT: DoRA's magnitude vector adds one weight per output row
    "dora_vs_lora_tinygpt_budget", claim="C7",
    question="Control: is DoRA's gain at r = 1 more than its extra weights (the magnitude vector)? DoRA r = 1 against "
             "LoRA r = 2, which trains more weights.",
    paper="DoRA (Liu et al. 2024) §5: DoRA adds only the magnitude vector to LoRA's weights (+0.01 % of LLaMA-7B); "
          "lecture slides 'DoRA Commonsense Reasoning Results', 'DoRA Ablations'",
    metric="test perplexity on the GPL-3 (held out)", higher_is_better=False,
    sizes=with_settings({"DoRA r=1": DORA_SETTINGS["DoRA r=1"], "LoRA r=2": Spec("lora", r=2, alpha=4)},
                        DOMAIN_SIZES, lr_from="dora_vs_lora_tinygpt"),
    compare=[better("DoRA r=1", "LoRA r=2")], prepare=domain_prepare)(run_domain)

experiment(   # the second control: the sweep gave LoRA r = 1 1e-2, next to 3e-3 on validation (72.4 vs 74.3)
    "dora_vs_lora_tinygpt_same_lr", claim="C7",
    question="Control: at one shared rate (3e-3, the rate the sweep chose at r = 8 and for LoRA r = 2), is DoRA still "
             "ahead of LoRA at r = 1?",
    paper="DoRA (Liu et al. 2024) §5.1: DoRA reuses LoRA's hyperparameters; lecture slides 'DoRA Commonsense Reasoning Results', 'DoRA Ablations'",
    metric="test perplexity on the GPL-3 (held out)", higher_is_better=False,
    sizes=with_settings({s: DORA_SETTINGS[s] for s in ("LoRA r=1", "DoRA r=1")}, DOMAIN_SIZES, lr_fixed=3e-3),
    compare=[better("DoRA r=1", "LoRA r=1")], prepare=domain_prepare)(run_domain)

# ---------------------------------------------------------------- C10: merged tasks (Multi-SBoRA)

MERGE_SIZES = {"smoke": {"n_train": 16, "n_test": 8, "steps": 2, "eval_every": 1},
               "class": {"n_train": 2000, "n_test": 200, "steps": 80, "eval_every": 40},
               "full": {"n_train": 2000, "n_test": 200, "steps": 200, "eval_every": 50}}

experiment(
    "multi_sbora_vs_lora_sum", claim="C10",
    question="When two tasks' adapters are merged into one model, does Multi-SBoRA (disjoint columns per task) "
             "interfere less than summing LoRA adapters at an equal budget?",
    paper="SBoRA (Po et al. 2024) §3.3 (the idea, no measured table): each task updates its own disjoint columns, "
          "so merged tasks do not overwrite each other; lecture slide 'Multi-SBoRA: Diffusion Model based Text-to-Image Generation'",
    metric="interference: held-out answer-loss increase after merging, mean of the two tasks", higher_is_better=False,
    sizes={size: {**cfg, "lr": 1e-2} for size, cfg in MERGE_SIZES.items()},
    compare=[better("Multi-SBoRA (merged)", "LoRA adapters summed")])(run_random_columns)

experiment(   # each task's columns where its own inputs are strong (merging.TASK_FEATURE_KINDS)
    "multi_sbora_task_features", claim="C10",
    question="When two tasks' adapters are merged, does Multi-SBoRA with each task's columns where its own inputs are "
             "strong and the other task's weak interfere less than summed LoRA adapters at an equal budget?",
    paper="SBoRA (Po et al. 2024) §3.3 and the lecture's summary (the idea, no measured table): each task updates its "
          "own region, as distinct functions sit in distinct brain regions, so merged tasks interfere less; lecture "
          "slide 'Summary of SBoRA'",
    metric="interference: held-out answer-loss increase after merging, mean of the two tasks", higher_is_better=False,
    sizes={size: {**cfg, **({"lr_sweep": "run"} if size == "full" else {})} for size, cfg in MERGE_SIZES.items()},
    compare=[better("Multi-SBoRA, task-feature columns (merged)", "LoRA adapters summed")],
    prepare=merge_prepare)(run_task_features)

experiment(   # the control of C10's task-feature design: each kind's swept rate gives SBoRA-FA 3x LoRA's update size
    "multi_sbora_task_features_same_lr", claim="C10",
    question="Control: at one shared rate (3e-3, the summed LoRA adapters' own choice), does Multi-SBoRA with "
             "task-feature columns interfere less than summed LoRA adapters at an equal budget?",
    paper="SBoRA (Po et al. 2024) §3.3 and the lecture's summary (the idea, no measured table): each task updates its "
          "own region, so merged tasks interfere less; lecture slide 'Summary of SBoRA'",
    metric="interference: held-out answer-loss increase after merging, mean of the two tasks", higher_is_better=False,
    sizes={size: {**cfg, "lr_fixed": 3e-3} for size, cfg in MERGE_SIZES.items()},
    compare=[better("Multi-SBoRA, task-feature columns (merged)", "LoRA adapters summed")],
    prepare=merge_prepare)(run_task_features)
