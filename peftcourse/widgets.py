"""Interactive widgets whose result is a plain output: it shows everywhere and survives save and reopen.

A widget's own output lives in the kernel. Opened fresh (an untrusted clone, GitHub, nbviewer) a
notebook shows none of it, only a text repr like `interactive(children=(IntSlider(...`; saved in
JupyterLab and reopened once the kernel is gone, it shows "Error displaying widget: model not found".
So `interact` runs the function once with the default values and prints/draws that result as ordinary
cell outputs (text, PNG) above the controls. Moving a control reruns the function and updates those
same outputs in place: the result never moves, and the saved file always holds, as plain text and
PNG, the result for the values last chosen (the defaults after Run All or a full run).

Usage in a notebook (the knobs are ipywidgets controls or the abbreviations ipywidgets.interact takes):

    import ipywidgets as widgets
    from peftcourse.widgets import interact

    def show_scaling(r=8, alpha=16):             # prints and/or draws (plt.show()) one result
        print(f"alpha/r = {alpha / r:g}")

    interact(show_scaling, r=widgets.IntSlider(8, 1, 128), alpha=widgets.IntSlider(16, 1, 128))

    # a knob that would train for more than ~10 s: show cached results, train only on request
    interact(show_cached_rank, live=train_rank, r=widgets.SelectionSlider(options=[1, 2, 4, 8], value=8))

    # a function too slow to run on every knob move, with nothing cached: a button runs it
    interact(try_bottleneck, manual=True, bottleneck=widgets.IntSlider(8, 1, 256))

The last value of the cell should be nothing (interact returns None): the widget is displayed by
interact itself, with a readable text fallback instead of the widget's repr.

A run started by a button (manual=True, or the live button) may take a while: while it runs, what it
prints and its progress line appear under the buttons, then its result replaces the one above. An
error appears under the controls and leaves the result above as it was.
"""
import base64
import html
import sys

import ipywidgets

__all__ = ["interact"]

EMPTY = {"text/plain": ""}


def interact(show, *, manual=False, live=None, live_name="train live", **knobs):
    """Display show(**defaults) as plain outputs, then controls that rerun show and update those outputs.

    show: the function to explore; it prints and/or draws (plt.show()) its result. Its default
        result is computed here once, so the cell is never empty (and a slow one costs its run time).
    manual: True puts a "show" button under the controls: show runs on the button, not on every move.
    live: an optional function with show's knobs that trains for the chosen values (slow); a button
        named `live_name` runs it. Use it when show reads cached results (data/results/) so that
        moving a knob answers at once while a live run stays possible.
    knobs: name=control or abbreviation, as for ipywidgets.interact; every knob must have a value.
    Returns None (so the cell shows no extra repr); the controls are displayed here.
    """
    if not callable(show):
        raise TypeError(f"interact needs a function to call with the knobs' values, got {show!r}")
    if live is not None and not callable(live):
        raise TypeError(f"live must be a function taking the same knobs as show (or None), got {live!r}")
    if not knobs:
        raise ValueError("interact needs at least one knob, e.g. r=widgets.IntSlider(8, 1, 64)")
    # ipywidgets builds the controls from the knobs; manual=True only stops it from running show at once
    # into the widget's output (the result goes to the plain outputs above the controls instead)
    built = ipywidgets.interactive(show, {"manual": True}, **knobs)
    knob_widgets, out = built.kwargs_widgets, built.out

    def values():
        return {w._kwarg: w.get_interact_value() for w in knob_widgets}

    shell = ipython()
    if shell is None:  # a plain Python run has no front end: print the default result, draw no controls
        show(**values())
        return None
    result = Result(record(shell, show, values()))

    def run(fn, echo):
        """Rerun fn for the chosen values; its result replaces the plain outputs above the controls.

        echo (button runs, which may be slow): what fn prints and its progress line show under the
        controls while it runs. An error shows there too, and the plain outputs keep the last result.
        """
        items = None
        with out:  # in a kernel the output widget shows an error's traceback and swallows the error
            out.clear_output()
            items = record(shell, fn, values(), echo=echo)
            out.clear_output()
        # outside `with out:`, or the output widget would capture the updates meant for the cell's outputs
        if items is not None:
            result.update(items)

    children = [w for w in knob_widgets if isinstance(w, ipywidgets.DOMWidget)]
    if manual:
        children.append(ipywidgets.Button(description="show"))
        children[-1].on_click(lambda _: run(show, echo=True))
    else:
        for w in knob_widgets:
            w.observe(lambda _: run(show, echo=False), names="value")
    if live is not None:
        children.append(ipywidgets.Button(description=live_name, tooltip="train for the values chosen (slow)"))
        children[-1].on_click(lambda _: run(live, echo=True))
    box = ipywidgets.VBox(children + [out], _dom_classes=["widget-interact"])
    names = [w._kwarg for w in knob_widgets if isinstance(w, ipywidgets.DOMWidget)]
    fallback = (f"[controls for {', '.join(names)}: run the notebook to use them; the result above is for "
                "the values they were last set to (the defaults, unless someone moved them before saving)]")
    display({**box._repr_mimebundle_(), "text/plain": fallback}, raw=True)
    return None


