"""Multi-SBoRA: several tasks in disjoint regions of one model (lecture: "Summary of SBoRA"; notebook 11).

Multi-SBoRA is not in the SBoRA reference code (cityuhkai/SBoRA): this module is the course's reconstruction of
the idea. Every task is an SBoRA model (peftcourse.sbora.SBoRALinear) whose r indices per layer no other task uses:

    task_indices, inject_task          task t's slice of one seeded permutation of each layer's features
    merge_tasks                        every task's update added into one plain copy of the base model
    input_energy, feature_regions      regions chosen by the features each task uses, instead of at random
"""
import torch
from torch import nn

from . import validate
from .base import (AdapterLayer, adapter_layers, add_delta, build_layers, check_keywords, conv1d_class, layer_inputs,
                   linear_dims, name_matches, replace_layers)
from .sbora import SBoRALinear, variant_upper


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
