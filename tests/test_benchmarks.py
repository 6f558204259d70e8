"""The benchmark scripts are not timed here (timings are read by people, not asserted); these tests run each
one at toy sizes so that an API change cannot break them unnoticed."""
import importlib.util
import os
import sys

import pytest
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()   # bench_dora sets one thread for stable timings
    yield
    torch.set_num_threads(threads)


def run_main(monkeypatch, capsys, name, args):
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *args])
    result = load(name).main()
    return result, capsys.readouterr().out


def test_bench_layers_reports_every_layer(monkeypatch, capsys):
    _, out = run_main(monkeypatch, capsys, "bench_layers", ["--dim", "32", "--tokens", "16", "--r", "2", "--repeats", "1"])
    for name in ("frozen base only", "LoRA r=2", "MoRA sharing", "MoRA rotation", "MoRA truncation", "MoRA decoupling",
                 "SBoRA-FA r=2", "SBoRA-FB r=2", "SBoRA-FA one-hot r=2"):
        assert name in out
    assert out.count("saved for backward") == 8


def test_bench_dora_compares_with_peft(monkeypatch, capsys):
    _, out = run_main(monkeypatch, capsys, "bench_dora", ["--steps", "1", "--n-embd", "32", "--n-layer", "1",
                                                         "--batch", "1", "--seq", "8", "--r", "2"])
    assert "ratio peftcourse / peft" in out and "activation memory kept for backward" in out


def test_bench_lora_counts_like_peft_and_returns_a_ratio(capsys):
    ratio = load("bench_lora").main(["--steps", "1", "--batch", "1", "--seq", "8", "--r", "2", "--alpha", "4"])
    assert ratio > 0 and "ratio peftcourse / peft" in capsys.readouterr().out


def test_bench_quant_runs_and_returns_an_exit_code(monkeypatch, capsys):
    code, out = run_main(monkeypatch, capsys, "bench_quant", ["--size", "256", "--repeats", "1", "--layers", "1"])
    assert code in (0, 1) and "worst quantize ratio" in out and "dequantize SmolLM2's 7 matrices" in out


def test_bench_notebooks_measures_time_and_peak_memory(tmp_path, capsys):
    import nbformat
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = bytearray(64 * 2**20)\nprint(len(x))")])
    path = tmp_path / "00_toy.ipynb"
    nbformat.write(nb, path)
    bench = load("bench_notebooks")
    result = bench.run_notebook(str(path), fast=True, write=True)
    assert result["peak_mb"] >= 64 and result["wall_s"] > 0   # the 64 MiB allocation was seen
    assert nbformat.read(path, as_version=4).cells[0].outputs[0]["text"].strip() == str(64 * 2**20)
    assert bench.main([str(path), "--fast", "--json", str(tmp_path / "r.json")]) == 0
    assert "00_toy.ipynb" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main([str(tmp_path / "missing.ipynb")])
