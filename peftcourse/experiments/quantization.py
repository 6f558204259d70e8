"""The 4-bit runners (C5): real pretrained weights rounded to each 4-bit format and back, then the model measured.

- MiniLM-L6 (run_formats): how far the model's sentence embeddings move. The seed picks the sentences.
- SmolLM2-135M-Instruct (run_formats_smollm2): the perplexity of the quantized language model on held-out
  text, beside the fp32 model. The seed picks the text windows (disjoint between seeds).

No training in either: the weights are only rounded. One format at a time, every linear layer's weight is
rounded and written over the layer (round_trip_in_place), so memory stays at one model plus one layer.
"""
import math
import os
import random

import torch

from .. import data, models, pretrain, quant

FORMAT_SETTINGS = {"int4": ("int4", False), "FP4": ("fp4", False), "NF4": ("nf4", False), "NF4 + DQ": ("nf4", True)}
SMOLLM2_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


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


@torch.no_grad()
def round_trip_in_place(linears, original, fmt, double_quant, blocksize):
    """Every layer's original weight rounded to `fmt` and back, written over the layer's weight, one layer at a
    time. linears: {name: nn.Linear}; original(name) -> that layer's full-precision weight. fmt None writes the
    original weights back. Returns (relative RMS weight error over all layers, constants' bits per weight)."""
    sq_err = norm = stored_bits = n = 0.0
    for name, layer in linears.items():
        w = original(name)
        if fmt is None:
            w_hat = w
        else:
            q, w_hat = round_trip(w, fmt, double_quant, blocksize)
            sq_err += float((w_hat - w).pow(2).sum())
            stored_bits += q.overhead_bits_per_param() * w.numel()
        norm += float(w.pow(2).sum())
        n += w.numel()
        layer.weight.copy_(w_hat)
    return (sq_err / norm) ** 0.5, stored_bits / n


def run_formats(config, seed):
    """Each format's embedding error on config["n_sentences"] sentences, and (facts, the same for every seed)
    its relative weight error and the bits per weight its constants take."""
    model, tok = models.load_minilm()
    train_all, test = data.doc_topics(n_test=400, seed=0)
    sentences = [ex["text"] for ex in random.Random(seed).sample(train_all + test, config["n_sentences"])]
    reference = embed(model, tok, sentences)
    linears = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    original = {n: m.weight.detach().clone() for n, m in linears.items()}
    metric, errors, overhead = {}, {}, {}
    try:
        for setting, (fmt, dq) in FORMAT_SETTINGS.items():
            error, bits = round_trip_in_place(linears, original.__getitem__, fmt, dq, config["blocksize"])
            cos = torch.nn.functional.cosine_similarity(embed(model, tok, sentences), reference, dim=-1)
            metric[setting] = float((1 - cos).mean())
            errors[setting], overhead[setting] = round(error, 5), round(bits, 4)
    finally:
        round_trip_in_place(linears, original.__getitem__, None, False, config["blocksize"])
    return {"metric": metric, "facts": {"weight_error": errors, "constant_bits_per_weight": overhead}}


# ---------------------------------------------------------------- SmolLM2: perplexity of the quantized model

def decoder_linears(model, n_layers=None):
    """{name: nn.Linear} of the seven projections (SMOLLM2_LINEARS) of the first n_layers decoder layers (None:
    all): the matrices QLoRA stores in 4 bits. The tied embedding (which is also the output layer) and the
    RMSNorm weights are not among them: they stay in full precision, as in QLoRA."""
    layers = model.model.layers if n_layers is None else model.model.layers[:n_layers]
    return {f"model.layers.{i}.{part}.{proj}": getattr(getattr(layer, part), proj)
            for i, layer in enumerate(layers)
            for part, projs in (("self_attn", SMOLLM2_LINEARS[:4]), ("mlp", SMOLLM2_LINEARS[4:]))
            for proj in projs}


