"""LoRA (Hu et al. 2021): h = W0 x + (α/r) · B A x, with W0 frozen and only A (r×in), B (out×r) trained.

Numerics follow peft (tuners/lora/layer.py), so the tests can compare with copied weights:
  * A ~ kaiming_uniform(a=√5) (nn.Linear's default init), B = 0: the adapter starts as a no-op;
  * scaling = α/r, or α/√r with rsLoRA (Kalajdzievski 2023);
  * dropout acts on the LoRA branch's input only: y = W0 x + b + s · B A drop(x).

One layer can hold several named adapters (e.g. one per task) and switch between them; `.A`, `.B`,
`.scaling` and `.dropout` always refer to the active one.
"""
import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from . import validate
from .base import AdapterLayer, build_layers, dropout_or_identity, linear_dims, replace_layers


def check_lora_args(r, alpha, dropout, rslora, in_features, out_features):
    validate.positive_int("r", r)
    if r > min(in_features, out_features):
        # rank(BA) <= min(in, out): a larger r adds parameters but no expressive power (peft allows it; we don't)
        raise ValueError(f"r={r} exceeds min(in_features, out_features) = min({in_features}, {out_features}); "
                         f"the rank of ΔW = BA can be at most {min(in_features, out_features)}")
    validate.positive_number("alpha", alpha, hint=" (peft's lora_alpha, e.g. 8 or 2*r)")
    validate.probability("dropout", dropout)
    validate.flag("rslora", rslora)


def lora_scaling(alpha, r, rslora):
    """s = α/r, or α/√r with rsLoRA (Kalajdzievski 2023: keeps the update's scale as r grows)."""
    return alpha / math.sqrt(r) if rslora else alpha / r


def lora_pair(r, in_features, out_features, weight):
    """A (r × in) ~ kaiming_uniform(a=√5), as nn.Linear / peft: random, so that B gets gradients at once;
    B (out × r) = 0, so ΔW = BA = 0 and training starts from the base model. On the base weight's device,
    in validate.adapter_dtype (fp32 unless the base is fp64)."""
    A = torch.empty(r, in_features)
    nn.init.kaiming_uniform_(A, a=math.sqrt(5))
    dtype = validate.adapter_dtype(weight)
    return (nn.Parameter(A.to(weight.device, dtype)),
            nn.Parameter(torch.zeros(out_features, r, device=weight.device, dtype=dtype)))


def check_adapter_name(name):
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"adapter name must be a Python identifier like 'default' or 'task_b', got {name!r}")


def active(table):
    """A property reading the active adapter's entry of `table`: .A, .B, .scaling, ... under the paper's names."""
    return property(lambda self: getattr(self, table)[self.active_adapter])


class LoRALinear(AdapterLayer):
    """A frozen nn.Linear / GPT-2 Conv1D plus a trainable low-rank update ΔW = (α/r) · B A."""

    method = "lora"

    def __init__(self, base, r, alpha, dropout=0.0, rslora=False, adapter_name="default"):
        check_adapter_name(adapter_name)
        check_lora_args(r, alpha, dropout, rslora, *linear_dims(base)[:2])  # before super() freezes the base
        super().__init__(base)
        self.lora_A = nn.ParameterDict()   # adapter name -> A (r × in)
        self.lora_B = nn.ParameterDict()   # adapter name -> B (out × r)
        self.lora_dropout = nn.ModuleDict()
        self.settings = {}                 # adapter name -> {"r", "alpha", "rslora"}: what config() saves
        self.active_adapter = None
        self.add_adapter(adapter_name, r, alpha, dropout, rslora)

    # the active adapter's pieces, under the names the paper uses
    A, B, dropout = active("lora_A"), active("lora_B"), active("lora_dropout")

    @property
    def r(self):
        return self.settings[self.active_adapter]["r"]

    @property
    def scaling(self):
        return lora_scaling(**self.settings[self.active_adapter])

    def check_add_adapter(self, name, r, alpha, dropout=0.0, rslora=False):
        """Raise if add_adapter(...) would fail; change nothing."""
        check_adapter_name(name)
        if name in self.lora_A:
            raise ValueError(f"this layer already has an adapter named {name!r}; adapters: {list(self.lora_A)}")
        check_lora_args(r, alpha, dropout, rslora, self.in_features, self.out_features)
        self.check_unmerged("adding an adapter")

    def add_adapter(self, name, r, alpha, dropout=0.0, rslora=False):
        """Add a fresh adapter `name` (A random, B = 0) and make it the active one."""
        self.check_add_adapter(name, r, alpha, dropout, rslora)
        self.lora_A[name], self.lora_B[name] = lora_pair(r, self.in_features, self.out_features, self.base.weight)
        self.lora_dropout[name] = dropout_or_identity(dropout)
        self.settings[name] = {"r": r, "alpha": alpha, "rslora": rslora}
        self.set_adapter(name)

    def check_unmerged(self, what):
        if self.merged:
            raise RuntimeError(f"adapter {self.active_adapter!r} is merged into the base weight; unmerge() before {what}")

    def check_set_adapter(self, name):
        """Raise if set_adapter(name) would fail; change nothing."""
        if name not in self.lora_A:
            raise ValueError(f"no adapter named {name!r} on this layer; adapters: {list(self.lora_A)}")
        self.check_unmerged("switching")

    def set_adapter(self, name):
        """Make `name` the adapter that forward/merge use; like peft, only the active one is trainable."""
        self.check_set_adapter(name)
        self.active_adapter = name
        for n in self.lora_A:
            self.lora_A[n].requires_grad_(n == name)
            self.lora_B[n].requires_grad_(n == name)

    def config(self):
        return {"method": self.method, "adapters": self.settings}

    def delta_weight(self):
        """ΔW = s · B A in nn.Linear layout (out × in)."""
        return (self.B @ self.A) * self.scaling

    def adapter_forward(self, x):
        """s · B (A drop(x)) as two thin matmuls: (in → r → out), never the out × in matrix ΔW."""
        x = self.dropout(x.to(self.A.dtype))
        return F.linear(F.linear(x, self.A), self.B) * self.scaling

    def extra_repr(self):
        return (f"{super().extra_repr()}, r={self.r}, scaling={self.scaling:g}, "
                f"adapters={list(self.lora_A)}, active={self.active_adapter!r}")


