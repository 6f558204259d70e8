"""How much memory does fine-tuning need? A calculator, and measurements to check it against.

Lecture: "Naively Fine-Tuning LLaMA-3-8B takes 128GB" (16 bytes per parameter) and
"How does QLoRA reduce memory to 14GB?" (4 GB 4-bit base + 8.5 bytes per trainable parameter).
The calculator counts weights, gradients and optimizer states; it does not count activations,
which grow with batch size and sequence length (that is what the measured numbers add).
"""
from dataclasses import dataclass, field

import torch

from . import validate

DTYPE_BYTES = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "int8": 1, "fp8": 1, "int4": 0.5, "nf4": 0.5, "fp4": 0.5}
# optimizer state bytes per trainable parameter: AdamW keeps two moments (m, v)
OPTIMIZER_BYTES = {"adamw": 8, "adam": 8, "adamw_8bit": 2, "paged_adamw_8bit": 2, "paged_adamw_32bit": 8,
                   "sgd": 0, "sgd_momentum": 4}


@dataclass
class Recipe:
    """Bytes per frozen base parameter and, itemised, per trainable parameter."""
    name: str
    base_bytes: float
    trainable_bytes: dict = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a string, got {type(self.name).__name__}")
        validate.number("base_bytes", self.base_bytes, 0)
        if not isinstance(self.trainable_bytes, dict):
            raise TypeError(f"trainable_bytes must be a {{item: bytes}} dict, got {type(self.trainable_bytes).__name__}")
        for item, b in self.trainable_bytes.items():
            validate.number(f"trainable_bytes[{item!r}]", b, 0)

    @property
    def bytes_per_trainable(self):
        return sum(self.trainable_bytes.values())


# The lecture's two worked examples, itemised exactly as the slides do.
LECTURE_FULL_FT = Recipe("full FT, fp16 weights + Adam (lecture)", base_bytes=0.0,
                         trainable_bytes={"weight (fp16)": 2, "gradient (fp16)": 2,
                                          "Adam: fp32 master copy + 2 moments": 12})
LECTURE_QLORA = Recipe("QLoRA (lecture)", base_bytes=0.5,
                       trainable_bytes={"weight (4-bit)": 0.5, "LoRA weight (bf16)": 2,
                                        "AdamW states": 2, "gradient (fp32)": 4})


def _check_choice(kind, value, table):
    return table[validate.choice(kind, value, sorted(table))]


def recipe(method, weight_dtype="fp32", trainable_dtype="fp32", optimizer="adamw", master_weights=None):
    """A Recipe from dtypes: method is 'full', 'lora' or 'qlora' (qlora stores the base in nf4).

    master_weights: keep an fp32 copy of 16-bit trainable weights (mixed precision); default: on
    when the trainable dtype is 16-bit.
    """
    validate.choice("method", method, ("full", "lora", "qlora"))
    if master_weights is not None:
        validate.flag("master_weights", master_weights)
    _check_choice("weight_dtype", weight_dtype, DTYPE_BYTES)        # checked even where the method ignores it
    _check_choice("trainable_dtype", trainable_dtype, DTYPE_BYTES)  # (full FT trains the weights; qlora: nf4 base)
    if method == "qlora":
        weight_dtype = "nf4"
    w = _check_choice("weight_dtype", weight_dtype, DTYPE_BYTES)
    t = _check_choice("trainable_dtype", trainable_dtype if method != "full" else weight_dtype, DTYPE_BYTES)
    opt = _check_choice("optimizer", optimizer, OPTIMIZER_BYTES)
    if master_weights is None:
        master_weights = t == 2
    items = {f"weight ({trainable_dtype if method != 'full' else weight_dtype})": t, "gradient": t,
             f"optimizer ({optimizer})": opt}
    if master_weights:
        items["fp32 master copy"] = 4
    return Recipe(f"{method}, base {weight_dtype}, {optimizer}", base_bytes=0.0 if method == "full" else w,
                  trainable_bytes=items)


