"""Bad input at the public entry points: a clear error, raised before anything changes.

Every case runs the call on fresh objects, expects an error whose message names the problem, and then
checks that the model, layer or file is exactly as it was (weights, requires_grad flags, module types,
train/eval mode).
"""
import copy
import math

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel

import peftcourse as pc
from peftcourse import adapters, analysis, cnn, data, linalg, memory, mora, multi_sbora, quant
from peftcourse.dora import DoRALinear, magnitude_only
from peftcourse.inject import adapter_layers, adapter_state_dict, add_adapter, set_adapter
from peftcourse.lora import LoRALinear, inject_gpt2_attention
from peftcourse.mora import MoRALinear
from peftcourse.prompts import PrefixTuning, PromptTuning
from peftcourse.qlora import QLoRALinear, QuantLinear
from peftcourse.runtime import eval_mode
from peftcourse.sbora import SBoRALinear


def mlp():
    """Two layers of different shapes: r=6 fits the first (8 -> 16) but not the second (16 -> 4)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def tiny_gpt2():
    torch.manual_seed(0)
    cfg = GPT2Config(n_embd=16, n_layer=2, n_head=2, vocab_size=50, n_positions=16, bos_token_id=0,
                     eos_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(cfg)


def tiny_bert():
    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
                     vocab_size=50, max_position_embeddings=16, num_labels=3)
    return BertForSequenceClassification(cfg)


def state(obj):
    """Everything a failed call must leave alone: module types, mode, every tensor and its requires_grad."""
    modules = [(n, type(m).__name__, m.training) for n, m in obj.named_modules()]
    tensors = {n: (t.detach().clone(), t.requires_grad) for n, t in
               list(obj.named_parameters(remove_duplicate=False)) + list(obj.named_buffers())}
    return modules, tensors


def assert_unchanged(before, obj):
    modules, tensors = state(obj)
    assert modules == before[0]
    assert tensors.keys() == before[1].keys()
    for name, (t, grad) in tensors.items():
        assert grad == before[1][name][1], f"{name}: requires_grad changed"
        assert torch.equal(t.nan_to_num(), before[1][name][0].nan_to_num()), f"{name}: values changed"


def lora_mlp(**kw):
    return pc.inject(mlp(), "lora", ["0", "2"], r=2, alpha=4, **kw)


def merged(model):
    for _, layer in adapter_layers(model):
        layer.merge()
    return model


# (what, make the object, the call that must fail, error type, words the message must contain)
CASES = [
    ("inject: rank fits only some layers", mlp, lambda m: pc.inject(m, "lora", ["0", "2"], r=6, alpha=8),
     ValueError, "r=6 exceeds"),
    ("inject: misspelt keyword", mlp, lambda m: pc.inject(m, "lora", ["0", "2"], r=2, alhpa=8), TypeError, "alhpa"),
    ("inject: bad modules_to_save", mlp, lambda m: pc.inject(m, "lora", ["0"], r=2, alpha=8, modules_to_save=["nope"]),
     ValueError, "modules_to_save"),
    ("inject: modules_to_save is a target", mlp, lambda m: pc.inject(m, "lora", ["0"], r=2, alpha=8, modules_to_save="0"),
     ValueError, "get an adapter"),
    ("inject: unknown method", mlp, lambda m: pc.inject(m, "lorax", ["0"], r=2, alpha=8), ValueError, "lorax"),
    ("inject: target list of non-strings", mlp, lambda m: pc.inject(m, "lora", [0], r=2, alpha=8), TypeError, "strings"),
    ("inject: rslora='no'", mlp, lambda m: pc.inject(m, "lora", ["0"], r=2, alpha=8, rslora="no"), TypeError, "rslora"),
    ("inject: SBoRA alpha NaN", mlp, lambda m: pc.inject(m, "sbora", ["0", "2"], r=2, alpha=math.nan), ValueError, "alpha"),
    ("inject: MoRA type", mlp, lambda m: pc.inject(m, "mora", ["0", "2"], r=2, mora_type=3), ValueError, "mora_type"),
    ("inject: QLoRA blocksize", mlp, lambda m: pc.inject(m, "qlora", ["0", "2"], r=2, alpha=2, blocksize=7),
     ValueError, "blocksize"),
    ("add_adapter: rank fits only some layers", lora_mlp, lambda m: add_adapter(m, "b", r=6, alpha=8),
     ValueError, "r=6 exceeds"),
    ("add_adapter: existing name", lora_mlp, lambda m: add_adapter(m, "default", r=2, alpha=8), ValueError, "already has"),
    ("add_adapter: merged model", lambda: merged(lora_mlp()), lambda m: add_adapter(m, "b", r=2, alpha=8),
     RuntimeError, "unmerge"),
    ("set_adapter: unknown name", lora_mlp, lambda m: set_adapter(m, "nope"), ValueError, "no adapter named"),
    ("merge_and_unload: NaN adapter", lambda: nan_adapter(lora_mlp()), pc.merge_and_unload, FloatingPointError, "NaN"),
    ("train: negative clip", lora_mlp, lambda m: pc.train(m, DATA, steps=2, loss_fn=LOSS, clip=-1.0, progress=False),
     ValueError, "clip"),
    ("train: NaN clip", lora_mlp, lambda m: pc.train(m, DATA, steps=2, loss_fn=LOSS, clip=math.nan, progress=False),
     ValueError, "clip"),
    ("train: warmup above steps", lora_mlp, lambda m: pc.train(m, DATA, steps=2, loss_fn=LOSS, warmup=3, progress=False),
     ValueError, "warmup"),
    ("train: warmup below 0", lora_mlp, lambda m: pc.train(m, DATA, steps=2, loss_fn=LOSS, warmup=-1, progress=False),
     ValueError, "warmup"),
    ("train: lr=True", lora_mlp, lambda m: pc.train(m, DATA, steps=2, loss_fn=LOSS, lr=True, progress=False),
     ValueError, "lr"),
    ("train: eval_every=True", lora_mlp, lambda m: pc.train(m, DATA, steps=2, loss_fn=LOSS, eval_every=True,
                                                          eval_fn=lambda m: {}, progress=False), ValueError, "eval_every"),
    ("train: eval_fn not callable", lora_mlp, lambda m: pc.train(m, DATA, steps=2, loss_fn=LOSS, eval_fn=5, progress=False),
     TypeError, "eval_fn"),
    ("train: one batch dict", tiny_gpt2, lambda m: pc.train(m, {"input_ids": torch.zeros(1, 4, dtype=torch.long)},
                                                           steps=2, progress=False), TypeError, "single batch"),
    ("train: no parameter gets a gradient", lambda: unused_trainable(mlp()),
     lambda m: pc.train(m, DATA, steps=2, loss_fn=LOSS, progress=False), ValueError, "no trainable parameter got a gradient"),
    ("prompt tuning: zero tokens", tiny_gpt2, lambda m: PromptTuning(m, 0), ValueError, "n_virtual_tokens"),
    ("prompt tuning: unknown init", tiny_gpt2, lambda m: PromptTuning(m, 2, init="zeros"), ValueError, "init"),
    ("prefix tuning: projection='yes'", tiny_gpt2, lambda m: PrefixTuning(m, 2, projection="yes"), TypeError, "projection"),
    ("prefix tuning: hidden size without MLP", tiny_gpt2, lambda m: PrefixTuning(m, 2, encoder_hidden_size=8),
     ValueError, "projection=True"),
    ("freeze_all_but_top: nothing matches", tiny_bert, lambda m: adapters.freeze_all_but_top(m, 0, head="nope"),
     ValueError, "nothing left to train"),
    ("freeze_all_but_top: k too large", tiny_bert, lambda m: adapters.freeze_all_but_top(m, 3), ValueError, "k must be"),
    ("add_adapters: bad modules_to_save", tiny_bert, lambda m: adapters.add_adapters(m, 4, modules_to_save="nope"),
     ValueError, "modules_to_save"),
    ("add_adapters: bottleneck too large", tiny_bert, lambda m: adapters.add_adapters(m, 16), ValueError, "bottleneck"),
    ("inject_gpt2_attention: bad dropout for both parts", tiny_gpt2,
     lambda m: inject_gpt2_attention(m, ("q", "o"), r=2, alpha=4, dropout=2.0), ValueError, "dropout"),
    ("inject_gpt2_attention: unknown weight", tiny_gpt2, lambda m: inject_gpt2_attention(m, "x", r=2, alpha=4),
     ValueError, "weights"),
    ("inject_task: task out of range", mlp, lambda m: multi_sbora.inject_task(m, ["0"], task=2, n_tasks=2, r=1, alpha=1),
     ValueError, "task"),
    ("inject_task: misspelt keyword", mlp, lambda m: multi_sbora.inject_task(m, ["0"], 0, 2, r=1, alpha=1, dropuot=0.1),
     TypeError, "dropuot"),
    ("magnitude_only: one layer merged", lambda: merge_one(pc.inject(mlp(), "dora", ["0", "2"], r=2, alpha=2)),
     lambda m: magnitude_only(m, ["0", "2"]), ValueError, "merged"),
]


def nan_adapter(model):
    with torch.no_grad():
        model.get_submodule("2").B.fill_(math.nan)
    return model


def unused_trainable(model):
    for p in model.parameters():
        p.requires_grad_(False)
    model.unused = nn.Parameter(torch.zeros(3))
    return model


def merge_one(model):
    model.get_submodule("2").merge()
    return model


DATA = [(torch.randn(5, 8, generator=torch.Generator().manual_seed(1)), torch.randn(5, 4))]


def LOSS(out, target):
    return (out - target).pow(2).mean()


@pytest.mark.parametrize("what, make, call, error, words", CASES, ids=[c[0] for c in CASES])
def test_bad_call_raises_clearly_and_changes_nothing(what, make, call, error, words):
    obj = make()
    before = state(obj)
    with pytest.raises(error, match=words):
        call(obj)
    assert_unchanged(before, obj)


def test_merge_tasks_with_overlapping_tasks_changes_nothing():
    tasks = [multi_sbora.inject_task(mlp(), ["0", "2"], task=0, n_tasks=2, r=1, alpha=1, seed=s) for s in (0, 0, 1)]
    with torch.no_grad():
        for t in tasks:
            for _, layer in adapter_layers(t):
                layer.B.normal_()
    target = mlp()
    before = state(target)
    with pytest.raises(ValueError, match="overlap"):  # task 3 (seed 1) collides with an earlier one at some layer
        multi_sbora.merge_tasks(target, [tasks[0], multi_sbora.inject_task(mlp(), ["0", "2"], 1, 2, 1, 1, seed=0), tasks[1]])
    assert_unchanged(before, target)


# ---------------------------------------------------------------- constructors leave the caller's layer alone

LAYER_CASES = [
    (LoRALinear, dict(r=2, alpha=8, rslora="no"), TypeError, "rslora"),
    (LoRALinear, dict(r=2, alpha=8, adapter_name="not a name"), ValueError, "identifier"),
    (DoRALinear, dict(r=2, alpha=8, detach_norm="yes"), TypeError, "detach_norm"),
    (DoRALinear, dict(r=9, alpha=8), ValueError, "exceeds"),
    (MoRALinear, dict(r=0), ValueError, "r must be a positive int"),
    (MoRALinear, dict(r=2, dropout=1.5), ValueError, "dropout"),
    (SBoRALinear, dict(r=2, alpha=math.nan), ValueError, "alpha"),
    (SBoRALinear, dict(r=2, alpha=1, variant="FC"), ValueError, "variant"),
    (SBoRALinear, dict(r=2, alpha=1, indices=[0, 0]), ValueError, "distinct"),
    (SBoRALinear, dict(r=2, alpha=1, indices="ab"), ValueError, "indices"),
    (SBoRALinear, dict(r=2, alpha=1, generator=3), TypeError, "generator"),
    (QLoRALinear, dict(r=2, alpha=2, blocksize=7), ValueError, "blocksize"),
    (QLoRALinear, dict(r=2, alpha=2, quant_type="int3"), ValueError, "quant_type"),
    (QLoRALinear, dict(r=2, alpha=2, double_quant="yes"), TypeError, "double_quant"),
    (QLoRALinear, dict(r=2, alpha=2, compute_dtype="bf16"), ValueError, "compute_dtype"),
]


@pytest.mark.parametrize("cls, kwargs, error, words", LAYER_CASES,
                         ids=[f"{c[0].__name__}-{sorted(c[1].items())[-1][0]}" for c in LAYER_CASES])
def test_constructor_checks_before_freezing_the_base(cls, kwargs, error, words):
    base = nn.Linear(8, 8)
    with pytest.raises(error, match=words):
        cls(base, **kwargs)
    assert all(p.requires_grad for p in base.parameters())


def test_qlora_never_freezes_the_callers_layer():
    base = nn.Linear(8, 8)
    layer = QLoRALinear(base, r=2, alpha=2)
    assert all(p.requires_grad for p in base.parameters()) and layer.base is not base


# ---------------------------------------------------------------- adapter files

def save(model, tmp_path, name="a.safetensors"):
    path = tmp_path / name
    pc.save_adapter(model, path)
    return path


def trained(model):
    torch.manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))
    return model


MISMATCHES = [  # (method, settings saved, settings of the model loaded into, the setting named in the error)
    ("lora", dict(r=2, alpha=4), dict(r=2, alpha=8), "'alpha': 4"),
    ("lora", dict(r=2, alpha=4), dict(r=2, alpha=4, rslora=True), "'rslora': False"),
    ("mora", dict(r=2, mora_type=1), dict(r=2, mora_type=6), "'mora_type': 1"),
    ("sbora", dict(r=2, alpha=1), dict(r=2, alpha=2), "'alpha': 1"),
    ("dora", dict(r=2, alpha=2), dict(r=1, alpha=2), "'r': 2"),
    ("qlora", dict(r=2, alpha=2), dict(r=2, alpha=2, double_quant=False), "'double_quant': True"),
]


@pytest.mark.parametrize("method, saved, loaded, words", MISMATCHES, ids=[f"{m[0]}-{m[3]}" for m in MISMATCHES])
def test_loading_another_configuration_is_refused_naming_both(method, saved, loaded, words, tmp_path):
    path = save(trained(pc.inject(mlp(), method, ["0", "2"], **saved)), tmp_path)
    model = pc.inject(mlp(), method, ["0", "2"], **loaded)
    before = state(model)
    with pytest.raises(ValueError, match="another configuration") as err:
        pc.load_adapter(model, path)
    assert words in str(err.value) and str(path) in str(err.value)
    assert_unchanged(before, model)


@pytest.mark.parametrize("method, kwargs", [("lora", dict(r=2, alpha=4)), ("dora", dict(r=2, alpha=2)),
                                            ("mora", dict(r=2)), ("sbora", dict(r=2, alpha=1)),
                                            ("qlora", dict(r=2, alpha=2))])
def test_round_trip_and_merged_model_refused(method, kwargs, tmp_path):
    model = trained(pc.inject(mlp(), method, ["0", "2"], **kwargs))
    path = save(model, tmp_path)
    fresh = pc.inject(mlp(), method, ["0", "2"], **kwargs)
    pc.load_adapter(fresh, path)
    x = torch.randn(3, 8)
    torch.testing.assert_close(fresh(x), model(x), atol=0, rtol=0)
    merged(fresh)
    with pytest.raises(RuntimeError, match="unmerge"):
        pc.load_adapter(fresh, path)
    with pytest.raises(RuntimeError, match="unmerge"):
        pc.save_adapter(fresh, tmp_path / "b.safetensors")


@pytest.mark.parametrize("method, kwargs, exact", [("lora", dict(r=2, alpha=4), True), ("dora", dict(r=2, alpha=2), True),
                                                   ("mora", dict(r=2), True), ("sbora", dict(r=2, alpha=1), True),
                                                   ("qlora", dict(r=2, alpha=2), False)])
def test_unmerge_removes_what_merge_added_even_after_the_weights_change(method, kwargs, exact):
    model = trained(pc.inject(mlp(), method, ["0", "2"], **kwargs))
    layer = model.get_submodule("2")
    w0 = layer.base.weight.detach().clone()
    layer.merge()
    trained(model)  # the adapter's weights change while merged (training on, or a file loaded before the guard)
    layer.unmerge()
    if exact:
        torch.testing.assert_close(layer.base.weight, w0, atol=1e-6, rtol=0)
    else:  # re-quantized twice: within one NF4 step of the original weight, never the other update's ΔW
        step = w0.abs().max() / 4
        assert (layer.base.weight - w0).abs().max() < step


def test_bad_files_are_refused_with_their_path(tmp_path):
    model = trained(lora_mlp())
    good = save(model, tmp_path)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:50])
    text = tmp_path / "notes.safetensors"
    text.write_text("not a tensor file")
    foreign = tmp_path / "foreign.safetensors"  # a safetensors file without the adapter metadata
    save_file(adapter_state_dict(model), str(foreign))
    bad_values = tmp_path / "nan.safetensors"
    tensors = {k: v.clone() for k, v in adapter_state_dict(model).items()}
    next(iter(tensors.values())).fill_(math.nan)
    from safetensors import safe_open
    with safe_open(str(good), framework="pt") as f:
        metadata = f.metadata()
    save_file(tensors, str(bad_values), metadata=metadata)
    fresh = lora_mlp()
    before = state(fresh)
    for path, words in [(truncated, "not a readable safetensors"), (text, "not a readable safetensors"),
                        (foreign, "not an adapter file"), (bad_values, "NaN"),
                        (tmp_path / "missing.safetensors", "no adapter file")]:
        with pytest.raises((ValueError, FileNotFoundError), match=words) as err:
            pc.load_adapter(fresh, path)
        assert str(path) in str(err.value)
        assert_unchanged(before, fresh)


def test_save_adapter_refuses_a_model_without_adapters(tmp_path):
    model = mlp()
    with pytest.raises(ValueError, match="no adapter to save"):
        pc.save_adapter(model, tmp_path / "a.safetensors")
    with pytest.raises(ValueError, match="no adapter to load"):
        pc.load_adapter(model, tmp_path / "a.safetensors")
    assert not (tmp_path / "a.safetensors").exists()


def test_save_adapter_refuses_nan_weights(tmp_path):
    with pytest.raises(ValueError, match="NaN"):
        pc.save_adapter(nan_adapter(lora_mlp()), tmp_path / "a.safetensors")


def test_file_metadata_names_every_module_and_its_settings(tmp_path):
    import json
    from safetensors import safe_open
    model = pc.inject(mlp(), "sbora", ["0"], r=2, alpha=3, variant="FB")
    pc.inject(model, "mora", ["2"], r=1, mora_type=1)
    with safe_open(str(save(model, tmp_path)), framework="pt") as f:
        config = json.loads(f.metadata()["config"])
    assert config == {"0": {"method": "sbora", "r": 2, "alpha": 3, "variant": "FB"},
                      "2": {"method": "mora", "r": 1, "mora_type": 1}}


# ---------------------------------------------------------------- the training loop's messages

def test_nan_loss_message_names_lr_and_clip():
    model = lora_mlp()
    data = [(torch.full((2, 8), math.nan), torch.zeros(2, 4))]
    with pytest.raises(FloatingPointError, match=r"lr=0.5, clip=0.25"):
        pc.train(model, data, steps=2, loss_fn=LOSS, lr=0.5, clip=0.25, progress=False)


def test_clip_zero_switches_clipping_off_and_trains():
    history = pc.train(lora_mlp(), DATA, steps=3, loss_fn=LOSS, clip=0, progress=False)
    assert len(history.losses) == 3 and all(math.isfinite(v) for v in history.losses)


# ---------------------------------------------------------------- numbers

@pytest.mark.parametrize("values", [torch.zeros(130), torch.full((130,), 1e-40), torch.cat([torch.zeros(64), torch.randn(66)])])
def test_absmax_zero_and_tiny_blocks_stay_finite(values):
    q = quant.quantize_absmax(values, bits=8, blocksize=64)
    assert torch.isfinite(q.c).all()
    back = q.dequantize()
    # error at most half a level; a block below ~1e-38 (c capped) rounds to 0, an error below 1e-38
    assert torch.isfinite(back).all() and (back - values).abs().max() <= values.abs().max() / 254 + 1 / q.c.min()


def test_absmax_block_larger_than_the_tensor_is_one_block():
    w = torch.randn(100)
    q = quant.quantize_absmax(w, bits=8, blocksize=4096)   # bitsandbytes' largest block on a small tensor
    torch.testing.assert_close(q.dequantize(), quant.quantize_absmax(w, bits=8).dequantize(), atol=0, rtol=0)
    assert q.c.numel() == 1


@pytest.mark.parametrize("blocksize", [2**40, 10**15, 4097])
def test_absmax_absurd_blocksize_is_a_clear_error(blocksize):
    with pytest.raises(ValueError, match=rf"blocksize {blocksize} is larger than the tensor \(100 values\) .* "
                                         r"up to 4096, or blocksize=None"):
        quant.quantize_absmax(torch.randn(100), bits=8, blocksize=blocksize)
    assert quant.quantize_absmax(torch.randn(8192), blocksize=8192).c.numel() == 1   # the whole tensor: fine


@pytest.mark.parametrize("method", ["full", "lora", "qlora"])
@pytest.mark.parametrize("arg", ["trainable_dtype", "weight_dtype"])
def test_recipe_names_an_unknown_dtype_whatever_the_method(method, arg):
    with pytest.raises(ValueError, match=rf"unknown {arg} 'fp33': use one of \['bf16', 'fp16', 'fp32'"):
        memory.recipe(method, **{arg: "fp33"})


@pytest.mark.parametrize("call, error, words", [
    (lambda: quant.quantize_absmax(torch.tensor([1.0, math.nan])), ValueError, "NaN"),
    (lambda: quant.quantize_nf4(torch.tensor([1.0, math.inf] * 32)), ValueError, "Inf"),
    (lambda: quant.quantize_absmax(torch.randn(8), bits=8.0), ValueError, "bits"),
    (lambda: quant.quantize_nf4(torch.randn(64), double_quant="no"), TypeError, "double_quant"),
    (lambda: quant.quantization_error(torch.zeros(64), quant.quantize_nf4), ValueError, "all zero"),
    (lambda: quant.quantization_error([], quant.quantize_nf4), ValueError, "no weights"),
    (lambda: quant.blocksize_sweep(torch.randn(64), blocksizes=[48]), ValueError, "blocksize"),
    (lambda: linalg.truncation_errors(torch.zeros(3, 3)), ValueError, "all zeros"),
    (lambda: linalg.numerical_rank(torch.eye(3), tol=math.nan), ValueError, "tol"),
    (lambda: linalg.singular_values([[1.0, math.nan]]), ValueError, "NaN"),
    (lambda: linalg.singular_values("matrix"), TypeError, "2-D matrix"),
    (lambda: pc.trainable_report(nn.Sequential()), ValueError, "no parameters"),
    (lambda: memory.estimate(math.nan, memory.LECTURE_QLORA), ValueError, "n_params"),
    (lambda: memory.estimate(-5, memory.LECTURE_QLORA), ValueError, "n_params"),
    (lambda: memory.estimate(1000, memory.LECTURE_QLORA, trainable=2000), ValueError, "trainable"),
    (lambda: memory.estimate(1000, memory.LECTURE_QLORA, trainable=math.nan), ValueError, "trainable"),
    (lambda: memory.estimate(1000, "qlora"), TypeError, "Recipe"),
    (lambda: memory.Recipe("x", base_bytes=-1), ValueError, "base_bytes"),
    (lambda: memory.recipe("lora", master_weights="yes"), TypeError, "master_weights"),
    (lambda: analysis.sparsity(torch.zeros(2, 2), tol=math.nan), ValueError, "tol"),
    (lambda: analysis.regression([1, 2, math.nan], [1, 2, 3]), ValueError, "finite"),
    (lambda: analysis.energy_rank(torch.eye(2), energy=math.nan), ValueError, "energy"),
    (lambda: pc.count_params(cnn.SmallCNN(), trainable_only="yes"), TypeError, "trainable_only"),
    (lambda: quant.quantize_nf4(torch.randn(64)).dequantize("float"), ValueError, "dtype"),
    (lambda: quant.nf4_code(offset=2.0), ValueError, "offset"),
    (lambda: QuantLinear(torch.randn(4, 8), torch.randn(3)), ValueError, "bias"),
    (lambda: mora.mora_rank(8, 8, 0), ValueError, "r must be a positive int"),
    (lambda: adapters.adapter_param_count(-4, 2), ValueError, "d_model"),
    (lambda: pc.History().smoothed_losses(window=0), ValueError, "window"),
    (lambda: data.tensor_batches(torch.randn(4, 2), torch.zeros(4), shuffle="no"), TypeError, "shuffle"),
    (lambda: data.exact_match(None, ["a"]), TypeError, "lists"),
    (lambda: data.generation_batches(None, [{"prompt": "1+1="}]), ValueError, "keys"),
    (lambda: data.arithmetic(2, 2, ops=5), ValueError, "ops"),
    (lambda: data.tensor_batches([[1.0]], [0]), TypeError, "tensors"),
    (lambda: data.token_blocks(None, ["some text"], block_size=0), ValueError, "block_size"),
    (lambda: data.token_blocks(None, "one string", block_size=4), TypeError, "list of strings"),
    (lambda: data.lm_batches(torch.zeros(3, 4, dtype=torch.long), batch_size=8), ValueError, "at least batch_size"),
    (lambda: data.mean_loss(mlp(), torch.zeros(0, 4, dtype=torch.long)), ValueError, "non-empty"),
    (lambda: pc.train(mlp(), DATA, steps=1, loss_fn=lambda out, t: (out - t) ** 2, progress=False), TypeError,
     "single-number tensor"),
    (lambda: pc.train(mlp(), DATA, steps=1, loss_fn=LOSS, optimizer=lambda params: None, progress=False), TypeError,
     "torch.optim.Optimizer"),
    (lambda: pc.train(mlp(), [(torch.randn(2, 8),)], steps=1, loss_fn=LOSS, progress=False), TypeError, "pair"),
    (lambda: pc.train(mlp(), DATA, steps=2, loss_fn=LOSS, autocast="bf16", progress=False), ValueError, "autocast"),
    (lambda: pc.train(mlp(), DATA, steps=2, loss_fn=LOSS, start_step=True, state={}), ValueError, "start_step"),
    (lambda: pc.train(mlp(), DATA, steps=2, loss_fn=LOSS, on_step=3, progress=False), TypeError, "on_step"),
])
def test_numeric_helpers_refuse_bad_numbers(call, error, words):
    with pytest.raises(error, match=words):
        call()


# ---------------------------------------------------------------- eval_mode

def test_eval_mode_restores_the_mode_even_when_the_evaluation_raises():
    model = nn.Sequential(nn.Dropout(0.5)).train()
    with pytest.raises(RuntimeError):
        with eval_mode(model):
            assert not model.training and not torch.is_grad_enabled()
            raise RuntimeError("evaluation failed")
    assert model.training and torch.is_grad_enabled()
    model.eval()
    with eval_mode(model):
        pass
    assert not model.training


def test_step_cost_leaves_the_models_mode_as_it_was():
    model = mlp().eval()
    analysis.step_cost(model, DATA[0], loss_fn=LOSS, repeats=1)
    assert not model.training


def test_sbora_file_with_repeated_indices_is_refused(tmp_path):
    model = trained(pc.inject(mlp(), "sbora", ["0"], r=2, alpha=1))
    good = save(model, tmp_path)
    from safetensors import safe_open
    with safe_open(str(good), framework="pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    tensors["0.indices"] = torch.tensor([3, 3])
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata=metadata)
    fresh = pc.inject(mlp(), "sbora", ["0"], r=2, alpha=1)
    before = state(fresh)
    with pytest.raises(ValueError, match="distinct") as err:
        pc.load_adapter(fresh, bad)
    assert str(bad) in str(err.value)
    assert_unchanged(before, fresh)
