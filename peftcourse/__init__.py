"""peftcourse: parameter-efficient fine-tuning, implemented readably and checked against peft and bitsandbytes."""
import inspect
import os

from . import quiet  # first: library message filters must be in place before the libraries load
from . import runtime
from .runtime import setup, get_device, seed_everything, budget, is_fast, count_params
from .train import train, History
from .inject import inject, trainable_report, merge, merge_and_unload, unload, save_adapter, load_adapter

__version__ = "0.1.0"


def show(obj):
    """Show the real source of a package function, class or module, highlighted in a notebook.

    The notebooks teach this code rather than a re-typed copy of it, so what students read is what runs.
    """
    obj = inspect.unwrap(obj)  # decorated functions (e.g. @torch.no_grad()) show their own source
    try:
        source = inspect.getsource(obj)
        where = inspect.getsourcefile(obj)
    except (TypeError, OSError) as err:
        raise TypeError(f"show() needs a function, class or module with Python source, got {obj!r}") from err
    header = f"# {os.path.relpath(where, runtime.ROOT)}\n"
    try:
        from IPython import get_ipython
        from IPython.display import Code, display
        if get_ipython() is not None:
            display(Code(header + source, language="python"))
            return None
    except ImportError:
        pass
    print(header + source)
    return None
