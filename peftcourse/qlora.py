"""QLoRA (Dettmers et al. 2023): a frozen 4-bit NF4 base layer plus a LoRA adapter in higher precision.

Lecture, "QLoRA": Y = X · doubleDequant(c1, c2, W_NF4) + X L1 L2. The base weight is stored in NF4
(0.5 bytes per weight, + 0.127 bits with double quantization) and turned back into the compute
dtype only for the duration of the matmul; gradients flow through it to the input, never into it.
Only the LoRA factors train. This module builds that from scratch (QuantLinear, QLoRALinear) and,
for comparison, the real thing: transformers + bitsandbytes + peft (bnb_qlora_model).
"""
import torch
import torch.nn.functional as F
from torch import nn

from . import validate
from .base import conv1d_class, linear_dims, replace_module
from .lora import LoRALinear, check_lora_args
from .quant import quantize_absmax, quantize_fp4, quantize_nf4


class DequantMatmul(torch.autograd.Function):
    """y = x Wᵀ with W dequantized in forward AND again in backward (bitsandbytes' MatMul4Bit does this):
    autograd then keeps only the 4-bit tensor for backward, never a full-precision copy of W."""

    @staticmethod
    def forward(ctx, x, quantized, dtype):
        ctx.quantized, ctx.dtype = quantized, dtype
        return x @ quantized.dequantize(dtype).T

    @staticmethod
    def backward(ctx, grad_out):
        grad_x = grad_out @ ctx.quantized.dequantize(ctx.dtype) if ctx.needs_input_grad[0] else None
        return grad_x, None, None


def quantize_weight(weight, quant_type="nf4", blocksize=64, double_quant=True):
    """The frozen base weight in one of the formats of the paper's Table 3: nf4 (QLoRA), fp4
    (bitsandbytes' default), int8 (blockwise absmax, no double quantization)."""
    validate.flag("double_quant", double_quant)
    if quant_type == "int8":
        if double_quant:
            raise ValueError("double quantization is defined for the 4-bit formats (nf4, fp4); use double_quant=False with int8")
        return quantize_absmax(weight, bits=8, blocksize=blocksize)
    if quant_type not in ("nf4", "fp4"):
        raise ValueError(f"unknown quant_type {quant_type!r}: use 'nf4' (QLoRA), 'fp4' or 'int8'")
    return (quantize_nf4 if quant_type == "nf4" else quantize_fp4)(weight, blocksize, double_quant)


class QuantLinear(nn.Module):
    """A frozen linear layer whose weight is stored quantized (the from-scratch twin of bitsandbytes'
    Linear4bit). weight: (out, in); compute_dtype: the dtype the matmul runs in (bf16 in the paper;
    fp32 is the fast choice on most CPUs)."""

    linear_layout = True  # in_features, out_features and weight (out, in) as nn.Linear: adapters may wrap it

    def __init__(self, weight, bias=None, quant_type="nf4", blocksize=64, double_quant=True,
                 compute_dtype=torch.float32):
        super().__init__()
        validate.tensor("weight", weight, dims=2)
        if bias is not None and validate.tensor("bias", bias, dims=1).shape[0] != weight.shape[0]:
            raise ValueError(f"bias has {bias.shape[0]} entries but the weight has {weight.shape[0]} output rows")
        validate.float_dtype("compute_dtype", compute_dtype)
        self.out_features, self.in_features = weight.shape
        self.quant_type, self.blocksize, self.double_quant = quant_type, blocksize, double_quant
        self.compute_dtype = compute_dtype
        self.quantized = quantize_weight(weight.detach(), quant_type, blocksize, double_quant)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)

    @property
    def weight(self):
        """The dequantized weight (a fresh tensor each call: writing into it changes nothing; use requantize)."""
        return self.quantized.dequantize(torch.float32)

    @torch.no_grad()
    def requantize(self, weight):
        """Store a new full-precision weight, quantized with the same settings (rounds again)."""
        self.quantized = quantize_weight(weight, self.quant_type, self.blocksize, self.double_quant)

    def forward(self, x):
        y = DequantMatmul.apply(x.to(self.compute_dtype), self.quantized, self.compute_dtype)
        if self.bias is not None:
            y = y + self.bias.to(self.compute_dtype)
        return y.to(x.dtype)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, quant_type={self.quant_type}, "
                f"blocksize={self.blocksize}, double_quant={self.double_quant}, compute_dtype={self.compute_dtype}")


class QLoRALinear(LoRALinear):
    """LoRA (peftcourse.lora.LoRALinear, unchanged) on top of an NF4-quantized copy of the base layer.

    The full-precision base is quantized once here and dropped; forward = NF4 base (dequantized on
    the fly) + s·B·A·drop(x). Merging has to re-quantize, so it changes the outputs (see add_to_base()).
    quant_type="fp4" / "int8" (with double_quant=False) give the other rows of the paper's Table 3.
    """

    method = "qlora"

    def __init__(self, base, r=8, alpha=8, dropout=0.0, rslora=False, adapter_name="default",
                 quant_type="nf4", blocksize=64, double_quant=True, compute_dtype=torch.float32):
        n_in, n_out, _ = linear_dims(base)  # an nn.Linear or Conv1D, checked before anything is quantized
        check_lora_args(r, alpha, dropout, rslora, n_in, n_out)
        weight = base.weight.T if isinstance(base, conv1d_class()) else base.weight
        # the NF4 copy, in nn.Linear layout (out × in), is the layer's base: the caller's full-precision
        # layer is only read, never frozen or changed
        quantized = QuantLinear(weight, getattr(base, "bias", None), quant_type, blocksize, double_quant, compute_dtype)
        super().__init__(quantized, r, alpha, dropout, rslora, adapter_name)  # A, B, scaling: LoRA's own init

    def config(self):
        q = self.base
        return {**super().config(), "quant_type": q.quant_type, "blocksize": q.blocksize, "double_quant": q.double_quant}

    @torch.no_grad()
    def add_to_base(self, delta):
        """The merge hook: W_NF4 <- quantize(dequantize(W_NF4) + ΔW). The sum is rounded to NF4 again, so
        the merged layer's outputs differ from base + LoRA (peft warns about this too), and unmerge()
        (ΔW subtracted, a third rounding) does not restore the original 4-bit weight exactly."""
        self.base.requantize(self.base.weight + delta.float())


