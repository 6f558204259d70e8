"""The lecture's figures, drawn by the package in the course's one style (peftcourse.plots' colours).

Every function returns a matplotlib Figure sized for a projector (large type, few words). In a notebook
the figure shows as the cell's output: `diagrams.lora_parallel();` (the semicolon avoids a repr line).
Trained parts are drawn in the method's colour, frozen ones in grey, fixed non-weights hatched.

    finetuning_approaches   full / feature-based / top-layer: what trains
    low_rank                n×n = (n×r)(r×n): n² → 2rn numbers
    houlsby_adapter         where adapters sit in a transformer layer, and what one is
    prompt_vs_prefix        what is prepended where: input embeddings vs every layer's keys/values
    lora_parallel           h = W0 x + (α/r) B A x
    nf4_bins                the 16 NF4 levels on the normal curve, against int4's even ones
    double_quant_layout     bits per weight: 4 + 0.5 (fp32 absmax) vs 4 + 0.127 (double quantization)
    qlora_flow              4-bit storage → bf16 compute → LoRA; paged optimizer states CPU ↔ GPU
    dora_decomposition      W' = m · V/‖V‖: magnitude and direction
    mora_compress           LoRA's thin A, B against MoRA's square M between compress and decompress
    sbora_factors           FA: one-hot rows of A, r columns of W change; FB: one-hot columns of B, r rows
    multi_sbora_regions     tasks in disjoint columns vs summed LoRA updates; both answer every input
    chat_finetune           a chat model learns a task: prompt → frozen LLM + LoRA → one answer token; then ship it
"""
import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import to_hex, to_rgb
from matplotlib.patches import FancyBboxPatch, Rectangle

from .plots import COLORS, FROZEN

INK = "#222222"
FONT = 13  # projector size


# ---------------------------------------------------------------- drawing helpers

def canvas(width, height, figsize=None, title=None):
    """A blank axes in data units (0..width, 0..height), no ticks or grid."""
    fig, ax = plt.subplots(figsize=figsize or (width * 0.9, height * 0.9))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=FONT + 2)
    return fig, ax


def box(ax, x, y, w, h, text="", color=FROZEN, fontsize=FONT, text_color=INK, hatch=None, rounded=True):
    """A labelled box with its lower-left corner at (x, y)."""
    style = "round,pad=0,rounding_size=0.12" if rounded else "square,pad=0"
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle=style, facecolor=color, edgecolor=INK, lw=1.3,
                                hatch=hatch, alpha=1.0))
    if text:
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize, color=text_color)


def arrow(ax, start, end, text=None, color=INK, lw=1.8, style="-|>", fontsize=FONT - 2, **kw):
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle=style, lw=lw, color=color,
                                                          shrinkA=0, shrinkB=0, **kw))
    if text:
        ax.text((start[0] + end[0]) / 2 + 0.1, (start[1] + end[1]) / 2, text, fontsize=fontsize, va="center")


def plus(ax, x, y, r=0.28):
    """The ⊕ of a sum (a residual or a parallel branch)."""
    ax.add_patch(plt.Circle((x, y), r, facecolor="white", edgecolor=INK, lw=1.5, zorder=3))
    ax.text(x, y, "+", ha="center", va="center", fontsize=FONT + 2, zorder=4)


def key(ax, items, loc="lower center", ncol=None):
    """A legend of coloured patches: items is [(label, colour or (colour, hatch))]."""
    handles = []
    for label, spec in items:
        colour, hatch = spec if isinstance(spec, tuple) else (spec, None)
        handles.append(Rectangle((0, 0), 1, 1, facecolor=colour, edgecolor=INK, hatch=hatch, label=label))
    ax.legend(handles=handles, loc=loc, ncol=ncol or len(items), fontsize=FONT - 1, frameon=False,
              bbox_to_anchor=(0.5, -0.02) if loc == "lower center" else None)


def lighter(hex_color, k=0.55):
    rgb = np.array(to_rgb(hex_color))
    return to_hex(rgb + (1 - rgb) * k)


# ---------------------------------------------------------------- the figures

