"""The interface every weight-adapter method shares (LoRA, DoRA, MoRA, SBoRA, QLoRA).

An AdapterLayer wraps one frozen base layer (nn.Linear, or GPT-2's Conv1D whose weight is stored
transposed, in x out) and adds a trainable update. Whatever the method:
    delta_weight()  -> ΔW in nn.Linear layout (out_features x in_features)
    forward(x)      == base(x) + adapter_forward(x) == base(x) + x @ delta_weight().T   (up to rounding)
    merge()/unmerge() fold ΔW into the base weight and take exactly that ΔW out again.
    config()        -> the method and its settings, saved with the adapter (inject.save_adapter)
So analysis, merging and saving work the same way for every method. A subclass checks all of its
arguments BEFORE calling AdapterLayer.__init__, which freezes the caller's base layer: a bad
argument then leaves that layer as it was.
"""
import inspect
import re
from contextlib import contextmanager

import torch
from torch import nn

from . import validate


class PEFTModule(nn.Module):
    """Marker for modules that hold PEFT weights (their state, minus any `base.`, is the adapter)."""

    def config(self):
        """The method and the settings that decide what its weights compute (saved with the adapter)."""
        raise NotImplementedError

    def check_state(self, state):
        """Raise ValueError if `state` (this module's tensors from an adapter file) is not valid for it.
        Names, shapes and finiteness are checked for every method; a method adds its own rules."""


def conv1d_class():
    """transformers' Conv1D, imported on first use (importing transformers takes seconds)."""
    from transformers.pytorch_utils import Conv1D
    return Conv1D


def linear_dims(base):
    """(in_features, out_features, fan_in_fan_out) of an nn.Linear or GPT-2 Conv1D.

    A module with `linear_layout = True` (the course's QuantLinear) counts as an nn.Linear: it has
    in_features, out_features and a `weight` in (out, in) layout.
    """
    if isinstance(base, nn.Linear) or getattr(base, "linear_layout", False) is True:
        return base.in_features, base.out_features, False
    if isinstance(base, conv1d_class()):
        n_in, n_out = base.weight.shape  # Conv1D stores W as (in, out): peft calls this fan_in_fan_out
        return n_in, n_out, True
    raise TypeError(f"an adapter wraps nn.Linear or transformers' Conv1D, got {type(base).__name__}")


@torch.no_grad()
def add_delta(weight, delta, fan_in_fan_out):
    """weight += ΔW in place, ΔW given in nn.Linear layout (out x in); Conv1D's weight is (in x out)."""
    delta = delta.to(weight.dtype)
    weight += delta.T if fan_in_fan_out else delta


def dropout_or_identity(p):
    """nn.Dropout(p) for an adapter branch's input, or nn.Identity() when p is 0 (as peft: no dropout module)."""
    return nn.Dropout(p) if p > 0 else nn.Identity()


class AdapterLayer(PEFTModule):
    """Base class: holds the frozen `base`, the merge state, the one forward and the one merge path."""

    method = None  # the name inject() and adapter files use ("lora", "dora", ...)

    def __init__(self, base):
        super().__init__()
        self.in_features, self.out_features, self.fan_in_fan_out = linear_dims(base)
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.merged = False
        # what merge() added, so that unmerge() takes exactly that out again; a buffer, so that .to(device)
        # moves it, but not persistent: an adapter file never holds it (merged models are not saved)
        self.register_buffer("merged_delta", None, persistent=False)

    def base_weight(self):
        """W0 in nn.Linear layout (out x in), whatever the base module stores."""
        w = self.base.weight
        return w.T if self.fan_in_fan_out else w

    def delta_weight(self):
        raise NotImplementedError

    def adapter_forward(self, x):
        """The update's contribution to the output. Subclasses compute it without building ΔW."""
        return x @ self.delta_weight().T

    def adapter_output(self, x, base_out):
        """The one hook of forward(): what the adapter adds to base_out = base(x). Every method but DoRA
        ignores base_out; DoRA rescales W0 x = base_out − b instead of computing it a second time."""
        return self.adapter_forward(x)

    def forward(self, x):
        y = self.base(x)
        if self.merged:  # ΔW is inside the base weight now
            return y
        return y + self.adapter_output(x, y).to(y.dtype)

    @torch.no_grad()
    def merge(self):
        """W0 <- W0 + ΔW: after this the layer costs exactly what the base layer costs (no extra matmul)."""
        if self.merged:
            raise RuntimeError("this layer is already merged; unmerge() first (merging twice would add ΔW twice)")
        delta = self.delta_weight().detach().clone()
        if not torch.isfinite(delta).all():
            raise FloatingPointError(f"{type(self).__name__}: ΔW holds NaN or Inf (diverged training?): "
                                     "refusing to merge it into the base weight")
        self.add_to_base(delta)
        self.merged_delta = delta  # unmerge subtracts exactly this, whatever happens to A, B, ... meanwhile
        self.merged = True

    @torch.no_grad()
    def unmerge(self):
        if not self.merged:
            raise RuntimeError("this layer is not merged; there is nothing to unmerge")
        self.add_to_base(-self.merged_delta)
        self.merged_delta = None
        self.merged = False

    def add_to_base(self, delta):
        """The one hook of merge()/unmerge(): add delta (out x in) to the base weight, in its own layout.
        SBoRA adds only its r columns/rows; QLoRA re-quantizes."""
        add_delta(self.base.weight, delta, self.fan_in_fan_out)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, merged={self.merged}"


# ---------------------------------------------------------------- wrapping layers by name
# The one injection mechanism, in two steps: build_layers() checks everything and builds the new
# layers without touching the model; replace_layers() puts them in. inject() and the method helpers
# (add_adapters, inject_task, inject_gpt2_attention) are these two calls.

