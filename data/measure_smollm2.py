"""SmolLM2-135M-Instruct's model-card figures: held-out bits per byte beside TinyGPT and xz, load time and
memory, a peft LoRA training step, and greedy answers to three fixed prompts.

    python -m peftcourse.models fetch-smollm2                  # once: the converted model this script loads
    python data/measure_smollm2.py                             # everything, on the whole of corpus/pydocs_val.txt
    python data/measure_smollm2.py --max-chars 100000          # a prefix of val, for all three measures
    python data/measure_smollm2.py --out data/smollm2_measures.json

Bits per byte as in compress_baseline.py (pretrain.bits_per_byte and pretrain.compressor_bits_per_byte, the same
val text for every measure). SmolLM2 reads 1,024-token windows that start every 768 tokens (each scored token
has at least 257 tokens of context; its 8,192-token context would cost far more on a CPU), with its own
document separator <|endoftext|> between documents. Prints a JSON object.
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))   # run from a checkout without installing the package

PROMPTS = ["What is the capital of France?",
           "Write a Python function that returns the square of a number.",
           "Explain in one sentence what fine-tuning a language model means."]


def rss_mib():
    import psutil
    return round(psutil.Process().memory_info().rss / 2**20)


def timed_load():
    """Load time from the converted folder (manifest check included) and resident memory after it."""
    from peftcourse import models
    t = time.perf_counter()
    model, tok = models.load_smollm2()
    return model, tok, {"load_s": round(time.perf_counter() - t, 2), "rss_after_load_mib": rss_mib()}


def samples(model, tok, max_new_tokens=48):
    """Greedy answers through the chat template (SmolLM2's system prompt is added by the template)."""
    import torch
    out = []
    for prompt in PROMPTS:
        ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)
        with torch.no_grad():
            gen = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
        out.append({"prompt": prompt, "answer": tok.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)})
    return out


def lora_step_time(model, tok, text, batch=4, seq_len=64, steps=7):
    """Seconds per AdamW step of peft LoRA (q_proj, v_proj, r=8) at batch x seq_len tokens: median of the
    steps after the first two."""
    import torch
    from peft import LoraConfig, get_peft_model
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                                             task_type="CAUSAL_LM"))
    model.train()
    ids = torch.tensor(tok(text[:20_000])["input_ids"][:batch * seq_len]).view(batch, seq_len)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t)
    trainable, total = model.get_nb_trainable_parameters()
    return {"lora_step_s": round(statistics.median(times[2:]), 3), "lora_batch": [batch, seq_len],
            "lora_trainable_params": trainable, "rss_after_lora_steps_mib": rss_mib()}


def bits(val_text, train_text, window, stride, batch_size):
    """SmolLM2's, TinyGPT's, xz's and bzip2's held-out bits per byte on the same text."""
    from peftcourse import models, pretrain
    out = {f"{m}_bits_per_byte": round(pretrain.compressor_bits_per_byte(train_text, val_text, m), 4)
           for m in pretrain.COMPRESSORS}
    tiny, tiny_tok = models.load_tinygpt(models.COURSE_LM_DIR)
    out["tinygpt_bits_per_byte"] = round(pretrain.bits_per_byte(tiny, tiny_tok, val_text), 4)
    model, tok = models.load_smollm2()
    t = time.perf_counter()
    out["smollm2_bits_per_byte"] = round(pretrain.bits_per_byte(
        model, tok, val_text, batch_size=batch_size, window=window, stride=stride,
        sep_id=tok.convert_tokens_to_ids("<|endoftext|>")), 4)
    out["smollm2_bits_s"] = round(time.perf_counter() - t)
    out["smollm2_window_stride"] = [window, stride]
    out["smollm2_over_xz"] = round(out["smollm2_bits_per_byte"] / out["xz_bits_per_byte"], 3)
    out["tinygpt_over_xz"] = round(out["tinygpt_bits_per_byte"] / out["xz_bits_per_byte"], 3)
    return out


def main(argv=None):
    import torch
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train", default=os.path.join(HERE, "corpus", "pydocs_train.txt"))
    p.add_argument("--val", default=os.path.join(HERE, "corpus", "pydocs_val.txt"))
    p.add_argument("--max-chars", type=int, default=None, help="use only this prefix of the val file (all measures)")
    p.add_argument("--window", type=int, default=1024)
    p.add_argument("--stride", type=int, default=768)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--skip-bits", action="store_true", help="only load, memory, LoRA step and samples (a minute)")
    p.add_argument("--out", default=None, help="also write the JSON object to this file")
    a = p.parse_args(argv)
    with open(a.train, encoding="utf-8") as f:
        train_text = f.read()
    with open(a.val, encoding="utf-8") as f:
        val_text = f.read(a.max_chars)
    out = {"val": os.path.relpath(a.val), "val_chars": len(val_text), "val_bytes": len(val_text.encode("utf-8")),
           "torch_threads": torch.get_num_threads()}
    model, tok, out["load"] = timed_load()
    out["samples"] = samples(model, tok)
    out["speed"] = lora_step_time(model, tok, val_text)
    del model
    if not a.skip_bits:
        out["bits"] = bits(val_text, train_text, a.window, a.stride, a.batch_size)
    text = json.dumps(out, indent=1, ensure_ascii=False)
    print(text)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return out


if __name__ == "__main__":
    main()
