import pytest
import torch
from torch import nn

from peftcourse import memory


def test_lecture_full_finetuning_figure():
    est = memory.estimate(8e9, memory.LECTURE_FULL_FT)
    assert memory.LECTURE_FULL_FT.bytes_per_trainable == 16
    assert memory.gb(est["total"]) == pytest.approx(128.0)


def test_lecture_qlora_figure():
    assert memory.LECTURE_QLORA.bytes_per_trainable == 8.5
    est = memory.estimate(8e9, memory.LECTURE_QLORA, trainable=48_000_000)
    assert memory.gb(est["base weights"]) == pytest.approx(4.0)
    assert memory.gb(est["total"] - est["base weights"]) == pytest.approx(0.408)
    # 48M is 0.6% of 8B: the fraction form gives the same answer
    assert memory.estimate(8e9, memory.LECTURE_QLORA, trainable=0.006)["total"] == pytest.approx(est["total"])


def test_recipe_from_dtypes_matches_the_lecture_for_mixed_precision():
    assert memory.recipe("full", weight_dtype="fp16").bytes_per_trainable == 16  # 2 + 2 + 8 + 4
    assert memory.recipe("full").bytes_per_trainable == 16                       # fp32: 4 + 4 + 8
    assert memory.recipe("qlora", trainable_dtype="bf16").base_bytes == 0.5


def test_calculator_matches_measured_tensors_for_fp32_adamw():
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 8))
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(4, 32)).sum().backward()
    opt.step()
    measured = memory.measure_state(model, opt)
    n = sum(p.numel() for p in model.parameters())
    predicted = memory.estimate(n, memory.recipe("full", optimizer="adamw"))
    assert measured["weights"] + measured["gradients"] + measured["optimizer state"] == predicted["total"]


@pytest.mark.parametrize("kwargs, match", [
    ({"n_params": -1}, "n_params"), ({"n_params": 0}, "n_params"),
    ({"n_params": 10, "trainable": 0.0}, "trainable"), ({"n_params": 10, "trainable": -3}, "trainable"),
])
def test_estimate_rejects_nonsense(kwargs, match):
    with pytest.raises(ValueError, match=match):
        memory.estimate(recipe=memory.LECTURE_FULL_FT, **kwargs)


def test_recipe_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown weight_dtype 'fp12'"):
        memory.recipe("full", weight_dtype="fp12")
    with pytest.raises(ValueError, match="unknown optimizer"):
        memory.recipe("lora", optimizer="lion")
    with pytest.raises(ValueError, match="unknown method"):
        memory.recipe("prefix")


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/smaps_rollup"), reason="the split is Linux's")
def test_resident_bytes_tells_own_memory_from_mapped_file_pages(tmp_path):
    """A tensor the process makes counts as its own; a file's pages, mapped and read, count as mapped files
    (as a model.safetensors does after from_pretrained): each rise about the 64 MB put there, each gone with it."""
    size = 64 * 2**20
    start = memory.resident_bytes()
    own = torch.ones(size // 4)
    with_tensor = memory.resident_bytes()
    assert with_tensor["own"] - start["own"] > 0.9 * size
    del own
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\1" * size)
    mapped = torch.from_file(str(path), shared=True, size=size, dtype=torch.uint8)
    assert int(mapped[::4096].sum()) == size // 4096   # every page read once
    with_file = memory.resident_bytes()
    assert with_file["mapped files"] - start["mapped files"] > 0.9 * size
    assert with_file["own"] - start["own"] < 0.1 * size   # the tensor made before is gone, the file is no own memory
    del mapped
    assert memory.resident_bytes()["mapped files"] - start["mapped files"] < 0.1 * size