class Result:
    """The plain outputs that hold the current result: one per printed text or displayed object.

    They are displayed once (the default result) and then updated in place by display id, so the
    result stays above the controls and is saved with the notebook. A later result with fewer parts
    blanks the outputs left over; one with more parts merges the extra ones into the last output.
    """

    def __init__(self, items):
        bundles = [bundle(item) for item in items] or [(EMPTY, {})]
        self.handles = [display(data, metadata=metadata, raw=True, display_id=True) for data, metadata in bundles]

    def update(self, items):
        bundles = [bundle(item) for item in items]
        n = len(self.handles)
        if len(bundles) > n:
            bundles = bundles[:n - 1] + [merge(bundles[n - 1:])]
        bundles += [(EMPTY, {})] * (n - len(bundles))
        for handle, (data, metadata) in zip(self.handles, bundles):
            handle.update(data, metadata=metadata, raw=True)


def bundle(item):
    """A recorded item as (mime bundle, metadata)."""
    kind, data, metadata, _ = item
    if kind == "text":
        return {"text/plain": data}, {}
    return data, metadata or {}


def merge(bundles):
    """Several outputs as one: their texts joined; with a figure among them, also one HTML page of all."""
    texts = [data.get("text/plain", "") for data, _ in bundles]
    if all(set(data) <= {"text/plain"} for data, _ in bundles):
        return {"text/plain": "".join(texts)}, {}
    parts = []
    for data, _ in bundles:
        if "text/html" in data:
            parts.append(data["text/html"])
        elif "image/png" in data:
            png = data["image/png"]
            png = png if isinstance(png, str) else base64.b64encode(png).decode("ascii")
            parts.append(f'<img src="data:image/png;base64,{png}"/>')
        else:
            parts.append(f"<pre>{html.escape(data.get('text/plain', ''))}</pre>")
    return {"text/html": "\n".join(parts), "text/plain": "\n".join(t.rstrip("\n") for t in texts) + "\n"}, {}


def record(shell, fn, kwargs, echo=False):
    """fn's printed text and displayed objects (figures included), as [kind, data, metadata, display_id] in order.

    echo: also pass them on as they come (into the output widget a button run is wrapped in).
    """
    from IPython.core.displaypub import CapturingDisplayPublisher

    items = []
    saved_stdout, saved_pub = sys.stdout, shell.display_pub

    class Text:
        def write(self, s):
            if echo:
                saved_stdout.write(s)
            if items and items[-1][0] == "text":
                items[-1][1] += s
            elif s:
                items.append(["text", s, None, None])
            return len(s)

        def flush(self):
            if echo:
                saved_stdout.flush()

    class Publisher(CapturingDisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False):
            if echo:
                saved_pub.publish(data, metadata=metadata, transient=transient, update=update)
            display_id = (transient or {}).get("display_id")
            if update:  # an output updated in place (e.g. train's progress line) keeps only its last state
                for item in items:
                    if item[0] == "rich" and item[3] == display_id:
                        item[1], item[2] = data, metadata
                        return
            items.append(["rich", data, metadata, display_id])

        def clear_output(self, wait=False):
            if echo:
                saved_pub.clear_output(wait)

    sys.stdout, shell.display_pub = Text(), Publisher()
    try:
        fn(**kwargs)
        flush_figures()  # figures drawn but not shown would otherwise appear after the widget
    finally:
        sys.stdout, shell.display_pub = saved_stdout, saved_pub
    return items


def flush_figures():
    from ipywidgets.widgets.interaction import show_inline_matplotlib_plots
    show_inline_matplotlib_plots()


def ipython():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def display(obj, **kwargs):
    from IPython.display import display as ipy_display
    return ipy_display(obj, **kwargs)
