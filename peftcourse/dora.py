"""DoRA (Liu et al. 2024, arXiv 2402.09353): weight-decomposed low-rank adaptation.

    W' = m ⊙ V / ‖V‖,   V = W0 + s·B A          (lecture: "DoRA Methodology")

* m is a trainable magnitude per OUTPUT ROW, initialised to ‖W0‖ row by row. The paper writes
  W ∈ R^{d×k} with a norm per column; PyTorch stores W as (out, in), so the paper's columns are rows here.
* V's direction is trained with LoRA (A, B, s = α/r inherited from LoRALinear).
* ‖V‖ is treated as a constant (paper §4.3): it follows BA in the forward pass but gets no gradient,
  so autograd never keeps the out×in matrix V. `detach_norm=False` keeps it, for the comparison.
* The forward pass reuses the base layer's W0 x (as peft's tuners/lora/dora.py does): no second full matmul.
"""
import torch
import torch.nn.functional as F
from torch import nn

from . import validate
from .base import name_matches
from .lora import LoRALinear, active


class DoRALinear(LoRALinear):
    """A frozen nn.Linear / GPT-2 Conv1D whose weight becomes m ⊙ (W0 + s·BA) / ‖W0 + s·BA‖ (row-wise)."""

    method = "dora"

    def __init__(self, base, r, alpha, dropout=0.0, rslora=False, detach_norm=True, adapter_name="default"):
        validate.flag("detach_norm (True: the paper's §4.3)", detach_norm)
        super().__init__(base, r, alpha, dropout=dropout, rslora=rslora, adapter_name=adapter_name)
        self.detach_norm = detach_norm

    def add_adapter(self, name, r, alpha, dropout=0.0, rslora=False):
        """LoRA's A, B plus the magnitude m = ‖W0‖ per output row (B = 0, so V starts as W0)."""
        if "magnitude" not in self._modules:  # the first adapter arrives from LoRALinear.__init__
            self.magnitude = nn.ParameterDict()
        super().add_adapter(name, r, alpha, dropout, rslora)
        with torch.no_grad():
            m = torch.linalg.vector_norm(self.direction_matrix(), dim=1)
        self.magnitude[name] = nn.Parameter(m)

    def set_adapter(self, name):
        super().set_adapter(name)
        for n, m in self.magnitude.items():
            m.requires_grad_(n == name)

    m = active("magnitude")

    def config(self):
        return {**super().config(), "detach_norm": self.detach_norm}

    def direction_matrix(self):
        """V = W0 + s·B A in (out, in) layout: the un-normalised direction."""
        return self.base_weight().to(self.A.dtype) + self.scaling * (self.B @ self.A)

    def magnitude_scale(self):
        """m / ‖V‖ per output row: the factor that turns V into W'.

        A zero row of V has no direction; its factor is 0 (F.normalize's convention), never 0/0 = NaN.
        """
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.detach_norm):
            norm = torch.linalg.vector_norm(self.direction_matrix(), dim=1)
        nonzero = norm > 0
        return torch.where(nonzero, self.m / torch.where(nonzero, norm, 1.0), 0.0)

    def adapter_forward(self, x, base_out=None):
        """What DoRA adds to base(x): (m/‖V‖) ⊙ (V x) − W0 x, with V x = W0 x + s·B A x.

        base_out = base(x) lets the layer reuse W0 x = base(x) − b instead of a second full matmul.
        peft writes the same sum as (m/‖V‖ − 1) ⊙ W0 x + (m/‖V‖) ⊙ s·BAx, which keeps two output-sized
        tensors for backward; this form keeps one (V x). With dropout active the branch sees drop(x),
        so W0 drop(x) is computed afresh, as in peft.
        """
        x = x.to(self.A.dtype)
        dropped = self.dropout(x)
        if base_out is None or (self.training and isinstance(self.dropout, nn.Dropout)):
            w0x = F.linear(dropped, self.base_weight().to(x.dtype))
        else:
            bias = self.base.bias
            w0x = base_out.to(x.dtype) if bias is None else base_out.to(x.dtype) - bias
        vx = w0x + self.scaling * F.linear(F.linear(dropped, self.A), self.B)
        return self.magnitude_scale() * vx - w0x

    def adapter_output(self, x, base_out):
        """forward()'s hook: DoRA's update, reusing base_out = base(x) for W0 x."""
        return self.adapter_forward(x, base_out=base_out)

    def delta_weight(self):
        """W' − W0 with W' = (m/‖V‖) ⊙ V: what the generic merge() adds to the base weight."""
        if self.merged:  # the base weight already holds W'; rebuilding V from it would be wrong
            return self.merged_delta
        W0 = self.base_weight().to(self.A.dtype)
        V = W0 + self.scaling * (self.B @ self.A)
        return self.magnitude_scale()[:, None] * V - W0

    def extra_repr(self):
        return f"{super().extra_repr()}, detach_norm={self.detach_norm}"


