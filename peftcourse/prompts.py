"""Prompt tuning and prefix tuning: train a few "virtual tokens", keep every weight of the model frozen.

Prompt tuning (Lester et al. 2021): n trainable vectors are prepended to the INPUT embeddings of every
sequence. The model attends to them like to real tokens; their labels are -100 (nothing to predict).
Trainable parameters: n · d_model.

Prefix tuning (Li & Liang 2021): n trainable key/value vectors are prepended INSIDE every attention layer,
as if the model had already processed n tokens: they are handed to the model as its past key/values (a
transformers Cache). Trainable parameters: n · layers · 2 · d (keys and values), or, with the
reparameterising MLP of §4.3 (Li & Liang found direct optimisation unstable),
n · d + (d · h + h) + (h · layers · 2d + layers · 2d) for an MLP of hidden size h. Here d is the width of
one layer's keys: d_model in GPT-2; in a model with grouped-query attention (Llama, SmolLM2) the keys and
values have fewer heads than the queries, so d = key/value heads · head size (as peft).

Both follow peft (tuners/prompt_tuning, tuners/prefix_tuning, PeftModelForCausalLM.forward): the same
parameter counts, the same layouts, so weights copied from peft give the same outputs (the tests check it).
"""
import torch
from torch import nn
from transformers import DynamicCache

from . import validate
from .base import PEFTModule


def check_virtual_tokens(model, n_virtual_tokens, seq_len=0):
    """n must be a positive int and n + seq_len must fit the model's context (its position embeddings)."""
    if not hasattr(model, "get_input_embeddings") or not hasattr(model, "config"):
        raise TypeError(f"prompt/prefix tuning wraps a transformers causal LM (e.g. TinyGPT's GPT2LMHeadModel), "
                        f"got {type(model).__name__}")
    validate.positive_int("n_virtual_tokens", n_virtual_tokens)
    n_ctx = model.config.max_position_embeddings
    if n_virtual_tokens + max(seq_len, 1) > n_ctx:
        raise ValueError(f"n_virtual_tokens={n_virtual_tokens} + sequence length {max(seq_len, 1)} exceeds the "
                         f"model's context of {n_ctx} positions: the virtual tokens take positions too; "
                         f"use fewer virtual tokens or shorter sequences")


def check_input_ids(input_ids):
    """(batch, seq_len) of a 2-D integer tensor of token ids."""
    if not torch.is_tensor(input_ids) or input_ids.dim() != 2 or input_ids.is_floating_point():
        raise TypeError("input_ids must be a 2-D integer tensor (batch, seq_len) of token ids, got "
                        f"{type(input_ids).__name__} {tuple(getattr(input_ids, 'shape', ()))}")
    return input_ids.shape


def freeze(model):
    for p in model.parameters():
        p.requires_grad_(False)


def key_value_shape(config):
    """(heads, head size) of one layer's keys and values. Grouped-query attention (Llama, SmolLM2) keeps
    fewer key/value heads than query heads; GPT-2 has one key/value head per query head."""
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return heads, head_dim


def extend_mask_and_labels(n, attention_mask, labels):
    """The virtual tokens are always attended to (mask 1) and never predicted (label -100)."""
    if attention_mask is not None:
        ones = attention_mask.new_ones(attention_mask.shape[0], n)
        attention_mask = torch.cat([ones, attention_mask], dim=1)
    if labels is not None:
        labels = torch.cat([labels.new_full((labels.shape[0], n), -100), labels], dim=1)
    return attention_mask, labels


