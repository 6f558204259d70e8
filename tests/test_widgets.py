"""peftcourse.widgets.interact: the result is a plain output that knobs, the show button and the live button update in place."""
import ipywidgets as W
import matplotlib
import matplotlib.pyplot as plt
import matplotlib_inline.backend_inline as backend_inline
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
    # matplotlib_inline registers the PNG format once per process; every test's new shell needs it again
    backend_inline.configure_inline_support.current_backend = "unset"
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


def updates(published):
    return [o for o in published if o["update"]]


def test_moving_a_knob_updates_the_plain_outputs_in_place(published):
    calls = []
    r = W.IntSlider(3, 1, 9)
    interact(draw(calls), r=r)
    ids = [o["transient"]["display_id"] for o in published[:3]]
    r.value = 5
    assert calls == [("show", 3, "x"), ("show", 5, "x")]
    # the result for r = 5 replaces the default in the same three outputs, above the controls: nothing new is appended
    assert [o["transient"]["display_id"] for o in updates(published)] == ids
    texts = [o["data"].get("text/plain") for o in updates(published)]
    assert texts[0] == "before 5\n" and texts[2] == "after\n"
    assert "image/png" in updates(published)[1]["data"]
    assert updates(published)[1]["data"]["image/png"] != published[1]["data"]["image/png"], "the figure was not redrawn"
    assert len([o for o in published if not o["update"]]) == 4
    r.value = 6  # every move updates the same outputs again
    assert calls[-1] == ("show", 6, "x") and len(updates(published)) == 6
    assert updates(published)[3]["data"]["text/plain"] == "before 6\n"
    assert [o["transient"]["display_id"] for o in updates(published)[3:]] == ids


def test_a_result_with_fewer_parts_blanks_the_rest_and_one_with_more_merges_them(published):
    def show(n=2):
        for i in range(n):
            print(f"line {i}")
            if n == 3:
                _, ax = plt.subplots()
                ax.plot([0, i])
                plt.show()

    n = W.IntSlider(2, 1, 3)
    interact(show, n=n)
    assert published[0]["data"]["text/plain"] == "line 0\nline 1\n"  # consecutive prints are one output
    assert len(published) == 2
    n.value = 1
    assert [o["data"] for o in updates(published)] == [{"text/plain": "line 0\n"}]
    n.value = 3  # six parts (three texts, three figures) into the one output there is
    merged = updates(published)[-1]["data"]
    assert merged["text/html"].count("<img src=\"data:image/png;base64,") == 3
    assert merged["text/html"].index("line 0") < merged["text/html"].index("<img") < merged["text/html"].index("line 2")
    assert "line 2" in merged["text/plain"]


def test_an_error_shows_under_the_controls_and_keeps_the_last_result(published, capsys):
    def show(r=3):
        if r == 5:
            raise ValueError("r = 5 is not allowed here")
        print(f"r is {r}")

    r = W.IntSlider(3, 1, 9)
    interact(show, r=r)
    r.value = 5
    assert updates(published) == [], "a failed run must leave the last result in place"
    assert "r = 5 is not allowed here" in capsys.readouterr().out  # the output widget shows the traceback
    r.value = 4
    assert [o["data"] for o in updates(published)] == [{"text/plain": "r is 4\n"}]


def test_a_default_that_prints_nothing_still_has_an_output_to_update(published):
    r = W.IntSlider(1, 1, 9)
    interact(lambda r: print("big") if r > 1 else None, r=r)
    assert published[0]["data"] == {"text/plain": ""} and "controls for r" in published[1]["data"]["text/plain"]
    r.value = 2
    assert [o["data"] for o in updates(published)] == [{"text/plain": "big\n"}]


def test_manual_runs_on_the_button_only(published, capsys):
    calls = []
    r = W.IntSlider(3, 1, 9)
    interact(draw(calls), manual=True, r=r)
    r.value = 7
    assert calls == [("show", 3, "x")] and updates(published) == []
    box = W.Widget.widgets[published[-1]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]]
    [button] = [c for c in box.children if isinstance(c, W.Button)]
    button.click()
    assert calls[-1] == ("show", 7, "x")
    # a button run may be slow: its output also shows under the controls while it runs, then updates the result
    assert capsys.readouterr().out == "before 7\nafter\n"
    echoed = [o for o in published[4:] if not o["update"]]
    assert len(echoed) == 1 and "image/png" in echoed[0]["data"]
    assert [o["data"].get("text/plain") for o in updates(published)][::2] == ["before 7\n", "after\n"]


def test_live_button_trains_for_the_chosen_values_and_knobs_show_cached(published):
    calls = []
    r = W.IntSlider(3, 1, 9)
    interact(lambda r: calls.append(("cached", r)), live=lambda r: calls.append(("live", r)), live_name="train", r=r)
    box = W.Widget.widgets[published[-1]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]]
    [button] = [c for c in box.children if isinstance(c, W.Button)]
    assert button.description == "train"
    r.value = 4
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
