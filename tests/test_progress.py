"""peftcourse.progress: in a notebook kernel, training leaves a summary line, never a '0%' bar."""
import pytest
import torch
from IPython.core.displaypub import CapturingDisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from tqdm import tqdm

import peftcourse as pc
from peftcourse.progress import NotebookLine, progress


@pytest.fixture
def kernel_outputs():
    """An in-process shell that looks like a Jupyter kernel's; yields what it published."""
    shell = InteractiveShell.instance()
    shell.kernel = object()
    shell.display_pub = CapturingDisplayPublisher()
    yield shell.display_pub.outputs
    InteractiveShell.clear_instance()


def test_outside_a_kernel_it_is_a_tqdm_bar():
    assert isinstance(progress(range(3)), tqdm)
    assert progress(range(3), enabled=False).disable


def test_in_a_kernel_the_line_ends_as_a_summary(kernel_outputs):
    line = progress(range(5), desc="LoRA r=8")
    assert isinstance(line, NotebookLine)
    assert list(line) == [0, 1, 2, 3, 4]
    line.set_postfix(loss="2.4102")
    line.close()
    first, last = kernel_outputs[0], kernel_outputs[-1]
    assert last["update"] and last["transient"]["display_id"] == first["transient"]["display_id"]
    text = last["data"]["text/plain"]
    assert text.startswith("LoRA r=8: 5 steps in ") and text.endswith(", final loss 2.4102")
    assert not any("%" in o["data"]["text/plain"] for o in kernel_outputs)


def test_train_in_a_kernel_reports_steps_and_final_loss(kernel_outputs):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    data = [(torch.randn(8, 4), torch.randn(8, 1))]
    history = pc.train(model, data, steps=20, lr=0.01, loss_fn=torch.nn.functional.mse_loss, desc="toy", device="cpu")
    text = kernel_outputs[-1]["data"]["text/plain"]
    assert text.startswith("toy: 20 steps in ") and text.endswith(f"final loss {history.losses[-1]:.4f}")
    kernel_outputs.clear()
    pc.train(model, data, steps=5, lr=0.01, loss_fn=torch.nn.functional.mse_loss, progress=False, device="cpu")
    assert kernel_outputs == []  # progress=False: no line at all
