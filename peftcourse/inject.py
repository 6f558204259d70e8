"""One injection mechanism for every method: find target modules by name, wrap them, freeze the rest.

Matching follows peft (tuners_utils.check_target_module_exists):
  target_modules="regex"        -> the module's full name must fullmatch the regex
  target_modules=["q", "c_attn"] -> the name equals an entry or ends with "." + entry
"""
import importlib
import re
import warnings

from safetensors.torch import save_file, load_file
from torch import nn

from .base import AdapterLayer, PEFTModule, conv1d_class

# method name -> "module:Class"; each class is built as Class(base_layer, **kwargs)
METHODS = {
    "lora": "peftcourse.lora:LoRALinear",
    "dora": "peftcourse.dora:DoRALinear",
    "mora": "peftcourse.mora:MoRALinear",
    "sbora": "peftcourse.sbora:SBoRALinear",
    "qlora": "peftcourse.qlora:QLoRALinear",
}


def method_class(method):
    if not isinstance(method, str):
        return method  # a class or factory: base -> AdapterLayer
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use one of {sorted(METHODS)} or pass a class")
    module, cls = METHODS[method].split(":")
    return getattr(importlib.import_module(module), cls)


def name_matches(name, target_modules):
    if isinstance(target_modules, str):
        return re.fullmatch(target_modules, name) is not None
    return any(name == t or name.endswith("." + t) for t in target_modules)


def _inside_adapter(model):
    """A test name -> True for adapter modules and everything inside them (their frozen base layers)."""
    wrapped = [n for n, m in model.named_modules() if n and isinstance(m, PEFTModule)]
    return lambda name: any(name == w or name.startswith(w + ".") for w in wrapped)


def linear_module_names(model):
    """Names of the layers an adapter can wrap (nn.Linear, Conv1D), for error messages and notebooks."""
    kinds = (nn.Linear, conv1d_class())
    inside = _inside_adapter(model)
    return [n for n, m in model.named_modules() if isinstance(m, kinds) and not inside(n)]


def _set_submodule(model, name, new):
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def inject(model, method, target_modules, modules_to_save=None, **kwargs):
    """Wrap every target layer of `model` in `method`'s adapter, in place; freeze everything else.

    modules_to_save: names (same matching rules) whose own weights stay trainable, e.g. a new
    classification head. Returns the model.
    """
    if not target_modules:
        raise ValueError("target_modules is empty: name the layers to adapt, e.g. ['c_attn'] or ['query', 'value']")
    if not isinstance(target_modules, (str, list, tuple, set)):
        raise TypeError(f"target_modules must be a regex string or a list of names, got {type(target_modules).__name__}")
    cls = method_class(method)
    kinds = (nn.Linear, conv1d_class())
    inside = _inside_adapter(model)
    matched = [n for n, _ in model.named_modules() if n and name_matches(n, target_modules)]
    names = [n for n in matched if not inside(n)]
    if matched and not names:
        raise ValueError(f"target_modules={target_modules!r} matches only layers that already carry an adapter "
                         f"({matched[:3]}...); to give them a second adapter use add_adapter(model, name, ...)")
    if not names:
        raise ValueError(f"no module of {type(model).__name__} matches target_modules={target_modules!r}; "
                         f"the layers that can be adapted are: {_short_names(model)}")
    wrong = [n for n in names if not isinstance(model.get_submodule(n), kinds)]
    if wrong:
        raise ValueError(f"target_modules={target_modules!r} matches {wrong}, which are not nn.Linear/Conv1D "
                         f"({type(model.get_submodule(wrong[0])).__name__}); adaptable layers: {_short_names(model)}")
    for pname, p in model.named_parameters():
        if not inside(pname):  # adapters from an earlier inject() call keep their trainable weights
            p.requires_grad_(False)
    for n in names:
        _set_submodule(model, n, cls(model.get_submodule(n), **kwargs))
    if modules_to_save:
        saved = [n for n, m in model.named_modules() if n and name_matches(n, modules_to_save)]
        if not saved:
            raise ValueError(f"modules_to_save={modules_to_save!r} matches no module of {type(model).__name__}")
        for n in saved:
            for p in model.get_submodule(n).parameters():
                p.requires_grad_(True)
    return model


