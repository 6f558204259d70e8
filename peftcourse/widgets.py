"""Interactive widgets that always show something: the default result is also a plain output.

A widget's own output lives in the kernel. Opened fresh (an untrusted clone, GitHub, nbviewer) a
notebook shows none of it, only a text repr like `interactive(children=(IntSlider(...`. So
`interact` runs the function once with the default values and prints/draws that result as ordinary
cell outputs (text, PNG), which are saved in the notebook and show everywhere; the controls come
below it, and moving one replaces the default result with the chosen one.

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
"""
import sys

import ipywidgets

__all__ = ["interact"]


def interact(show, *, manual=False, live=None, live_name="train live", **knobs):
    """Display show(**defaults) as plain outputs, then controls that rerun show for the values chosen.

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
    # into the widget's output (the default result goes to the plain outputs below instead)
    built = ipywidgets.interactive(show, {"manual": True}, **knobs)
    knob_widgets, out = built.kwargs_widgets, built.out
    defaults = {w._kwarg: w.get_interact_value() for w in knob_widgets}
    handles = show_plain(show, defaults)

    def run(fn):
        for handle in handles:  # the default result gives way to the chosen one, shown under the controls
            handle.update({"text/plain": ""}, raw=True)
        handles.clear()
        with out:
            out.clear_output(wait=True)
            fn(**{w._kwarg: w.get_interact_value() for w in knob_widgets})
            flush_figures()

    children = [w for w in knob_widgets if isinstance(w, ipywidgets.DOMWidget)]
    if manual:
        children.append(ipywidgets.Button(description="show"))
        children[-1].on_click(lambda _: run(show))
    else:
        for w in knob_widgets:
            w.observe(lambda _: run(show), names="value")
    if live is not None:
        children.append(ipywidgets.Button(description=live_name, tooltip="train for the values chosen (slow)"))
        children[-1].on_click(lambda _: run(live))
    box = ipywidgets.VBox(children + [out], _dom_classes=["widget-interact"])
    names = [w._kwarg for w in knob_widgets if isinstance(w, ipywidgets.DOMWidget)]
    fallback = (f"[controls for {', '.join(names)}: run the notebook to use them; "
                "the result above is for the default values]")
    if ipython() is not None:  # a plain Python run has no front end to draw the controls
        display({**box._repr_mimebundle_(), "text/plain": fallback}, raw=True)
    return None


def show_plain(fn, kwargs):
    """Run fn(**kwargs) and re-emit what it printed and drew, in order, as ordinary outputs.

    Returns a display handle per output (to replace them later); outside IPython fn just runs
    (its prints go to stdout) and there are no handles.
    """
    shell = ipython()
    if shell is None:
        fn(**kwargs)
        return []
    items = record(shell, fn, kwargs)
    handles = []
    for kind, data, metadata, _ in items:
        if kind == "text":
            handles.append(display({"text/plain": data}, raw=True, display_id=True))
        else:
            handles.append(display(data, metadata=metadata or {}, raw=True, display_id=True))
    return [h for h in handles if h is not None]


def record(shell, fn, kwargs):
    """fn's printed text and displayed objects (figures included), as [kind, data, metadata, display_id] in order."""
    from IPython.core.displaypub import CapturingDisplayPublisher

    items = []

    class Text:
        def write(self, s):
            if items and items[-1][0] == "text":
                items[-1][1] += s
            elif s:
                items.append(["text", s, None, None])
            return len(s)

        def flush(self):
            pass

    class Publisher(CapturingDisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False):
            display_id = (transient or {}).get("display_id")
            if update:  # an output updated in place (e.g. train's progress line) keeps only its last state
                for item in items:
                    if item[0] == "rich" and item[3] == display_id:
                        item[1], item[2] = data, metadata
                        return
            items.append(["rich", data, metadata, display_id])

    saved_stdout, saved_pub = sys.stdout, shell.display_pub
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
