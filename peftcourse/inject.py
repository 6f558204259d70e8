"""One injection mechanism for every method: find target modules by name, wrap them, freeze the rest.

Matching follows peft (tuners_utils.check_target_module_exists):
  target_modules="regex"        -> the module's full name must fullmatch the regex
  target_modules=["q", "c_attn"] -> the name equals an entry or ends with "." + entry

Adapter files (save_adapter / load_adapter) are safetensors files whose metadata records every
adapted module's method and settings (r, α, rsLoRA, MoRA type, SBoRA variant, ...): a file is only
loaded into a model that was injected the same way, so it can never silently compute something else.
"""
import json
import os
import warnings

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .base import (AdapterLayer, PEFTModule, adapter_layers, build_layers, inside_adapter,  # noqa: F401 (re-exported)
                   linear_module_names, name_matches, replace_layers, replace_module)
from .dora import DoRALinear
from .lora import LoRALinear
from .mora import MoRALinear
from .qlora import QLoRALinear
from .runtime import count_params
from .sbora import SBoRALinear

# method name -> layer class; each is built as Class(base_layer, **kwargs)
METHODS = {"lora": LoRALinear, "dora": DoRALinear, "mora": MoRALinear, "sbora": SBoRALinear, "qlora": QLoRALinear}
FILE_FORMAT = "peftcourse-adapter/1"


def method_class(method):
    if isinstance(method, str):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}: use one of {sorted(METHODS)} or pass a class")
        return METHODS[method]
    if not callable(method):
        raise TypeError(f"method must be one of {sorted(METHODS)} or a class/function base -> adapter layer, "
                        f"got {type(method).__name__}")
    return method


def inject(model, method, target_modules, modules_to_save=None, **kwargs):
    """Wrap every target layer of `model` in `method`'s adapter, in place; freeze everything else.

    modules_to_save: names (same matching rules) whose own weights stay trainable, e.g. a new
    classification head. Every argument is checked and every layer built before the model changes:
    an error leaves the model as it was. Returns the model.
    """
    plan = build_layers(model, method_class(method), target_modules, modules_to_save, **kwargs)
    return replace_layers(model, plan)


def layers_to(action, model):
    """The model's adapter layers, or a clear error where there is none to `action`."""
    layers = adapter_layers(model)
    if not layers:
        raise ValueError(f"the model has no adapter layers to {action}: inject() a method first")
    return layers


def each_layer(model, action, name, *args, **kwargs):
    """Call layer.<action>(...) on every adapter layer, after checking that all of them can."""
    layers = layers_to(action.replace("_", " "), model)
    single = [(n, type(layer).__name__) for n, layer in layers if not hasattr(layer, "check_" + action)]
    if single:
        raise TypeError(f"{single[0][1]} at {single[0][0]!r} holds a single adapter (no {action})")
    for lname, layer in layers:  # every layer checks the call before any layer changes
        getattr(layer, "check_" + action)(name, *args, **kwargs)
    for lname, layer in layers:
        getattr(layer, action)(name, *args, **kwargs)
    return model


def add_adapter(model, name, **kwargs):
    """Give every adapter layer of an injected model another named adapter (e.g. one per task), made active.

    Works for any method whose layers implement add_adapter(name, **kwargs)/set_adapter(name) (LoRA does).
    """
    return each_layer(model, "add_adapter", name, **kwargs)


def set_adapter(model, name):
    """Switch every adapter layer to the named adapter (only that one stays trainable)."""
    return each_layer(model, "set_adapter", name)


def trainable_report(model):
    """peft's print_trainable_parameters line, returned as a string.

    Like peft, a packed 4-bit weight (bitsandbytes Params4bit, 2 values per uint8) counts
    as 2 parameters per stored byte.
    """
    if not hasattr(model, "parameters"):
        raise TypeError(f"trainable_report needs a torch nn.Module, got {type(model).__name__}")
    trainable = count_params(model, trainable_only=True, like_peft=True)
    total = count_params(model, like_peft=True)
    if total == 0:
        raise ValueError(f"{type(model).__name__} has no parameters: there is nothing to report")
    return f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {100 * trainable / total:.4f}"


def peft_modules(model):
    """(name, module) of every outermost PEFTModule (an adapter layer, a series adapter, prompt tuning, ...)."""
    out = []
    for name, module in model.named_modules():  # pre-order: an outer PEFTModule comes before its children
        if isinstance(module, PEFTModule) and not any(name.startswith(d + ".") for d, _ in out):
            out.append((name, module))
    return out


def adapter_state_dict(model):
    """Only the PEFT weights (every PEFTModule's state without its frozen base): what gets saved and shared."""
    state = {}
    for name, module in peft_modules(model):
        for k, v in module.state_dict().items():
            if not k.startswith("base."):
                state[f"{name}.{k}" if name else k] = v.detach().contiguous()
    for name, p in model.named_parameters():  # modules_to_save and any other trainable weight
        if p.requires_grad and name not in state:
            state[name] = p.detach().contiguous()
    return state


def adapter_config(model):
    """{module name: its method and settings} of every PEFTModule: the metadata of an adapter file."""
    return {name: module.config() for name, module in peft_modules(model)}


def check_no_merged(model, what):
    merged = [n for n, layer in adapter_layers(model) if layer.merged]
    if merged:
        raise RuntimeError(f"{len(merged)} adapter layers are merged into their base weights (e.g. {merged[0]}): "
                           f"unmerge() them before {what}")


def check_finite(state, where):
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"{where}: tensors {bad[:5]} hold NaN or Inf (a diverged run?); refusing them")