class PromptTuning(PEFTModule):
    """A frozen causal LM whose every input starts with n trainable soft-prompt embeddings.

    init="vocab": the prompts start as embeddings of randomly drawn vocabulary tokens (peft's SAMPLE_VOCAB;
    Lester et al. 2021, Fig. 3b: better than random init); init="random": N(0, 1) like peft's default.
    """

    def __init__(self, model, n_virtual_tokens, init="vocab"):
        super().__init__()
        check_virtual_tokens(model, n_virtual_tokens)
        validate.choice("init", init, ("vocab", "random"))  # 'vocab': sampled token embeddings
        wte = model.get_input_embeddings()
        if init == "vocab":
            ids = torch.randint(0, wte.num_embeddings, (n_virtual_tokens,), device=wte.weight.device)
            prompt = wte.weight[ids].detach().clone().float()
        else:
            prompt = torch.randn(n_virtual_tokens, wte.embedding_dim, device=wte.weight.device)
        freeze(model)  # every argument is checked: now the caller's model may be frozen
        self.base = model
        self.n_virtual_tokens, self.init = n_virtual_tokens, init
        self.prompt = nn.Parameter(prompt)  # (n, d_model): the only trainable weights

    def config(self):
        return {"method": "prompt_tuning", "n_virtual_tokens": self.n_virtual_tokens}

    def forward(self, input_ids, attention_mask=None, labels=None, **kwargs):
        batch, seq_len = check_input_ids(input_ids)
        check_virtual_tokens(self.base, self.n_virtual_tokens, seq_len)
        embeds = self.base.get_input_embeddings()(input_ids)
        prompt = self.prompt.to(embeds.dtype).expand(batch, -1, -1)
        attention_mask, labels = extend_mask_and_labels(self.n_virtual_tokens, attention_mask, labels)
        # the output has n + seq_len positions; the first n belong to the virtual tokens
        return self.base(inputs_embeds=torch.cat([prompt, embeds], dim=1),
                         attention_mask=attention_mask, labels=labels, **kwargs)


class PrefixTuning(PEFTModule):
    """A frozen causal LM whose every attention layer sees n trainable key/value pairs first.

    projection=True adds the reparameterising MLP (embedding d → Linear(d, h) → tanh → Linear(h, layers·2·d),
    h = encoder_hidden_size, default d, as peft); it only helps training and could be folded away afterwards.
    """

    def __init__(self, model, n_virtual_tokens, projection=False, encoder_hidden_size=None):
        super().__init__()
        check_virtual_tokens(model, n_virtual_tokens)
        validate.flag("projection", projection)
        cfg = model.config
        kv_heads, head_dim = key_value_shape(cfg)
        d = kv_heads * head_dim  # one layer's key (or value) width: d_model in GPT-2, less with grouped queries
        if projection:
            hidden = validate.positive_int("encoder_hidden_size", d if encoder_hidden_size is None else encoder_hidden_size)
        elif encoder_hidden_size is not None:
            raise ValueError("encoder_hidden_size is the size of the reparameterising MLP: it needs projection=True")
        freeze(model)  # every argument is checked: now the caller's model may be frozen
        self.base = model
        self.n_virtual_tokens, self.n_layers, self.n_heads = n_virtual_tokens, cfg.num_hidden_layers, kv_heads
        self.projection = projection
        kv_size = self.n_layers * 2 * d  # a key and a value vector of size d per layer
        if projection:
            self.prefix = nn.Parameter(torch.randn(n_virtual_tokens, d))  # N(0, 1) as peft's nn.Embedding
            self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, kv_size))
        else:
            self.prefix = nn.Parameter(torch.randn(n_virtual_tokens, kv_size))
            self.mlp = None

    def config(self):
        hidden = self.mlp[0].out_features if self.mlp is not None else None
        return {"method": "prefix_tuning", "n_virtual_tokens": self.n_virtual_tokens, "projection": self.projection,
                "encoder_hidden_size": hidden}

    def key_values(self, batch):
        """One (key, value) per layer, each (batch, heads, n_virtual_tokens, head_dim), in peft's layout."""
        kv = self.prefix if self.mlp is None else self.mlp(self.prefix)   # (n, layers · 2 · d)
        kv = kv.view(self.n_virtual_tokens, self.n_layers, 2, self.n_heads, -1)
        kv = kv.permute(1, 2, 3, 0, 4)                                     # (layers, 2, heads, n, head_dim)
        return [(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in kv]

    def forward(self, input_ids, attention_mask=None, labels=None, **kwargs):
        batch, seq_len = check_input_ids(input_ids)
        check_virtual_tokens(self.base, self.n_virtual_tokens, seq_len)
        # A fresh cache every call: attention layers append the real tokens' keys/values to it.
        # The model then counts the prefix as n tokens already seen, so real tokens get positions n, n+1, ...
        dtype = self.base.get_input_embeddings().weight.dtype
        cache = DynamicCache([(k.to(dtype), v.to(dtype)) for k, v in self.key_values(batch)])
        attention_mask, _ = extend_mask_and_labels(self.n_virtual_tokens, attention_mask, None)
        # labels stay as they are: the prefix produces no outputs. (No gradient checkpointing: GPT-2 drops
        # the cache when it is on in training, which would silently remove the prefix.)
        return self.base(input_ids=input_ids, attention_mask=attention_mask, labels=labels,
                         cache=cache, use_cache=False, **kwargs)