def finetuning_approaches():
    """Full fine-tuning, feature-based and top-layer fine-tuning of notebook 01's SmallCNN (three conv blocks, a
    dense layer and a new output layer): which layers train (lecture: "Finetuning of CNNs")."""
    fig, ax = canvas(15, 7.6, figsize=(13, 6.4))
    layers = ["conv block 1 (edges)", "conv block 2 (strokes)", "conv block 3", "dense 288 → 64"]
    setups = [  # (title, indices of the trained layers, x)
        ("full fine-tuning", {0, 1, 2, 3}, 0.5),
        ("feature-based", set(), 5.5),
        ("top-layer fine-tuning", {2, 3}, 10.5),
    ]
    for title, trained, x in setups:
        ax.text(x + 2, 7.2, title, ha="center", fontsize=FONT + 1, weight="bold")
        full = title.startswith("full")
        for i, name in enumerate(layers):
            colour = COLORS["full FT"] if i in trained and full else COLORS["top-layer"] if i in trained else FROZEN
            box(ax, x, 0.55 + 1.2 * i, 4, 0.9, name, colour, text_color="white" if i in trained and full else INK)
        colour = {"full": COLORS["full FT"], "feat": COLORS["feature-based"], "top-": COLORS["top-layer"]}[title[:4]]
        box(ax, x, 5.55, 4, 1.0, "new output layer\n64 → 5 classes", colour, text_color="white" if full else INK)
    key(ax, [("trained: full FT", COLORS["full FT"]), ("feature-based", COLORS["feature-based"]),
             ("top-layer", COLORS["top-layer"]), ("frozen (pretrained)", FROZEN)])
    return fig


def low_rank(n=8, r=2):
    """An n×n matrix as (n×r)·(r×n): n² numbers become 2rn (lecture: "Rank and low-rank factorisation")."""
    s = 0.42  # size of one cell
    fig, ax = canvas(3 * n * s + 6, n * s + 2.6, figsize=(12, 4.6))
    y0 = 1.2
    box(ax, 0.3, y0, n * s, n * s, f"W\n{n}×{n}", FROZEN, rounded=False)
    ax.text(0.3 + n * s + 0.5, y0 + n * s / 2, "=", fontsize=FONT + 10, va="center")
    xb = 0.3 + n * s + 1.5
    box(ax, xb, y0, r * s, n * s, f"B\n{n}×{r}", COLORS["LoRA"], text_color="white", rounded=False)
    ax.text(xb + r * s + 0.4, y0 + n * s / 2, "·", fontsize=FONT + 14, va="center")
    xa = xb + r * s + 1.2
    box(ax, xa, y0 + (n - r) * s, n * s, r * s, f"A  {r}×{n}", COLORS["LoRA"], text_color="white", rounded=False)
    for x, w, h, y in ((0.3, n, n, y0), (xb, r, n, y0), (xa, n, r, y0 + (n - r) * s)):  # the cells
        for i in range(1, w):
            ax.plot([x + i * s] * 2, [y, y + h * s], color=INK, lw=0.4, alpha=0.4)
        for j in range(1, h):
            ax.plot([x, x + w * s], [y + j * s] * 2, color=INK, lw=0.4, alpha=0.4)
    ax.text(0.3 + n * s / 2, 0.5, f"n² = {n * n} numbers", ha="center", fontsize=FONT)
    ax.text((xb + xa + n * s) / 2, 0.5, f"2rn = {2 * r * n} numbers (rank ≤ {r})", ha="center", fontsize=FONT)
    ax.text(xa + n * s + 0.5, y0 + n * s / 2,
            f"n = 4096, r = 8:\n{4096 ** 2:,} → {2 * 8 * 4096:,}\n({2 * 8 / 4096:.2%})", fontsize=FONT - 1, va="center")
    return fig


