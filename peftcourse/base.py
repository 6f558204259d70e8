"""The interface every weight-adapter method shares (LoRA, DoRA, MoRA, SBoRA, QLoRA).

An AdapterLayer wraps one frozen base layer (nn.Linear, or GPT-2's Conv1D whose weight is stored
transposed, in x out) and adds a trainable update. Whatever the method:
    delta_weight()  -> ΔW in nn.Linear layout (out_features x in_features)
    forward(x)      == base(x) + x @ delta_weight().T   (up to rounding)
    merge()/unmerge() fold ΔW into the base weight and take it out again.
So analysis, merging and saving work the same way for every method.
"""
import torch
from torch import nn


class PEFTModule(nn.Module):
    """Marker for modules that hold PEFT weights (their state, minus any `base.`, is the adapter)."""


def conv1d_class():
    from transformers.pytorch_utils import Conv1D
    return Conv1D


def linear_dims(base):
    """(in_features, out_features, fan_in_fan_out) of an nn.Linear or GPT-2 Conv1D."""
    if isinstance(base, nn.Linear):
        return base.in_features, base.out_features, False
    if isinstance(base, conv1d_class()):
        n_in, n_out = base.weight.shape  # Conv1D stores W as (in, out): peft calls this fan_in_fan_out
        return n_in, n_out, True
    raise TypeError(f"an adapter wraps nn.Linear or transformers' Conv1D, got {type(base).__name__}")


def check_positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


class AdapterLayer(PEFTModule):
    """Base class: holds the frozen `base`, the merge state, and the generic forward/merge."""

    def __init__(self, base):
        super().__init__()
        self.in_features, self.out_features, self.fan_in_fan_out = linear_dims(base)
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.merged = False
        self.disabled = False
        self._merged_delta = None

    def base_weight(self):
        """W0 in nn.Linear layout (out x in), whatever the base module stores."""
        w = self.base.weight
        return w.T if self.fan_in_fan_out else w

    def delta_weight(self):
        raise NotImplementedError

    def adapter_forward(self, x):
        """The update's contribution to the output. Subclasses compute it without building ΔW."""
        return x @ self.delta_weight().T

    def forward(self, x):
        y = self.base(x)
        if self.merged or self.disabled:
            return y
        return y + self.adapter_forward(x).to(y.dtype)

    @torch.no_grad()
    def merge(self):
        """W0 <- W0 + ΔW: after this the layer costs exactly what the base layer costs (no extra matmul)."""
        if self.merged:
            raise RuntimeError("this layer is already merged; unmerge() first (merging twice would add ΔW twice)")
        delta = self.delta_weight().detach().to(self.base.weight.dtype)
        self.base.weight += delta.T if self.fan_in_fan_out else delta
        self._merged_delta = delta  # unmerge subtracts exactly what was added
        self.merged = True

    @torch.no_grad()
    def unmerge(self):
        if not self.merged:
            raise RuntimeError("this layer is not merged; there is nothing to unmerge")
        delta = self._merged_delta
        self.base.weight -= delta.T if self.fan_in_fan_out else delta
        self._merged_delta = None
        self.merged = False

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, merged={self.merged}"
