"""peftcourse.widgets.interact: the default result is a plain output; knobs, the show button and the live button work."""
import ipywidgets as W
import matplotlib
import matplotlib.pyplot as plt
import pytest
from IPython.core.displaypub import CapturingDisplayPublisher
from IPython.core.interactiveshell import InteractiveShell

from peftcourse.widgets import interact


class KeepingPublisher(CapturingDisplayPublisher):
    """Keeps everything: outside a kernel the widget's clear_output would reach the shell and empty the list."""

    def clear_output(self, wait=False):
        pass


@pytest.fixture
def published():
    """An in-process IPython shell with the inline backend; yields the list of what it published."""
    backend = matplotlib.get_backend()
    shell = InteractiveShell.instance()
    shell.enable_gui = lambda gui=None: None  # a plain shell has no GUI loop; the inline backend needs none
    shell.enable_matplotlib("inline")
    shell.display_pub = KeepingPublisher()
    yield shell.display_pub.outputs
    plt.close("all")
    InteractiveShell.clear_instance()
    plt.switch_backend(backend)


def draw(calls):
    def show(r=3, label="x"):
        calls.append(("show", r, label))
        print(f"before {r}")
        _, ax = plt.subplots()
        ax.plot([0, r])
        plt.show()
        print("after")
    return show


def test_default_result_is_plain_text_and_png_in_order_then_the_controls(published):
    calls = []
    interact(draw(calls), r=W.IntSlider(3, 1, 9), label=["x", "y"])
    assert calls == [("show", 3, "x")]  # run once, with the defaults
    kinds = [sorted(o["data"]) for o in published]
    assert kinds[0] == ["text/plain"] and published[0]["data"]["text/plain"] == "before 3\n"
    assert "image/png" in kinds[1]
    assert published[2]["data"]["text/plain"] == "after\n"
    widget = published[3]["data"]
    assert "application/vnd.jupyter.widget-view+json" in widget
    assert "interactive(" not in widget["text/plain"] and "r, label" in widget["text/plain"]
    assert len(published) == 4


def test_moving_a_knob_reruns_show_and_blanks_the_default(published):
    calls = []
    r = W.IntSlider(3, 1, 9)
    interact(draw(calls), r=r)
    ids = [o["transient"]["display_id"] for o in published[:3]]
    r.value = 5
    assert calls == [("show", 3, "x"), ("show", 5, "x")]
    updates = [o for o in published if o["update"]]
    assert [o["transient"]["display_id"] for o in updates] == ids
    assert all(o["data"] == {"text/plain": ""} for o in updates)
    r.value = 6  # the default is gone already: no second round of updates
    assert calls[-1] == ("show", 6, "x") and len([o for o in published if o["update"]]) == 3


def test_manual_runs_on_the_button_only(published):
    calls = []
    r = W.IntSlider(3, 1, 9)
    interact(draw(calls), manual=True, r=r)
    r.value = 7
    assert calls == [("show", 3, "x")]
    box = W.Widget.widgets[published[-1]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]]
    [button] = [c for c in box.children if isinstance(c, W.Button)]
    button.click()
    assert calls[-1] == ("show", 7, "x")


def test_live_button_trains_for_the_chosen_values_and_knobs_show_cached(published):
    calls = []
    r = W.IntSlider(3, 1, 9)
    interact(lambda r: calls.append(("cached", r)), live=lambda r: calls.append(("live", r)), live_name="train", r=r)
    r.value = 4
    box = W.Widget.widgets[published[-1]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]]
    [button] = [c for c in box.children if isinstance(c, W.Button)]
    assert button.description == "train"
    button.click()
    assert calls == [("cached", 3), ("cached", 4), ("live", 4)]


def test_outside_ipython_the_default_result_is_printed_and_nothing_else(capsys):
    interact(lambda r=2, k=0: print(f"r is {r}, k is {k}"), r=W.IntSlider(2, 1, 9), k=W.fixed(192))
    assert capsys.readouterr().out == "r is 2, k is 192\n"


def test_fixed_knobs_are_not_named_as_controls(published):
    interact(lambda r=2, k=0: None, r=W.IntSlider(2, 1, 9), k=W.fixed(192))
    assert "controls for r:" in published[-1]["data"]["text/plain"]


@pytest.mark.parametrize("args, kwargs, message", [
    ((42,), {"r": (1, 9)}, "needs a function"),
    ((print,), {}, "at least one knob"),
    ((print,), {"live": 3, "r": (1, 9)}, "live must be a function"),
])
def test_bad_arguments_are_named(args, kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        interact(*args, **kwargs)


def test_a_default_that_trains_leaves_one_summary_line_not_every_update(published):
    """show functions that call pc.train: the progress line's updates collapse into its final state."""
    import torch

    import peftcourse as pc
    from peftcourse import progress

    shell = InteractiveShell.instance()
    shell.kernel = object()  # the progress line is used inside a kernel only
    progress.NotebookLine.interval_s = 0.0  # an update after every step

    def show(steps=5):
        model = torch.nn.Linear(2, 1)
        pc.train(model, [(torch.ones(4, 2), torch.zeros(4, 1))], steps=steps, lr=0.1,
                 loss_fn=torch.nn.functional.mse_loss, desc="toy", device="cpu")

    try:
        interact(show, steps=W.IntSlider(5, 1, 9))
    finally:
        progress.NotebookLine.interval_s = 0.5
        del shell.kernel
    texts = [o["data"].get("text/plain", "") for o in published if not o["update"]]
    assert len(texts) == 2 and texts[0].startswith("toy: 5 steps in ") and texts[1].startswith("[controls for steps")