def _short_names(model):
    full = linear_module_names(model)
    short = sorted({n.rsplit(".", 1)[-1] for n in full})
    return f"{short} (full names like {full[:3]})"


def adapter_layers(model):
    """(name, layer) for every AdapterLayer in the model."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, AdapterLayer)]


def add_adapter(model, name, **kwargs):
    """Give every adapter layer of an injected model another named adapter (e.g. one per task), made active.

    Works for any method whose layers implement add_adapter(name, **kwargs)/set_adapter(name) (LoRA does).
    """
    layers = adapter_layers(model)
    if not layers:
        raise ValueError("the model has no adapter layers: inject() a method first")
    for lname, layer in layers:
        if not hasattr(layer, "add_adapter"):
            raise TypeError(f"{type(layer).__name__} at {lname!r} holds a single adapter (no add_adapter)")
        layer.add_adapter(name, **kwargs)
    return model


def set_adapter(model, name):
    """Switch every adapter layer to the named adapter (only that one stays trainable)."""
    layers = adapter_layers(model)
    if not layers:
        raise ValueError("the model has no adapter layers: inject() a method first")
    for lname, layer in layers:
        if not hasattr(layer, "set_adapter"):
            raise TypeError(f"{type(layer).__name__} at {lname!r} holds a single adapter (no set_adapter)")
        layer.set_adapter(name)
    return model


def trainable_report(model):
    """peft's print_trainable_parameters line, returned as a string.

    Like peft, a packed 4-bit weight (bitsandbytes Params4bit, 2 values per uint8) counts
    as 2 parameters per stored byte.
    """
    trainable = total = 0
    for p in model.parameters():
        n = p.numel()
        if n == 0 and hasattr(p, "ds_numel"):
            n = p.ds_numel
        if p.__class__.__name__ == "Params4bit":
            n = n * 2 * (p.element_size() if hasattr(p, "element_size") else 1)
        total += n
        if p.requires_grad:
            trainable += n
    return f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {100 * trainable / total:.4f}"


def adapter_state_dict(model):
    """Only the PEFT weights (every PEFTModule's state without its frozen base): what gets saved and shared."""
    state, done = {}, []
    for name, module in model.named_modules():  # pre-order: an outer PEFTModule comes before its children
        if isinstance(module, PEFTModule) and not any(name.startswith(d + ".") for d in done):
            done.append(name)
            for k, v in module.state_dict().items():
                if not k.startswith("base."):
                    state[f"{name}.{k}" if name else k] = v.detach().contiguous()
    for name, p in model.named_parameters():  # modules_to_save and any other trainable weight
        if p.requires_grad and name not in state:
            state[name] = p.detach().contiguous()
    return state


def save_adapter(model, path):
    """Save the adapter weights alone as safetensors (kilobytes, not the whole model)."""
    state = adapter_state_dict(model)
    if not state:
        raise ValueError("the model holds no adapter weights to save: inject() a method first")
    save_file(state, str(path))
    return path


def load_adapter(model, path):
    """Load weights saved by save_adapter into a model injected with the same method and targets."""
    state = load_file(str(path))
    own = adapter_state_dict(model)
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(f"adapter file {path} does not fit this model: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]} (inject the same method and target_modules first)")
    model.load_state_dict(state, strict=False)
    return model


def merge_and_unload(model):
    """Merge every adapter into its base layer and put the plain base layer back: a normal model again."""
    for name, layer in adapter_layers(model):
        tied = [n for n, p in model.named_parameters(remove_duplicate=False)
                if p is layer.base.weight and not n.startswith(name + ".")]
        if tied:  # e.g. GPT-2's lm_head shares its weight with the token embedding
            warnings.warn(f"{name}'s weight is tied to {tied}: merging its adapter changes those too")
        if not layer.merged:
            layer.merge()
        _set_submodule(model, name, layer.base)
    return model
