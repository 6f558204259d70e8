"""Blockwise quantization: absmax int8/int4, NF4 built from normal quantiles, and double quantization.

Lecture, "Block-wise k-bit Quantization": X_int8 = round(c · X) with c = 127 / absmax(X); dequant = X_int8 / c.
One outlier sets absmax for everything it shares a block with, so the tensor is cut into blocks
(64 values for QLoRA) and each block gets its own constant c.

Lecture, "4-bit NormalFloat (NF4)": instead of 15 evenly spaced integers, the 16 levels are
quantiles of a normal distribution, because pretrained weights are roughly normal.
Lecture, "Double Quantization": the per-block fp32 constants cost 32/64 = 0.5 bits per weight;
quantizing them again to 8 bits (blocks of 256) brings that to 8/64 + 32/(64·256) ≈ 0.127.

Everything here matches bitsandbytes (`bitsandbytes.functional.quantize_4bit`, CPU path) bit for bit:
the same table, the same rounding, the same packing. The tests check it.
"""
import torch
from torch import nn

from . import validate

# bitsandbytes' outermost probability, 1 − ½(1/30 + 1/32) = 0.96770833… rounded to 7 digits.
# Its NF4 table was generated from this rounded value (the exact fraction moves the table by 3e-7).
NF4_OFFSET = 0.9677083
BNB_BLOCKSIZES = (32, 64, 128, 256, 512, 1024, 2048, 4096)  # what bitsandbytes' 4-bit kernels accept
DQ_BLOCKSIZE = 256  # QLoRA paper §3: the absmax constants are quantized in blocks of 256


# ---------------------------------------------------------------- code tables

def nf4_steps(offset=NF4_OFFSET):
    """The NF4 construction, step by step (QLoRA paper §3, lecture "Steps for generating the NF4 values").

    Returns a dict of the intermediate tensors; the last entry is the 16-value table.
    """
    validate.number("offset", offset, 0.5, 1, low_open=True, high_open=True)  # a probability above the median
    p_pos = torch.linspace(offset, 0.5, 9)[:-1]  # 8 probabilities, 0.97 … 0.56 (0.5 itself would give 0)
    p_neg = torch.linspace(offset, 0.5, 8)[:-1]  # 7 probabilities, 0.97 … 0.57: one level fewer below 0
    z_pos = torch.special.ndtri(p_pos.double())  # Φ⁻¹: the normal quantile (z-score) of each probability
    z_neg = -torch.special.ndtri(p_neg.double())
    levels = torch.cat([z_neg, torch.zeros(1, dtype=torch.float64), z_pos]).float().sort().values
    return {"1. probabilities, positive side": p_pos, "2. probabilities, negative side": p_neg,
            "3. z-scores, positive": z_pos, "3. z-scores, negative (negated)": z_neg,
            "4. concatenated with an exact 0, sorted": levels,
            "5. divided by the max": levels / levels.max()}


def nf4_code(offset=NF4_OFFSET):
    """The 16 NF4 values in [-1, 1], sorted; equal to bitsandbytes' get_4bit_type("nf4") bit for bit."""
    return nf4_steps(offset)["5. divided by the max"]


def nf4_code_lecture():
    """The lecture's rounded recipe: 8 evenly spaced probabilities 0.56…0.97 (set I), 7 from 0.57…0.97
    (set II, negated z-scores), a zero, normalised by the absolute max."""
    set1 = torch.special.ndtri(torch.linspace(0.56, 0.97, 8).double())
    set2 = -torch.special.ndtri(torch.linspace(0.57, 0.97, 7).double())
    levels = torch.cat([set1, torch.zeros(1, dtype=torch.float64), set2]).sort().values
    return (levels / levels.abs().max()).float()


def fp4_code():
    """bitsandbytes' FP4 (1 sign, 2 exponent, 1 mantissa bit, its own bias), as 15 sorted values in [-1, 1]
    (+0 and −0 are one value here; bitsandbytes stores the bit pattern instead of a sorted index)."""
    magnitudes = torch.tensor([0.0, 0.0625, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0]) / 12.0
    return torch.cat([-magnitudes[1:].flip(0), magnitudes])


def int4_code():
    """The lecture's absmax int4 as a table: round(7·x/absmax)/7, i.e. 15 evenly spaced levels."""
    return torch.arange(-7, 8, dtype=torch.float32) / 7


