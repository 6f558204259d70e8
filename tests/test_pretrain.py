"""`python -m peftcourse.pretrain` at tiny sizes: a loadable checkpoint, exact resume, clear errors, bits per byte."""
import itertools
import json
import math
import os
import shutil

import pytest
import torch

from peftcourse import models, pretrain
from peftcourse.data import DOC_SEP
from peftcourse.train import train

TINY = ["--n-embd", "32", "--n-layer", "1", "--n-head", "2", "--block-size", "32", "--n-positions", "64", "--batch-size", "2",
        "--vocab-size", "400"]
SMALL = dict(n_embd=32, n_layer=1, n_head=2, block_size=32, n_positions=64, batch_size=2, vocab_size=300,
             warmup=1, max_chars=20_000, compressors=False, progress=False, checkpoint_every=2)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    before = os.path.getmtime(os.path.join(models.COURSE_LM_DIR, "config.json"))
    result = pretrain.main(["--out", str(out)] + TINY)
    return out, result, before


def test_fast_mode_runs_three_steps_into_the_given_folder(run):
    out, result, before = run
    assert result["steps"] == 3 and result["tokens_seen"] == 3 * 2 * 32
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md", "loss_curve.png", "metrics.json"):
        assert (out / name).is_file(), name
    assert not list(out.rglob("*.bin")) and not list(out.rglob("*.pt")), "safetensors and json only, no pickle"
    card = (out / "README.md").read_text()
    assert "held-out bits per byte" in card and result["hardware"] in card
    assert f"{result['n_params']:,}" in card and "xz -9" in card and "bzip2" in card
    assert 0 < result["bits_per_byte"] < 16 and 0 < result["xz_bits_per_byte"] < 8


def test_committed_model_is_not_touched(run):
    _, _, before = run
    assert os.path.getmtime(os.path.join(models.COURSE_LM_DIR, "config.json")) == before


def test_checkpoint_loads_with_auto_classes(run):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    out, result, _ = run
    model = AutoModelForCausalLM.from_pretrained(out, use_safetensors=True)
    tok = AutoTokenizer.from_pretrained(out)
    assert sum(p.numel() for p in model.parameters()) == result["n_params"]
    assert tok.eos_token == pretrain.EOS and tok.pad_token == pretrain.PAD
    config = json.loads((out / "config.json").read_text())
    assert config["n_embd"] == 32 and config["resid_pdrop"] == 0.1   # fine-tuning keeps GPT-2's dropout
    ids = tok("x = 12", return_tensors="pt")["input_ids"]
    assert torch.isfinite(model(input_ids=ids).logits).all()


def test_out_is_required_outside_fast_mode(monkeypatch):
    monkeypatch.setenv("PEFTCOURSE_FAST", "0")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(SystemExit):
        pretrain.main([])


def test_tokenizer_splits_digits_and_round_trips():
    docs = pretrain.read_corpus("val", max_chars=50_000)
    tok = pretrain.train_tokenizer(docs, vocab_size=400)
    text = "Return 1234 items;  naïve UTF-8 → ok\n\tdone."
    ids = tok(text)["input_ids"]
    assert tok.decode(ids) == text
    assert [tok.decode([i]) for i in tok("1234")["input_ids"]] == ["1", "2", "3", "4"]


def test_bad_arguments_fail_loudly(tmp_path):
    with pytest.raises(ValueError, match="split"):
        pretrain.read_corpus("test")
    with pytest.raises(ValueError, match="vocab_size"):
        pretrain.train_tokenizer(["abc"], vocab_size=10)
    with pytest.raises(ValueError, match="divisible"):
        pretrain.make_model(400, n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="steps"):
        pretrain.pretrain(str(tmp_path), steps=0)
    with pytest.raises(ValueError, match="preset"):
        pretrain.pretrain(str(tmp_path), preset="tpu")
    with pytest.raises(ValueError, match="unknown settings.*n_embed"):
        pretrain.pretrain(str(tmp_path), n_embed=64)
    assert not os.listdir(tmp_path)   # nothing written before the check


# ---------------------------------------------------------------- resume

@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """6 steps without interruption: the reference an interrupted + resumed run must reproduce."""
    out = tmp_path_factory.mktemp("full")
    result = pretrain.pretrain(str(out), steps=6, **SMALL)
    return out, result


def _weights(folder):
    from safetensors.torch import load_file
    return load_file(os.path.join(folder, "model.safetensors"))