def estimate(n_params, recipe, trainable=None):
    """Bytes needed for weights, gradients and optimizer state (no activations).

    n_params: parameters of the base model. trainable: number of trainable parameters, or a
    fraction in (0, 1] of n_params; default all of them (full fine-tuning).
    """
    validate.positive_number("n_params", n_params)
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a Recipe (e.g. memory.recipe('lora') or LECTURE_QLORA), got {type(recipe).__name__}")
    if trainable is None:
        n_trainable = n_params
    else:
        validate.positive_number("trainable (a count >= 1 or a fraction in (0, 1])", trainable)
        # a float up to 1 is a fraction of n_params; anything else a count (1 means one parameter only as an int)
        n_trainable = trainable * n_params if isinstance(trainable, float) and trainable <= 1 else trainable
        if not isinstance(trainable, float) and trainable < 1 or n_trainable > n_params:
            raise ValueError(f"trainable must be a count in [1, n_params={n_params:,}] or a fraction in (0, 1], "
                             f"got {trainable!r}")
    out = {"base weights": n_params * recipe.base_bytes}
    for item, b in recipe.trainable_bytes.items():
        out[item] = n_trainable * b
    out["total"] = sum(out.values())
    return out


def gb(n_bytes):
    """Bytes to GB (10^9, as the lecture counts)."""
    return validate.number("n_bytes", n_bytes, 0) / 1e9


def format_estimate(est, unit="GB"):
    scales = {"GB": 1e9, "MB": 1e6, "KB": 1e3, "B": 1}
    scale = scales[validate.choice("unit", unit, list(scales))]
    if not isinstance(est, dict) or not est:
        raise TypeError(f"est must be the dict estimate() returns, got {type(est).__name__}")
    width = max(len(k) for k in est)
    return "\n".join(f"{k:<{width}}  {v / scale:>10.3f} {unit}" for k, v in est.items())


def tensor_bytes(tensors):
    return sum(t.numel() * t.element_size() for t in tensors if torch.is_tensor(t))


def measure_state(model, optimizer=None):
    """Bytes actually held by weights, gradients and optimizer state tensors (after a training step)."""
    validate.module("model", model)
    if optimizer is not None and not hasattr(optimizer, "state"):
        raise TypeError(f"optimizer must be a torch optimizer or None, got {type(optimizer).__name__}")
    params = list(model.parameters())
    out = {"weights": tensor_bytes(params),
           "trainable weights": tensor_bytes(p for p in params if p.requires_grad),
           "gradients": tensor_bytes(p.grad for p in params if p.grad is not None)}
    if optimizer is not None:
        out["optimizer state"] = tensor_bytes(v for s in optimizer.state.values() for v in s.values()
                                              if torch.is_tensor(v) and v.dim() > 0)
    return out


def release_free_memory():
    """Collect garbage and hand freed heap memory back to the OS (glibc's malloc_trim), so that a
    following measurement starts from what is really in use rather than from a warm allocator pool."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, Windows): measurements are then upper bounds
        pass


def resident_bytes():
    """This process's resident memory in bytes, after release_free_memory(), in two parts: "own" (memory it
    allocated: tensors it made, Python objects, caches) and "mapped files" (pages of files mapped into it and
    read: the libraries, and a model.safetensors that from_pretrained maps instead of copying, whose weights
    are then file pages until dropped). The split is Linux's (/proc/self/smaps_rollup); elsewhere all is "own"."""
    import psutil

    release_free_memory()
    try:
        with open("/proc/self/smaps_rollup") as f:
            kb = {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f if ":" in line)
                  if k in ("Rss", "Anonymous")}
        return {"own": 1024 * kb["Anonymous"], "mapped files": 1024 * (kb["Rss"] - kb["Anonymous"])}
    except (OSError, KeyError, ValueError):
        return {"own": psutil.Process().memory_info().rss, "mapped files": 0}


def peak_rss_during(fn, interval=0.002):
    """Run fn(); return (its result, MB by which the process's resident memory rose at its peak).

    A sampling thread reads the resident set size (psutil) every `interval` seconds, so the
    number includes activations, temporary buffers and allocator overhead: everything the
    calculator leaves out. On CUDA use torch.cuda.max_memory_allocated instead.
    """
    import threading
    import psutil

    if not callable(fn):
        raise TypeError(f"fn must be a function to run and measure, got {type(fn).__name__}")
    validate.positive_number("interval", interval)

    release_free_memory()
    proc = psutil.Process()
    before = proc.memory_info().rss
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            done.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        result = fn()
    finally:
        done.set()
        thread.join()
    peak[0] = max(peak[0], proc.memory_info().rss)
    return result, (peak[0] - before) / 2**20
