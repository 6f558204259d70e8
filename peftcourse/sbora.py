"""SBoRA: LoRA with one factor fixed to standard basis vectors (Po et al. 2024, arXiv 2407.05413).

    SBoRA-FA: ΔW = s · B · A_sb      A_sb = r rows of the identity, at `indices` of the input
    SBoRA-FB: ΔW = s · B_sb · A      B_sb = r columns of the identity, at `indices` of the output

s = α / r as in LoRA. A_sb · x just picks r input features, so the forward is a gather
(`x[..., indices] @ Bᵀ · s`) and FB's is a scatter-add into r outputs: no one-hot matrix is ever
multiplied. ΔW is nonzero in exactly r columns (FA) or r rows (FB): a regional update (lecture:
"SBoRA-FA: Regional Weight Update Example"). Trainable weights per layer: FA out·r, FB in·r.
As in the reference code (cityuhkai/SBoRA) the trainable factor starts at zero and the fixed factor
has no weights at all, only its r distinct indices. The reference draws them per layer with Python's
unseeded `random.sample`; here they come from a torch.Generator (pass one, e.g. through inject, and
every layer gets its own reproducible draw) and live in a buffer, so they are saved with the adapter.

Multi-SBoRA, several tasks in disjoint regions of one model, is in peftcourse.multi_sbora.
"""
import torch
from torch import nn

from . import validate
from .base import AdapterLayer, conv1d_class, dropout_or_identity, linear_dims, name_matches

VARIANTS = ("FA", "FB")


def check_indices(indices, r, dim, side):
    """r distinct ints in [0, dim), as a LongTensor; a clear error otherwise."""
    try:
        indices = torch.as_tensor(indices)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"indices must be a 1-D list/tensor of r distinct ints, got {indices!r}") from None
    if indices.dtype.is_floating_point or indices.dtype == torch.bool or indices.dim() != 1:
        raise ValueError(f"indices must be a 1-D list/tensor of ints, got dtype {indices.dtype} shape {tuple(indices.shape)}")
    indices = indices.long()
    if indices.numel() != r:
        raise ValueError(f"got {indices.numel()} indices for r={r}: give exactly r of them")
    if indices.numel() and (indices.min() < 0 or indices.max() >= dim):
        raise ValueError(f"indices must lie in [0, {dim}) ({side} features), got min {indices.min().item()} "
                         f"max {indices.max().item()}")
    if indices.unique().numel() != r:
        raise ValueError(f"indices must be distinct (each picks a different standard basis vector), got {indices.tolist()}")
    return indices