def dynamic_code():
    """bitsandbytes' signed 8-bit dynamic map (create_dynamic_map(signed=True)), used for double quantization.

    Dettmers 2016: a sign, a run of zeros that sets the decimal exponent (10⁻⁶ … 10⁰), then the
    remaining bits as a linear fraction: many levels near zero, fewer (but wide-range) far from it.
    """
    values = [0.0, 1.0]
    for i in range(7):  # exponent 10^(i-6); the fraction gets 2^i evenly spaced bins in [0.1, 1]
        edges = torch.linspace(0.1, 1, 2**i + 1, dtype=torch.float32)
        means = ((edges[:-1] + edges[1:]) / 2.0 * 10 ** (i - 6)).tolist()
        values += means + [-m for m in means]
    return torch.tensor(sorted(values), dtype=torch.float32)


# ---------------------------------------------------------------- checks and blocks

def check_weight(w):
    """A float tensor with at least one element and only finite values (NaN is never quantized silently)."""
    if not torch.is_tensor(w):
        raise TypeError(f"expected a torch.Tensor, got {type(w).__name__}")
    if not w.is_floating_point():
        raise TypeError(f"can only quantize a floating-point tensor (float32, float16, bfloat16), got {w.dtype}")
    if w.numel() == 0:
        raise ValueError(f"cannot quantize an empty tensor (shape {tuple(w.shape)})")
    # a NaN or Inf anywhere makes the sum non-finite (one fast pass); only then count them exactly
    if not torch.isfinite(w.sum(dtype=torch.float32)) and not torch.isfinite(w).all():
        n_nan, n_inf = int(torch.isnan(w).sum()), int(torch.isinf(w).sum())
        raise ValueError(f"the tensor holds {n_nan} NaN and {n_inf} Inf values: an absmax scale cannot "
                         "represent them (one Inf would zero its whole block); fix the weights first")


def check_blocksize(blocksize, allowed=None):
    validate.positive_int("blocksize", blocksize)
    if allowed is not None and blocksize not in allowed:
        raise ValueError(f"blocksize {blocksize} is not supported: bitsandbytes' 4-bit formats take one of {allowed}")


def as_blocks(flat, blocksize):
    """A flat tensor as (n_blocks, blocksize) rows, the last one zero-padded if n is not a multiple."""
    pad = -flat.numel() % blocksize
    return (nn.functional.pad(flat, (0, pad)) if pad else flat).view(-1, blocksize)


def split_blocks(flat, blocksize):
    """The blocks of a flat tensor and the absmax of each (padding zeros do not change an absmax)."""
    blocks = as_blocks(flat, blocksize)
    return blocks, torch.maximum(blocks.amax(dim=1), -blocks.amin(dim=1))  # max |x| without building |x|


def nearest(scaled, code):
    """Index of the nearest value of a sorted code; a value exactly halfway goes to the lower index,
    as in bitsandbytes (bucketize against the midpoints between neighbouring levels)."""
    return torch.bucketize(scaled, (code[:-1] + code[1:]) / 2).to(torch.uint8)


def pack_nibbles(indices):
    """Two 4-bit indices per byte, the first in the high nibble (bitsandbytes' layout)."""
    return (indices[0::2] << 4) | indices[1::2]


def unpack_nibbles(packed, n):
    return torch.stack([packed >> 4, packed & 0xF], dim=1).flatten()[:n]


def byte_values(code):
    """(256, 2): for every byte b, the code values of its two indices, code[b >> 4] and code[b & 15]."""
    code = nn.functional.pad(code, (0, 16 - code.numel()))  # 15-level codes never use index 15
    byte = torch.arange(256, device=code.device)
    return torch.stack([code[byte >> 4], code[byte & 0xF]], dim=1)


def byte_words(code):
    """byte_values(code) with each byte's two float32 values as one int64 word: the 8 bytes lookup_bytes copies.
    Integers, so that moving a module to another float dtype leaves these bits alone."""
    return byte_values(code.float()).view(torch.int64).flatten()


LOOKUP_CHUNK = 1 << 22   # packed bytes per gather: their int32 positions (16 MB) are made and freed a chunk at a time


def lookup_bytes(packed, words, out):
    """Write code[index] of every packed index, in order, into the float32 tensor `out` (2 values per byte of
    `packed`; out may be longer) and return it.

    One lookup per byte, not per index: words = byte_words(code), gathered as float64 (the dtype only names the
    8 bytes, which are copied, never computed with: index_select with int32 positions is torch's fastest CPU
    gather, and faster for a floating dtype than for int64). The int32 positions are made a chunk at a time,
    so no index tensor as large as the weight is built."""
    words, dest = words.view(torch.float64), out.view(-1)[: 2 * packed.numel()].view(torch.float64)
    if packed.numel() <= LOOKUP_CHUNK:   # a matrix under 8 M weights (all of SmolLM2's): one gather, no slicing
        torch.index_select(words, 0, packed.int(), out=dest)
        return out
    for start in range(0, packed.numel(), LOOKUP_CHUNK):
        part = packed[start:start + LOOKUP_CHUNK]
        torch.index_select(words, 0, part.int(), out=dest[start:start + part.numel()])
    return out


