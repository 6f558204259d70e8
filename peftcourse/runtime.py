"""Where the course runs: its folder, the device, seeds, the step budget, and how a model is counted,
evaluated and fed.

One place decides how long every notebook trains: `budget(full, fast)`.
Set PEFTCOURSE_FAST=1 (CI sets CI=true, which counts too) for a smoke run.
"""
import os
import random
import platform
from contextlib import contextmanager

import numpy as np
import torch

from . import validate

DEFAULT_SEED = 0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The course's root folder, which holds peftcourse/, data/, notebooks/ and solutions/."""


def get_device(prefer=None):
    """cuda -> mps -> cpu; never assume an accelerator is there.

    `prefer` ("cpu", "cuda", "mps") forces one, with a clear error when it is missing.
    """
    if prefer is not None:
        if prefer not in ("cpu", "cuda", "mps"):
            raise ValueError(f"unknown device {prefer!r}: use 'cpu', 'cuda' or 'mps'")
        if prefer == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but no CUDA GPU is visible; use 'cpu'")
        if prefer == "mps" and not torch.backends.mps.is_available():
            raise ValueError("device 'mps' was asked for but Apple MPS is not available; use 'cpu'")
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed=DEFAULT_SEED):
    """Seed python, numpy and torch (all devices) so a run repeats exactly on the CPU."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return seed


def count_params(model, trainable_only=False, like_peft=False):
    """The number of weights in `model`: all of them, or only those with requires_grad (trainable_only).

    like_peft: count as peft's print_trainable_parameters does (inject.trainable_report): a packed 4-bit
    weight (Params4bit, two values per stored byte) as the values it holds, a DeepSpeed ZeRO-3 shard as its
    full size (ds_numel). Without it every tensor counts its stored elements.
    """
    validate.module("model", model)
    validate.flag("trainable_only", trainable_only)
    validate.flag("like_peft", like_peft)
    total = 0
    for p in model.parameters():
        if trainable_only and not p.requires_grad:
            continue
        n = p.numel()
        if like_peft:
            if n == 0 and hasattr(p, "ds_numel"):
                n = p.ds_numel
            if p.__class__.__name__ == "Params4bit":
                n = n * 2 * (p.element_size() if hasattr(p, "element_size") else 1)
        total += n
    return total


@contextmanager
def model_mode(model, training):
    """Put the model in train (True) or eval (False) mode for a block, and back in the mode it was in
    afterwards, also when the block raises: a helper never leaves the caller's model switched."""
    validate.module("model", model)
    validate.flag("training", training)
    was_training = model.training
    model.train(training)
    try:
        yield model
    finally:
        model.train(was_training)


@contextmanager
def eval_mode(model):
    """Evaluate in eval mode (no dropout) and without gradients, then restore the model's mode.
    Every evaluation helper uses it."""
    with model_mode(model, False), torch.no_grad():
        yield model


def to_device(batch, device):
    """Move a batch (tensor, dict or tuple/list of them) to `device`."""
    if torch.is_tensor(batch):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def is_fast():
    """True when PEFTCOURSE_FAST is set to a true value, or CI is set (CI runs smoke sizes)."""
    flag = os.environ.get("PEFTCOURSE_FAST", "").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return True
    if flag in ("0", "false", "no", "off"):
        return False
    if flag:
        raise ValueError(f"PEFTCOURSE_FAST={flag!r} is not understood: use 1 or 0")
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def budget(full, fast=None):
    """The one rule for sizes: `full` in a normal run, `fast` (default: a tenth, at least 2) in fast mode.

    Use it for step counts, example counts, epochs: `steps = budget(300, fast=5)`.
    """
    for name, value in (("full", full), ("fast", fast)):
        if value is None and name == "fast":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"budget({name}=...) must be a positive int, got {value!r}")
    if not is_fast():
        return full
    return fast if fast is not None else max(2, full // 10)


def versions():
    """Versions of the libraries the course is checked against (None where one is missing)."""
    out = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("transformers", "peft", "bitsandbytes", "numpy"):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # a missing optional library is reported, not fatal
            out[name] = None
    return out


def setup(seed=DEFAULT_SEED, quiet=False):
    """Seed everything and print the banner every notebook starts with. Returns the device."""
    seed_everything(seed)
    device = get_device()
    if not quiet:
        v = versions()
        libs = "  ".join(f"{k} {v[k] or 'missing'}" for k in ("torch", "transformers", "peft", "bitsandbytes"))
        gpu = torch.cuda.get_device_name(0) if device.type == "cuda" else "none"
        mode = "FAST (smoke sizes)" if is_fast() else "full"
        print(f"peftcourse | python {v['python']}  {libs}")
        print(f"device: {device} (GPU: {gpu}) | budget: {mode} | seed: {seed}")
    return device


def bnb_4bit_available():
    """True when bitsandbytes can quantize to NF4 and multiply with it on this machine (CPU included)."""
    try:
        import bitsandbytes.functional as bnbf
        w = torch.randn(64, 64)
        packed, state = bnbf.quantize_4bit(w, quant_type="nf4")
        back = bnbf.dequantize_4bit(packed, state)
        return bool(torch.isfinite(back).all() and (back - w).abs().max() < 0.5 * w.abs().max())
    except Exception:  # any failure means "not here", which the start notebook reports
        return False


def bnb_cpu_kernels():
    """Which of bitsandbytes' CPU code paths this machine takes (they differ from CPU to CPU).

    avx512_dequant: dequantize_4bit runs bitsandbytes' native AVX-512 kernel (its library asks the CPU,
        has_avx512f_cpu); in bitsandbytes 0.50 it scales values by the wrong block's absmax when a row's length
        is not a multiple of the block size (notebook 06 shows it; upstream PRs #1828, #2072).
    avx512_fallback: blocks of 2048 or more go to bitsandbytes' plain-torch fallback instead (its kernel is
        inaccurate there); bitsandbytes decides that from torch's CPU capability, so on an AVX-512 CPU with
        ATEN_CPU_CAPABILITY=avx2 the native kernel takes those blocks too.
    avx512_bf16: the fused inference path; Linear4bit repacks its weight for it in eval mode
        (peftcourse.qlora.keep_training_layout switches that off for the course's layers).
    """
    import bitsandbytes.functional as bnbf
    try:
        native_avx512 = bool(bnbf.lib.has_avx512f_cpu())
    except (AttributeError, RuntimeError, OSError):   # a library without the symbol: its portable kernel
        native_avx512 = False
    return {"avx512_dequant": native_avx512,
            "avx512_fallback": torch.backends.cpu.get_cpu_capability() == "AVX512",
            "avx512_bf16": bool(bnbf.has_avx512bf16())}


def online():
    """Whether the Hugging Face hub could be reached: False when HF_HUB_OFFLINE is set or its name
    does not resolve. Only a DNS lookup; no request is sent."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip() not in ("", "0"):
        return False
    import socket
    try:
        socket.getaddrinfo("huggingface.co", 443)
        return True
    except OSError:
        return False


def environment():
    """What this machine offers the course, as a dict (the start notebook prints it)."""
    device = get_device()
    return {
        "device": str(device),
        "GPU": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "CPU threads": torch.get_num_threads(),
        "bitsandbytes 4-bit here": bnb_4bit_available(),
        "paged optimizers (need CUDA)": torch.cuda.is_available(),
        "online (hub reachable)": online(),
        "fast mode": is_fast(),
    }


def file_sha256(path):
    """A file's sha256, read in 1 MB pieces (model weights run to hundreds of MB): checkpoints and downloads."""
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
