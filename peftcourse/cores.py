"""Each method's core: the lecture's equation as code, before the full layer.

These are what a lecture shows first (`pc.show(cores.LoRA)`): an nn.Linear base, one adapter, no
argument checks, no GPT-2 Conv1D layout, no merging or saving. The full layers (lora.py, dora.py, ...)
add exactly that plumbing; tests/test_cores.py copies a full layer's weights into each core and checks
that both compute the same on random inputs.

    LoRA          h = W0 x + (α/r) B A x
    DoRA          W' = m ⊙ V / ‖V‖,  V = W0 + (α/r) B A   (row norms; ‖V‖ gets no gradient)
    MoRA          h = W0 x + f_decomp(M f_comp(x)),  M is r̂ × r̂
    SBoRA         LoRA with A (FA) or B (FB) made of standard basis vectors (one-hot rows / columns)
    Adapter       h + W_up act(W_down h)
    SoftPrompt    [P; E(x)]: n trainable vectors before the input embeddings
    NF4           index = nearest NF4 level of w / absmax;  w ≈ NF4[index] · absmax   (one block)
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from .quant import nf4_code


class LoRA(nn.Module):
    """h = W0 x + (α/r) B A x (Hu et al. 2021, eq. 3); lecture: "LoRA: Low-Rank Adaptation"."""

    def __init__(self, base: nn.Linear, r, alpha):
        super().__init__()
        self.base = base.requires_grad_(False)                      # W0 (and b) stay frozen
        self.A = nn.Parameter(torch.empty(r, base.in_features))     # r × in, random
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.B = nn.Parameter(torch.zeros(base.out_features, r))    # out × r, zero: BA = 0 at the start
        self.scaling = alpha / r

    def forward(self, x):
        return self.base(x) + self.scaling * (x @ self.A.T @ self.B.T)   # never builds the out × in matrix BA


class DoRA(nn.Module):
    """W' = m ⊙ (W0 + s B A) / ‖W0 + s B A‖, one norm per output row (Liu et al. 2024, eq. 5, §4.3)."""

    def __init__(self, base: nn.Linear, r, alpha):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.A = nn.Parameter(torch.empty(r, base.in_features))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.B = nn.Parameter(torch.zeros(base.out_features, r))
        self.scaling = alpha / r
        self.m = nn.Parameter(base.weight.norm(dim=1).detach().clone())   # magnitude: starts at ‖W0‖

    def forward(self, x):
        V = self.base.weight + self.scaling * self.B @ self.A     # direction, LoRA-updated
        norm = V.norm(dim=1, keepdim=True).detach()                # §4.3: treated as a constant
        return F.linear(x, self.m[:, None] * V / norm, self.base.bias)