def houlsby_adapter():
    """Where Houlsby adapters sit (after the attention output projection and after the FFN, before the
    residual sum and LayerNorm) and what one is: down → nonlinearity → up, plus a skip (Houlsby et al. Fig. 2)."""
    fig, ax = canvas(15, 11, figsize=(12, 8.6))
    ad = COLORS["adapter"]
    x, w = 0.8, 4.6
    stack = [  # (label, colour, y)
        ("multi-head attention", FROZEN, 1.0), ("output projection", FROZEN, 2.2), ("adapter", ad, 3.4),
        ("layer norm", FROZEN, 5.1), ("feed-forward up + down", FROZEN, 6.3), ("adapter", ad, 7.5),
        ("layer norm", FROZEN, 9.2),
    ]
    for label, colour, y in stack:
        box(ax, x, y, w, 0.8, label, colour)
    for y in (0.3, 1.8, 3.0, 4.2, 5.9, 7.1, 8.3):
        arrow(ax, (x + w / 2, y), (x + w / 2, y + 0.2 if y == 0.3 else y + 0.2 + 0.0))
    for y_in, y_sum in ((0.5, 4.65), (6.05, 8.75)):  # residual connections around each sublayer
        plus(ax, x + w / 2, y_sum)
        ax.plot([x + w / 2, x - 0.4, x - 0.4], [y_in, y_in, y_sum], color=INK, lw=1.5)
        arrow(ax, (x - 0.4, y_sum), (x + w / 2 - 0.28, y_sum))
        arrow(ax, (x + w / 2, y_sum - 0.45), (x + w / 2, y_sum - 0.28), lw=1.2)
        ax.text(x - 0.55, (y_in + y_sum) / 2, "residual", rotation=90, ha="right", va="center", fontsize=FONT - 2)
    ax.text(x + w / 2, 10.5, "transformer layer (frozen)", ha="center", fontsize=FONT + 1, weight="bold")
    # the adapter itself
    X = 8.8
    ax.text(X + 2.4, 10.5, "adapter (trained)", ha="center", fontsize=FONT + 1, weight="bold")
    box(ax, X + 0.4, 2.2, 4.0, 0.9, "down-projection d → b", ad)
    box(ax, X + 1.2, 4.3, 2.4, 0.9, "nonlinearity", lighter(ad))
    box(ax, X + 0.4, 6.4, 4.0, 0.9, "up-projection b → d", ad)
    plus(ax, X + 2.4, 8.4)
    arrow(ax, (X + 2.4, 1.2), (X + 2.4, 2.2))
    ax.text(X + 2.55, 1.3, "h (d features)", fontsize=FONT - 1)
    arrow(ax, (X + 2.4, 3.1), (X + 2.4, 4.3))
    arrow(ax, (X + 2.4, 5.2), (X + 2.4, 6.4))
    arrow(ax, (X + 2.4, 7.3), (X + 2.4, 8.12))
    ax.plot([X + 2.4, X + 5.3, X + 5.3], [1.6, 1.6, 8.4], color=INK, lw=1.5)
    arrow(ax, (X + 5.3, 8.4), (X + 2.68, 8.4))
    ax.text(X + 5.45, 5.0, "skip", rotation=90, va="center", fontsize=FONT - 1)
    arrow(ax, (X + 2.4, 8.68), (X + 2.4, 9.5))
    ax.text(X + 2.55, 9.3, "h + up(f(down(h)))", fontsize=FONT - 1)
    ax.text(X - 0.2, 0.3, "b ≪ d; up starts at 0, so the adapter starts as the identity", fontsize=FONT - 2)
    ax.plot([x + w + 0.1, X + 0.3], [3.8, 2.65], color=ad, lw=1.2, ls=":")
    ax.plot([x + w + 0.1, X + 0.3], [7.9, 6.85], color=ad, lw=1.2, ls=":")
    return fig