class FusedLoRALinear(AdapterLayer):
    """LoRA on chosen blocks of a fused projection, e.g. GPT-2's c_attn, whose output is [q | k | v].

    GPT-2 computes W_q, W_k, W_v as ONE Conv1D (in=d, out=3d). A single LoRA on it would share one rank-r
    update among q, k and v and could not adapt "W_q and W_v only" (the lecture's "Which Weight Matrices?"
    table). The original LoRA code does what this class does (loralib.MergedLinear, enable_lora=[True,
    False, True]): every enabled block gets its own rank-r pair (A_i, B_i); the other blocks get no update.
    """

    method = "fused_lora"

    def __init__(self, base, r, alpha, enable=("q", "v"), parts=("q", "k", "v"), dropout=0.0, rslora=False):
        n_in, n_out, _ = linear_dims(base)
        parts = (parts,) if isinstance(parts, str) else tuple(parts) if isinstance(parts, (list, tuple)) else parts
        if (not isinstance(parts, tuple) or not parts or not all(isinstance(p, str) and p for p in parts)
                or len(set(parts)) != len(parts)):
            raise ValueError(f"parts must be distinct non-empty block names such as ('q', 'k', 'v'), got {parts!r}")
        if n_out % len(parts):
            raise ValueError(f"out_features={n_out} does not split into {len(parts)} equal blocks {parts}")
        enable = (enable,) if isinstance(enable, str) else tuple(enable) if isinstance(enable, (list, tuple)) else enable
        if not isinstance(enable, tuple) or not enable or any(p not in parts for p in enable) or len(set(enable)) != len(enable):
            raise ValueError(f"enable must name distinct blocks among {parts}, got {enable!r}")
        block = n_out // len(parts)
        check_lora_args(r, alpha, dropout, rslora, n_in, block)
        super().__init__(base)
        self.block, self.parts, self.enable, self.r = block, parts, enable, r
        self.settings = {"r": r, "alpha": alpha, "rslora": rslora}
        self.scaling = lora_scaling(**self.settings)
        self.dropout = dropout_or_identity(dropout)
        self.lora_A, self.lora_B = nn.ParameterDict(), nn.ParameterDict()
        for p in enable:  # the same init as LoRALinear, one pair per enabled block
            self.lora_A[p], self.lora_B[p] = lora_pair(r, n_in, block, base.weight)

    def config(self):
        return {"method": self.method, **self.settings, "enable": list(self.enable), "parts": list(self.parts)}

    def delta_weight(self):
        """The blocks' updates stacked in output order; zero rows for blocks that are not adapted."""
        ref = next(iter(self.lora_A.values()))
        rows = [(self.lora_B[p] @ self.lora_A[p]) * self.scaling if p in self.enable
                else ref.new_zeros(self.block, self.in_features) for p in self.parts]
        return torch.cat(rows)

    def adapter_forward(self, x):
        x = self.dropout(x.to(next(iter(self.lora_A.values())).dtype))
        outs = [F.linear(F.linear(x, self.lora_A[p]), self.lora_B[p]) * self.scaling if p in self.enable
                else x.new_zeros(*x.shape[:-1], self.block) for p in self.parts]
        return torch.cat(outs, dim=-1)

    def extra_repr(self):
        return f"{super().extra_repr()}, r={self.r}, scaling={self.scaling:g}, enable={self.enable}"


