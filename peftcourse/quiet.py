"""Known-harmless library messages, silenced once here (never a warning that a notebook teaches).

Imported first by peftcourse/__init__.py, so the filters are in place before any library logs.
Each filter matches one message only; anything else a library says still shows.
"""
import logging


class _DropMessage(logging.Filter):
    """Drop log records whose message starts with `prefix` (one known message, nothing else)."""

    def __init__(self, prefix):
        super().__init__()
        self.prefix = prefix

    def filter(self, record):
        return not record.getMessage().startswith(self.prefix)


# bitsandbytes 0.50 on CPUs with AVX-512 BF16: at import it tries an optional fused kernel from the
# `kernels` package (a hub download) and logs a warning box when it is absent. The course does not
# use that kernel (peftcourse.qlora keeps Linear4bit in its training layout), so the box is noise.
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(
    _DropMessage("Failed to load CPU gemm_4bit_forward from kernels-community"))