# ---------------------------------------------------------------- absmax int8 / int4

class AbsmaxQuantized(nn.Module):
    """Blockwise absmax integers: q = round(c·w) with c = (2^(bits−1) − 1)/absmax per block; w ≈ q / c."""

    def __init__(self, q, c, shape, dtype, bits, blocksize):
        super().__init__()
        self.register_buffer("q", q)  # int8, one per weight (int4 values are kept in int8 for clarity)
        self.register_buffer("c", c)  # fp32, one scale per block
        self.shape, self.dtype, self.bits, self.blocksize = torch.Size(shape), dtype, bits, blocksize

    def dequantize(self, dtype=None):
        dtype = self.dtype if dtype is None else validate.float_dtype("dtype", dtype)
        n = self.shape.numel()
        return (as_blocks(self.q.float(), self.blocksize) / self.c[:, None]).flatten()[:n].view(self.shape).to(dtype)

    def overhead_bits_per_param(self):
        return 8 * self.c.nbytes / self.shape.numel()

    def extra_repr(self):
        return f"int{self.bits}, shape={tuple(self.shape)}, blocksize={self.blocksize}"


def quantize_absmax(w, bits=8, blocksize=None):
    """The lecture's absmax quantization: c = 127/absmax for int8 (7/absmax for int4), round, keep c.

    blocksize=None uses one block for the whole tensor (the lecture's first formula); any positive
    int up to the tensor's size (or 4096) works. (The lecture's int4 slide writes c = 16/absmax; that would need values up to ±16, i.e.
    6 bits, so the symmetric int4 range ±7 is used, as bitsandbytes' "int4" table does.)
    """
    check_weight(w)
    validate.int_in("bits", bits, 2, 8)
    if blocksize is not None:
        check_blocksize(blocksize)
        if blocksize > max(w.numel(), BNB_BLOCKSIZES[-1]):  # a slip (2**40 for 2**4), not a block size
            raise ValueError(f"blocksize {blocksize} is larger than the tensor ({w.numel()} values) and than the "
                             f"largest block bitsandbytes uses ({BNB_BLOCKSIZES[-1]}): use a block size up to "
                             f"{max(w.numel(), BNB_BLOCKSIZES[-1])}, or blocksize=None for one block over the tensor")
    # one block covers at most the whole tensor: a larger block would only add padding zeros
    blocksize = w.numel() if blocksize is None else min(blocksize, w.numel())
    blocks, absmax = split_blocks(w.detach().reshape(-1).float(), blocksize)
    levels = 2 ** (bits - 1) - 1
    # an all-zero or tiny (subnormal) block would get c = levels/absmax = inf (then 0·inf = NaN): c is capped
    # at half the largest float32, so such a block stores q = 0 or a few small levels and dequantizes finitely
    c = levels / absmax.clamp(min=2 * levels / torch.finfo(torch.float32).max)
    q = torch.round(blocks * c[:, None]).to(torch.int8).flatten()[: w.numel()]
    return AbsmaxQuantized(q, c, w.shape, w.dtype, bits, blocksize)


# ---------------------------------------------------------------- 4-bit tables: NF4 (and FP4)

class Params4bit(nn.Parameter):
    """Packed 4-bit weights: a frozen uint8 Parameter, two values per byte. Named like bitsandbytes'
    class so that parameter counts (peft's, trainable_report) count two parameters per byte."""

    def __new__(cls, data, requires_grad=False):
        if requires_grad:
            raise ValueError("4-bit weights are frozen: integer codes have no gradient")
        return super().__new__(cls, data, requires_grad=False)