def name_matches(name, target_modules):
    """peft's rule (tuners_utils.check_target_module_exists): a string is a regex that must fullmatch the
    module's full name; a list matches a name equal to an entry or ending in "." + entry."""
    if isinstance(target_modules, str):
        return re.fullmatch(target_modules, name) is not None
    return any(name == t or name.endswith("." + t) for t in target_modules)


def adapter_layers(model):
    """(name, layer) for every AdapterLayer in the model."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, AdapterLayer)]


def replace_module(model, name, module):
    """Put `module` into `model` at the dotted `name` (as named_modules() gives it), in place of what is there."""
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


@contextmanager
def layer_inputs(layers, record):
    """While the block runs, call record(name, x) with the input x of every forward call of each (name, module)
    in `layers`; the hooks are removed afterwards, also when the block raises."""
    hooks = [module.register_forward_hook(lambda _, inputs, __, name=name: record(name, inputs[0]))
             for name, module in layers]
    try:
        yield
    finally:
        for h in hooks:
            h.remove()


def inside_adapter(model):
    """A test name -> True for adapter modules and everything inside them (their frozen base layers)."""
    wrapped = [n for n, m in model.named_modules() if n and isinstance(m, PEFTModule)]
    return lambda name: any(name == w or name.startswith(w + ".") for w in wrapped)


def linear_module_names(model):
    """Names of the layers an adapter can wrap (nn.Linear, Conv1D), for error messages and notebooks."""
    kinds = (nn.Linear, conv1d_class())
    inside = inside_adapter(model)
    return [n for n, m in model.named_modules() if isinstance(m, kinds) and not inside(n)]


def adaptable_names(model):
    full = linear_module_names(model)
    short = sorted({n.rsplit(".", 1)[-1] for n in full})
    return f"{short} (full names like {full[:3]})"


def check_keywords(factory, kwargs):
    """The keyword arguments fit factory(base, **kwargs): a misspelt name is reported with the right ones."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin without a signature: let the call itself complain
        return
    try:
        signature.bind(None, **kwargs)
    except TypeError as err:
        accepted = [p for p in list(signature.parameters)[1:]]
        name = getattr(factory, "__name__", repr(factory))
        raise TypeError(f"{name} cannot take {sorted(kwargs)} ({err}); its arguments after the base layer are "
                        f"{accepted}") from None


def build_layers(model, factory, target_modules, modules_to_save=None, **kwargs):
    """Check every argument and build the adapter layers for the matching modules, WITHOUT changing
    `model`. Returns the plan that replace_layers() carries out."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch nn.Module to adapt, got {type(model).__name__}")
    validate.name_list("target_modules", target_modules)
    if not callable(factory):
        raise TypeError(f"method must be a method name or a class/function base -> adapter layer, got {factory!r}")
    check_keywords(factory, kwargs)
    kinds = (nn.Linear, conv1d_class())
    inside = inside_adapter(model)
    matched = [n for n, _ in model.named_modules() if n and name_matches(n, target_modules)]
    names = [n for n in matched if not inside(n)]
    if matched and not names:
        raise ValueError(f"target_modules={target_modules!r} matches only layers that already carry an adapter "
                         f"({matched[:3]}...); to give them a second adapter use add_adapter(model, name, ...)")
    if not names:
        raise ValueError(f"no module of {type(model).__name__} matches target_modules={target_modules!r}; "
                         f"the layers that can be adapted are: {adaptable_names(model)}")
    wrong = [n for n in names if not isinstance(model.get_submodule(n), kinds)]
    if wrong:
        raise ValueError(f"target_modules={target_modules!r} matches {wrong}, which are not nn.Linear/Conv1D "
                         f"({type(model.get_submodule(wrong[0])).__name__}); adaptable layers: {adaptable_names(model)}")
    saved = []
    if modules_to_save is not None:
        validate.name_list("modules_to_save", modules_to_save)
        saved = [n for n, _ in model.named_modules() if n and name_matches(n, modules_to_save)]
        if not saved:
            raise ValueError(f"modules_to_save={modules_to_save!r} matches no module of {type(model).__name__}")
        clash = [n for n in saved if any(n == t or n.startswith(t + ".") or t.startswith(n + ".") for t in names)]
        if clash:
            raise ValueError(f"modules_to_save={modules_to_save!r} names {clash[:3]}, which get an adapter or contain "
                             "one: training them in full would also train the frozen base layers")
    grads = [(p, p.requires_grad) for p in model.parameters()]
    try:  # each constructor checks its own arguments, then freezes its base layer
        layers = [(n, factory(model.get_submodule(n), **kwargs)) for n in names]
    finally:  # the model stays exactly as it was until replace_layers(), also when a layer raised
        for p, g in grads:
            p.requires_grad_(g)
    bad = [n for n, layer in layers if not isinstance(layer, PEFTModule)]
    if bad:
        raise TypeError(f"{getattr(factory, '__name__', factory)} built {type(dict(layers)[bad[0]]).__name__} for "
                        f"{bad[0]}, not an adapter layer (a PEFTModule)")
    return {"layers": layers, "modules_to_save": saved}


def replace_layers(model, plan):
    """Carry out a build_layers() plan: freeze everything but earlier adapters, put the new layers in,
    unfreeze modules_to_save."""
    inside = inside_adapter(model)
    for pname, p in model.named_parameters():
        if not inside(pname):  # adapters from an earlier inject() call keep their trainable weights
            p.requires_grad_(False)
    for name, layer in plan["layers"]:
        replace_module(model, name, layer)
    for name in plan["modules_to_save"]:
        for p in model.get_submodule(name).parameters():
            p.requires_grad_(True)
    return model