def save_adapter(model, path):
    """Save the adapter weights alone as safetensors (kilobytes, not the whole model), with every adapted
    module's method and settings in the file's metadata."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file name (str or pathlib.Path), got {type(path).__name__}")
    if not peft_modules(model):
        raise ValueError("the model holds no adapter to save: inject() a method first "
                         "(save_adapter saves adapter weights, not a whole model)")
    check_no_merged(model, "saving (a merged layer's ΔW is inside the base weight, which is not saved)")
    state = adapter_state_dict(model)
    check_finite(state, "save_adapter")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save the adapter to {path}: the folder {directory} does not exist")
    metadata = {"format": FILE_FORMAT, "config": json.dumps(adapter_config(model), sort_keys=True)}
    save_file(state, str(path), metadata=metadata)
    return path


def read_adapter_file(path):
    """(tensors, config) of an adapter file; a clear error, naming the file, for anything else."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file name (str or pathlib.Path), got {type(path).__name__}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no adapter file at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors raises its own error types for truncated or foreign files
        raise ValueError(f"{path} is not a readable safetensors file (truncated, or another format): {err}") from None
    if metadata.get("format") != FILE_FORMAT:
        raise ValueError(f"{path} is not an adapter file written by save_adapter (its metadata has no "
                         f"{FILE_FORMAT!r} format entry), so what it holds cannot be checked")
    try:
        config = json.loads(metadata["config"])
    except (KeyError, ValueError) as err:
        raise ValueError(f"{path}: the adapter configuration in its metadata is unreadable ({err})") from None
    return state, config


def load_adapter(model, path):
    """Load weights saved by save_adapter into a model injected with the same method, settings and targets.

    Refused, with the model unchanged: a merged model (unmerge first), another method or other settings
    (both named), missing or extra tensors, other shapes, NaN/Inf values, a corrupt file.
    """
    if not peft_modules(model):
        raise ValueError("the model has no adapter to load into: inject() the same method and targets first")
    check_no_merged(model, "loading (the loaded weights would not be the merged ones)")
    state, config = read_adapter_file(path)
    own_config = adapter_config(model)
    if set(config) != set(own_config):
        only_file, only_model = sorted(set(config) - set(own_config)), sorted(set(own_config) - set(config))
        raise ValueError(f"adapter file {path} does not fit this model: it adapts {only_file[:3]} which this model "
                         f"does not, and not {only_model[:3]} which this model does (inject the same method and "
                         "target_modules first)")
    diff = [n for n in sorted(config) if config[n] != own_config[n]]
    if diff:
        raise ValueError(f"adapter file {path} was saved from another configuration: at {diff[0]!r} the file holds "
                         f"{config[diff[0]]} but this model has {own_config[diff[0]]} ({len(diff)} module(s) differ); "
                         "inject the same method and settings first")
    own = adapter_state_dict(model)
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(f"adapter file {path} does not fit this model: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]} (inject the same method and target_modules first)")
    shapes = [f"{k}: file {tuple(state[k].shape)}, model {tuple(v.shape)}" for k, v in own.items()
              if state[k].shape != v.shape]
    if shapes:
        raise ValueError(f"adapter file {path} does not fit this model: shapes differ ({shapes[:3]})")
    check_finite(state, f"adapter file {path}")
    for name, module in peft_modules(model):  # method-specific checks, e.g. SBoRA's indices
        prefix = f"{name}." if name else ""
        try:
            module.check_state({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        except ValueError as err:
            raise ValueError(f"adapter file {path}, module {name!r}: {err}") from None
    model.load_state_dict(state, strict=False)
    return model


def merge(model):
    """Add every adapter's ΔW into its base weight, in place (peft's merge_adapter). The adapter layers stay,
    marked merged: each then costs what its base layer costs, and unload() can take ΔW out again. A QLoRA layer
    re-quantizes its merged weight to NF4 (qlora.merge_to_full_precision keeps it exact)."""
    layers = layers_to("merge", model)
    for name, layer in layers:  # everything is checked before the first layer is merged
        delta = None if layer.merged else layer.delta_weight().detach()
        if delta is not None and not torch.isfinite(delta).all():
            raise FloatingPointError(f"{name}: ΔW holds NaN or Inf; refusing to merge it")
    for name, layer in layers:
        if layer.merged:   # merged before: adding ΔW again would count it twice
            continue
        tied = [n for n, p in model.named_parameters(remove_duplicate=False)
                if p is layer.base.weight and not n.startswith(name + ".")]
        if tied:  # e.g. GPT-2's lm_head shares its weight with the token embedding
            warnings.warn(f"{name}'s weight is tied to {tied}: merging its adapter changes those too")
        layer.merge()
    return model


def merge_and_unload(model):
    """Merge every adapter into its base layer and put the plain base layer back: a normal model again."""
    for name, layer in adapter_layers(merge(model)):
        replace_module(model, name, layer.base)
    return model


def unload(model):
    """Take every adapter out and put its base layer back, ΔW not kept (peft's unmerge_adapter, then unload).
    An unmerged layer gives back its very base weight; a merged one is unmerged first, W0 + ΔW − ΔW, which is W0
    up to float rounding (a QLoRA layer re-quantizes, so its NF4 weight moves by up to a quantization step).
    The rest of the model stays as it is: frozen, with any modules_to_save as trained."""
    layers = layers_to("unload", model)
    for name, layer in layers:
        if layer.merged:
            layer.unmerge()
        replace_module(model, name, layer.base)
    return model
