"""The course's models load offline from safetensors; broken checkpoints fail with a rebuild hint."""
import os
import shutil

import pytest
import torch

from peftcourse import models


def test_offline_environment():
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # set by conftest: nothing below may use the network


@pytest.fixture(scope="module")
def tinygpt():
    return models.load_tinygpt()


def test_tinygpt_loads_and_is_small(tinygpt):
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast
    model, tok = tinygpt
    assert isinstance(model, GPT2LMHeadModel) and isinstance(tok, PreTrainedTokenizerFast)
    assert sum(p.numel() for p in model.parameters()) <= 5_000_000
    assert model.config.vocab_size == len(tok)
    assert tok.eos_token_id == model.config.eos_token_id == 0 and tok.pad_token_id == 1
    assert not model.training
    files = os.listdir(models.TINYGPT_DIR)
    assert "model.safetensors" in files and not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))]


def test_tinygpt_loads_with_auto_classes():
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained(models.TINYGPT_DIR)
    tok = AutoTokenizer.from_pretrained(models.TINYGPT_DIR)
    assert model.config.model_type == "gpt2" and len(tok) == model.config.vocab_size


def test_tinygpt_tokenizer_round_trips(tinygpt):
    _, tok = tinygpt
    for text in ["Return a list of the words in the string.", "37+45=82",
                 "0f8e2d3c-1b2a-4c5d-9e8f-0a1b2c3d4e5f", "naïve → ünïcode\n\ttabs  and  spaces"]:
        assert tok.decode(tok(text)["input_ids"]) == text


def test_tinygpt_predicts_docs_english_better_than_chance(tinygpt):
    model, tok = tinygpt
    ids = tok("The function returns a list of strings. If the argument is None, the default is used.",
              return_tensors="pt")["input_ids"]
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss.item()
    assert loss < 0.7 * torch.log(torch.tensor(float(len(tok)))).item()  # far below a uniform guess


def _copy(tmp_path):
    dst = tmp_path / "tinygpt"
    shutil.copytree(models.TINYGPT_DIR, dst)
    return dst


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "tokenizer.json"])
def test_missing_file_names_it_and_the_rebuild_command(tmp_path, name):
    path = _copy(tmp_path)
    os.remove(path / name)
    with pytest.raises(FileNotFoundError, match=rf"{name}.*python -m peftcourse.pretrain"):
        models.load_tinygpt(path)


@pytest.mark.parametrize("damage", ["missing tensor", "NaN"])
def test_weights_missing_a_tensor_or_not_finite_are_refused(tmp_path, damage):
    from safetensors.torch import load_file, save_file
    path = _copy(tmp_path)
    tensors = load_file(path / "model.safetensors")
    key = "transformer.h.0.attn.c_attn.weight"
    if damage == "missing tensor":
        del tensors[key]
    else:
        tensors[key][0, 0] = float("nan")
    save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=rf"{'lack 1 tensor' if damage == 'missing tensor' else 'NaN or Inf'}.*{key}"):
        models.load_tinygpt(path)


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m peftcourse.pretrain"):
        models.load_tinygpt(tmp_path / "nothing")


def test_corrupt_weights_and_config(tmp_path):
    path = _copy(tmp_path)
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated download
    with pytest.raises(ValueError, match=r"model.safetensors.*corrupt.*python -m peftcourse.pretrain"):
        models.load_tinygpt(path)
    path2 = _copy(tmp_path / "b")
    (path2 / "config.json").write_text("{ not json")
    with pytest.raises(ValueError, match=r"config.json.*corrupt.*python -m peftcourse.pretrain"):
        models.load_tinygpt(path2)


def test_minilm_loads_offline_from_safetensors():
    from transformers import BertModel
    model, tok = models.load_minilm()
    assert isinstance(model, BertModel)
    assert sum(p.numel() for p in model.parameters()) == 22_713_216
    assert os.path.isfile(os.path.join(models.minilm_dir(), "model.safetensors"))
    batch = tok(["A cat sits on the mat.", "A kitten is on the rug.", "The stock market fell."],
                padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1)
    emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)  # the model's mean pooling
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2  # pretrained: similar sentences are close


def test_minilm_classifier_head_is_seeded():
    a, _ = models.load_minilm(num_labels=3, seed=0)
    b, _ = models.load_minilm(num_labels=3, seed=0)
    assert torch.equal(a.classifier.weight, b.classifier.weight)
    with pytest.raises(ValueError, match="num_labels"):
        models.load_minilm(num_labels=1)


def test_load_hub_offline_names_the_offline_models():
    with pytest.raises(RuntimeError, match="load_tinygpt.*load_minilm"):
        models.load_hub("gpt2")
    with pytest.raises(TypeError, match="hub model id"):
        models.load_hub("")


# ---------------------------------------------------------------- the switch to another GPT-2-family LM

def _save_tiny(tmp_path, config_cls="GPT2Config", **kw):
    """A tiny randomly initialised causal LM + a tokenizer without a pad token (as GPT-2's), saved offline."""
    import transformers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast
    _, course_tok = models.load_tinygpt(models.COURSE_LM_DIR)
    tok = PreTrainedTokenizerFast(tokenizer_object=course_tok.backend_tokenizer, eos_token="<|endoftext|>")
    config = getattr(transformers, config_cls)(vocab_size=len(course_tok), **kw)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path, safe_serialization=True)
    tok.save_pretrained(tmp_path)
    return tmp_path


def test_switch_loads_another_gpt2_family_model(tmp_path, monkeypatch):
    path = _save_tiny(tmp_path, n_embd=32, n_layer=1, n_head=2, n_positions=64)
    monkeypatch.setenv(models.LM_ENV, str(path))
    model, tok = models.load_tinygpt()          # what every notebook calls
    assert model.config.n_embd == 32 and not model.training
    assert tok.pad_token == tok.eos_token and model.config.pad_token_id == tok.eos_token_id   # set, as GPT-2 has none
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    assert set(models.GPT2_MODULES) <= names
    model2, _ = models.load_tinygpt(path)       # the same switch as an argument
    assert torch.equal(model.transformer.wte.weight, model2.transformer.wte.weight)
    monkeypatch.delenv(models.LM_ENV)
    assert models.lm_source() == models.COURSE_LM_DIR


def test_unknown_model_name_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(models.LM_ENV, "no-such-org/no-such-model")
    with pytest.raises(RuntimeError, match=r"no-such-model.*no folder.*not in the local Hugging Face cache.*HF_HUB_OFFLINE.*"
                                           r"Unset PEFTCOURSE_LM"):
        models.load_tinygpt()


def test_a_model_outside_the_gpt2_family_is_refused(tmp_path):
    path = _save_tiny(tmp_path, "GPTNeoConfig", hidden_size=32, num_layers=2, num_heads=2,
                      attention_types=[[["global", "local"], 1]], max_position_embeddings=64)
    with pytest.raises(ValueError, match=r"'gpt_neo' model, not GPT-2-family.*c_attn, c_proj, c_fc"):
        models.load_tinygpt(path)
