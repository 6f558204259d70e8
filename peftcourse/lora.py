"""LoRA (Hu et al. 2021): h = W0 x + (α/r) · B A x, with W0 frozen and only A (r×in), B (out×r) trained.

Numerics follow peft (tuners/lora/layer.py), so the tests can compare with copied weights:
  * A ~ kaiming_uniform(a=√5) (nn.Linear's default init), B = 0: the adapter starts as a no-op;
  * scaling = α/r, or α/√r with rsLoRA (Kalajdzievski 2023);
  * dropout acts on the LoRA branch's input only: y = W0 x + b + s · B A drop(x).

One layer can hold several named adapters (e.g. one per task) and switch between them; `.A`, `.B`,
`.scaling` and `.dropout` always refer to the active one.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import AdapterLayer, check_positive_int, linear_dims


def check_lora_args(r, alpha, dropout, in_features, out_features):
    check_positive_int("r", r)
    if r > min(in_features, out_features):
        # rank(BA) <= min(in, out): a larger r adds parameters but no expressive power (peft allows it; we don't)
        raise ValueError(f"r={r} exceeds min(in_features, out_features) = min({in_features}, {out_features}); "
                         f"the rank of ΔW = BA can be at most {min(in_features, out_features)}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha must be a positive number (peft's lora_alpha, e.g. 8 or 2*r), got {alpha!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")


class LoRALinear(AdapterLayer):
    """A frozen nn.Linear / GPT-2 Conv1D plus a trainable low-rank update ΔW = (α/r) · B A."""

    def __init__(self, base, r, alpha, dropout=0.0, rslora=False, adapter_name="default"):
        check_lora_args(r, alpha, dropout, *linear_dims(base)[:2])  # before super() freezes the base
        super().__init__(base)
        self.lora_A = nn.ParameterDict()   # adapter name -> A (r × in)
        self.lora_B = nn.ParameterDict()   # adapter name -> B (out × r)
        self.lora_dropout = nn.ModuleDict()
        self.scalings = {}                 # adapter name -> α/r (or α/√r)
        self.ranks = {}
        self.active_adapter = None
        self.add_adapter(adapter_name, r, alpha, dropout, rslora)

    # the active adapter's pieces, under the names the paper uses
    @property
    def A(self):
        return self.lora_A[self.active_adapter]

    @property
    def B(self):
        return self.lora_B[self.active_adapter]

    @property
    def scaling(self):
        return self.scalings[self.active_adapter]

    @property
    def dropout(self):
        return self.lora_dropout[self.active_adapter]

    @property
    def r(self):
        return self.ranks[self.active_adapter]

    def add_adapter(self, name, r, alpha, dropout=0.0, rslora=False):
        """Add a fresh adapter `name` (A random, B = 0) and make it the active one."""
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"adapter name must be a Python identifier like 'default' or 'task_b', got {name!r}")
        if name in self.lora_A:
            raise ValueError(f"this layer already has an adapter named {name!r}; adapters: {list(self.lora_A)}")
        check_lora_args(r, alpha, dropout, self.in_features, self.out_features)
        A = torch.empty(r, self.in_features)
        nn.init.kaiming_uniform_(A, a=math.sqrt(5))  # as nn.Linear / peft: A random so B gets gradients
        B = torch.zeros(self.out_features, r)        # ΔW = BA = 0: training starts from the base model
        # like peft: the base weight's device; fp32 unless the base is fp64 (fp16/bf16/4-bit bases get fp32 adapters)
        weight = self.base.weight
        dtype = torch.float64 if weight.dtype == torch.float64 else torch.float32
        self.lora_A[name] = nn.Parameter(A.to(weight.device, dtype))
        self.lora_B[name] = nn.Parameter(B.to(weight.device, dtype))
        self.lora_dropout[name] = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.scalings[name] = alpha / math.sqrt(r) if rslora else alpha / r
        self.ranks[name] = r
        self.set_adapter(name)

    def set_adapter(self, name):
        """Make `name` the adapter that forward/merge use; like peft, only the active one is trainable."""
        if name not in self.lora_A:
            raise ValueError(f"no adapter named {name!r} on this layer; adapters: {list(self.lora_A)}")
        if self.merged:
            raise RuntimeError(f"adapter {self.active_adapter!r} is merged into the base weight; unmerge() before switching")
        self.active_adapter = name
        for n in self.lora_A:
            self.lora_A[n].requires_grad_(n == name)
            self.lora_B[n].requires_grad_(n == name)

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

    def __init__(self, base, r, alpha, enable=("q", "v"), parts=("q", "k", "v"), dropout=0.0, rslora=False):
        n_in, n_out, _ = linear_dims(base)
        if not parts or n_out % len(parts):
            raise ValueError(f"out_features={n_out} does not split into {len(parts)} equal blocks {tuple(parts)}")
        enable = (enable,) if isinstance(enable, str) else tuple(enable)
        unknown = [p for p in enable if p not in parts]
        if not enable or unknown or len(set(enable)) != len(enable):
            raise ValueError(f"enable must name distinct blocks among {tuple(parts)}, got {enable!r}")
        self.block = n_out // len(parts)
        check_lora_args(r, alpha, dropout, n_in, self.block)
        super().__init__(base)
        self.parts, self.enable, self.r = tuple(parts), enable, r
        self.scaling = alpha / math.sqrt(r) if rslora else alpha / r
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.lora_A, self.lora_B = nn.ParameterDict(), nn.ParameterDict()
        dtype = torch.float64 if base.weight.dtype == torch.float64 else torch.float32
        for p in enable:  # the same init as LoRALinear, one pair per enabled block
            A = torch.empty(r, n_in)
            nn.init.kaiming_uniform_(A, a=math.sqrt(5))
            self.lora_A[p] = nn.Parameter(A.to(base.weight.device, dtype))
            self.lora_B[p] = nn.Parameter(torch.zeros(self.block, r, device=base.weight.device, dtype=dtype))

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
    from .inject import inject
    weights = (weights,) if isinstance(weights, str) else tuple(weights)
    if not weights or set(weights) - set("qkvo") or len(set(weights)) != len(weights):
        raise ValueError(f"weights must be distinct names among 'q', 'k', 'v', 'o', got {weights!r}")
    qkv = tuple(w for w in "qkv" if w in weights)
    if qkv:
        inject(model, FusedLoRALinear, ["c_attn"], r=r, alpha=alpha, enable=qkv, **kwargs)
    if "o" in weights:
        inject(model, "lora", ["attn.c_proj"], r=r, alpha=alpha, **kwargs)
    return model
