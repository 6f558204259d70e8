"""The 4-bit formats on a Llama-architecture LM (C5 on SmolLM2): every decoder projection rounded in place one
layer at a time from the weights saved on disk, restored bit for bit afterwards, perplexity on held-out windows
that differ between seeds. A tiny random Llama saved to tmp_path stands in for SmolLM2: nothing is downloaded."""
import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from peftcourse import data, models, quant
from peftcourse.experiments import quantization as Q


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=128, vocab_size=256, max_position_embeddings=64, tie_word_embeddings=True)
    path = tmp_path_factory.mktemp("tiny_llama")
    LlamaForCausalLM(cfg).save_pretrained(path)
    return path


def load(path):
    return LlamaForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def test_decoder_linears_are_the_seven_projections_of_each_layer(saved):
    model = load(saved)
    names = list(Q.decoder_linears(model))
    assert len(names) == 2 * 7 and names[0] == "model.layers.0.self_attn.q_proj"
    assert {n.rsplit(".", 1)[-1] for n in names} == set(Q.SMOLLM2_LINEARS)
    assert list(Q.decoder_linears(model, n_layers=1)) == names[:7]
    assert not any("embed" in n or "lm_head" in n or "norm" in n for n in names)   # these stay in full precision


def test_round_trip_in_place_rounds_every_layer_and_writes_the_originals_back(saved):
    model = load(saved)
    linears, original = Q.decoder_linears(model), Q.saved_weights(model)
    before = {n: m.weight.detach().clone() for n, m in linears.items()}
    assert all(torch.equal(original(n), w) for n, w in before.items())   # read from disk, one tensor at a time
    error, bits = Q.round_trip_in_place(linears, original, "nf4", False, 64)
    for n, m in linears.items():
        assert torch.equal(m.weight, quant.quantize_nf4(before[n]).dequantize())
    assert error == pytest.approx(quant.quantization_error(list(before.values()), quant.quantize_nf4), rel=1e-6)
    assert bits == 0.5   # one fp32 absmax per 64 weights
    _, bits_dq = Q.round_trip_in_place(linears, original, "nf4", True, 64)
    assert 0.125 < bits_dq < 0.14
    Q.round_trip_in_place(linears, original, None, False, 64)
    assert all(torch.equal(m.weight, before[n]) for n, m in linears.items())


def test_smollm2_formats_measures_each_format_and_restores_fp32(saved):
    model = load(saved)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    windows = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(0))
    out = Q.smollm2_formats(model, windows)
    assert list(out["metric"]) == [*Q.FORMAT_SETTINGS, "fp32"]
    assert out["metric"]["fp32"] == pytest.approx(math.exp(data.mean_loss(model, windows, batch_size=1)))
    assert all(math.isfinite(v) and v > 1 for v in out["metric"].values())
    facts = out["facts"]
    errors = facts["weight_error"]
    assert errors["NF4"] < errors["int4"] < errors["FP4"]   # normal (random-init) weights: NF4 loses least
    assert errors["NF4 + DQ"] == pytest.approx(errors["NF4"], rel=0.01)
    assert facts["constant_bits_per_weight"]["NF4"] == 0.5 and facts["constant_bits_per_weight"]["NF4 + DQ"] < 0.2
    assert facts["quantized_weights"] == 2 * (64 * 64 + 2 * 32 * 64 + 64 * 64 + 3 * 128 * 64)   # q, k, v, o, MLP
    assert facts["quantized_weights"] + facts["full_precision_weights"] == sum(p.numel() for p in model.parameters())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())   # the fp32 model is back


def test_held_out_windows_differ_between_seeds_and_repeat_for_a_seed():
    _, tok = models.load_tinygpt()
    windows = {seed: Q.held_out_windows(tok, 64, 4, seed) for seed in (0, 1, 2)}
    assert all(w.shape == (4, 64) for w in windows.values())
    rows = [tuple(r.tolist()) for w in windows.values() for r in w]
    assert len(set(rows)) == len(rows)   # disjoint: no window is scored by two seeds
    assert torch.equal(Q.held_out_windows(tok, 64, 4, 1), windows[1])
    with pytest.raises(ValueError, match="use a seed below"):
        Q.held_out_windows(tok, 4096, 100, 3)


def test_saved_weights_needs_the_folder_the_model_came_from(tmp_path, saved):
    model = load(saved)
    model.name_or_path = str(tmp_path)
    with pytest.raises(FileNotFoundError, match="model.safetensors is missing"):
        Q.saved_weights(model)


def test_the_qlora_benchmark_runs_both_bases_on_a_checked_folder(tmp_path, saved):
    """bench_qlora_smollm2 at toy size, on a tiny Llama written as fetch-smollm2 writes SmolLM2 (with a manifest)."""
    import importlib.util
    import pathlib
    import shutil
    from peftcourse import smollm2
    folder = tmp_path / "smollm2"
    shutil.copytree(saved, folder)
    _, tok = models.load_tinygpt()
    tok.save_pretrained(folder)
    smollm2.write_manifest(str(folder), sum(p.numel() for p in load(saved).parameters()))
    path = pathlib.Path(__file__).with_name("bench_qlora_smollm2.py")
    spec = importlib.util.spec_from_file_location("bench_qlora_smollm2", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    ratio = bench.main(["--steps", "1", "--batch", "1", "--seq", "8", "--r", "2", "--alpha", "4"], path=str(folder))
    assert ratio > 0 and math.isfinite(ratio)
