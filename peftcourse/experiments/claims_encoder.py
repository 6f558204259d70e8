"""The encoder claims (C1-C4, C6, C7, C9) registered on MiniLM-L6 (minilm.run_minilm), in the order they were
added: each claim's first design, then its controls (a question starting "Control") and the designs in the
paper's setting (BERT's pooler trained, as the papers' RoBERTa head trains its dense layer, for PAPER_LENGTH).
"""
from .minilm import SWEEP_SPEC, minilm_experiment
from .registry import FULL, TOP_LAYER, Spec, adapter, pooled
from .verdict import better, fraction, parity


def lora(targets, r, method="lora"):
    return Spec(method, targets, r=r, alpha=8)   # α fixed at 8 for every r (LoRA §4.1)


POOLED_ADAPTER, TOP_LAYER_LABEL = "adapter b=64 + pooler", "top-layer (last block + head)"
# C4 with the pooler trained (top-layer tuning trains it too)
HOULSBY_POOLED = {"full FT": FULL, POOLED_ADAPTER: pooled(adapter(64)), TOP_LAYER_LABEL: TOP_LAYER}
# Each parity margin with the sentence from the paper that justifies it (declared with the designs; the values
# are those they were registered with). One sentence of MiniLM's 400-sentence test set is 0.25 points.
C1_MARGIN = dict(margin=0.02, why="LoRA Table 2 (RoBERTa-base) puts LoRA within 1.1 points of full fine-tuning on "
                                  "seven of eight GLUE tasks: 2 points of accuracy is that gap with room for a small "
                                  "test set")
C2_MARGIN = dict(margin=0.02, why="LoRA Table 6: on W_q, W_v, r = 1 and r = 64 differ by at most 0.5 points on "
                                  "WikiSQL and MultiNLI: 2 points of accuracy, C1's allowance")
C4_MARGIN = dict(margin=0.02, why="Houlsby et al. Table 1: adapters 80.0 vs full fine-tuning 80.4 on GLUE, 0.4 points "
                                  "apart on average: 2 points of accuracy, C1's allowance")
C6_MARGIN = dict(margin=0.02, why="QLoRA Table 3 and Fig. 3: 4-bit NF4 + DQ runs within a few tenths of a point of "
                                  "16-bit LoRA on GLUE and MMLU: 2 points of accuracy, C1's allowance")
C7_MARGIN = dict(margin=0.02, why="DoRA Fig. 5: the gain over LoRA falls from 22.4 points at r = 4 to 3.7 at r = 32; "
                                  "at r = 8 on an 8-label task, level means within 2 points of accuracy, C1's allowance")
C9_MARGIN = dict(margin=0.02, why="SBoRA Tables 2-3: SBoRA-FA stays within about a point of LoRA at the same rank: "
                                  "2 points of accuracy, C1's allowance")

HOULSBY_COMPARE = [parity(POOLED_ADAPTER, "full FT", **C4_MARGIN), better(POOLED_ADAPTER, TOP_LAYER_LABEL),
                   fraction(POOLED_ADAPTER, 5.0)]   # Houlsby's claim: near full FT, ahead of top-layer, a few %
PAPER_LENGTH = {"steps": 192, "eval_every": 64}   # about three epochs (LoRA Appendix D and Houlsby et al. §3.1 train
                                                  # for several); the full size's 64 steps are about one


QV = ["query", "value"]
minilm_experiment(
    "lora_vs_full_ft", claim="C1",
    question="Does LoRA on W_q, W_v match full fine-tuning while training well under 1 % of the weights?",
    paper="LoRA (Hu et al. 2021) Table 2: RoBERTa-large GLUE average 89.0 (LoRA, 0.8 M) vs 88.9 (full FT, 355 M); "
          "lecture slide 'LoRA Performance Parity with Fully Finetuned LLMs'",
    settings={"full FT": FULL, "LoRA (q,v) r=8": lora(QV, 8)},
    compare=[parity("LoRA (q,v) r=8", "full FT", **C1_MARGIN), fraction("LoRA (q,v) r=8", 1.0)])

minilm_experiment(   # the control of C1: is LoRA's gap at 64 steps a matter of training length?
    "lora_vs_full_ft_long", claim="C1",
    question="Control: with three times the steps (same learning rates), does LoRA close its gap to full fine-tuning?",
    paper="LoRA (Hu et al. 2021) Table 2 and Appendix D: RoBERTa runs train 10-80 epochs; the 64-step run of "
          "lora_vs_full_ft is about one epoch; lecture slide 'LoRA Performance Parity with Fully Finetuned LLMs'",
    settings={"full FT": FULL, "LoRA (q,v) r=8": lora(QV, 8)}, full=PAPER_LENGTH,
    lr_from="lora_vs_full_ft",
    compare=[parity("LoRA (q,v) r=8", "full FT", **C1_MARGIN), fraction("LoRA (q,v) r=8", 1.0)])

