"""MoRA: high-rank updating with one square matrix (Jiang et al. 2024, arXiv 2405.12130).

    h = W0 x + f_decomp(M · f_comp(x))        M is r̂ x r̂, initialised to zero, no α scaling

M has about as many weights as LoRA at rank r: r̂ = round(√((in + out)·r)) (lecture: "Parameter
Efficiency of MoRA": 256 x 256 = 65,536 = LoRA r = 8 on a 4096 x 4096 layer). The compress and
decompress functions have no weights (lecture: "Non-Parameterized Compress and Decompress"):

  mora_type  name          f_comp                                  f_decomp              ΔW
  1          "sharing"     pad x by wrapping, sum feature j into   tile the r̂ outputs    M tiled: rank r̂
                           slot j mod r̂                           to `out`
  6          "rotation"    pad by wrapping, cut into blocks of r̂, concatenate, cut or    diag(M·R_0, M·R_1, ...):
                           rotate block i RoPE-style (R_i)         tile to `out`          high rank
  -          "truncation"  the first r̂ features                   pad with zeros         M in the top-left corner
  -          "decoupling"  as "rotation" without the rotation      as "rotation"          diag(M, M, ...)

Types 1 and 6 are the reference code's (kongds/MoRA, a patch of peft's LoRA layer; its default is
type 1, the paper uses 1 for large r and 6 for small r). "truncation" and "decoupling" are the
paper's other operators (§3); the reference code has no type for them: they are here for teaching.
Padding wraps around cyclically, so r̂ >= in_features works (there the reference's merge fails, and
its forward too once r̂ > 2·in_features).
"""
import math

import torch
from torch import nn

from . import validate
from .base import AdapterLayer, dropout_or_identity, linear_dims

MORA_TYPES = {1: "sharing", 6: "rotation", "truncation": "truncation", "decoupling": "decoupling"}
_BY_NAME = {"sharing": 1, "rotation": 6, "truncation": "truncation", "decoupling": "decoupling"}


def mora_rank(in_features, out_features, r, mora_type=6):
    """r̂ as the reference code computes it: √((in+out)·r) rounded to nearest; even for rotation (RoPE pairs)."""
    for name, value in (("in_features", in_features), ("out_features", out_features), ("r", r)):
        validate.positive_int(name, value)
    r_hat = int(math.sqrt((in_features + out_features) * r) + 0.5)
    if normalise_type(mora_type) == 6:
        r_hat = r_hat // 2 * 2
    return r_hat


def normalise_type(mora_type):
    """1 or "sharing" -> 1, 6 or "rotation" -> 6, "truncation", "decoupling"; anything else is an error."""
    if isinstance(mora_type, str) and mora_type in _BY_NAME:
        return _BY_NAME[mora_type]
    if type(mora_type) is int and mora_type in MORA_TYPES:
        return mora_type
    raise ValueError(f"unknown mora_type {mora_type!r}: use 1 or 'sharing', 6 or 'rotation' (the reference "
                     "code's types), or 'truncation' / 'decoupling' (the paper's other operators)")


