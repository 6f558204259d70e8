"""peftcourse.quant against bitsandbytes: the NF4 table, indices, packing, dequantized values,
double quantization; absmax int8/int4 error bounds; bad inputs."""
import pytest
import torch
import bitsandbytes.functional as bnbF

from peftcourse.runtime import bnb_cpu_kernels
from peftcourse.quant import (DQ_BLOCKSIZE, dynamic_code, format_errors, fp4_code, nf4_code, nf4_code_lecture,
                              nf4_steps, quantize_absmax, quantize_fp4, quantize_nf4)

# bitsandbytes.functional.get_4bit_type("nf4"), as bitsandbytes 0.50 stores it
NF4_TABLE = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
             -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
             0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
             0.7229568362236023, 1.0]


def bnb_indices(packed, n):
    """Unpack bitsandbytes' bytes independently of our code: high nibble first."""
    packed = packed.flatten()
    return torch.stack([packed // 16, packed % 16], dim=1).flatten()[:n]


def test_nf4_code_equals_bitsandbytes_table():
    code = nf4_code()
    torch.testing.assert_close(code, torch.tensor(NF4_TABLE), atol=1e-7, rtol=0)
    assert torch.equal(code, bnbF.get_4bit_type("nf4", device="cpu"))  # bit for bit
    assert code.numel() == 16 and code[7] == 0 and code[0] == -1 and code[-1] == 1
    steps = nf4_steps()
    assert list(steps.values())[-1] is not None and torch.equal(list(steps.values())[-1], code)
    assert steps["1. probabilities, positive side"].numel() == 8 and steps["2. probabilities, negative side"].numel() == 7


def test_lecture_recipe_is_close_but_not_exact():
    gap = (nf4_code_lecture() - nf4_code()).abs().max().item()
    assert 0 < gap < 0.01  # the rounded 0.56…0.97 probabilities move the levels by under 1%


def test_dynamic_and_fp4_codes_equal_bitsandbytes():
    assert torch.equal(dynamic_code(), bnbF.create_dynamic_map(signed=True))
    bnb_fp4 = bnbF.get_4bit_type("fp4", device="cpu")
    assert torch.equal(fp4_code(), bnb_fp4.unique())  # same 15 distinct values (+0 and −0 are one)


SHAPES = [(64,), (33,), (6, 10), (300, 128), (96, 128), (3, 4, 50)]  # (33,): odd, a half-filled last byte


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("blocksize", [32, 64, 128, 4096])
def test_nf4_indices_and_values_equal_bitsandbytes(shape, blocksize):
    torch.manual_seed(sum(shape) + blocksize)
    w = torch.randn(shape) * 0.02
    ours = quantize_nf4(w, blocksize)
    packed, state = bnbF.quantize_4bit(w, blocksize=blocksize, quant_type="nf4")
    assert torch.equal(ours.packed, packed.flatten())  # same bytes, padding nibble included
    assert ours.indices().dtype == torch.uint8 and ours.indices().shape == w.shape
    assert torch.equal(ours.indices().flatten(), bnb_indices(packed, w.numel()))
    assert int(ours.indices().max()) <= 15
    assert torch.equal(ours.absmax, state.absmax)
    kernels = bnb_cpu_kernels()
    native_large_blocks = blocksize >= 2048 and kernels["avx512_dequant"] and not kernels["avx512_fallback"]
    # bitsandbytes' odd-shape fallback tries torch.compile (seconds), and its AVX-512 kernel is inaccurate from
    # blocks of 2048 where it does not fall back (ATEN_CPU_CAPABILITY=avx2 on an AVX-512 CPU): rebuild its values
    if shape[-1] % 2 or native_large_blocks:
        blocks = torch.arange(w.numel()) // blocksize
        expected = (nf4_code()[bnb_indices(packed, w.numel()).long()] * state.absmax[blocks]).view(shape)
    else:
        expected = bnbF.dequantize_4bit(packed, state).reshape(shape)
    assert torch.equal(ours.dequantize(), expected)


# bitsandbytes 0.50's native AVX-512 dequantize_4bit kernel (taken when torch's CPU capability is AVX512)
# scales values by another block's absmax when a row is not a multiple of the block size (64 x 96 here).
# A known upstream defect: recorded where that kernel runs, strict so that a fixed release shows up.
AVX512_DEQUANT_DEFECT = pytest.mark.xfail(
    bnb_cpu_kernels()["avx512_dequant"], strict=True,
    reason="bitsandbytes 0.50 AVX-512 dequantize_4bit uses the wrong absmax when a row is not a multiple "
           "of the block size (upstream PRs #1828, #2072)")


def test_dequantize_follows_the_definition_of_blockwise_nf4():
    """The oracle that does not depend on bitsandbytes: value = code[index] x absmax of its block,
    blocks of 64 over the flattened tensor, index = nearest code to value / absmax."""
    torch.manual_seed(1)
    for shape in [(64, 96), (64, 64), (96, 64), (3, 4, 50)]:
        w = torch.randn(shape)
        flat = w.flatten()
        blocks = torch.arange(flat.numel()) // 64
        absmax = torch.stack([block.abs().max() for block in flat.split(64)])
        nearest = (flat[:, None] / absmax[blocks, None] - nf4_code()).abs().argmin(dim=1)
        expected = (nf4_code()[nearest] * absmax[blocks]).view(shape)
        assert torch.equal(quantize_nf4(w).dequantize(), expected)


@pytest.mark.parametrize("dtype", [
    pytest.param(torch.float32, marks=AVX512_DEQUANT_DEFECT),
    pytest.param(torch.float16, marks=AVX512_DEQUANT_DEFECT),
    pytest.param(torch.bfloat16, marks=AVX512_DEQUANT_DEFECT)])
def test_half_precision_inputs_match_bitsandbytes(dtype):
    torch.manual_seed(1)
    w = torch.randn(64, 96).to(dtype)
    ours = quantize_nf4(w)
    packed, state = bnbF.quantize_4bit(w, quant_type="nf4")
    assert torch.equal(ours.packed, packed.flatten())
    out = ours.dequantize()
    assert out.dtype == dtype and torch.equal(out, bnbF.dequantize_4bit(packed, state))


def test_indices_are_nearest_code_in_element_order():
    torch.manual_seed(2)
    w = torch.randn(4, 64)
    idx = quantize_nf4(w).indices()
    scaled = w / w.abs().amax(dim=1, keepdim=True)  # one block per row here
    brute = (scaled[..., None] - nf4_code()).abs().argmin(dim=-1)
    assert torch.equal(idx.long(), brute)


def test_fp4_values_equal_bitsandbytes():
    torch.manual_seed(3)
    w = torch.randn(128, 64)
    packed, state = bnbF.quantize_4bit(w, quant_type="fp4")
    assert torch.equal(quantize_fp4(w).dequantize(), bnbF.dequantize_4bit(packed, state))


def test_double_quantization_matches_bitsandbytes():
    torch.manual_seed(4)
    w = torch.randn(512, 512)
    ours = quantize_nf4(w, double_quant=True)
    packed, state = bnbF.quantize_4bit(w, quant_type="nf4", compress_statistics=True)
    assert torch.equal(ours.packed, packed.flatten())  # DQ only touches the constants
    assert torch.equal(ours.absmax_offset, state.offset)
    assert torch.equal(ours.absmax_scale, state.state2.absmax)
    assert state.state2.blocksize == DQ_BLOCKSIZE
    # bitsandbytes' 8-bit CPU kernel finds its code value to about 1.5e-5 (absolute, after scaling to
    # [-1, 1]), so next to a midpoint it sometimes picks the farther neighbour; ours is the nearest.
    same = ours.absmax_q == state.absmax
    assert same.float().mean() > 0.99
    code = dynamic_code()
    absmax = quantize_nf4(w).absmax
    scaled = (absmax - ours.absmax_offset) / ours.absmax_scale.repeat_interleave(DQ_BLOCKSIZE)[: absmax.numel()]
    distance = (scaled[:, None] - code).abs()
    ours_d = distance.gather(1, ours.absmax_q.long()[:, None]).squeeze(1)
    bnb_d = distance.gather(1, state.absmax.long()[:, None]).squeeze(1)
    assert torch.equal(ours_d, distance.min(dim=1).values)  # ours: the nearest code
    assert bool((bnb_d <= ours_d + 2e-5).all())              # bitsandbytes: nearest to within 2e-5
    bnb_absmax = bnbF.dequantize_blockwise(state.absmax, state.state2) + state.offset
    assert torch.equal(ours.block_absmax()[same], bnb_absmax[same])


def test_overhead_bits_measured_from_storage():
    w = torch.randn(1024, 1024)
    assert quantize_nf4(w).overhead_bits_per_param() == 0.5  # one fp32 per 64 weights
    dq = quantize_nf4(w, double_quant=True).overhead_bits_per_param()
    assert abs(dq - 0.127) <= 0.001
    assert dq == pytest.approx(8 / 64 + 32 / (64 * 256) + 32 / w.numel())  # + the one fp32 offset
    assert quantize_nf4(w, blocksize=256).overhead_bits_per_param() == 0.125
    assert quantize_nf4(w, double_quant=True).bits_per_param() == pytest.approx(4 + dq)


def test_nf4_beats_int4_and_fp4_on_normal_weights():
    torch.manual_seed(5)
    errors = format_errors(torch.randn(256, 256))
    assert errors["nf4"] < errors["int4"] and errors["nf4"] < errors["fp4"]


@pytest.mark.parametrize("blocksize", [None, 64, 100, 7])
def test_int8_round_trip_error_bound(blocksize):
    torch.manual_seed(6)
    w = torch.randn(50, 70) * torch.logspace(-3, 1, 70)  # columns on very different scales
    q = quantize_absmax(w, bits=8, blocksize=blocksize)
    assert q.q.dtype == torch.int8 and int(q.q.abs().max()) == 127
    block = w.numel() if blocksize is None else blocksize
    flat = torch.nn.functional.pad(w.flatten(), (0, -w.numel() % block)).view(-1, block)
    bound = (flat.abs().amax(dim=1, keepdim=True) / 127 / 2).expand_as(flat).flatten()[: w.numel()].view(w.shape)
    err = (q.dequantize() - w).abs()
    assert bool((err <= bound * (1 + 1e-5) + 1e-12).all())  # rounding moves a value by at most half a step
    assert torch.equal(q.c, 127 / flat.abs().amax(dim=1))  # the lecture's c = 127 / absmax


def test_int4_uses_symmetric_range_and_smaller_blocks_help():
    torch.manual_seed(7)
    w = torch.randn(64, 64)
    w[0, 0] = 50.0  # one outlier ruins its block
    per_tensor, blockwise = quantize_absmax(w, bits=4), quantize_absmax(w, bits=4, blocksize=64)
    assert int(per_tensor.q.abs().max()) == 7
    err = lambda q: (q.dequantize() - w)[1:].pow(2).mean()
    assert err(blockwise) < err(per_tensor) / 10
    assert blockwise.overhead_bits_per_param() == 0.5


def test_all_zero_block_stays_zero():
    w = torch.cat([torch.zeros(64), torch.randn(64)])
    for q in (quantize_nf4(w), quantize_nf4(w, double_quant=True), quantize_absmax(w, blocksize=64)):
        out = q.dequantize()
        assert torch.isfinite(out).all() and torch.equal(out[:64], torch.zeros(64))


@pytest.mark.parametrize("blocksize", [48, 16, 0, -64, 8192, 64.0, True])
def test_bad_blocksize(blocksize):
    with pytest.raises(ValueError, match="blocksize"):
        quantize_nf4(torch.randn(128), blocksize=blocksize)


@pytest.mark.parametrize("value, word", [(float("nan"), "NaN"), (float("inf"), "Inf"), (-float("inf"), "Inf")])
def test_nan_and_inf_are_refused(value, word):
    w = torch.randn(128)
    w[5] = value
    for fn in (quantize_nf4, quantize_fp4, quantize_absmax):
        with pytest.raises(ValueError, match=word):
            fn(w)


def test_bad_tensors():
    with pytest.raises(TypeError, match="floating-point"):
        quantize_nf4(torch.arange(128))
    with pytest.raises(TypeError, match="floating-point"):
        quantize_absmax(torch.ones(8, dtype=torch.int8))
    with pytest.raises(ValueError, match="empty"):
        quantize_nf4(torch.zeros(0, 64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        quantize_nf4([0.1, 0.2])
    with pytest.raises(ValueError, match="bits"):
        quantize_absmax(torch.randn(8), bits=9)
    with pytest.raises(ValueError, match="blocksize"):
        quantize_absmax(torch.randn(8), blocksize=0)


def test_blocksize_sweep_and_linear_weights():
    from transformers import GPT2Config, GPT2LMHeadModel
    from peftcourse.quant import blocksize_sweep, linear_weights
    torch.manual_seed(8)
    model = GPT2LMHeadModel(GPT2Config(n_embd=64, n_layer=1, n_head=2, vocab_size=100, n_positions=16))
    ws = linear_weights(model)
    assert sorted(ws) == ["transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj",
                          "transformer.h.0.mlp.c_fc", "transformer.h.0.mlp.c_proj"]  # lm_head (tied) left out
    assert ws["transformer.h.0.attn.c_attn"].shape == (192, 64)  # Conv1D weights in (out, in) layout
    rows = blocksize_sweep(torch.randn(256, 256), blocksizes=(32, 64, 256))
    assert [(b, over) for b, over, _ in rows] == [(32, 1.0), (64, 0.5), (256, 0.125)]
    errors = [err for *_, err in rows]
    assert errors[0] < errors[1] < errors[2]  # smaller blocks follow the data more closely


def test_dequantize_is_the_same_whatever_the_gather_chunk(monkeypatch):
    """lookup_bytes gathers a chunk of packed bytes at a time: chunk edges (here every 7 bytes, inside a block
    and across blocks, odd n) must not change a single value."""
    import peftcourse.quant as Q
    torch.manual_seed(3)
    w = torch.randn(37, 51)   # 1,887 values: an odd count, a partial last block, rows not a multiple of 64
    for dq in (False, True):
        whole = quantize_nf4(w, 64, dq).dequantize()
        monkeypatch.setattr(Q, "LOOKUP_CHUNK", 7)
        assert torch.equal(quantize_nf4(w, 64, dq).dequantize(), whole)
        monkeypatch.undo()
    codes = Q.byte_values(nf4_code())
    assert codes.shape == (256, 2) and torch.equal(codes[0x7F], torch.stack([nf4_code()[7], nf4_code()[15]]))
    words = Q.byte_words(nf4_code())   # the same 512 float32 values, two to an int64 word
    assert words.dtype == torch.int64 and torch.equal(words.view(torch.float32).view(256, 2), codes)


@pytest.mark.parametrize("shape", [(300, 100), (37, 51), (576, 576)])
def test_double_quantized_dequantize_follows_its_definition(shape):
    """The oracle for the in-place path, by plain indexing: absmax = dynamic_code[q] x scale of its group of 256
    + offset, value = nf4_code[index] x absmax of its block. (300, 100): a partial last block of 64 and a partial
    last group of 256; (37, 51): an odd count; (576, 576): SmolLM2's q_proj."""
    torch.manual_seed(5)
    q = quantize_nf4(torch.randn(shape) * 0.02, 64, double_quant=True)
    blocks = torch.arange(q.absmax_q.numel())
    absmax = dynamic_code()[q.absmax_q.long()] * q.absmax_scale[blocks // DQ_BLOCKSIZE] + q.absmax_offset
    assert torch.equal(q.block_absmax(), absmax)
    expected = nf4_code()[q.indices().flatten().long()] * absmax[torch.arange(q.shape.numel()) // 64]
    assert torch.equal(q.dequantize(), expected.view(shape))


def test_a_quantized_tensor_moved_to_another_dtype_still_dequantizes():
    torch.manual_seed(4)
    w = torch.randn(64, 128)
    for dq in (False, True):
        q = quantize_nf4(w, 64, dq)
        ref = q.dequantize()
        moved = quantize_nf4(w, 64, dq).to(torch.bfloat16)   # its float tables and constants become bf16
        assert torch.equal(moved.words, q.words)   # the byte table is int64: its float32 bits stay
        assert moved.dequantize().dtype == torch.float32
        torch.testing.assert_close(moved.dequantize(), ref, atol=0.02, rtol=0.02)
