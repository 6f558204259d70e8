"""Bottleneck adapters (Houlsby et al. 2019): small trainable modules inserted into a frozen transformer.

    adapter(h) = h + W_up · act(W_down · h)        W_down: b × d, W_up: d × b, b << d

Parameters per adapter, with biases: d·b + b (down) + b·d + d (up) = 2·d·b + d + b.
W_up starts at zero, so every adapter starts as the identity and the adapted model starts as the
pretrained model (the paper's "near-identity initialisation", §2.1, made exact).

Placement (Houlsby et al. 2019, Fig. 2): one adapter after the attention output projection and one
after the feed-forward output projection, applied to the sublayer's output BEFORE the skip connection
is added back (and before BERT's LayerNorm). We get there without touching transformers' code by
wrapping those projections, because both architectures add the residual after them:
  * BERT (post-LN): BertSelfOutput / BertOutput compute LayerNorm(dropout(dense(x)) + input);
    wrapping `dense` puts the adapter before "+ input" and the LayerNorm. Wrapping the whole
    `attention.output` module instead would put it after the LayerNorm — the wrong place.
  * GPT-2 (pre-LN): the block computes h + dropout(c_proj(...)) for attention and MLP; wrapping
    `attn.c_proj` and `mlp.c_proj` puts the adapter before "+ h" (the LayerNorms sit at the start of
    each sublayer there, so "before the residual" is the whole requirement).
  * Llama (SmolLM2, pre-RMSNorm like GPT-2): the decoder layer computes h + self_attn(...) and
    h + mlp(...), whose last layers are `self_attn.o_proj` and `mlp.down_proj`; wrapping those puts
    the adapter before "+ h" in the same way.
The only difference: the adapter runs before the sublayer's dropout rather than after it.
"""
import re

from torch import nn

from . import validate
from .base import PEFTModule, build_layers, linear_dims, replace_layers

# the output projections of the attention and feed-forward sublayers, per architecture
HOULSBY_TARGETS = {
    "gpt2": ["attn.c_proj", "mlp.c_proj"],
    "bert": ["attention.output.dense", "output.dense"],  # the second also matches the first: both are wanted
    "llama": ["self_attn.o_proj", "mlp.down_proj"],
}

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh}


def adapter_param_count(d_model, bottleneck):
    """2·d·b + d + b: down (b×d weights + b biases) plus up (d×b weights + d biases)."""
    validate.positive_int("d_model", d_model)
    validate.positive_int("bottleneck", bottleneck)
    return 2 * d_model * bottleneck + d_model + bottleneck


def check_bottleneck(d_model, bottleneck):
    validate.positive_int("d_model", d_model)
    validate.positive_int("bottleneck", bottleneck)
    if bottleneck >= d_model:
        raise ValueError(f"bottleneck={bottleneck} must be smaller than d_model={d_model}: the adapter "
                         f"saves parameters only by projecting down (Houlsby et al. use b << d, e.g. 1024 → 24)")


class BottleneckAdapter(PEFTModule):
    """h + up(act(down(h))): a d → b → d bottleneck with its own skip connection; identity at init."""

    def __init__(self, d_model, bottleneck, activation="gelu"):
        super().__init__()
        check_bottleneck(d_model, bottleneck)
        validate.choice("activation", activation, sorted(ACTIVATIONS))
        self.d_model, self.bottleneck, self.activation = d_model, bottleneck, activation
        self.down = nn.Linear(d_model, bottleneck)  # nn.Linear's default random init: up gets gradients at once
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(bottleneck, d_model)
        nn.init.zeros_(self.up.weight)  # up = 0: the adapter is exactly the identity at init
        nn.init.zeros_(self.up.bias)

    def forward(self, h):
        return h + self.up(self.act(self.down(h)))

    def config(self):
        return {"method": "bottleneck_adapter", "d_model": self.d_model, "bottleneck": self.bottleneck,
                "activation": self.activation}

    def extra_repr(self):
        return f"d_model={self.d_model}, bottleneck={self.bottleneck}"


class SeriesAdapter(PEFTModule):
    """A frozen output projection (nn.Linear or GPT-2 Conv1D) followed, in series, by a BottleneckAdapter.

    Built as SeriesAdapter(base, bottleneck), the signature inject() expects, so insertion uses the
    course's one injection mechanism. ("Series" as in He et al. 2022, against "parallel" adapters.)
    """

    def __init__(self, base, bottleneck, activation="gelu"):
        super().__init__()
        _, d_model, _ = linear_dims(base)
        adapter = BottleneckAdapter(d_model, bottleneck, activation)  # checks the sizes before freezing anything
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.adapter = adapter

    def forward(self, x):
        return self.adapter(self.base(x))

    def config(self):
        return {**self.adapter.config(), "method": "series_adapter"}


def add_adapters(model, bottleneck, modules_to_save=None, activation="gelu"):
    """Insert Houlsby adapters into every block of a GPT-2 (TinyGPT), BERT (MiniLM) or Llama (SmolLM2)
    model; freeze the rest.

    modules_to_save: names that stay trainable, e.g. a classification head; Houlsby et al. also train
    the LayerNorms (pass "LayerNorm" for BERT, ["ln_1", "ln_2", "ln_f"] for GPT-2, "input_layernorm",
    "post_attention_layernorm" and "model.norm" for Llama's RMSNorms). Returns the model.
    """
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in HOULSBY_TARGETS:
        raise TypeError(f"add_adapters knows the Houlsby positions of {sorted(HOULSBY_TARGETS)} models, got "
                        f"{type(model).__name__} (model_type={model_type!r}); for another architecture call "
                        f"inject(model, SeriesAdapter, target_modules=<its sublayer output projections>, bottleneck=b)")
    check_bottleneck(model.config.hidden_size, bottleneck)
    plan = build_layers(model, SeriesAdapter, HOULSBY_TARGETS[model_type], modules_to_save,
                        bottleneck=bottleneck, activation=activation)  # everything checked and built first
    return replace_layers(model, plan)


def freeze_all_but_top(model, k, head=("pooler", "classifier")):
    """Top-layer fine-tuning, the baseline of Houlsby et al. Fig. 1: train only the last k transformer
    blocks and the head (k=0: the head alone, on frozen features). Works for BERT, GPT-2 and Llama names."""
    n_layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if not isinstance(n_layers, int):
        raise TypeError(f"freeze_all_but_top needs a transformers model with config.num_hidden_layers, "
                        f"got {type(model).__name__}")
    k = validate.int_in("k", k, 0, n_layers)  # the number of top blocks to train
    head = (head,) if isinstance(head, str) else head
    if not isinstance(head, (list, tuple)) or not all(isinstance(h, str) and h for h in head):
        raise TypeError(f"head must be a module name or a list of names, got {head!r}")
    # encoder.layer.N. (BERT), transformer.h.N. (GPT-2) or model.layers.N. (Llama)
    block = re.compile(r"(?:^|\.)(?:layer|layers|h)\.(\d+)\.")
    train = {}   # by tensor: a head tied to the input embedding (GPT-2, SmolLM2) is one tensor under two names
    for name, p in model.named_parameters(remove_duplicate=False):
        found = block.search(name)
        in_top = found is not None and int(found.group(1)) >= n_layers - k
        in_head = any(name == h or name.startswith(h + ".") or f".{h}." in name for h in head)
        train[p] = train.get(p, False) or in_top or in_head
    if not any(train.values()):  # decided before any requires_grad flag changes
        raise ValueError(f"nothing left to train: no parameter matches head={tuple(head)!r} and k={k}")
    for p, trained in train.items():
        p.requires_grad_(trained)
    return model
