import pytest
import torch

from peftcourse import runtime


def test_device_is_cpu_here_and_forced_choices_are_checked():
    dev = runtime.get_device()
    assert dev.type in ("cpu", "cuda", "mps")
    assert runtime.get_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="unknown device"):
        runtime.get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            runtime.get_device("cuda")


def test_seed_everything_repeats_random_streams():
    runtime.seed_everything(123)
    a = torch.randn(5)
    runtime.seed_everything(123)
    assert torch.equal(a, torch.randn(5))
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError, match="seed"):
            runtime.seed_everything(bad)


def test_count_params_counts_all_or_only_the_trainable_weights():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    model[0].requires_grad_(False)
    assert runtime.count_params(model) == (4 * 3 + 3) + (3 * 2 + 2)
    assert runtime.count_params(model, trainable_only=True) == 3 * 2 + 2
    assert runtime.count_params(model, like_peft=True) == runtime.count_params(model)   # no packed weights here
    with pytest.raises(TypeError, match="nn.Module"):
        runtime.count_params([torch.zeros(3)])


@pytest.mark.parametrize("env, fast", [({"PEFTCOURSE_FAST": "1"}, True), ({"PEFTCOURSE_FAST": "0", "CI": "true"}, False),
                                       ({"CI": "true"}, True), ({}, False)])
def test_fast_mode_from_environment(monkeypatch, env, fast):
    monkeypatch.delenv("PEFTCOURSE_FAST", raising=False)
    monkeypatch.delenv("CI", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert runtime.is_fast() is fast
    assert runtime.budget(300, fast=7) == (7 if fast else 300)
    assert runtime.budget(300) == (30 if fast else 300)


def test_budget_and_fast_flag_reject_nonsense(monkeypatch):
    for bad in (0, -5, 2.5, None):
        with pytest.raises(ValueError, match="positive int"):
            runtime.budget(bad)
    with pytest.raises(ValueError, match="positive int"):
        runtime.budget(10, fast=0)
    monkeypatch.setenv("PEFTCOURSE_FAST", "maybe")
    with pytest.raises(ValueError, match="PEFTCOURSE_FAST"):
        runtime.is_fast()


def test_setup_prints_versions_device_and_budget(capsys):
    dev = runtime.setup(seed=1)
    out = capsys.readouterr().out
    for word in ("torch", "transformers", "peft", "bitsandbytes", "device:", "budget:"):
        assert word in out
    assert isinstance(dev, torch.device)