def prompt_vs_prefix(n_virtual=2, n_tokens=4, n_layers=3):
    """What is prepended where: prompt tuning adds n trained vectors to the input embeddings only;
    prefix tuning adds n trained key/value pairs inside every attention layer."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    cols = n_virtual + n_tokens
    for ax, kind in zip(axes, ("prompt", "prefix")):
        ax.set_xlim(-2.8, cols + 0.2)
        ax.set_ylim(-0.9, n_layers + 1.6)
        ax.set_aspect("equal")
        ax.axis("off")
        rows = ["input embeddings"] + [f"layer {i + 1} keys, values" for i in range(n_layers)]
        for row, name in enumerate(rows):
            ax.text(-0.2, row + 0.4, name, ha="right", va="center", fontsize=FONT - 2)
            for c in range(cols):
                virtual = c < n_virtual
                trained = virtual and (kind == "prompt" and row == 0 or kind == "prefix" and row > 0)
                colour = COLORS[kind] if trained else ("white" if virtual else FROZEN)
                if virtual and not trained:
                    continue  # prefix tuning has no virtual input tokens; prompt tuning's flow through as usual
                label = ("P" if kind == "prompt" else "K,V") if trained else ""
                box(ax, c + 0.05, row + 0.05, 0.9, 0.7, label, colour, fontsize=FONT - 3,
                    text_color="white" if kind == "prompt" else INK, rounded=False)
            if kind == "prompt" and row > 0:  # the prompt's hidden states: computed by the frozen model
                for c in range(n_virtual):
                    box(ax, c + 0.05, row + 0.05, 0.9, 0.7, "", lighter(COLORS["prompt"], 0.75), rounded=False)
        for c in range(n_virtual, cols):
            ax.text(c + 0.5, -0.45, f"x{c - n_virtual + 1}", ha="center", fontsize=FONT - 2)
        title = ("prompt tuning: n trained vectors\nbefore the input embeddings" if kind == "prompt" else
                 "prefix tuning: n trained keys/values\nin every attention layer")
        ax.set_title(title, fontsize=FONT)
    key(axes[0], [("trained", COLORS["prompt"]), ("computed from P", lighter(COLORS["prompt"], 0.75)),
                  ("real tokens (frozen model)", FROZEN)], ncol=2)
    key(axes[1], [("trained", COLORS["prefix"]), ("real tokens (frozen model)", FROZEN)], ncol=2)
    for ax in axes:
        ax.get_legend().set_bbox_to_anchor((0.5, -0.16))
    fig.tight_layout()
    return fig


def lora_parallel():
    """h = W0 x + (α/r) B A x: a frozen path and a trained low-rank path side by side (Hu et al. Fig. 1)."""
    fig, ax = canvas(12, 8.4, figsize=(10.5, 7.2))
    lo = COLORS["LoRA"]
    box(ax, 0.8, 2.6, 4.2, 3.2, "W0\nd × d\nfrozen (pretrained)", FROZEN)
    box(ax, 6.6, 1.7, 3.6, 1.0, "A  r × d\nrandom init", lo, text_color="white")
    box(ax, 6.6, 4.4, 3.6, 1.0, "B  d × r\nzero init", lo, text_color="white")
    ax.text(8.4, 3.55, "r ≪ d", ha="center", fontsize=FONT)
    box(ax, 10.4, 5.6, 1.4, 0.8, "× α/r", lighter(lo), fontsize=FONT - 1)
    plus(ax, 5.8, 7.2)
    ax.text(5.8, 0.15, "x", ha="center", fontsize=FONT + 2)
    arrow(ax, (5.8, 0.6), (5.8, 1.1))
    ax.plot([2.9, 8.4], [1.1, 1.1], color=INK, lw=1.8)
    arrow(ax, (2.9, 1.1), (2.9, 2.6))
    arrow(ax, (8.4, 1.1), (8.4, 1.7))
    arrow(ax, (8.4, 2.7), (8.4, 3.3))
    arrow(ax, (8.4, 3.8), (8.4, 4.4))
    arrow(ax, (10.2, 4.9), (11.1, 5.6), lw=1.5)
    ax.plot([11.1, 11.1], [6.4, 7.2], color=INK, lw=1.8)
    arrow(ax, (11.1, 7.2), (6.08, 7.2))
    ax.plot([2.9, 2.9], [5.8, 7.2], color=INK, lw=1.8)
    arrow(ax, (2.9, 7.2), (5.52, 7.2))
    ax.text(5.8, 7.8, "h = W0 x + (α/r) B A x", ha="center", fontsize=FONT + 2)
    ax.text(6.5, 0.1, "ΔW = BA starts at 0: training\nstarts from the pretrained model", fontsize=FONT - 2)
    return fig


def nf4_bins():
    """The 16 NF4 levels are quantiles of N(0, 1) scaled to [-1, 1]: dense where weights are many
    (QLoRA §3); int4's 15 even levels waste codes in the tails."""
    from .quant import int4_code, nf4_code
    nf4 = nf4_code().numpy()
    int4 = int4_code().numpy()
    sigma = 1 / 1.848  # N(0, 1) in NF4's units: its outermost level, z = Φ⁻¹(0.9677) ≈ 1.848, maps to 1
    x = np.linspace(-1.15, 1.15, 500)
    pdf = np.exp(-0.5 * (x / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    fig, axes = plt.subplots(2, 1, figsize=(11, 5.6), sharex=True)
    for ax, code, name, colour in ((axes[0], nf4, "NF4: 16 levels at normal quantiles", COLORS["QLoRA"]),
                                   (axes[1], int4, "int4 (absmax): 15 evenly spaced levels", FROZEN)):
        edges = np.concatenate([[-1.15], (code[:-1] + code[1:]) / 2, [1.15]])
        for i in range(len(code)):  # each level's bin: the weights that round to it
            ax.fill_between(x, pdf, where=(x >= edges[i]) & (x <= edges[i + 1]), alpha=0.55,
                            color=colour if i % 2 == 0 else lighter(colour, 0.5), linewidth=0)
        ax.plot(x, pdf, color=INK, lw=1.5)
        ax.plot(code, np.zeros_like(code), "|", ms=22, mew=2.2, color=INK)
        ax.set_title(name, fontsize=FONT, loc="left")
        ax.set_yticks([])
        ax.grid(False)
        ax.spines["left"].set_visible(False)
    axes[1].set_xlim(-1.2, 1.2)
    axes[1].set_xticks([-1, -0.5, 0, 0.5, 1])
    axes[1].set_xlabel("weight / absmax of its block", fontsize=FONT)
    axes[0].text(1.12, pdf.max() * 0.8, "bins hold roughly\nequal shares\nof the weights", ha="right", fontsize=FONT - 2)
    fig.tight_layout()
    return fig


def double_quant_layout(blocksize=64, dq_blocksize=256):
    """Memory of one block of NF4 weights: 4-bit indices plus the block's absmax, once in fp32
    (32/64 = 0.5 bits per weight) and double-quantized to 8 bits with one fp32 per 256 blocks (≈ 0.127)."""
    single = 32 / blocksize
    double = 8 / blocksize + 32 / (blocksize * dq_blocksize)
    fig, ax = plt.subplots(figsize=(13, 4.2))
    ax.set_xlim(-1, blocksize + 44)
    ax.set_ylim(-1.2, 6.2)
    ax.axis("off")
    rows = [(4.0, "NF4, absmax in fp32", 32, f"4 + 32/{blocksize} = {4 + single:.3f} bits per weight"),
            (1.0, "NF4 + double quantization", 8,
             f"4 + 8/{blocksize} + 32/({blocksize}·{dq_blocksize}) = {4 + double:.3f} bits per weight")]
    for y, name, absmax_bits, total in rows:  # one unit of width = 4 bits
        ax.text(0, y + 1.25, name, fontsize=FONT, weight="bold")
        box(ax, 0, y, blocksize, 1, "", COLORS["QLoRA"], rounded=False)
        for i in range(1, blocksize):
            ax.plot([i, i], [y, y + 1], color="white", lw=0.6)
        ax.text(blocksize / 2, y - 0.4, f"{blocksize} indices × 4 bits", ha="center", fontsize=FONT - 2)
        box(ax, blocksize + 0.5, y, absmax_bits / 4, 1, "", COLORS["DoRA"], rounded=False)
        label = f"absmax {absmax_bits} bits"
        if absmax_bits == 8:  # its share of the fp32 scale that one group of 256 absmax codes needs
            box(ax, blocksize + 3, y, 32 / dq_blocksize / 4, 1, "", COLORS["SBoRA-FA"], rounded=False)
            label += f"\n+ 32/{dq_blocksize} bits (a shared fp32 scale)"
        ax.text(blocksize + 0.5, y - 0.25, label, ha="left", va="top", fontsize=FONT - 2)
        ax.text(blocksize + 12, y + 0.5, total, va="center", fontsize=FONT)
    ax.set_title(f"one block of {blocksize} weights: overhead {single:.3f} → {double:.3f} bits per weight",
                 fontsize=FONT + 1)
    return fig


def qlora_flow():
    """QLoRA's data flow: W stored in NF4, dequantized to bf16 for each matmul, LoRA in bf16 beside it;
    only A and B get gradients, and their optimizer states page between GPU and CPU memory."""
    fig, ax = canvas(15, 8.6, figsize=(12.5, 7.2))
    q, lo = COLORS["QLoRA"], COLORS["LoRA"]
    ax.add_patch(Rectangle((0.3, 2.6), 14.4, 5.8, facecolor="none", edgecolor=INK, ls="--", lw=1.2))
    ax.text(0.5, 8.0, "GPU", fontsize=FONT, weight="bold")
    box(ax, 0.8, 5.6, 3.6, 1.6, "W in NF4\n4 bits + absmax\n(stored, frozen)", FROZEN)
    box(ax, 5.4, 5.6, 3.6, 1.6, "dequantize\nto bf16\n(per matmul)", lighter(q))
    box(ax, 10.1, 5.6, 3.8, 1.6, "W x in bf16", FROZEN)
    box(ax, 5.4, 3.0, 3.6, 1.6, "LoRA A, B\nbf16, trained", lo, text_color="white")
    box(ax, 10.1, 3.0, 3.8, 1.6, "(α/r) B A x", lighter(lo))
    arrow(ax, (4.4, 6.4), (5.4, 6.4))
    arrow(ax, (9.0, 6.4), (10.1, 6.4))
    arrow(ax, (9.0, 3.8), (10.1, 3.8))
    plus(ax, 14.3, 4.95, r=0.3)
    ax.plot([13.9, 14.3], [6.4, 6.4], color=INK, lw=1.8)
    arrow(ax, (14.3, 6.4), (14.3, 5.25))
    ax.plot([13.9, 14.3], [3.8, 3.8], color=INK, lw=1.8)
    arrow(ax, (14.3, 3.8), (14.3, 4.65))
    ax.text(13.85, 4.95, "h", fontsize=FONT + 1, va="center", ha="right")
    ax.text(3.5, 3.8, "x", fontsize=FONT + 1, va="center", ha="right")
    arrow(ax, (3.7, 3.8), (5.4, 3.8))
    box(ax, 5.4, 0.2, 3.6, 1.6, "optimizer states\nof A, B (paged)", lighter(lo, 0.3))
    ax.text(0.5, 1.0, "CPU RAM", fontsize=FONT, weight="bold")
    ax.add_patch(Rectangle((0.3, 0.05), 14.4, 2.15, facecolor="none", edgecolor=INK, ls=":", lw=1.2))
    arrow(ax, (7.0, 1.8), (7.0, 3.0), style="<|-|>")
    ax.text(7.2, 2.35, "pages move on memory spikes", fontsize=FONT - 2, va="center")
    ax.text(10.0, 1.0, "gradients flow through W (bf16)\nbut only A, B are updated", fontsize=FONT - 2)
    return fig


def dora_decomposition():
    """DoRA splits a weight row into magnitude m = ‖W‖ and direction V/‖V‖; LoRA updates V, m trains apart
    (Liu et al. 2024, eq. 2 and 5)."""
    fig, ax = plt.subplots(figsize=(8.4, 6.4))
    t = np.linspace(0, math.pi / 2 + 0.3, 200)
    ax.plot(np.cos(t), np.sin(t), color=FROZEN, lw=1.5)
    ax.text(-0.2, 1.0, "unit circle:\nall directions", fontsize=FONT - 2, color="#666666", ha="right")
    w0 = np.array([1.6, 0.55])
    dv = np.array([-0.7, 0.9])
    v = w0 + dv
    d = v / np.linalg.norm(v)
    m = 2.15

    def vec(p, colour, label, where, ls="-"):
        ax.annotate("", xy=p, xytext=(0, 0), arrowprops=dict(arrowstyle="-|>", lw=2.4, color=colour, ls=ls))
        ax.text(*where, label, fontsize=FONT, color=colour)

    vec(w0, "#555555", "W0 (pretrained row)", w0 + [0.05, -0.22])
    ax.annotate("", xy=v, xytext=w0, arrowprops=dict(arrowstyle="-|>", lw=2, color=COLORS["LoRA"], ls="--"))
    ax.text(*(w0 + dv / 2 + [0.08, 0.0]), "+ (α/r) BA\n(direction, LoRA)", fontsize=FONT - 1, color=COLORS["LoRA"])
    vec(d, COLORS["DoRA"], "V/‖V‖", d + [-0.55, 0.05])
    vec(m * d, COLORS["DoRA"], "W' = m · V/‖V‖", m * d + [-0.9, 0.1])
    ax.text(0.05, -0.35, "m: one trained length per row\n(starts at ‖W0‖)", fontsize=FONT - 1, color=COLORS["DoRA"])
    ax.set_xlim(-1.1, 2.5)
    ax.set_ylim(-0.6, 2.3)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("DoRA: magnitude and direction trained apart", fontsize=FONT + 1)
    return fig


def mora_compress(d=4096, r=8):
    """MoRA replaces LoRA's thin A (r×d) and B (d×r) by one square M (r̂×r̂) with as many weights,
    between a weight-free compress (d → r̂) and decompress (r̂ → d) (Jiang et al. 2024, Fig. 1)."""
    from .mora import mora_rank
    r_hat = mora_rank(d, d, r, mora_type=1)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.4), gridspec_kw={"width_ratios": [1, 1.4]})
    for ax in axes:
        ax.set_xlim(0, 10)
        ax.set_ylim(0, 8)
        ax.axis("off")
    ax = axes[0]
    box(ax, 0.8, 3.3, 8.0, 0.5, f"A  {r}×{d}", COLORS["LoRA"], text_color="white", rounded=False)
    box(ax, 4.55, 4.3, 0.5, 3.2, "", COLORS["LoRA"], rounded=False)
    ax.text(5.3, 5.9, f"B  {d}×{r}", fontsize=FONT, va="center")
    ax.text(4.8, 2.2, f"LoRA r = {r}: {2 * r * d:,} weights\nrank(ΔW) ≤ {r}", ha="center", fontsize=FONT)
    ax.set_title("LoRA: two thin matrices", fontsize=FONT + 1)
    ax = axes[1]
    side = 3.2
    ax.fill([0.3, 2.6, 2.6, 0.3], [1.0, 2.4, 2.4 + side, 7.0], color=lighter(COLORS["MoRA"], 0.6), ec=INK)
    ax.text(1.45, 4.0, f"compress\n{d} → {r_hat}\n(no weights)", ha="center", fontsize=FONT - 2)
    box(ax, 3.1, 2.4, side, side, f"M\n{r_hat}×{r_hat}\ntrained", COLORS["MoRA"], text_color="white", rounded=False)
    ax.fill([6.8, 9.1, 9.1, 6.8], [2.4, 1.0, 7.0, 2.4 + side], color=lighter(COLORS["MoRA"], 0.6), ec=INK)
    ax.text(7.95, 4.0, f"decompress\n{r_hat} → {d}\n(no weights)", ha="center", fontsize=FONT - 2)
    ax.set_ylim(-1.8, 8)   # room for three lines of text under the drawing
    ax.text(4.7, 0.6, f"MoRA: {r_hat}² = {r_hat * r_hat:,} weights (LoRA r = {r}: {2 * r * d:,})\n"
            f"rank(ΔW) ≤ {r_hat} with sharing (drawn: one block); up to {d} with rotation,\n"
            f"which applies M to each of the {-(-d // r_hat)} blocks of {r_hat} inputs", ha="center", va="top",
            fontsize=FONT - 1)
    ax.set_title("MoRA: one square matrix", fontsize=FONT + 1)
    fig.tight_layout()
    return fig


