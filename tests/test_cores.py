"""Each core in peftcourse.cores computes what the full package layer computes, with the same weights."""
import pytest
import torch
from torch import nn

from peftcourse import cores, quant
from peftcourse.adapters import BottleneckAdapter
from peftcourse.dora import DoRALinear
from peftcourse.lora import LoRALinear
from peftcourse.mora import MoRALinear
from peftcourse.prompts import PromptTuning
from peftcourse.sbora import SBoRALinear


def linear(n_in=24, n_out=40, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(n_in, n_out)


def randomise(*params):
    """Trained-looking values: the zero-initialised factors would make every comparison trivial."""
    with torch.no_grad():
        for p in params:
            p.normal_(0, 0.5)


def inputs(n_in=24, seed=1):
    return torch.randn(3, 5, n_in, generator=torch.Generator().manual_seed(seed))


def test_lora_core_equals_lora_linear():
    full = LoRALinear(linear(), r=4, alpha=8)
    core = cores.LoRA(linear(), r=4, alpha=8)
    randomise(full.A, full.B)
    core.A.data, core.B.data = full.A.data.clone(), full.B.data.clone()
    torch.testing.assert_close(core(inputs()), full(inputs()))
    assert core.B.abs().sum() > 0 and not torch.allclose(core(inputs()), core.base(inputs()))


def test_lora_core_starts_as_the_base_and_trains_only_a_and_b():
    core = cores.LoRA(linear(), r=4, alpha=8)
    torch.testing.assert_close(core(inputs()), core.base(inputs()))
    assert {n for n, p in core.named_parameters() if p.requires_grad} == {"A", "B"}


def test_dora_core_equals_dora_linear_and_its_gradients():
    full = DoRALinear(linear(), r=4, alpha=8)
    core = cores.DoRA(linear(), r=4, alpha=8)
    randomise(full.A, full.B, full.m)
    for name in ("A", "B", "m"):
        getattr(core, name).data = getattr(full, name).data.clone()
    x = inputs()
    torch.testing.assert_close(core(x), full(x))
    core(x).square().sum().backward()
    full(x).square().sum().backward()
    for name in ("A", "B", "m"):  # the detached norm gives the same gradients as the package's §4.3 form
        torch.testing.assert_close(getattr(core, name).grad, getattr(full, name).grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("rotation, mora_type", [(False, 1), (True, 6)])
@pytest.mark.parametrize("n_in, n_out, r", [(24, 40, 2), (64, 16, 1), (10, 30, 8)])
def test_mora_core_equals_mora_linear(rotation, mora_type, n_in, n_out, r):
    full = MoRALinear(linear(n_in, n_out), r=r, mora_type=mora_type)
    core = cores.MoRA(linear(n_in, n_out), r=r, rotation=rotation)
    assert core.r_hat == full.r_hat
    randomise(full.M)
    core.M.data = full.M.data.clone()
    torch.testing.assert_close(core(inputs(n_in)), full(inputs(n_in)))


@pytest.mark.parametrize("variant", ["FA", "FB"])
def test_sbora_core_equals_sbora_linear(variant):
    full = SBoRALinear(linear(), r=3, alpha=6, variant=variant, generator=torch.Generator().manual_seed(0))
    core = cores.SBoRA(linear(), r=3, alpha=6, variant=variant, indices=full.indices)
    trained = "B" if variant == "FA" else "A"
    randomise(getattr(full, trained))
    getattr(core, trained).data = getattr(full, trained).data.clone()
    torch.testing.assert_close(core(inputs()), full(inputs()))
    changed = (core.B @ core.A_sb) if variant == "FA" else (core.B_sb @ core.A)  # ΔW / s
    axis = 0 if variant == "FA" else 1  # FA: r columns change; FB: r rows
    assert (changed.abs().sum(axis) > 0).sum() == 3


def test_adapter_core_equals_bottleneck_adapter():
    torch.manual_seed(0)
    full = BottleneckAdapter(32, 4)
    core = cores.Adapter(32, 4)
    randomise(*full.parameters())
    core.load_state_dict(full.state_dict())
    torch.testing.assert_close(core(inputs(32)), full(inputs(32)))


def test_soft_prompt_core_equals_prompt_tuning():
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=32, n_embd=16, n_layer=2, n_head=2)).eval()
    full = PromptTuning(model, 4, init="random")
    core = cores.SoftPrompt(model, 4)
    core.prompt.data = full.prompt.data.clone()
    ids = torch.randint(0, 50, (2, 7), generator=torch.Generator().manual_seed(1))
    ours, theirs = core(ids, labels=ids), full(ids, labels=ids)
    torch.testing.assert_close(ours.logits, theirs.logits)
    torch.testing.assert_close(ours.loss, theirs.loss)
    assert [n for n, p in core.named_parameters() if p.requires_grad] == ["prompt"]


def test_nf4_core_equals_quantize_nf4_on_one_block():
    w = torch.randn(64, generator=torch.Generator().manual_seed(2)) * 0.02
    index, absmax = cores.nf4_quantize_block(w)
    q = quant.quantize_nf4(w, blocksize=64)
    assert torch.equal(index, q.indices())
    torch.testing.assert_close(absmax, q.absmax[0])
    torch.testing.assert_close(cores.nf4_dequantize_block(index, absmax), q.dequantize())


def test_cores_are_short():
    """A core is a slide: at most 20 lines of code each (docstring and comments aside)."""
    import inspect
    for obj in (cores.LoRA, cores.DoRA, cores.MoRA, cores.SBoRA, cores.Adapter, cores.SoftPrompt,
                cores.nf4_quantize_block, cores.nf4_dequantize_block):
        source = inspect.getsource(obj).split('"""')
        code = [line for line in (source[0] + source[-1]).splitlines() if line.strip() and not line.strip().startswith("#")]
        assert len(code) <= 20, f"{obj.__name__} has {len(code)} lines of code"