class SBoRALinear(AdapterLayer):
    """W0 x + s·B·x[indices] (FA) or W0 x with s·A·x added into outputs `indices` (FB)."""

    method = "sbora"

    def __init__(self, base, r, alpha, variant="FA", indices=None, generator=None, dropout=0.0):
        n_in, n_out, _ = linear_dims(base)
        validate.positive_int("r", r)
        variant = variant_upper(variant)
        validate.positive_number("alpha", alpha)
        validate.probability("dropout", dropout)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        side, dim = ("input", n_in) if variant == "FA" else ("output", n_out)
        if r > dim:
            raise ValueError(f"r={r} is larger than the number of {side} features ({dim}): SBoRA-{variant} "
                             f"picks r distinct standard basis vectors out of {dim}")
        if indices is None:  # r distinct indices; a shared generator gives each layer its own draw
            indices = torch.randperm(dim, generator=generator)[:r]
        indices = check_indices(indices, r, dim, side)
        super().__init__(base)  # every argument is checked: now the base layer may be frozen
        weight = self.base.weight  # like LoRA: on the base's device, fp32 unless the base is fp64
        dtype = validate.adapter_dtype(weight)
        self.variant = variant
        self.register_buffer("indices", indices.to(weight.device))  # saved with the adapter
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        if variant == "FA":  # the trainable factor is zero (reference: reset_parameters), so ΔW starts at 0
            self.B = nn.Parameter(torch.zeros(self.out_features, r, device=weight.device, dtype=dtype))
        else:
            self.A = nn.Parameter(torch.zeros(r, self.in_features, device=weight.device, dtype=dtype))
        self.dropout = dropout_or_identity(dropout)

    def config(self):
        return {"method": self.method, "r": self.r, "alpha": self.alpha, "variant": self.variant}

    def check_state(self, state):
        dim = self.in_features if self.variant == "FA" else self.out_features
        check_indices(state["indices"], self.r, dim, "input" if self.variant == "FA" else "output")

    def standard_basis(self):
        """The fixed factor as a one-hot matrix, for teaching only: A_sb (r x in) for FA, B_sb (out x r) for FB."""
        dim = self.in_features if self.variant == "FA" else self.out_features
        one_hot = torch.eye(dim, device=self.indices.device)[self.indices]
        return one_hot if self.variant == "FA" else one_hot.T

    def update(self):
        """The r trainable columns (FA, out x r) or rows (FB, r x in) of ΔW, scaled."""
        return (self.B if self.variant == "FA" else self.A) * self.scaling

    def delta_weight(self):
        dw = self.update().new_zeros(self.out_features, self.in_features)
        return dw.index_add(1 if self.variant == "FA" else 0, self.indices, self.update())

    def adapter_forward(self, x):
        x = self.dropout(x)  # elementwise, so dropping before or after the gather is the same in distribution
        if self.variant == "FA":
            return x[..., self.indices] @ self.B.T * self.scaling  # gather r inputs: A_sb·x without a matmul
        out = x.new_zeros(*x.shape[:-1], self.out_features)  # FB: scatter-add into the r chosen outputs
        return out.index_add(-1, self.indices, x @ self.A.T * self.scaling)

    @torch.no_grad()
    def add_to_base(self, delta):
        """weight[:, indices] += ΔW[:, indices] (FA) or weight[indices, :] += ΔW[indices, :] (FB): only the
        r columns or rows that SBoRA updates are touched (the reference's index_add_)."""
        dim = 1 if self.variant == "FA" else 0
        weight = self.base.weight
        update = delta.index_select(dim, self.indices).to(weight.dtype)
        if self.fan_in_fan_out:  # GPT-2 Conv1D stores (in, out)
            weight.index_add_(1 - dim, self.indices, update.T)
        else:
            weight.index_add_(dim, self.indices, update)

    def extra_repr(self):
        return f"{super().extra_repr()}, variant={self.variant}, r={self.r}, alpha={self.alpha}"


def rank_for_budget(model, target_modules, variant, n_params):
    """The SBoRA rank whose trainable count over the target layers comes closest to n_params.

    To compare with LoRA at equal cost: per layer LoRA trains (in + out)·r, SBoRA-FA out·r, SBoRA-FB in·r.
    """
    validate.name_list("target_modules", target_modules)
    fa = variant_upper(variant) == "FA"
    validate.positive_number("n_params", n_params)
    kinds = (nn.Linear, conv1d_class())
    dims = [linear_dims(m) for n, m in model.named_modules()
            if n and name_matches(n, target_modules) and isinstance(m, kinds)]
    if not dims:
        raise ValueError(f"target_modules={target_modules!r} matches no nn.Linear/Conv1D layer of the model")
    per_rank = sum(n_out if fa else n_in for n_in, n_out, _ in dims)  # trainable weights per unit of rank
    r = max(1, round(n_params / per_rank))
    limit = min(n_in if fa else n_out for n_in, n_out, _ in dims)
    if r > limit:
        raise ValueError(f"{n_params:,} parameters need r={r}, more than the smallest layer allows ({limit})")
    return r


def variant_upper(variant):
    if not isinstance(variant, str) or variant.upper() not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: use 'FA' (fixed A, trainable B) or 'FB' (fixed B, trainable A)")
    return variant.upper()