class Quantized4bit(nn.Module):
    """A tensor stored as 4-bit code indices (packed two per byte) plus one absmax per block.

    With double quantization the fp32 absmax are replaced by 8-bit codes, one fp32 scale per
    256 of them and one fp32 offset (their mean).
    """

    def __init__(self, packed, absmax, shape, dtype, blocksize, code, dq=None):
        super().__init__()
        self.packed = Params4bit(packed)  # uint8, ceil(n/2) bytes
        if dq is None:
            self.register_buffer("absmax", absmax)  # fp32, one per block
        else:
            self.register_buffer("absmax_q", dq["q"])  # uint8 index into dynamic_code(), one per block
            self.register_buffer("absmax_scale", dq["scale"])  # fp32, one per 256 blocks
            self.register_buffer("absmax_offset", dq["offset"])  # fp32 scalar
        # lookup tables, derived from the code and rebuilt by every copy, not stored: the 16 values, the two
        # values of every byte (as int64 words), and (double quantization) the 8-bit code of the absmax constants
        self.register_buffer("code", code, persistent=False)
        self.register_buffer("words", byte_words(code), persistent=False)
        if dq is not None:
            self.register_buffer("absmax_code", dynamic_code().to(code.device), persistent=False)
        self.shape, self.dtype, self.blocksize, self.double_quant = torch.Size(shape), dtype, blocksize, dq is not None

    def block_absmax(self):
        """The fp32 absmax of every block (rebuilt from its 8-bit code when double-quantized)."""
        if not self.double_quant:
            return self.absmax
        # code value x the scale of its group of 256, + the offset, in place on one new tensor: few torch calls,
        # since each costs microseconds, as much as all this arithmetic on a small matrix
        absmax = torch.index_select(self.absmax_code, 0, self.absmax_q.int())
        return absmax.mul_(self.absmax_scale.repeat_interleave(DQ_BLOCKSIZE)[: absmax.numel()]).add_(self.absmax_offset)

    def indices(self):
        """uint8 code indices 0..15, one per element, in the original tensor's shape and element order."""
        return unpack_nibbles(self.packed, self.shape.numel()).view(self.shape)

    def dequantize(self, dtype=None):
        """code[index] · absmax of its block, in `dtype` (default: the original tensor's dtype)."""
        dtype = self.dtype if dtype is None else validate.float_dtype("dtype", dtype)
        absmax = self.block_absmax()
        # one new tensor of whole blocks: the looked-up values are written straight into it and scaled in place
        # (a partial last block's unused tail is scaled too, then cut off)
        blocks = torch.empty(absmax.numel(), self.blocksize, dtype=torch.float32, device=self.packed.device)
        lookup_bytes(self.packed, self.words, blocks).mul_(absmax[:, None])
        if blocks.numel() > self.shape.numel():
            blocks = blocks.view(-1)[: self.shape.numel()]
        return blocks.view(self.shape).to(dtype)

    def overhead_bits_per_param(self):
        """Bits spent on quantization constants per weight, measured from what is stored (state_dict)."""
        stored = sum(t.nbytes for name, t in self.state_dict().items() if name != "packed")
        return 8 * stored / self.shape.numel()

    def bits_per_param(self):
        """Everything stored, per weight: 4 bits of index plus the overhead."""
        return 8 * sum(t.nbytes for t in self.state_dict().values()) / self.shape.numel()

    def extra_repr(self):
        return (f"shape={tuple(self.shape)}, blocksize={self.blocksize}, double_quant={self.double_quant}, "
                f"{self.bits_per_param():.3f} bits/param")


def double_quantize(absmax):
    """QLoRA's double quantization (bitsandbytes' compress_statistics): subtract the mean, then
    8-bit dynamic-code absmax quantization of the result in blocks of 256."""
    offset = absmax.mean()
    blocks, scale = split_blocks(absmax - offset, DQ_BLOCKSIZE)
    scaled = blocks / scale.clamp(min=1e-38)[:, None]  # bitsandbytes' 8-bit CPU kernel divides
    q = nearest(scaled, dynamic_code().to(absmax.device)).flatten()[: absmax.numel()]
    return {"q": q, "scale": scale, "offset": offset}


def quantize_4bit(w, code, blocksize=64, double_quant=False):
    """Blockwise absmax + nearest value of a sorted code with at most 16 levels (NF4, FP4, int4)."""
    check_weight(w)
    check_blocksize(blocksize, BNB_BLOCKSIZES)
    validate.flag("double_quant", double_quant)
    validate.tensor("code", code, dims=1)
    if code.numel() > 16 or not bool((code[1:] > code[:-1]).all()):
        raise ValueError(f"a 4-bit code is at most 16 strictly increasing values, got {code.numel()}")
    n = w.numel()
    blocks, absmax = split_blocks(w.detach().reshape(-1).float(), blocksize)
    # bitsandbytes' CPU kernel multiplies by 1/absmax, but divides in a partial last block; the same
    # arithmetic gives the same float, hence the same index even next to a midpoint.
    safe = absmax.clamp(min=1e-38)[:, None]  # an all-zero block maps to the code's 0
    scaled = blocks * (1.0 / safe)
    if n % blocksize:
        scaled[-1] = blocks[-1] / safe[-1]
    # odd n: the index of a padding zero fills the last low nibble (bitsandbytes pads the same way)
    idx = nearest(scaled, code.to(w.device)).flatten()[: n + n % 2]
    dq = double_quantize(absmax) if double_quant else None
    return Quantized4bit(pack_nibbles(idx), absmax, w.shape, w.dtype, blocksize, code.to(w.device), dq)