def saved_weights(model):
    """name -> that layer's weight as saved in the model's folder (model.safetensors), read one tensor at a time:
    the full-precision original of every format, without a second copy of the model in memory."""
    from safetensors import safe_open
    path = os.path.join(model.name_or_path, "model.safetensors")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: the original weights are read from the folder the model was "
                                "loaded from (models.load_smollm2())")

    def read(name):
        with safe_open(path, framework="pt") as f:   # opened per tensor: its pages are released after each read
            return f.get_tensor(name + ".weight").float()
    return read


def held_out_windows(tokenizer, window, n_windows, seed):
    """(n_windows, window) token ids from data/corpus/pydocs_val.txt, different text for every seed.

    The documents, each followed by <|endoftext|> (SmolLM2's document separator), are cut into consecutive
    windows of `window` tokens; one fixed shuffle orders them, and seed s takes the s-th group of n_windows,
    so no two seeds score the same text."""
    if "<|endoftext|>" not in tokenizer.get_vocab():
        raise ValueError("the tokenizer has no <|endoftext|> token to separate the documents (SmolLM2's and "
                         "TinyGPT's both have one)")
    sep = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    ids = [t for doc in tokenizer(pretrain.read_corpus("val"), verbose=False)["input_ids"] for t in doc + [sep]]
    blocks = torch.tensor(ids[: len(ids) // window * window]).view(-1, window)
    if (seed + 1) * n_windows > len(blocks):
        raise ValueError(f"the held-out text holds {len(blocks)} windows of {window} tokens: seed {seed} would need "
                         f"{(seed + 1) * n_windows}; use a seed below {len(blocks) // n_windows}")
    order = torch.randperm(len(blocks), generator=torch.Generator().manual_seed(0))
    return blocks[order[seed * n_windows:(seed + 1) * n_windows]]


def perplexity(model, windows):
    """exp(mean next-token cross-entropy) over the windows, one window per forward pass (memory: one window's
    logits); every window scores the same number of tokens, so the mean over windows is the mean over tokens."""
    return math.exp(data.mean_loss(model, windows, batch_size=1))


def smollm2_formats(model, windows, blocksize=64, n_layers=None):
    """The fp32 model's perplexity on the windows, then each format's (FORMAT_SETTINGS), every decoder linear
    layer rounded in place; the fp32 weights are written back at the end. Returns {"metric": {setting:
    perplexity}, the formats first, then "fp32"; "facts": {"weight_error", "constant_bits_per_weight",
    "quantized_weights", "full_precision_weights"}}."""
    linears, original = decoder_linears(model, n_layers), saved_weights(model)
    fp32, metric, errors, overhead = perplexity(model, windows), {}, {}, {}
    try:
        for setting, (fmt, dq) in FORMAT_SETTINGS.items():
            error, bits = round_trip_in_place(linears, original, fmt, dq, blocksize)
            metric[setting] = perplexity(model, windows)
            errors[setting], overhead[setting] = round(error, 5), round(bits, 4)
    finally:
        round_trip_in_place(linears, original, None, False, blocksize)
    metric["fp32"] = fp32   # listed after the formats, which keep the order (and colours) of four_bit_formats
    n_quantized = sum(layer.weight.numel() for layer in linears.values())
    n_total = sum(p.numel() for p in model.parameters())   # the tied embedding counted once
    facts = {"weight_error": errors, "constant_bits_per_weight": overhead, "quantized_weights": n_quantized,
             "full_precision_weights": n_total - n_quantized}
    return {"metric": metric, "facts": facts}


def run_formats_smollm2(config, seed):
    """SmolLM2's perplexity on this seed's held-out windows in fp32 and in each 4-bit format (config: window,
    n_windows, blocksize, n_layers: the decoder layers quantized, null for all 30)."""
    model, tok = models.load_smollm2()
    windows = held_out_windows(tok, config["window"], config["n_windows"], seed)
    return smollm2_formats(model, windows, config["blocksize"], config["n_layers"])