def rotate_half(x):
    """RoPE's pairing: feature j is rotated together with feature j + r̂/2."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_angles(n_blocks, r_hat):
    """cos and sin (n_blocks x r̂) of angle i·θ_j for block i, θ_j = 10000^(-2j/r̂) (as in RoPE and the reference)."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, r_hat, 2).float() / r_hat))
    freqs = torch.outer(torch.arange(n_blocks).float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


class MoRALinear(AdapterLayer):
    """W0 x + decompress(M · compress(dropout(x))), with one trainable square M (r̂ x r̂)."""

    method = "mora"

    def __init__(self, base, r, mora_type=6, dropout=0.0):
        n_in, n_out, _ = linear_dims(base)
        validate.positive_int("r", r)
        if r > min(n_in, n_out):
            raise ValueError(f"r={r} is larger than the layer allows (min(in, out) = {min(n_in, n_out)}): r is the "
                             "LoRA rank whose parameter count MoRA matches, so it must be at most "
                             "min(in_features, out_features)")
        validate.probability("dropout", dropout)
        mora_type = normalise_type(mora_type)
        r_hat = mora_rank(n_in, n_out, r, mora_type)
        if r_hat < (2 if mora_type == 6 else 1):
            raise ValueError(f"r̂={r_hat} is too small for mora_type {mora_type!r} on a {n_in}->{n_out} layer: "
                             "use a larger r")
        super().__init__(base)  # every argument is checked: now the base layer may be frozen
        self.mora_type, self.type_name, self.r, self.r_hat = mora_type, MORA_TYPES[mora_type], r, r_hat
        weight = self.base.weight  # like LoRA: on the base's device, fp32 unless the base is fp64
        self.M = nn.Parameter(torch.zeros(r_hat, r_hat, device=weight.device, dtype=validate.adapter_dtype(weight)))
        self.dropout = dropout_or_identity(dropout)
        # blocks of r̂ that cover the (wrap-padded) input; L = their total length
        self.n_blocks = math.ceil(self.in_features / r_hat)
        self.padded_in = self.n_blocks * r_hat
        cos, sin = rope_angles(self.n_blocks, r_hat)
        self.register_buffer("cos", cos.to(weight.device), persistent=False)  # fixed, recomputed: not part of the adapter
        self.register_buffer("sin", sin.to(weight.device), persistent=False)

    def config(self):
        return {"method": self.method, "r": self.r, "mora_type": self.mora_type}

    def pad_index(self):
        """Padded position p reads input feature p mod in (the reference pads by wrapping x's first features)."""
        return torch.arange(self.padded_in, device=self.M.device) % self.in_features

    def compress(self, x):
        """(..., in) -> (..., n, r̂): n = 1 for sharing and truncation, n = number of blocks otherwise."""
        if self.type_name == "truncation":
            k = min(self.r_hat, self.in_features)
            return nn.functional.pad(x[..., :k], (0, self.r_hat - k)).unsqueeze(-2)
        blocks = x[..., self.pad_index()].unflatten(-1, (self.n_blocks, self.r_hat))
        if self.type_name == "sharing":
            return blocks.sum(dim=-2, keepdim=True)
        if self.type_name == "rotation":
            cos, sin = self.cos.to(x.dtype), self.sin.to(x.dtype)
            return blocks * cos + rotate_half(blocks) * sin
        return blocks  # decoupling

    def decompress(self, h):
        """(..., n, r̂) -> (..., out): flatten, then cut to `out`, or tile (zero-pad for truncation)."""
        flat = h.flatten(-2)
        if self.type_name == "truncation":
            k = min(self.r_hat, self.out_features)
            return nn.functional.pad(flat[..., :k], (0, self.out_features - k))
        rows = torch.arange(self.out_features, device=flat.device) % flat.shape[-1]
        return flat[..., rows]

    def adapter_forward(self, x):
        return self.decompress(self.compress(self.dropout(x)) @ self.M.T)

    def rotations(self):
        """R_i (n x r̂ x r̂) with rotate(block_i) = R_i · block_i: identities unless mora_type is rotation."""
        eye = torch.eye(self.r_hat, device=self.M.device, dtype=self.M.dtype)
        if self.type_name != "rotation":
            return eye.expand(self.n_blocks, -1, -1)
        cos, sin = self.cos.to(self.M.dtype), self.sin.to(self.M.dtype)
        return torch.diag_embed(cos) + sin[:, :, None] * rotate_half(eye).T  # diag(cos) + diag(sin)·Rh

    def delta_weight(self):
        """ΔW (out x in) in closed form; tests check it equals the forward applied to the identity."""
        M, r_hat = self.M, self.r_hat
        if self.type_name == "truncation":
            dw = M.new_zeros(self.out_features, self.in_features)
            k_out, k_in = min(r_hat, self.out_features), min(r_hat, self.in_features)
            dw[:k_out, :k_in] = M[:k_out, :k_in]
            return dw
        if self.type_name == "sharing":  # padded position p feeds slot p mod r̂
            core = M[:, torch.arange(self.padded_in, device=M.device) % r_hat]
        else:  # block i of the padded input meets M·R_i
            core = torch.block_diag(*(M @ self.rotations()))
        folded = M.new_zeros(core.shape[0], self.in_features).index_add(1, self.pad_index(), core)
        rows = torch.arange(self.out_features, device=M.device) % core.shape[0]  # cut or tile to `out`
        return folded[rows]

    def extra_repr(self):
        return (f"{super().extra_repr()}, r={self.r}, r_hat={self.r_hat}, "
                f"mora_type={self.mora_type!r} ({self.type_name})")


def accuracy_table(rows, metric="char_acc", title="measured here"):
    """A text table laid out like the paper's Table 2: one row per run, one column per evaluation step.

    rows: list of (method, rank, trainable_params, History) whose evals hold `metric` (a fraction).
    """
    if not isinstance(rows, (list, tuple)) or not rows or not all(
            isinstance(row, (list, tuple)) and len(row) == 4 and hasattr(row[3], "metric") for row in rows):
        raise ValueError("accuracy_table needs a list of (method, rank, trainable_params, History) rows")
    steps = rows[0][3].metric(metric)[0]
    lines = [f"{title}: {metric} (%) after ... steps",
             f"{'method':<8}{'rank':>6}{'trainable':>12}" + "".join(f"{s:>8}" for s in steps)]
    for method, rank, params, history in rows:
        run_steps, values = history.metric(metric)
        if run_steps != steps:
            raise ValueError(f"{method} r={rank} was evaluated at steps {run_steps}, the others at {steps}")
        lines.append(f"{method:<8}{rank!s:>6}{params:>12,}" + "".join(f"{100 * v:>8.1f}" for v in values))
    return "\n".join(lines)