minilm_experiment(   # the second control of C1: is it the frozen pooler (LoRA's RoBERTa head trains its dense layer)?
    "lora_vs_full_ft_pooler", claim="C1",
    question="Control: when LoRA also trains the pooler (BERT's head: dense + tanh, as the paper's RoBERTa head), "
             "does it match full fine-tuning at 64 steps?",
    paper="LoRA (Hu et al. 2021) Table 2 trains RoBERTa's classification head (dense + output) in full; "
          "BertForSequenceClassification's equivalent is pooler + classifier; lecture slide 'LoRA Performance Parity with Fully Finetuned LLMs'",
    settings={"full FT": FULL, "LoRA (q,v) r=8 + pooler": pooled(lora(QV, 8))}, lr_from="lora_vs_full_ft",
    compare=[parity("LoRA (q,v) r=8 + pooler", "full FT", **C1_MARGIN), fraction("LoRA (q,v) r=8 + pooler", 1.0)])

minilm_experiment(   # both controls of C1 together: the paper's head (pooler trained) and about three epochs
    "lora_vs_full_ft_pooler_long", claim="C1",
    question="With the pooler trained (as the paper's RoBERTa head) and three times the steps, does LoRA on W_q, W_v "
             "match full fine-tuning while training under 1 % of the weights?",
    paper="LoRA (Hu et al. 2021) Table 2: RoBERTa-large GLUE average 89.0 (LoRA, 0.8 M) vs 88.9 (full FT, 355 M), "
          "head trained in full, 10-80 epochs (Appendix D); lecture slide 'LoRA Performance Parity with Fully Finetuned LLMs'",
    settings={"full FT": FULL, "LoRA (q,v) r=8 + pooler": pooled(lora(QV, 8))},
    full=PAPER_LENGTH, lr_from="lora_vs_full_ft",
    compare=[parity("LoRA (q,v) r=8 + pooler", "full FT", **C1_MARGIN), fraction("LoRA (q,v) r=8 + pooler", 1.0)])

minilm_experiment(   # the control of C2: the same with the pooler trained
    "lora_rank_pooler", claim="C2",
    question="Control: with the pooler trained too, does r = 1 on W_q, W_v do as well as r = 64?",
    paper="LoRA (Hu et al. 2021) Table 6: GPT-3 WikiSQL 73.4 (r = 1) vs 73.5 (r = 64); lecture slide 'How Low-Rank can LoRA go?'",
    settings={"LoRA (q,v) r=1 + pooler": pooled(lora(QV, 1)),
              "LoRA (q,v) r=64 + pooler": pooled(lora(QV, 64))}, lr_from="lora_rank",
    compare=[parity("LoRA (q,v) r=1 + pooler", "LoRA (q,v) r=64 + pooler", **C2_MARGIN)])

minilm_experiment(
    "lora_rank", claim="C2",
    question="Is a very low rank enough: does r = 1 on W_q, W_v do as well as r = 64?",
    paper="LoRA (Hu et al. 2021) Table 6: GPT-3 WikiSQL 73.4 (r = 1) vs 73.5 (r = 64) on (W_q, W_v); "
          "lecture slide 'How Low-Rank can LoRA go?'",
    settings={"LoRA (q,v) r=1": lora(QV, 1), "LoRA (q,v) r=64": lora(QV, 64)},
    compare=[parity("LoRA (q,v) r=1", "LoRA (q,v) r=64", **C2_MARGIN)])

minilm_experiment(
    "lora_targets", claim="C3",
    question="At an equal parameter budget, is adapting W_q and W_v better than adapting W_q alone?",
    paper="LoRA (Hu et al. 2021) Table 5: WikiSQL 73.7 (W_q, W_v, r = 4) vs 70.4 (W_q, r = 8), 18 M parameters each; "
          "lecture slide 'Which Weight Matrices?'",
    settings={"LoRA (q) r=8": lora(["query"], 8), "LoRA (q,v) r=4": lora(QV, 4)},
    compare=[better("LoRA (q,v) r=4", "LoRA (q) r=8")])

