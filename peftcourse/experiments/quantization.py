"""The 4-bit runner (C5): real pretrained weights (MiniLM-L6's linear layers) rounded to each 4-bit format and
back, measured by how far the model's sentence embeddings move. No training: the seed only picks the sentences.
"""
import random

import torch

from .. import data, models, quant

FORMAT_SETTINGS = {"int4": ("int4", False), "FP4": ("fp4", False), "NF4": ("nf4", False), "NF4 + DQ": ("nf4", True)}


def embed(model, tok, texts):
    """Mean-pooled sentence embeddings of MiniLM (how all-MiniLM-L6-v2 is used), without gradients."""
    with torch.no_grad():
        enc = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1)


def round_trip(w, fmt, double_quant, blocksize):
    """w quantized to 4 bits in blocks and back (the weights QLoRA's forward pass computes with)."""
    q = (quant.quantize_absmax(w, 4, blocksize) if fmt == "int4" else
         quant.quantize_4bit(w, quant.nf4_code() if fmt == "nf4" else quant.fp4_code(), blocksize, double_quant))
    return q, q.dequantize(torch.float32)


def run_formats(config, seed):
    """Each format's embedding error on config["n_sentences"] sentences, and (facts, the same for every seed)
    its relative weight error and the bits per weight its constants take."""
    model, tok = models.load_minilm()
    train_all, test = data.doc_topics(n_test=400, seed=0)
    sentences = [ex["text"] for ex in random.Random(seed).sample(train_all + test, config["n_sentences"])]
    reference = embed(model, tok, sentences)
    weights = {n: m.weight for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    original = {n: w.detach().clone() for n, w in weights.items()}
    metric, errors, overhead = {}, {}, {}
    try:
        for setting, (fmt, dq) in FORMAT_SETTINGS.items():
            sq_err = stored_bits = 0.0
            for n, w in weights.items():
                q, w_hat = round_trip(original[n], fmt, dq, config["blocksize"])
                sq_err += float((w_hat - original[n]).pow(2).sum())
                stored_bits += q.overhead_bits_per_param() * w.numel()
                with torch.no_grad():
                    w.copy_(w_hat)
            cos = torch.nn.functional.cosine_similarity(embed(model, tok, sentences), reference, dim=-1)
            metric[setting] = float((1 - cos).mean())
            norm = sum(float(w.pow(2).sum()) for w in original.values())
            errors[setting] = round((sq_err / norm) ** 0.5, 5)
            overhead[setting] = round(stored_bits / sum(w.numel() for w in original.values()), 4)
    finally:
        with torch.no_grad():
            for n, w in weights.items():
                w.copy_(original[n])
    return {"metric": metric, "facts": {"weight_error": errors, "constant_bits_per_weight": overhead}}
