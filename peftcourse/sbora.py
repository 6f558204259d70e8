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

from . import validate
from .base import (AdapterLayer, adapter_layers, add_delta, build_layers, check_keywords, conv1d_class,
                   dropout_or_identity, layer_inputs, linear_dims, name_matches, replace_layers)

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


# ---- Multi-SBoRA: several tasks in disjoint regions of one model (the course's reconstruction) ----

def task_indices(dim, r, task, n_tasks, generator):
    """Slice `task` of one random permutation of range(dim): n_tasks disjoint sets of r indices."""
    validate.positive_int("dim", dim)
    validate.positive_int("r", r)
    validate.positive_int("n_tasks", n_tasks)
    validate.int_in("task", task, 0, n_tasks - 1)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if r * n_tasks > dim:
        raise ValueError(f"{n_tasks} tasks x r={r} = {r * n_tasks} indices do not fit in {dim} features disjointly")
    return torch.randperm(dim, generator=generator)[task * r:(task + 1) * r]


def inject_task(model, target_modules, task, n_tasks, r, alpha, variant="FA", seed=0, regions=None, **kwargs):
    """Inject SBoRA for one task of n_tasks: layer by layer, the task's slice of a seeded permutation.

    Every task uses the same seed, so each layer draws the same permutation (layers are built in
    the same order) and the tasks' regions are disjoint. regions: {layer name: r indices} for this
    task instead (e.g. feature_regions(...)[task]: the features this task uses and the others don't).
    """
    validate.positive_int("n_tasks", n_tasks)
    validate.int_in("task", task, 0, n_tasks - 1)
    validate.int_in("seed", seed, 0, 2**63 - 1)
    if regions is not None and not isinstance(regions, dict):
        raise TypeError(f"regions must be a dict {{layer name: indices}} or None, got {type(regions).__name__}")
    check_keywords(SBoRALinear, dict(r=r, alpha=alpha, variant=variant, indices=None, **kwargs))
    generator = torch.Generator().manual_seed(seed)
    names = {id(m): n for n, m in model.named_modules()}

    def build(base):
        if regions is None:
            indices = task_indices(base_dim(base, variant), r, task, n_tasks, generator)
        elif names[id(base)] in regions:
            indices = regions[names[id(base)]]
        else:
            raise ValueError(f"regions has no indices for {names[id(base)]}: give one set per adapted layer")
        return SBoRALinear(base, r, alpha, variant, indices=indices, **kwargs)

    return replace_layers(model, build_layers(model, build, target_modules))


@torch.no_grad()
def input_energy(model, batches, target_modules):
    """{layer name: each input feature's share of Σ x²} over the real tokens of `batches` ({"input_ids",
    "attention_mask"}): which features of each layer's input a task uses, in the model as it is."""
    layers = [(n, m) for n, m in model.named_modules()
              if n and name_matches(n, target_modules) and isinstance(m, (nn.Linear, conv1d_class()))]
    if not layers:
        raise ValueError(f"target_modules={target_modules!r} matches no nn.Linear/Conv1D layer of the model")
    sums, mask = {}, {}

    def record(name, x):
        x = x[mask["real"]]   # padding positions are not the task's inputs
        sums[name] = sums.get(name, 0) + x.float().pow(2).sum(0)
    with layer_inputs(layers, record):
        for batch in batches:
            mask["real"] = batch["attention_mask"].bool()
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    if not sums:
        raise ValueError("batches is empty: give at least one batch of the task's inputs")
    return {name: s / s.sum() for name, s in sums.items()}


def feature_regions(energies, r):
    """Disjoint FA regions chosen by what each task uses: for every layer, task t ranks the input features
    by share_t / max(share of the other tasks) and the tasks take turns picking their most specific free one,
    r each. energies: one input_energy() dict per task. Returns one {layer: indices} per task (inject_task).
    Disjoint weights are not disjoint functions: the other task's update still sees this task's inputs
    through its columns, less so when its columns are features this task barely uses."""
    validate.positive_int("r", r)
    if not isinstance(energies, (list, tuple)) or len(energies) < 2:
        raise ValueError("energies must be a list of at least two input_energy() dicts, one per task")
    layers = list(energies[0])
    if any(set(e) != set(layers) for e in energies):
        raise ValueError("every task's energies must cover the same layers (same model, same target_modules)")
    regions = [{} for _ in energies]
    for layer in layers:
        shares = torch.stack([e[layer] for e in energies])   # (tasks, features)
        if r * len(energies) > shares.shape[1]:
            raise ValueError(f"{len(energies)} tasks x r={r} do not fit in the {shares.shape[1]} input features "
                             f"of {layer} disjointly")
        order = []
        for t in range(len(energies)):
            others = torch.cat([shares[:t], shares[t + 1:]]).max(0).values
            order.append((shares[t] / others.clamp_min(torch.finfo(shares.dtype).tiny)).argsort(descending=True).tolist())
        taken, picked = set(), [[] for _ in energies]
        for _ in range(r):
            for t, ranked in enumerate(order):
                best = next(i for i in ranked if i not in taken)
                taken.add(best)
                picked[t].append(best)
        for t in range(len(energies)):
            regions[t][layer] = torch.tensor(picked[t])
    return regions


def base_dim(base, variant):
    """Input features for FA, output features for FB, of an nn.Linear or Conv1D."""
    n_in, n_out, _ = linear_dims(base)
    return n_in if variant_upper(variant) == "FA" else n_out


@torch.no_grad()
def merge_tasks(model, task_models):
    """Add every task model's update into `model` (a plain copy of the base model), in place.

    An SBoRA layer's ΔW is zero outside its r columns (FA) or rows (FB), so adding it changes only
    those; when all tasks are SBoRA, their regions must be disjoint (else this is not Multi-SBoRA and
    tasks would overwrite each other). Other adapters (LoRA) add their full ΔW: the naive sum the
    course compares against. Everything is checked before the first weight changes.
    """
    if not isinstance(task_models, (list, tuple)) or not task_models:
        raise ValueError("task_models must be a non-empty list of injected (and trained) task models")
    targets = dict(model.named_modules())
    seen, updates = {}, []
    for i, task_model in enumerate(task_models):
        layers = adapter_layers(task_model) if isinstance(task_model, nn.Module) else []
        if not layers:
            raise ValueError(f"task model {i} holds no adapter layers: inject and train it first")
        for name, layer in layers:
            target = targets.get(name)
            if target is None or getattr(target, "weight", None) is None or target.weight.shape != layer.base.weight.shape:
                raise ValueError(f"{name} of the merge target does not match task model {i}'s base layer "
                                 f"(pass a plain copy of the base model the tasks were injected into)")
            if isinstance(target, AdapterLayer):
                raise ValueError(f"the merge target has an adapter at {name}: pass a plain copy of the base model")
            if isinstance(layer, SBoRALinear):
                taken = seen.setdefault((name, layer.variant), set())
                overlap = taken & set(layer.indices.tolist())
                if overlap:
                    raise ValueError(f"tasks overlap at {name} ({layer.variant} indices {sorted(overlap)[:5]}): "
                                     "give each task a disjoint slice (inject_task with the same seed)")
                taken.update(layer.indices.tolist())
            delta = layer.delta_weight().detach()
            if not torch.isfinite(delta).all():
                raise FloatingPointError(f"task model {i}: ΔW of {name} holds NaN or Inf; refusing to merge it")
            updates.append((target.weight, delta, layer.fan_in_fan_out))
    for weight, delta, fan_in_fan_out in updates:
        add_delta(weight, delta, fan_in_fan_out)
    return model