minilm_experiment(
    "adapters_vs_top_layer", claim="C4",
    question="Do bottleneck adapters match full fine-tuning with a few % of the weights, and beat tuning only the top layer?",
    paper="Houlsby et al. 2019 Table 1 and Fig. 1: BERT-large GLUE 80.0 (adapters, 3.6 % per task) vs 80.4 (full FT); "
          "top-layer tuning falls behind at a similar budget; lecture slide 'Adapter Performance on Finetuning BERT'",
    settings={"full FT": FULL, "adapter b=64": adapter(64),
              "top-layer (last block + head)": TOP_LAYER},
    compare=[parity("adapter b=64", "full FT", **C4_MARGIN), better("adapter b=64", "top-layer (last block + head)"),
             fraction("adapter b=64", 5.0)])

minilm_experiment(   # the control of C3: the same budget comparison with the paper's head (pooler trained)
    "lora_targets_pooler", claim="C3",
    question="Control: with the pooler trained too (the paper's RoBERTa head), is adapting W_q and W_v at r = 4 better "
             "than W_q alone at r = 8?",
    paper="LoRA (Hu et al. 2021) Table 5: WikiSQL 73.7 (W_q, W_v, r = 4) vs 70.4 (W_q, r = 8); lecture slide "
          "'Which Weight Matrices?'",
    settings={"LoRA (q) r=8 + pooler": pooled(lora(["query"], 8)),
              "LoRA (q,v) r=4 + pooler": pooled(lora(QV, 4))}, lr_from="lora_targets",
    compare=[better("LoRA (q,v) r=4 + pooler", "LoRA (q) r=8 + pooler")])

minilm_experiment(   # the control of C4: adapters also train the pooler, as top-layer tuning does
    "adapters_vs_top_layer_pooler", claim="C4",
    question="Control: when the adapters' model also trains the pooler (top-layer tuning trains it too), do adapters "
             "match full fine-tuning and beat top-layer tuning?",
    paper="Houlsby et al. 2019 Table 1 and Fig. 1: BERT-large GLUE 80.0 (adapters, 3.6 % per task) vs 80.4 (full FT); "
          "top-layer tuning falls behind at a similar budget; lecture slide 'Adapter Performance on Finetuning BERT'",
    settings=HOULSBY_POOLED, lr_from="adapters_vs_top_layer", compare=HOULSBY_COMPARE)

minilm_experiment(
    "dora_vs_lora", claim="C7",
    question="Is DoRA at least as good as LoRA at the same rank, with the largest gain at a low rank?",
    paper="DoRA (Liu et al. 2024) Table 1 and Fig. 5: commonsense reasoning, LLaMA-7B, DoRA above LoRA at every rank, "
          "most at r = 4 (+22.4 points) vs r = 32 (+3.7); lecture slides 'DoRA Commonsense Reasoning Results', 'DoRA Ablations'",
    settings={"LoRA (q,v) r=1": lora(QV, 1), "DoRA (q,v) r=1": lora(QV, 1, "dora"),
              "LoRA (q,v) r=8": lora(QV, 8), "DoRA (q,v) r=8": lora(QV, 8, "dora")},
    compare=[better("DoRA (q,v) r=1", "LoRA (q,v) r=1"), parity("DoRA (q,v) r=8", "LoRA (q,v) r=8", **C7_MARGIN)])

minilm_experiment(   # the control of C7: the frozen pooler held C1 and C2 back; does it hide DoRA's low-rank gain?
    "dora_vs_lora_pooler", claim="C7",
    question="Control: with the pooler trained too (the paper's RoBERTa head), is DoRA ahead of LoRA at r = 1?",
    paper="DoRA (Liu et al. 2024) Table 1 and Fig. 5: DoRA above LoRA at every rank, most at low rank; "
          "lecture slides 'DoRA Commonsense Reasoning Results', 'DoRA Ablations'",
    settings={"LoRA (q,v) r=1 + pooler": pooled(lora(QV, 1)),
              "DoRA (q,v) r=1 + pooler": pooled(lora(QV, 1, "dora"))}, lr_from="dora_vs_lora",
    compare=[better("DoRA (q,v) r=1 + pooler", "LoRA (q,v) r=1 + pooler")])

# The paper's setting for C2-C4 and C7, as C1's lora_vs_full_ft_pooler_long found it: the head's dense layer
# (BERT's pooler) trained, for PAPER_LENGTH.

minilm_experiment(
    "lora_rank_pooler_long", claim="C2",
    question="With the pooler trained (the paper's head) and three times the steps, does r = 1 on W_q, W_v do as "
             "well as r = 64?",
    paper="LoRA (Hu et al. 2021) Table 6: GPT-3 WikiSQL 73.4 (r = 1) vs 73.5 (r = 64) on (W_q, W_v); "
          "lecture slide 'How Low-Rank can LoRA go?'",
    settings={"LoRA (q,v) r=1 + pooler": pooled(lora(QV, 1)),
              "LoRA (q,v) r=64 + pooler": pooled(lora(QV, 64))},
    full=PAPER_LENGTH, lr_from="lora_rank",
    compare=[parity("LoRA (q,v) r=1 + pooler", "LoRA (q,v) r=64 + pooler", **C2_MARGIN)])