@torch.no_grad()
def merge_to_full_precision(model):
    """Replace every QLoRALinear by an fp32 nn.Linear holding dequantize(W_NF4) + ΔW: the lecture's
    inference path ("load the base model in 16-bit and merge the LoRA weights"). No re-quantization,
    so the outputs stay those of base + LoRA; the model is as large as before quantization."""
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, QLoRALinear)]
    if not layers:
        raise ValueError("the model has no QLoRALinear layer: inject(model, 'qlora', ...) first")
    merged = [name for name, layer in layers if layer.merged]  # checked for all before the first is replaced
    if merged:
        raise RuntimeError(f"{merged[0]} is already merged into its 4-bit base; unmerge() first")
    for name, layer in layers:
        merged = nn.Linear(layer.in_features, layer.out_features, bias=layer.base.bias is not None,
                           device=layer.A.device)
        merged.weight.copy_(layer.base.weight + layer.delta_weight().float())
        if layer.base.bias is not None:
            merged.bias.copy_(layer.base.bias)
        replace_module(model, name, merged.requires_grad_(False))
    return model


def stored_bytes(model):
    """Bytes the model stores: parameters plus persistent buffers (4-bit constants are buffers),
    each tensor counted once (GPT-2 ties its input and output embeddings)."""
    unique = {t.data_ptr(): t.numel() * t.element_size() for t in model.state_dict().values()}
    return sum(unique.values())


# ---------------------------------------------------------------- the real thing: bitsandbytes + peft

def bnb_config(compute_dtype=torch.float32, double_quant=True, skip_modules=None):
    """transformers' config for QLoRA. bitsandbytes defaults to fp4 without double quantization:
    the QLoRA recipe has to ask for nf4 and double quant explicitly. skip_modules: layers to keep
    in full precision, e.g. a new classification head (transformers keeps lm_head by itself)."""
    from transformers import BitsAndBytesConfig
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_use_double_quant=double_quant, bnb_4bit_compute_dtype=compute_dtype,
                              llm_int8_skip_modules=skip_modules)


def bnb_qlora_model(path, target_modules, r=8, alpha=16, dropout=0.0, compute_dtype=torch.float32,
                    double_quant=True, model_class=None, task_type="CAUSAL_LM", gradient_checkpointing=False,
                    skip_modules=None, device=None, **model_kwargs):
    """Load a saved Hugging Face model with its linear layers in bitsandbytes NF4 and add peft LoRA.

    Runs on the CPU with bitsandbytes >= 0.49. gradient_checkpointing (peft's default in
    prepare_model_for_kbit_training) saves activation memory at the cost of a second forward.
    device: "cpu" or "cuda" (default: cuda when there is one). model_kwargs go to from_pretrained
    (e.g. num_labels=8 for a classifier).
    """
    from transformers import AutoModelForCausalLM
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    model_class = model_class or AutoModelForCausalLM
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    config = bnb_config(compute_dtype, double_quant, skip_modules)
    model = model_class.from_pretrained(str(path), quantization_config=config, device_map=device, **model_kwargs)
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    keep_training_layout(model)
    lora_config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules,
                             task_type=task_type)
    return get_peft_model(model, lora_config)


@torch.no_grad()
def keep_training_layout(model):
    """Keep every bitsandbytes Linear4bit of `model` in the layout it trains in; returns how many.

    Why: on CPUs with AVX-512 BF16 (Intel Sapphire Rapids, AMD Zen 4, ...), bitsandbytes 0.50's
    Linear4bit.forward repacks its weight into an inference-only layout the first time it runs in
    eval mode on an input without grad, and leaves it repacked. A course measures the model
    before training it, so the training steps would then run through the inference kernel
    (an in-place autograd error with a bias, different logits without). Switching the repack off
    per layer makes the layer behave the same on every CPU. Call it before the first forward:
    bitsandbytes' inverse of the repack is only best-effort, so a repacked layer is refused.
    """
    import bitsandbytes as bnb
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    repacked = [n for n, m in layers if getattr(m.weight.quant_state, "packing_format_for_cpu", False)]
    if repacked:
        raise RuntimeError(f"{len(repacked)} Linear4bit layer(s) (first: {repacked[0]}) were already repacked into "
                           "bitsandbytes' CPU inference layout by an eval-mode forward; reload the model and call "
                           "keep_training_layout() before running it")
    for _, layer in layers:
        layer.support_avx512bf16_for_cpu = False
    return len(layers)
