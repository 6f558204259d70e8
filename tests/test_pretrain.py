"""`python -m peftcourse.pretrain` in fast mode: 3 steps, a loadable Hugging Face checkpoint, never the committed one."""
import json
import os

import pytest
import torch

from peftcourse import pretrain

TINY = ["--n-embd", "32", "--n-layer", "1", "--n-head", "2", "--block-size", "32", "--n-positions", "64", "--batch-size", "2",
        "--vocab-size", "400"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    before = os.path.getmtime(os.path.join(pretrain.DEFAULT_OUT, "config.json")) \
        if os.path.exists(os.path.join(pretrain.DEFAULT_OUT, "config.json")) else None
    result = pretrain.main(["--out", str(out)] + TINY)
    return out, result, before


def test_fast_mode_runs_three_steps_into_the_given_folder(run):
    out, result, before = run
    assert result["steps"] == 3
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md", "loss_curve.png"):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.bin")), "checkpoints must be safetensors only"
    card = (out / "README.md").read_text()
    assert "validation perplexity" in card and result["hardware"] in card
    assert f"{result['n_params']:,}" in card


def test_committed_model_is_not_touched(run):
    _, _, before = run
    path = os.path.join(pretrain.DEFAULT_OUT, "config.json")
    if before is not None:
        assert os.path.getmtime(path) == before


def test_checkpoint_loads_with_auto_classes(run):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    out, result, _ = run
    model = AutoModelForCausalLM.from_pretrained(out, use_safetensors=True)
    tok = AutoTokenizer.from_pretrained(out)
    assert sum(p.numel() for p in model.parameters()) == result["n_params"]
    assert tok.eos_token == pretrain.EOS and tok.pad_token == pretrain.PAD
    assert json.loads((out / "config.json").read_text())["n_embd"] == 32
    ids = tok("x = 12", return_tensors="pt")["input_ids"]
    assert torch.isfinite(model(input_ids=ids).logits).all()


def test_tokenizer_splits_digits_and_round_trips():
    docs = pretrain.read_corpus("val", max_chars=50_000)
    tok = pretrain.train_tokenizer(docs, vocab_size=400)
    text = "Return 1234 items;  naïve UTF-8 → ok\n\tdone."
    ids = tok(text)["input_ids"]
    assert tok.decode(ids) == text
    assert [tok.decode([i]) for i in tok("1234")["input_ids"]] == ["1", "2", "3", "4"]


def test_bad_arguments_fail_loudly():
    with pytest.raises(ValueError, match="split"):
        pretrain.read_corpus("test")
    with pytest.raises(ValueError, match="vocab_size"):
        pretrain.train_tokenizer(["abc"], vocab_size=10)
    with pytest.raises(ValueError, match="divisible"):
        pretrain.make_model(400, n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="steps"):
        pretrain.pretrain("/nonexistent", steps=0)