minilm_experiment(
    "lora_targets_pooler_long", claim="C3",
    question="With the pooler trained (the paper's head) and three times the steps, is adapting W_q and W_v at r = 4 "
             "better than W_q alone at r = 8 (the same budget)?",
    paper="LoRA (Hu et al. 2021) Table 5: WikiSQL 73.7 (W_q, W_v, r = 4) vs 70.4 (W_q, r = 8), 18 M parameters each; "
          "lecture slide 'Which Weight Matrices?'",
    settings={"LoRA (q) r=8 + pooler": pooled(lora(["query"], 8)),
              "LoRA (q,v) r=4 + pooler": pooled(lora(QV, 4))},
    full=PAPER_LENGTH, lr_from="lora_targets",
    compare=[better("LoRA (q,v) r=4 + pooler", "LoRA (q) r=8 + pooler")])

minilm_experiment(
    "adapters_vs_top_layer_pooler_long", claim="C4",
    question="With the pooler trained (as top-layer tuning trains it) and three times the steps, do adapters match "
             "full fine-tuning with a few % of the weights, and beat tuning only the top layer?",
    paper="Houlsby et al. 2019 Table 1 and Fig. 1: BERT-large GLUE 80.0 (adapters, 3.6 % per task) vs 80.4 (full FT), "
          "3-20 epochs; top-layer tuning falls behind at a similar budget; lecture slide 'Adapter Performance on Finetuning BERT'",
    settings=HOULSBY_POOLED, full=PAPER_LENGTH, lr_from="adapters_vs_top_layer", compare=HOULSBY_COMPARE)

minilm_experiment(   # top-layer tuning above trains 8.5 % of the weights, the adapters 3.2 %: Houlsby's Fig. 1
    "adapters_vs_top_layer_equal_budget", claim="C4",   # compares them at the same budget, so give both 8.5 %
    question="At top-layer tuning's budget (adapters with bottleneck 192 train about as many weights as the last "
             "block), in the paper's setting (pooler trained, three times the steps), do adapters beat tuning only "
             "the top layer, and match full fine-tuning?",
    paper="Houlsby et al. 2019 Fig. 1 and Fig. 3: at an equal number of trained weights adapters stay near full "
          "fine-tuning while tuning only the top layers falls behind; lecture slide 'Adapter Performance on Finetuning BERT'",
    settings={"full FT": FULL, "adapter b=192 + pooler": pooled(adapter(192)),
              "top-layer (last block + head)": TOP_LAYER},
    full=PAPER_LENGTH, lr_from="adapters_vs_top_layer",
    compare=[parity("adapter b=192 + pooler", "full FT", **C4_MARGIN),
             better("adapter b=192 + pooler", "top-layer (last block + head)")])

minilm_experiment(   # the control of C4's designs: how much is already in the frozen encoder's features?
    "adapters_vs_top_layer_head_only", claim="C4",
    question="Control: how close does the head alone (BERT's pooler and the classifier on the frozen encoder) come "
             "to full fine-tuning and to top-layer tuning, in the paper's setting (192 steps)?",
    paper="Houlsby et al. 2019 Fig. 1 and Fig. 3: on GLUE, tuning only the top layers falls behind adapters and full "
          "fine-tuning, because the lower layers must change too; lecture slide 'Adapter Performance on Finetuning BERT'",
    settings={"full FT": FULL, "top-layer (last block + head)": TOP_LAYER,
              "head only (pooler + classifier)": Spec("top", extra={"k": 0})},
    full=PAPER_LENGTH, lr_from="adapters_vs_top_layer",
    compare=[parity("head only (pooler + classifier)", "full FT", **C4_MARGIN)])