class MoRA(nn.Module):
    """h = W0 x + f_decomp(M f_comp(x)) with one square M (Jiang et al. 2024, §3).

    r̂ = √((in + out)·r): M has as many weights as LoRA at rank r. sharing (type 1): input feature j
    adds into slot j mod r̂, the r̂ outputs repeat to fill `out`. rotation (type 6): the input is cut
    into blocks of r̂, block i rotated by angles i·θ (as RoPE), then every block meets the same M.
    """

    def __init__(self, base: nn.Linear, r, rotation=False):
        super().__init__()
        self.base, self.rotation = base.requires_grad_(False), rotation
        r_hat = int(math.sqrt((base.in_features + base.out_features) * r) + 0.5)
        self.r_hat = r_hat // 2 * 2 if rotation else r_hat       # rotation turns pairs of features
        self.M = nn.Parameter(torch.zeros(self.r_hat, self.r_hat))   # zero: no change at the start

    def compress(self, x):                                 # (..., in) -> (..., blocks, r̂)
        n_in, r_hat = x.shape[-1], self.r_hat
        n_blocks = -(-n_in // r_hat)                       # ceil: wrap-pad the input to whole blocks
        blocks = x[..., torch.arange(n_blocks * r_hat) % n_in].unflatten(-1, (n_blocks, r_hat))  # wrap-pad
        if not self.rotation:
            return blocks.sum(-2, keepdim=True)            # sharing: one block, the sum
        angle = torch.arange(n_blocks)[:, None] * 10000 ** (-torch.arange(0, r_hat, 2) / r_hat).repeat(2)
        half = torch.cat([-blocks[..., r_hat // 2:], blocks[..., :r_hat // 2]], -1)   # RoPE's pairs (j, j + r̂/2)
        return blocks * angle.cos() + half * angle.sin()   # block i turned by angles i·θ_j, θ_j = 10000^(-2j/r̂)

    def decompress(self, h):                               # (..., blocks, r̂) -> (..., out): cut or repeat
        return h.flatten(-2)[..., torch.arange(self.base.out_features) % (h.shape[-2] * self.r_hat)]

    def forward(self, x):
        return self.base(x) + self.decompress(self.compress(x) @ self.M.T)


class SBoRA(nn.Module):
    """LoRA with one factor fixed to standard basis vectors (Po et al. 2024).

    FA: ΔW = s B A_sb, A_sb = rows `indices` of the identity: only columns `indices` of W change.
    FB: ΔW = s B_sb A, B_sb = columns `indices` of the identity: only rows `indices` of W change.
    """

    def __init__(self, base: nn.Linear, r, alpha, variant="FA", indices=None):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.variant, self.scaling = variant, alpha / r
        n_in, n_out = base.in_features, base.out_features
        indices = torch.randperm(n_in if variant == "FA" else n_out)[:r] if indices is None else torch.as_tensor(indices)
        if variant == "FA":
            self.register_buffer("A_sb", torch.eye(n_in)[indices])      # r × in, one-hot rows: fixed
            self.B = nn.Parameter(torch.zeros(n_out, r))                # trained
        else:
            self.register_buffer("B_sb", torch.eye(n_out)[:, indices])  # out × r, one-hot columns: fixed
            self.A = nn.Parameter(torch.zeros(r, n_in))                 # trained

    def forward(self, x):
        if self.variant == "FA":
            return self.base(x) + self.scaling * (x @ self.A_sb.T @ self.B.T)   # A_sb x picks r inputs
        return self.base(x) + self.scaling * (x @ self.A.T @ self.B_sb.T)       # B_sb writes r outputs


class Adapter(nn.Module):
    """h + W_up act(W_down h): a d → b → d bottleneck with a skip (Houlsby et al. 2019, Fig. 2)."""

    def __init__(self, d_model, bottleneck):
        super().__init__()
        self.down = nn.Linear(d_model, bottleneck)
        self.up = nn.Linear(bottleneck, d_model)
        nn.init.zeros_(self.up.weight)   # up = 0: the adapter starts as the identity
        nn.init.zeros_(self.up.bias)

    def forward(self, h):
        return h + self.up(F.gelu(self.down(h)))


class SoftPrompt(nn.Module):
    """Prompt tuning (Lester et al. 2021): n trainable vectors P before the input embeddings, [P; E(x)]."""

    def __init__(self, model, n_virtual_tokens):
        super().__init__()
        self.model = model.requires_grad_(False)                  # every weight of the model frozen
        self.prompt = nn.Parameter(torch.randn(n_virtual_tokens, model.config.hidden_size))

    def forward(self, input_ids, labels=None):
        embeds = self.model.get_input_embeddings()(input_ids)
        prompt = self.prompt.expand(len(input_ids), -1, -1)
        if labels is not None:                                    # nothing to predict at the virtual tokens
            labels = torch.cat([labels.new_full(prompt.shape[:2], -100), labels], dim=1)
        return self.model(inputs_embeds=torch.cat([prompt, embeds], dim=1), labels=labels)


def nf4_quantize_block(w):
    """One block (QLoRA: 64 weights) to 4-bit indices and its absmax (Dettmers et al. 2023, §3)."""
    code = nf4_code()                            # 16 levels in [-1, 1], quantiles of N(0, 1)
    absmax = w.abs().max()
    midpoints = (code[:-1] + code[1:]) / 2
    index = torch.bucketize(w / absmax, midpoints)   # nearest level (a tie goes to the lower one)
    return index.to(torch.uint8), absmax


def nf4_dequantize_block(index, absmax):
    """w ≈ NF4[index] · absmax."""
    return nf4_code()[index.long()] * absmax