def test_interrupted_run_resumes_exactly(tmp_path, monkeypatch, full_run):
    ref_dir, ref = full_run
    real_save = pretrain.save_checkpoint

    def save_then_die(ckpt_dir, step, *args):
        real_save(ckpt_dir, step, *args)
        if step == 4:
            raise KeyboardInterrupt   # the machine went away right after the step-4 checkpoint

    monkeypatch.setattr(pretrain, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        pretrain.pretrain(str(tmp_path), steps=6, **SMALL)
    monkeypatch.setattr(pretrain, "save_checkpoint", real_save)
    assert pretrain.latest_checkpoint(tmp_path / "checkpoints").endswith("step-0000004")
    result = pretrain.pretrain(str(tmp_path), steps=6, resume=True, **SMALL)
    assert [s for s, _ in result["losses"]] == [1, 2, 3, 4, 5, 6]
    assert result["losses"] == ref["losses"]                 # the same batches, moments and schedule
    a, b = _weights(ref_dir), _weights(tmp_path)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert result["val_loss"] == pytest.approx(ref["val_loss"], abs=1e-5)


def test_finish_saves_the_last_checkpoint_without_training(tmp_path, full_run):
    ref_dir, _ = full_run
    shutil.copytree(ref_dir / "checkpoints", tmp_path / "checkpoints")
    shutil.rmtree(pretrain.latest_checkpoint(tmp_path / "checkpoints"))   # leaves step 4 of 6
    result = pretrain.pretrain(str(tmp_path), steps=6, finish=True, **SMALL)
    assert result["steps"] == 4 and result["scheduled_steps"] == 6 and result["tokens_seen"] == 4 * 2 * 32
    assert "stopped early" in (tmp_path / "README.md").read_text()


def test_init_from_continues_a_saved_model(tmp_path, full_run):
    ref_dir, ref = full_run
    result = pretrain.pretrain(str(tmp_path), steps=2, init_from=str(ref_dir), **SMALL)
    assert result["losses"][0][1] < ref["losses"][0][1] - 0.05        # starts from the trained weights
    assert result["earlier"]["tokens_seen"] == ref["tokens_seen"] and result["config"]["init_sha256"]
    assert f"**{result['tokens_seen'] + ref['tokens_seen']:,}** in all" in (tmp_path / "README.md").read_text()


def test_resume_with_other_settings_names_them(full_run):
    out, _ = full_run
    with pytest.raises(ValueError, match=r"configuration differs.*lr: checkpoint 0.002 vs now 0.001.*n_embd"):
        pretrain.pretrain(str(out), steps=6, resume=True, **{**SMALL, "lr": 1e-3, "n_embd": 64})


def test_fresh_run_refuses_to_overwrite_checkpoints(full_run):
    out, _ = full_run
    with pytest.raises(FileExistsError, match="--resume"):
        pretrain.pretrain(str(out), steps=6, **SMALL)


def test_resume_without_checkpoint_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"nothing to resume.*{tmp_path}"):
        pretrain.pretrain(str(tmp_path), steps=6, resume=True, **SMALL)


@pytest.mark.parametrize("damage", ["truncate weights", "drop optimizer", "bad json"])
def test_broken_checkpoint_names_the_path(tmp_path, full_run, damage):
    ref_dir, _ = full_run
    shutil.copytree(ref_dir / "checkpoints", tmp_path / "checkpoints")
    last = pretrain.latest_checkpoint(tmp_path / "checkpoints")
    shutil.rmtree(last)                                  # resume from step 4, then damage it
    last = pretrain.latest_checkpoint(tmp_path / "checkpoints")
    if damage == "truncate weights":
        w = os.path.join(last, "model.safetensors")
        with open(w, "r+b") as f:
            f.truncate(os.path.getsize(w) // 2)
        error, pattern = ValueError, "corrupt"
    elif damage == "drop optimizer":
        os.remove(os.path.join(last, "optimizer.safetensors"))
        error, pattern = FileNotFoundError, "incomplete.*optimizer.safetensors"
    else:
        with open(os.path.join(last, "state.json"), "w") as f:
            f.write("{ not json")
        error, pattern = ValueError, "state.json is corrupt"
    with pytest.raises(error, match=rf"{last}.*" if damage != "drop optimizer" else pattern) as info:
        pretrain.pretrain(str(tmp_path), steps=6, resume=True, **SMALL)
    assert last in str(info.value) and pattern.split(".*")[0] in str(info.value)
    assert not (tmp_path / "model.safetensors").exists()   # nothing saved from a broken checkpoint


def test_batch_stream_is_a_function_of_the_step():
    blocks = torch.arange(7 * 3).view(7, 3)
    ref = list(itertools.islice(pretrain.batch_stream(blocks, 2, seed=0), 8))
    resumed = list(itertools.islice(pretrain.batch_stream(blocks, 2, seed=0, start=5), 3))
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(ref[5:], resumed))
    epoch = torch.cat([b["input_ids"][:, 0] for b in ref[:3]])   # 3 batches of 2 per epoch (one block left over)
    assert len(set(epoch.tolist())) == 6
    assert not torch.equal(torch.cat([b["input_ids"] for b in ref[:3]]), torch.cat([b["input_ids"] for b in ref[3:6]]))