def quantize_nf4(w, blocksize=64, double_quant=False):
    """NF4 quantization as in QLoRA / bitsandbytes quantize_4bit(quant_type="nf4")."""
    return quantize_4bit(w, nf4_code(), blocksize, double_quant)


def quantize_fp4(w, blocksize=64, double_quant=False):
    """bitsandbytes' FP4 (its default 4-bit type): same blocks, a floating-point table instead of NF4."""
    return quantize_4bit(w, fp4_code(), blocksize, double_quant)


# ---------------------------------------------------------------- comparing formats

FORMATS = {"int4": lambda w, blocksize: quantize_absmax(w, 4, blocksize), "fp4": quantize_fp4, "nf4": quantize_nf4}


def as_tensor_list(weights):
    """One tensor, a list of them or a {name: tensor} dict, as a non-empty list of tensors."""
    if torch.is_tensor(weights):
        return [weights]
    if not isinstance(weights, (dict, list, tuple)):
        raise TypeError(f"weights must be a tensor, a list of tensors or a {{name: tensor}} dict, got {type(weights).__name__}")
    tensors = list(weights.values()) if isinstance(weights, dict) else list(weights)
    if not tensors:
        raise ValueError("no weights given: pass at least one tensor")
    for w in tensors:
        check_weight(w)
    return tensors


def relative_error(tensors, quantized):
    """sqrt(Σ(ŵ − w)² / Σ w²) over matching lists of tensors and their quantized versions."""
    err = sum(float((q.dequantize(torch.float32) - w.float()).pow(2).sum()) for w, q in zip(tensors, quantized))
    norm = sum(float(w.float().pow(2).sum()) for w in tensors)
    if norm == 0:
        raise ValueError("the weights are all zero: an error relative to their size is undefined (0/0)")
    return (err / norm) ** 0.5


def quantization_error(weights, quantize):
    """Relative RMS round-trip error over one tensor or several (a list or a {name: tensor} dict),
    each quantized on its own by quantize(w) -> an object with .dequantize()."""
    tensors = as_tensor_list(weights)
    if not callable(quantize):
        raise TypeError(f"quantize must be a function w -> quantized object (e.g. quantize_nf4), got {type(quantize).__name__}")
    return relative_error(tensors, [quantize(w) for w in tensors])


def format_errors(weights, blocksize=64):
    """{"int4", "fp4", "nf4"}: relative RMS round-trip error of each 4-bit format, same blocks."""
    check_blocksize(blocksize, BNB_BLOCKSIZES)
    return {name: quantization_error(weights, lambda w: fn(w, blocksize)) for name, fn in FORMATS.items()}


def blocksize_sweep(weights, blocksizes=BNB_BLOCKSIZES, double_quant=False):
    """NF4 at each block size: [(blocksize, overhead bits per weight, relative RMS error)]; the overhead
    is measured from the stored constants of every tensor, weighted by its size."""
    tensors = as_tensor_list(weights)
    if not isinstance(blocksizes, (list, tuple)) or not blocksizes:
        raise ValueError(f"blocksizes must be a non-empty list of block sizes from {BNB_BLOCKSIZES}, got {blocksizes!r}")
    for b in blocksizes:
        check_blocksize(b, BNB_BLOCKSIZES)
    validate.flag("double_quant", double_quant)
    n = sum(w.numel() for w in tensors)
    rows = []
    for b in blocksizes:
        quantized = [quantize_nf4(w, b, double_quant) for w in tensors]
        overhead = sum(q.overhead_bits_per_param() * w.numel() for q, w in zip(quantized, tensors)) / n
        rows.append((b, overhead, relative_error(tensors, quantized)))
    return rows


def linear_weights(model):
    """{name: weight} of every nn.Linear / GPT-2 Conv1D in a model, in nn.Linear layout (out × in):
    the matrices QLoRA stores in 4 bits (embeddings, norms and the output layer stay in 16/32 bits)."""
    from .base import conv1d_class
    validate.module("model", model)
    output_embedding = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    out = {}
    for name, module in model.named_modules():
        if module is output_embedding:  # GPT-2's lm_head is the (tied) embedding: bitsandbytes keeps it
            continue
        if isinstance(module, nn.Linear):
            out[name] = module.weight.detach()
        elif isinstance(module, conv1d_class()):
            out[name] = module.weight.detach().T
    return out
