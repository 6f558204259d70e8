"""Known-harmless library messages, silenced once here (never a warning that a notebook teaches).

Imported first by peftcourse/__init__.py, so the filters are in place before any library logs.
Each filter matches one message only; anything else a library says still shows.
"""
import logging
import os
import sys
import warnings


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

# transformers 5 on every causal-LM loss: TinyGPT's config has no `loss_type`, so transformers says it
# falls back to ForCausalLMLoss, which is the loss the course means (GPT-2's own cross-entropy).
logging.getLogger("transformers.modeling_utils").addFilter(
    _DropMessage("`loss_type=None` was set in the config but it is unrecognized"))

# transformers 5, loading MiniLM with a new classification head: a "LOAD REPORT" table saying that
# classifier.weight/bias are MISSING (newly initialised). That is the head the course adds on purpose;
# a report naming any other key, or any other status, still shows.
class _DropNewHeadReport(logging.Filter):
    def filter(self, record):
        message = record.getMessage()
        if "LOAD REPORT" not in message:
            return True
        rows = [[cell.strip() for cell in line.split("|")] for line in message.splitlines() if "|" in line]
        rows = [r for r in rows if len(r) >= 2 and r[0] not in ("Key", "") and not set(r[0]) <= set("-+")]
        return not (rows and all(r[0].startswith("classifier.") and "MISSING" in r[1] for r in rows))


logging.getLogger("transformers.modeling_utils").addFilter(_DropNewHeadReport())

# peft corrects `fan_in_fan_out` for GPT-2's Conv1D by itself (weights stored in x out) and says so with
# a warning carrying a local file path; notebook 05 compares with peft on GPT-2 and does not teach it.
warnings.filterwarnings("ignore", message="fan_in_fan_out is set to False but the target module is `Conv1D`",
                        category=UserWarning)

# Deprecation notices raised inside the libraries, about their own internal calls (peft 0.21 still calls
# `is_gradient_checkpointing` and passes `past_key_values`, renamed in transformers 5). Nothing a notebook
# can change; a FutureWarning from the course's or a student's own code still shows.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft|accelerate|bitsandbytes)(\.|$)")

# "Loading weights: 0%|" bars of from_pretrained: a saved notebook keeps only the bar's first text (0 %).
# The environment variable works when the libraries are imported after peftcourse; the calls when before.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
if "huggingface_hub" in sys.modules:  # it read the variable at its import; transformers copies its setting
    from huggingface_hub.utils import disable_progress_bars
    disable_progress_bars()
if "transformers" in sys.modules:
    sys.modules["transformers"].utils.logging.disable_progress_bar()