def test_train_refuses_a_start_step_without_state():
    model = torch.nn.Linear(2, 1)
    data = [(torch.ones(1, 2), torch.ones(1, 1))]
    with pytest.raises(ValueError, match="start_step"):
        train(model, data, steps=3, loss_fn=torch.nn.functional.mse_loss, start_step=2, progress=False)


# ---------------------------------------------------------------- presets

def test_gpu_preset_runs_at_tiny_size_on_the_cpu(tmp_path):
    result = pretrain.pretrain(str(tmp_path), preset="gpu", steps=2, **{**SMALL, "checkpoint_every": 1})
    assert result["config"]["autocast"] == "bfloat16" and result["config"]["dropout"] == 0.1
    assert all(math.isfinite(l) for _, l in result["losses"]) and math.isfinite(result["bits_per_byte"])
    assert pretrain.PRESETS["gpu"]["n_embd"] > pretrain.PRESETS["cpu"]["n_embd"]


# ---------------------------------------------------------------- bits per byte

def test_bits_per_byte_scores_every_token_once():
    """With context switched off (no positions, no attention/MLP output), a token's loss depends only on the
    token before it: the windowed sum must equal the plain sum over the whole stream, whatever the windows."""
    tok = pretrain.train_tokenizer(pretrain.read_corpus("val", max_chars=30_000), vocab_size=300)
    torch.manual_seed(0)
    model = pretrain.make_model(len(tok), n_embd=16, n_layer=1, n_head=2, n_positions=16, dropout=0.0)
    with torch.no_grad():
        model.transformer.wpe.weight.zero_()
        for block in model.transformer.h:
            for lin in (block.attn.c_proj, block.mlp.c_proj):
                lin.weight.zero_()
                lin.bias.zero_()
    text = DOC_SEP.join(["The return value is a list.", ("If the file does not exist, raise OSError. " * 4).strip()])
    ids = [tok.eos_token_id]
    for doc in text.split(DOC_SEP):
        ids += tok(doc)["input_ids"] + [tok.eos_token_id]
    assert len(ids) > 3 * 16   # several windows
    logp = model(input_ids=torch.tensor(ids[:-1])[:, None]).logits[:, 0].log_softmax(-1)   # each token alone
    expected = -logp.gather(-1, torch.tensor(ids[1:])[:, None]).sum().item() / math.log(2) / len(text.encode())
    assert pretrain.bits_per_byte(model, tok, text, batch_size=3) == pytest.approx(expected, rel=1e-4)
    for window, stride in [(12, 9), (16, 16), (7, 1)]:   # a long-context model's cheaper windows (SmolLM2)
        got = pretrain.bits_per_byte(model, tok, text, batch_size=2, window=window, stride=stride)
        assert got == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="stride"):
        pretrain.bits_per_byte(model, tok, text, window=8, stride=9)


def test_compressor_bits_per_byte():
    import random
    rng = random.Random(0)
    train_text = "".join(rng.choice("abcdefgh ") for _ in range(20_000))
    assert pretrain.compressor_bits_per_byte(train_text, train_text[:5000], "xz") < 0.2    # seen before: cheap
    fresh = "".join(rng.choice("abcdefgh ") for _ in range(5000))
    assert 2.5 < pretrain.compressor_bits_per_byte(train_text, fresh, "bz2") < 4.5          # ~log2(9) = 3.17
    with pytest.raises(ValueError, match="method"):
        pretrain.compressor_bits_per_byte("a", "b", "zip")