# C4 where the frozen encoder's top features do not answer the task: is a sentence as written, or are two
# neighbouring words swapped (CoLA-like; GLUE's CoLA is one of Houlsby's tasks)? 32 tokens, so that the swapped
# pair (it starts among the first 10 words) is kept.
WORD_ORDER = {"task": "word_order", "max_length": 32}
minilm_experiment(   # registered as a design; its full FT collapsed to the majority class on 4 of 5 seeds at the
    # swept rate (3e-4), so its parity is with a broken baseline: it counts as a control of what top-layer tuning misses
    "adapters_vs_top_layer_word_order", claim="C4",
    question="Control: on a task the encoder's top features do not answer (is the sentence as written, or are two "
             "neighbouring words swapped?), in the paper's setting (pooler trained, 192 steps), does top-layer tuning "
             "fall behind adapters, and do adapters match full fine-tuning at its swept rate?",
    paper="Houlsby et al. 2019 Table 1 and Fig. 1: BERT-large GLUE (CoLA, grammatical acceptability, among its tasks) "
          "80.0 (adapters, 3.6 % per task) vs 80.4 (full FT); top-layer tuning falls behind adapters, even with more "
          "trained parameters; lecture slide 'Adapter Performance on Finetuning BERT'",
    settings=HOULSBY_POOLED, full=PAPER_LENGTH, task=WORD_ORDER, compare=HOULSBY_COMPARE)

minilm_experiment(   # the control of the word-order runs: full FT at its sweep's next rate, which kept learning there
    "adapters_vs_top_layer_word_order_low_lr", claim="C4",
    question="Control: on the word-order task, with full fine-tuning at 1e-4 (its sweep's second-best rate, 0.010 lower "
             "on validation) instead of the swept 3e-4, at which it collapsed on 4 of 5 seeds, do adapters match it?",
    paper="Houlsby et al. 2019 Table 1: BERT-large GLUE 80.0 (adapters, 3.6 % per task) vs 80.4 (full FT), each "
          "with its own swept rate; lecture slide 'Adapter Performance on Finetuning BERT'",
    settings={"full FT": FULL, "adapter b=64 + pooler": pooled(adapter(64))},
    full=PAPER_LENGTH, task=WORD_ORDER, lr_from="adapters_vs_top_layer_word_order", lr_fixed={"full FT": 1e-4},
    compare=[parity("adapter b=64 + pooler", "full FT", **C4_MARGIN)])

minilm_experiment(
    "dora_vs_lora_pooler_long", claim="C7",
    question="With the pooler trained (the paper's head) and three times the steps, is DoRA ahead of LoRA at r = 1?",
    paper="DoRA (Liu et al. 2024) Table 1 and Fig. 5: commonsense reasoning, LLaMA-7B, DoRA above LoRA at every rank, "
          "most at low rank; lecture slides 'DoRA Commonsense Reasoning Results', 'DoRA Ablations'",
    settings={"LoRA (q,v) r=1 + pooler": pooled(lora(QV, 1)),
              "DoRA (q,v) r=1 + pooler": pooled(lora(QV, 1, "dora"))},
    full=PAPER_LENGTH, lr_from="dora_vs_lora",
    compare=[better("DoRA (q,v) r=1 + pooler", "LoRA (q,v) r=1 + pooler")])

minilm_experiment(
    "sbora_vs_lora_minilm", claim="C9",
    question="On a pretrained encoder in the paper's setting (pooler trained, three times the steps), does SBoRA-FA "
             "(A fixed to r standard-basis rows, only B trains) match LoRA at the same rank with about half the "
             "trainable weights?",
    paper="SBoRA (Po et al. 2024) Tables 2-3: commonsense and arithmetic reasoning on LLaMA, SBoRA-FA at the same "
          "rank as LoRA within about a point of it (sometimes above) with 40-50 % fewer trainable parameters; "
          "lecture slides 'SBoRA: Commonsense Reasoning Performance', 'SBoRA: Arithmetic Reasoning Performance'",
    settings={"LoRA (q,v) r=4 + pooler": pooled(lora(QV, 4)),
              "SBoRA-FA (q,v) r=4 + pooler": pooled(SWEEP_SPEC["SBoRA-FA"])},
    full=PAPER_LENGTH, lr_from="lora_targets",
    compare=[parity("SBoRA-FA (q,v) r=4 + pooler", "LoRA (q,v) r=4 + pooler", **C9_MARGIN)])

minilm_experiment(
    "qlora_vs_lora", claim="C6",
    question="Does LoRA on an NF4 + double-quantized base (QLoRA, from scratch) match LoRA on the full-precision base?",
    paper="QLoRA (Dettmers et al. 2023) Table 3 / Fig. 3: NF4 + DQ matches 16-bit LoRA and full fine-tuning "
          "(RoBERTa/T5 GLUE, LLaMA MMLU); lecture slide 'QLoRA' (Table 3)",
    settings={"LoRA (all linear) r=8": lora(["query", "key", "value", "dense"], 8),
              "QLoRA NF4+DQ (all linear) r=8": lora(["query", "key", "value", "dense"], 8, "qlora")},
    compare=[parity("QLoRA NF4+DQ (all linear) r=8", "LoRA (all linear) r=8", **C6_MARGIN)])