@torch.no_grad()
def copy_to_peft(model, peft_model, adapter_name="default"):
    """Copy every DoRALinear's A, B and m into the same-named layer of a peft use_dora=True model."""
    layers = [(name, layer) for name, layer in model.named_modules() if isinstance(layer, DoRALinear)]
    if not layers:
        raise ValueError("the model has no DoRALinear layer to copy: inject(model, 'dora', ...) first")
    try:
        root = peft_model.base_model.model
        targets = [root.get_submodule(name) for name, _ in layers]
        pieces = [(t.lora_A[adapter_name].weight, t.lora_B[adapter_name].weight,
                   t.lora_magnitude_vector[adapter_name].weight) for t in targets]
    except (AttributeError, KeyError) as err:  # checked for every layer before the first copy
        raise ValueError(f"peft_model is not a peft use_dora=True model with adapter {adapter_name!r} on the "
                         f"same layers ({[n for n, _ in layers][:3]}...): {err}") from None
    for (name, layer), (A, B, m) in zip(layers, pieces):
        if (A.shape, B.shape, m.shape) != (layer.A.shape, layer.B.shape, layer.m.shape):
            raise ValueError(f"{name}: peft's A, B, m have shapes {tuple(A.shape)}, {tuple(B.shape)}, "
                             f"{tuple(m.shape)}, ours {tuple(layer.A.shape)}, {tuple(layer.B.shape)}, {tuple(layer.m.shape)}")
    for (_, layer), (A, B, m) in zip(layers, pieces):
        A.copy_(layer.A)
        B.copy_(layer.B)
        m.copy_(layer.m)
    copied = len(layers)
    return copied


def magnitude_only(model, target_modules):
    """Freeze the direction (A, B) of the matching DoRA layers, so that only their magnitude m trains.

    The paper's Table 6 row "m: QKVOGUD, V: QKV" trains m in every layer but the direction only in
    Q, K, V. With B still at zero such a layer computes m ⊙ W0 / ‖W0‖. Returns the names it froze.
    """
    validate.name_list("target_modules", target_modules)
    chosen = [(name, layer) for name, layer in model.named_modules()
              if isinstance(layer, DoRALinear) and name_matches(name, target_modules)]
    if not chosen:
        raise ValueError(f"no DoRA layer matches {target_modules!r}: inject(model, 'dora', ...) first, "
                         "then name some of its adapted layers")
    merged = [name for name, layer in chosen if layer.merged]
    if merged:  # checked for all layers before the first one is frozen
        raise ValueError(f"{merged[0]} is merged: unmerge() it before choosing what trains")
    for _, layer in chosen:
        layer.A.requires_grad_(False)
        layer.B.requires_grad_(False)
    return [name for name, _ in chosen]


class OutputNormLoRALinear(LoRALinear):
    """NOT the DoRA paper's method: a variant some from-scratch tutorials teach under DoRA's name.

    It normalises the LoRA branch's OUTPUT per token instead of the weight:
        y = W0 x + b + m ⊙ u / (‖u‖ + 1e-9),   u = s·B A x,   m (out,) initialised to ones.
    u/‖u‖ does not depend on x's scale, so this is not a linear layer any more: there is no ΔW,
    it cannot be merged, and m is not a weight-row magnitude. Kept to show the difference numerically.
    """

    method = "output_norm_lora"

    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__(base, r, alpha, dropout=dropout)
        self.m = nn.Parameter(torch.ones(self.out_features, dtype=self.A.dtype, device=self.A.device))

    def adapter_forward(self, x):
        u = super().adapter_forward(x)
        return self.m * u / (torch.linalg.vector_norm(u, dim=-1, keepdim=True) + 1e-9)

    def delta_weight(self):
        raise TypeError("OutputNormLoRALinear has no weight update ΔW: its output u/‖u‖ depends on the input's "
                        "norm, so it is not linear and cannot be merged (DoRALinear normalises the weight and can)")
