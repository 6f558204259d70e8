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

Multi-SBoRA (lecture: "Summary of SBoRA") is not in the reference code: `inject_task` and
`merge_tasks` below are this course's reconstruction of the idea.
"""
import torch
from torch import nn

from .base import AdapterLayer, check_positive_int, conv1d_class, linear_dims
from .inject import adapter_layers, inject, name_matches

VARIANTS = ("FA", "FB")


def check_indices(indices, r, dim, side):
    """r distinct ints in [0, dim), as a LongTensor; a clear error otherwise."""
    indices = torch.as_tensor(indices)
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

    def __init__(self, base, r, alpha, variant="FA", indices=None, generator=None, dropout=0.0):
        super().__init__(base)
        check_positive_int("r", r)
        if not isinstance(variant, str) or variant.upper() not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}: use 'FA' (fixed A, trainable B) or 'FB' (fixed B, trainable A)")
        if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or alpha <= 0:
            raise ValueError(f"alpha must be a positive number, got {alpha!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.variant = variant.upper()
        side, dim = ("input", self.in_features) if self.variant == "FA" else ("output", self.out_features)
        if r > dim:
            raise ValueError(f"r={r} is larger than the number of {side} features ({dim}): SBoRA-{self.variant} "
                             f"picks r distinct standard basis vectors out of {dim}")
        if indices is None:  # r distinct indices; a shared generator gives each layer its own draw
            indices = torch.randperm(dim, generator=generator)[:r]
        weight = self.base.weight  # like LoRA: on the base's device, fp32 unless the base is fp64
        dtype = torch.float64 if weight.dtype == torch.float64 else torch.float32
        self.register_buffer("indices", check_indices(indices, r, dim, side).to(weight.device))  # saved with the adapter
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        if self.variant == "FA":  # the trainable factor is zero (reference: reset_parameters), so ΔW starts at 0
            self.B = nn.Parameter(torch.zeros(self.out_features, r, device=weight.device, dtype=dtype))
        else:
            self.A = nn.Parameter(torch.zeros(r, self.in_features, device=weight.device, dtype=dtype))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

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
        out = x.new_zeros(*x.shape[:-1], self.out_features)
        return out.index_add(-1, self.indices, x @ self.A.T * self.scaling)

    def forward(self, x):
        y = self.base(x)
        if self.merged or self.disabled:
            return y
        if self.variant == "FA":
            return y + self.adapter_forward(x).to(y.dtype)
        # FB: scatter-add straight into the r chosen outputs (the reference's index_add_)
        return y.index_add(-1, self.indices, (self.dropout(x) @ self.A.T * self.scaling).to(y.dtype))

    @torch.no_grad()
    def add_into(self, weight, sign=1.0):
        """weight[:, indices] += s·B (FA) or weight[indices, :] += s·A (FB): only r columns or rows change."""
        dim = 1 if self.variant == "FA" else 0
        update = self.update().detach().to(weight.dtype) * sign
        if self.fan_in_fan_out:  # GPT-2 Conv1D stores (in, out)
            weight.index_add_(1 - dim, self.indices, update.T)
        else:
            weight.index_add_(dim, self.indices, update)

    @torch.no_grad()
    def merge(self):
        if self.merged:
            raise RuntimeError("this layer is already merged; unmerge() first (merging twice would add ΔW twice)")
        self.add_into(self.base.weight)
        self.merged = True

    @torch.no_grad()
    def unmerge(self):
        if not self.merged:
            raise RuntimeError("this layer is not merged; there is nothing to unmerge")
        self.add_into(self.base.weight, sign=-1.0)
        self.merged = False

    def extra_repr(self):
        return f"{super().extra_repr()}, variant={self.variant}, r={self.r}, alpha={self.alpha}"


def rank_for_budget(model, target_modules, variant, n_params):
    """The SBoRA rank whose trainable count over the target layers comes closest to n_params.

    To compare with LoRA at equal cost: per layer LoRA trains (in + out)·r, SBoRA-FA out·r, SBoRA-FB in·r.
    """
    kinds = (nn.Linear, conv1d_class())
    dims = [linear_dims(m) for n, m in model.named_modules()
            if n and name_matches(n, target_modules) and isinstance(m, kinds)]
    if not dims:
        raise ValueError(f"target_modules={target_modules!r} matches no nn.Linear/Conv1D layer of the model")
    fa = variant_upper(variant) == "FA"
    per_rank = sum(n_out if fa else n_in for n_in, n_out, _ in dims)  # trainable weights per unit of rank
    r = max(1, round(n_params / per_rank))
    limit = min(n_in if fa else n_out for n_in, n_out, _ in dims)
    if r > limit:
        raise ValueError(f"{n_params:,} parameters need r={r}, more than the smallest layer allows ({limit})")
    return r


def variant_upper(variant):
    if not isinstance(variant, str) or variant.upper() not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: use 'FA' or 'FB'")
    return variant.upper()


# ---- Multi-SBoRA: several tasks in disjoint regions of one model (the course's reconstruction) ----

def task_indices(dim, r, task, n_tasks, generator):
    """Slice `task` of one random permutation of range(dim): n_tasks disjoint sets of r indices."""
    check_positive_int("n_tasks", n_tasks)
    if not isinstance(task, int) or not 0 <= task < n_tasks:
        raise ValueError(f"task must be an int in [0, {n_tasks}), got {task!r}")
    if r * n_tasks > dim:
        raise ValueError(f"{n_tasks} tasks x r={r} = {r * n_tasks} indices do not fit in {dim} features disjointly")
    return torch.randperm(dim, generator=generator)[task * r:(task + 1) * r]


def inject_task(model, target_modules, task, n_tasks, r, alpha, variant="FA", seed=0, **kwargs):
    """Inject SBoRA for one task of n_tasks: layer by layer, the task's slice of a seeded permutation.

    Every task uses the same seed, so each layer draws the same permutation (layers are built in
    the same order) and the tasks' regions are disjoint.
    """
    generator = torch.Generator().manual_seed(seed)

    def build(base):
        indices = task_indices(base_dim(base, variant), r, task, n_tasks, generator)
        return SBoRALinear(base, r, alpha, variant, indices=indices, **kwargs)

    return inject(model, build, target_modules)


def base_dim(base, variant):
    """Input features for FA, output features for FB, of an nn.Linear or Conv1D."""
    n_in, n_out, _ = linear_dims(base)
    return n_in if variant_upper(variant) == "FA" else n_out


@torch.no_grad()
def merge_tasks(model, task_models):
    """Add every task model's update into `model` (a plain copy of the base model), in place.

    SBoRA layers add by index_add into their own columns/rows; when all tasks are SBoRA, their
    regions must be disjoint (else this is not Multi-SBoRA and tasks would overwrite each other).
    Other adapters (LoRA) add their full ΔW: the naive sum the course compares against.
    """
    seen = {}
    for task_model in task_models:
        layers = adapter_layers(task_model)
        if not layers:
            raise ValueError("a task model holds no adapter layers: inject and train it first")
        for name, layer in layers:
            target = model.get_submodule(name)
            if not hasattr(target, "weight") or target.weight.shape != layer.base.weight.shape:
                raise ValueError(f"{name} of the merge target does not match the task model's base layer")
            if isinstance(layer, SBoRALinear):
                key = (name, layer.variant)
                taken = seen.setdefault(key, set())
                overlap = taken & set(layer.indices.tolist())
                if overlap:
                    raise ValueError(f"tasks overlap at {name} ({layer.variant} indices {sorted(overlap)[:5]}): "
                                     "give each task a disjoint slice (inject_task with the same seed)")
                taken.update(layer.indices.tolist())
                layer.add_into(target.weight)
            else:
                delta = layer.delta_weight().detach().to(target.weight.dtype)
                target.weight += delta.T if layer.fan_in_fan_out else delta
    return model


# The lecture's tables (SBoRA: Commonsense / Arithmetic Reasoning Performance): average accuracy (%) and
# trainable parameters per (model, rank), method -> (TP, average). GPT-3.5 (no fine-tuning): 77.0 / 70.4.
PAPER_AVERAGES = {
    "commonsense reasoning": {
        ("LLaMA-7B", 32): {"LoRA": ("56.1M", 72.8), "DoRA": ("57.0M", 71.7),
                           "SBoRA-FA": ("28.0M", 71.7), "SBoRA-FB": ("28.0M", 64.9)},
        ("LLaMA-7B", 64): {"LoRA": ("112.2M", 73.5), "DoRA": ("113.1M", 72.7),
                           "SBoRA-FA": ("56.1M", 75.7), "SBoRA-FB": ("56.1M", 71.0)},
        ("LLaMA3-8B", 32): {"LoRA": ("56.6M", 83.2), "DoRA": ("57.4M", 84.2),
                            "SBoRA-FA": ("25.2M", 84.4), "SBoRA-FB": ("31.5M", 83.0)},
        ("LLaMA3-8B", 64): {"LoRA": ("113.2M", 84.3), "DoRA": ("114.0M", 82.1),
                            "SBoRA-FA": ("50.3M", 84.9), "SBoRA-FB": ("62.9M", 81.8)},
    },
    "arithmetic reasoning": {
        ("LLaMA-7B", 32): {"LoRA": ("56.1M", 59.3), "DoRA": ("57.0M", 59.1),
                           "SBoRA-FA": ("28.0M", 58.9), "SBoRA-FB": ("28.0M", 56.1)},
        ("LLaMA-7B", 64): {"LoRA": ("112.2M", 59.9), "DoRA": ("113.1M", 61.1),
                           "SBoRA-FA": ("56.1M", 61.9), "SBoRA-FB": ("56.1M", 56.9)},
        ("LLaMA3-8B", 32): {"LoRA": ("56.6M", 66.1), "DoRA": ("57.4M", 74.0),
                            "SBoRA-FA": ("25.2M", 76.8), "SBoRA-FB": ("31.5M", 74.2)},
        ("LLaMA3-8B", 64): {"LoRA": ("113.2M", 71.8), "DoRA": ("114.0M", 72.5),
                            "SBoRA-FA": ("50.3M", 76.0), "SBoRA-FB": ("62.9M", 69.8)},
    },
}


def paper_table():
    """The lecture's SBoRA averages as text: one line per task, model and rank."""
    methods = ("LoRA", "DoRA", "SBoRA-FA", "SBoRA-FB")
    lines = ["paper (lecture tables): average accuracy % (trainable parameters)",
             f"{'task':<22}{'model':<10}{'r':>3}" + "".join(f"{m:>17}" for m in methods)]
    for task, rows in PAPER_AVERAGES.items():
        for (model, rank), row in rows.items():
            lines.append(f"{task:<22}{model:<10}{rank:>3}" +
                         "".join(f"{row[m][1]:>8.1f} ({row[m][0]:>6})" for m in methods))
    return "\n".join(lines)
