"""Held-out bits per byte: a language model next to general-purpose compressors, on the same text.

    python data/compress_baseline.py                              # the course's model (peftcourse.models)
    python data/compress_baseline.py --model data/models/tinygpt_v2
    python data/compress_baseline.py --max-chars 60000            # a prefix of val, for all three

Compressors are conditioned on the training text, as a language model is: a compressor's held-out
cost is size(c(train + val)) - size(c(train)) bits per byte of val (xz -9 = lzma preset 9; bzip2 -9).
The model's: its total next-token cross-entropy over the val text / ln 2 / the val text's UTF-8 bytes.
Prints a JSON object.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))   # run from a checkout without installing the package


def main(argv=None):
    from peftcourse import models, pretrain
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="model folder or hub name (default: the course's model)")
    p.add_argument("--train", default=os.path.join(HERE, "corpus", "pydocs_train.txt"))
    p.add_argument("--val", default=os.path.join(HERE, "corpus", "pydocs_val.txt"))
    p.add_argument("--max-chars", type=int, default=None, help="use only this prefix of the val file (all measures)")
    a = p.parse_args(argv)
    with open(a.train, encoding="utf-8") as f:
        train_text = f.read()
    with open(a.val, encoding="utf-8") as f:
        val_text = f.read(a.max_chars)
    out = {"train": os.path.relpath(a.train), "val": os.path.relpath(a.val), "val_chars": len(val_text),
           "val_bytes": len(val_text.encode("utf-8"))}
    for method in pretrain.COMPRESSORS:
        out[f"{method}_bits_per_byte"] = round(pretrain.compressor_bits_per_byte(train_text, val_text, method), 4)
    model, tok = models.load_tinygpt(a.model)
    out["model"] = a.model or models.lm_source()
    out["model_bits_per_byte"] = round(pretrain.bits_per_byte(model, tok, val_text), 4)
    out["model_over_xz"] = round(out["model_bits_per_byte"] / out["xz_bits_per_byte"], 3)
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