def inject_gpt2_attention(model, weights, r, alpha, **kwargs):
    """LoRA on a GPT-2 model's attention matrices by the lecture's names: any of "q", "k", "v", "o".

    q, k, v are blocks of the fused c_attn (FusedLoRALinear); o is attn.c_proj (LoRALinear). The lecture's
    "Which Weight Matrices?" table compares them at an equal budget: ("q",) at r=8 = ("q", "v") at r=4 = all at r=2.
    """
    weights = (weights,) if isinstance(weights, str) else tuple(weights) if isinstance(weights, (list, tuple)) else weights
    if (not isinstance(weights, tuple) or not weights or set(weights) - set("qkvo")
            or len(set(weights)) != len(weights)):
        raise ValueError(f"weights must be distinct names among 'q', 'k', 'v', 'o', got {weights!r}")
    qkv = tuple(w for w in "qkv" if w in weights)
    # both sets of layers are built (every argument checked) before either is put into the model
    plans = [build_layers(model, FusedLoRALinear, ["c_attn"], r=r, alpha=alpha, enable=qkv, **kwargs)] if qkv else []
    if "o" in weights:
        plans.append(build_layers(model, LoRALinear, ["attn.c_proj"], r=r, alpha=alpha, **kwargs))
    for plan in plans:
        replace_layers(model, plan)
    return model


@torch.no_grad()
def copy_to_peft(model, peft_model, adapter_name="default"):
    """Copy every LoRALinear's active A and B into the same-named layer of a peft LoraConfig model (its lora_A,
    lora_B): peft's save_pretrained then writes the adapter in peft's format. Every layer is checked (name, shapes,
    scaling α/r) before the first copy. Returns the number of layers copied."""
    layers = [(name, layer) for name, layer in model.named_modules() if type(layer) is LoRALinear]
    if not layers:
        raise ValueError("the model has no LoRALinear layer to copy: inject(model, 'lora', ...) first")
    try:
        root = peft_model.base_model.model
        targets = [root.get_submodule(name) for name, _ in layers]
        pieces = [(t.lora_A[adapter_name].weight, t.lora_B[adapter_name].weight, t.scaling[adapter_name])
                  for t in targets]
    except (AttributeError, KeyError) as err:
        raise ValueError(f"peft_model is not a peft LoRA model with adapter {adapter_name!r} on the same layers "
                         f"({[n for n, _ in layers][:3]}...): {err}") from None
    for (name, layer), (A, B, scaling) in zip(layers, pieces):
        if (A.shape, B.shape) != (layer.A.shape, layer.B.shape):
            raise ValueError(f"{name}: peft's A, B have shapes {tuple(A.shape)}, {tuple(B.shape)}, ours "
                             f"{tuple(layer.A.shape)}, {tuple(layer.B.shape)} (use the same r)")
        if not math.isclose(scaling, layer.scaling):
            raise ValueError(f"{name}: peft scales B A by {scaling:g}, ours by {layer.scaling:g}: give LoraConfig "
                             "the same r, lora_alpha and use_rslora")
    for (_, layer), (A, B, _) in zip(layers, pieces):
        A.copy_(layer.A)
        B.copy_(layer.B)
    return len(layers)


def save_for_peft(model, folder):
    """Write the model's active LoRA adapter in peft's format (adapter_config.json, adapter_model.safetensors) to
    `folder`, for PeftModel.from_pretrained(base_model, folder). Returns {file name: bytes}.

    r, lora_alpha, use_rslora and target_modules are read from the layers (all must agree). peft saves the adapter
    only, never the base weights, so its carrier model is built on the "meta" device (shapes, no numbers) and only
    its LoRA matrices receive numbers, by copy_to_peft."""
    from peft import LoraConfig, get_peft_model
    layers = [(name, layer) for name, layer in model.named_modules() if type(layer) is LoRALinear]
    if not layers:
        raise ValueError("the model has no LoRALinear layer to save: inject(model, 'lora', ...) first")
    settings = {tuple(sorted(layer.settings[layer.active_adapter].items())) for _, layer in layers}
    if len(settings) > 1:
        raise ValueError(f"peft's LoraConfig holds one r and alpha; these layers use {len(settings)} settings: "
                         f"{[dict(s) for s in sorted(settings)]}")
    if not hasattr(model, "config"):
        raise ValueError(f"save_for_peft needs a transformers model (with .config), got {type(model).__name__}")
    setting = dict(settings.pop())
    causal = type(model).__name__.endswith("ForCausalLM")   # peft then loads it as a PeftModelForCausalLM (generate)
    config = LoraConfig(r=setting["r"], lora_alpha=setting["alpha"], use_rslora=setting["rslora"],
                        target_modules=sorted({name.rsplit(".", 1)[-1] for name, _ in layers}),
                        task_type="CAUSAL_LM" if causal else None)
    with torch.device("meta"):
        carrier = get_peft_model(type(model)(model.config), config)
    carrier.to_empty(device="cpu")
    copy_to_peft(model, carrier)
    carrier.save_pretrained(folder)
    return {f: os.path.getsize(os.path.join(folder, f)) for f in sorted(os.listdir(folder))}
