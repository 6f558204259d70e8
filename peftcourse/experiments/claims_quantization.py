"""The 4-bit claim (C5) registered on MiniLM-L6's pretrained weights (quantization.run_formats)."""
from .quantization import run_formats
from .registry import experiment
from .verdict import better, parity

experiment(
    "four_bit_formats", claim="C5",
    question="On real pretrained weights (MiniLM-L6's linear layers), does NF4 keep the model closer to its "
             "full-precision self than int4 and FP4, and does double quantization cost (almost) nothing?",
    paper="QLoRA (Dettmers et al. 2023) §3 and Table 2 / Fig. 3: NF4 beats FP4 and int4 (perplexity, zero-shot "
          "accuracy); double quantization cuts the constants from 0.5 to 0.127 bits per weight at no loss; "
          "lecture slides 'NormalFloat', 'Double quantization'",
    metric="embedding error: 1 − cosine(4-bit, full-precision sentence embedding), mean over sentences",
    higher_is_better=False,
    sizes={"smoke": {"n_sentences": 8, "blocksize": 64}, "class": {"n_sentences": 128, "blocksize": 64},
           "full": {"n_sentences": 256, "blocksize": 64}},
    compare=[better("NF4", "FP4"), better("NF4", "int4"), parity("NF4 + DQ", "NF4", margin=0.002, why=(
        "QLoRA §3: double quantization saves 0.37 bits per weight without degrading performance: 0.002 of "
        "(1 - cosine) is under a tenth of NF4's own embedding error here (0.026)"))])(run_formats)