def sbora_factors(n=10, r=3, seed=0):
    """SBoRA-FA fixes A to r one-hot rows (standard basis vectors): ΔW = B A changes r columns of W.
    SBoRA-FB fixes B to r one-hot columns: r rows change (Po et al. 2024)."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, r, replace=False))
    eye = np.eye(n)
    trained = rng.normal(size=(n, r))
    fa = (trained, eye[idx], trained @ eye[idx])                     # B (n×r), A_sb (r×n), ΔW
    fb = (eye[:, idx], trained.T, eye[:, idx] @ trained.T)           # B_sb (n×r), A (r×n), ΔW
    fig, axes = plt.subplots(2, 3, figsize=(12, 7.4), gridspec_kw={"width_ratios": [r, n, n]})
    names = {"FA": ("B (trained)", "A = one-hot rows (fixed)", f"ΔW: {r} columns change"),
             "FB": ("B = one-hot columns (fixed)", "A (trained)", f"ΔW: {r} rows change")}
    for row, (variant, mats) in enumerate((("FA", fa), ("FB", fb))):
        for col, (m, title) in enumerate(zip(mats, names[variant])):
            ax = axes[row, col]
            one_hot = (variant == "FA" and col == 1) or (variant == "FB" and col == 0)
            cmap = "Greys" if one_hot else "RdBu_r"
            v = 1 if one_hot else np.abs(m).max()
            ax.imshow(m, cmap=cmap, vmin=0 if one_hot else -v, vmax=v, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            ax.set_title(title, fontsize=FONT - 1)
            for spine in ax.spines.values():  # a frame, so that a one-hot matrix's white shows as part of it
                spine.set_visible(True)
                spine.set_color(INK)
        axes[row, 0].set_ylabel(f"SBoRA-{variant}", fontsize=FONT + 1, color=COLORS[f"SBoRA-{variant}"])
    fig.suptitle(f"a {n}×{n} layer, r = {r}: the fixed factor has no weights, only indices {idx.tolist()}",
                 fontsize=FONT)
    fig.tight_layout()
    return fig


def multi_sbora_regions(n_features=48, r=4, n_tasks=3, seed=0):
    """Multi-SBoRA gives each task its own r columns (disjoint regions, merged without overlap); summed LoRA
    updates all touch every weight. Disjoint weights are not disjoint effects: an input uses every feature, so
    every task's columns answer it, in both (the bottom panel, random updates on a random input).
    Indices as peftcourse.multi_sbora.task_indices draws them."""
    import torch
    from .multi_sbora import task_indices
    owner = np.full(n_features, np.nan)
    regions = [task_indices(n_features, r, t, n_tasks, torch.Generator().manual_seed(seed)).numpy()
               for t in range(n_tasks)]
    for t, region in enumerate(regions):
        owner[region] = t
    palette = [COLORS["SBoRA-FA"], COLORS["LoRA"], COLORS["MoRA"], COLORS["DoRA"], COLORS["prompt"]]
    fig, axes = plt.subplots(3, 1, figsize=(12, 6.0), gridspec_kw={"height_ratios": [1, 1, 1.3]})
    for ax in axes[:2]:
        ax.set_xlim(0, n_features)
        ax.set_ylim(0, 1)
        ax.set_yticks([])
        ax.grid(False)
    for j in range(n_features):
        t = owner[j]
        colour = "white" if np.isnan(t) else palette[int(t) % len(palette)]
        axes[0].add_patch(Rectangle((j, 0), 1, 1, facecolor=colour, edgecolor="#dddddd", lw=0.5))
        for t2 in range(n_tasks):  # summed LoRA: every task's update covers every column
            axes[1].add_patch(Rectangle((j, t2 / n_tasks), 1, 1 / n_tasks, facecolor=palette[t2 % len(palette)],
                                        edgecolor="none", alpha=0.8))
    axes[0].set_title(f"Multi-SBoRA weights: {n_tasks} tasks × r = {r} columns, disjoint (blank: no task)",
                      fontsize=FONT, loc="left")
    axes[1].set_title("summed LoRA weights: every task changes every column", fontsize=FONT, loc="left")
    axes[1].set_xlabel(f"input feature (column of W, {n_features} shown)", fontsize=FONT - 1)
    # the effect: on random inputs x (they use every feature), how strongly each task's update answers them,
    # every update scaled to the same size ‖ΔW_t‖ = 1 so that only where it sits can make a difference
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_features, 256))
    effects = {"Multi-SBoRA": [], "summed LoRA": []}
    for t, region in enumerate(regions):
        sbora = np.zeros((n_features, n_features))
        sbora[:, region] = rng.normal(size=(n_features, r))              # FA: r columns
        lora = rng.normal(size=(n_features, r)) @ rng.normal(size=(r, n_features))
        for name, dw in (("Multi-SBoRA", sbora), ("summed LoRA", lora)):
            effects[name].append(np.linalg.norm(dw / np.linalg.norm(dw) @ x))
    ax = axes[2]
    for k, (name, values) in enumerate(effects.items()):
        for t, v in enumerate(values):
            ax.barh(k + (t - (n_tasks - 1) / 2) * 0.8 / n_tasks, v / values[0], height=0.8 / n_tasks,
                    color=palette[t % len(palette)])
    ax.set_yticks(range(len(effects)), list(effects), fontsize=FONT - 1)
    ax.invert_yaxis()
    ax.axvline(1, color=INK, lw=1, ls=":")
    ax.set_xlim(0, 1.15)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_xlabel("‖ΔW_t x‖ / ‖ΔW_1 x‖ over random inputs x, updates of equal size (1 = as strongly as task 1's)",
                  fontsize=FONT - 1)
    ax.set_title("the effect: on inputs that use every feature, every task's update answers, in both (shared effects)",
                 fontsize=FONT, loc="left")
    key(axes[2], [(f"task {t + 1}", palette[t % len(palette)]) for t in range(n_tasks)], loc="lower center")
    axes[2].get_legend().set_bbox_to_anchor((0.5, -0.85))
    fig.tight_layout()
    return fig


def chat_finetune():
    """Notebook 13's pipeline: a sentence asked through the chat template, the frozen SmolLM2 with LoRA on q_proj
    and v_proj, the loss on the answer's first token only; then merge, or ship the adapter alone to peft."""
    fig, ax = canvas(16, 7.4, figsize=(13.5, 6.3))
    lo = COLORS["LoRA"]
    box(ax, 0.2, 4.2, 3.0, 2.4, "documentation\nsentence\n+ chat template\n(system, user)", lighter(FROZEN, 0.6))
    box(ax, 4.2, 4.2, 4.4, 2.4, "SmolLM2-135M-Instruct\n30 blocks, frozen", FROZEN)
    box(ax, 4.7, 4.35, 3.4, 0.75, "LoRA on q_proj, v_proj", lo, fontsize=FONT - 2, text_color="white")
    box(ax, 9.6, 4.2, 2.7, 2.4, "logits at the\nlast position\nonly", lighter(lo, 0.7))
    box(ax, 13.2, 4.2, 2.6, 2.4, "first token of\n8 package\nnames", lighter(lo, 0.4))
    arrow(ax, (3.2, 5.4), (4.2, 5.4))
    arrow(ax, (8.6, 5.4), (9.6, 5.4))
    arrow(ax, (12.3, 5.4), (13.2, 5.4))
    ax.text(14.5, 7.0, "loss, accuracy", ha="center", fontsize=FONT - 1)
    box(ax, 0.9, 0.6, 4.2, 1.8, "merge: W0 + (α/r) B A\na plain model again", lighter(lo, 0.55))
    box(ax, 6.1, 0.6, 4.2, 1.8, "save the adapter alone\n→ peft loads it", lighter(lo, 0.55))
    box(ax, 11.3, 0.6, 4.2, 1.8, "chat: base and tuned\nside by side", lighter(lo, 0.55))
    for x in (3.0, 8.2, 13.4):
        arrow(ax, (6.4, 4.2), (x, 2.4), lw=1.4)
    ax.text(0.4, 3.3, "after training:", fontsize=FONT - 1, va="center")
    return fig


ALL = (finetuning_approaches, low_rank, houlsby_adapter, prompt_vs_prefix, lora_parallel, nf4_bins,
       double_quant_layout, qlora_flow, dora_decomposition, mora_compress, sbora_factors, multi_sbora_regions,
       chat_finetune)
