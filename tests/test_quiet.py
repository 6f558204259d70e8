"""peftcourse.quiet silences the known-harmless library messages, and nothing else."""
import importlib
import logging
import os
import subprocess
import sys
import warnings

import pytest

import torch
from peft import LoraConfig, PrefixTuningConfig, get_peft_model
from transformers import GPT2Config, GPT2LMHeadModel

from peftcourse import quiet


def tiny_gpt2():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=32, n_embd=16, n_layer=2, n_head=2,
                                      bos_token_id=0, eos_token_id=0))


def test_peft_on_gpt2_raises_no_warning():
    """The fan_in_fan_out UserWarning and the libraries' internal FutureWarnings are gone."""
    ids = torch.randint(0, 50, (2, 7), generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings(record=True) as caught:
        importlib.reload(quiet)  # pytest restores the warning filters after collecting, where quiet ran first
        for config in (LoraConfig(r=2, target_modules=["c_attn"]),
                       PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=2)):
            get_peft_model(tiny_gpt2(), config)(input_ids=ids, labels=ids).loss.backward()
    messages = [f"{w.category.__name__}: {w.message}" for w in caught if w.category is not DeprecationWarning]
    assert messages == []


def test_own_warnings_still_show():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        warnings.warn("a deprecation in the course's own code", FutureWarning)
        warnings.warn("a user warning of ours", UserWarning)
    assert [str(w.message) for w in caught] == ["a deprecation in the course's own code", "a user warning of ours"]


class Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_only_the_known_transformers_message_is_dropped():
    logger = logging.getLogger("transformers.modeling_utils")
    handler = Collect()
    logger.addHandler(handler)
    level, disabled = logger.level, logger.disabled   # other tests may have set transformers' verbosity
    logger.setLevel(logging.WARNING)
    logger.disabled = False
    try:
        logger.warning("`loss_type=None` was set in the config but it is unrecognized. Using the default loss: `ForCausalLMLoss`.")
        logger.warning("Some weights of the model checkpoint were not used")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.disabled = disabled
    assert handler.messages == ["Some weights of the model checkpoint were not used"]


def test_from_pretrained_progress_bars_are_off():
    from transformers.utils import logging as hf_logging
    assert not hf_logging.is_progress_bar_enabled()


@pytest.mark.parametrize("first", ["huggingface_hub", "transformers"])
def test_progress_bars_are_off_whatever_is_imported_first(first):
    """A notebook that imports a library before peftcourse gets no 'Loading weights 0%' bar either."""
    code = (f"import {first}, peftcourse, transformers\n"
            "from transformers.utils import logging\n"
            "print(logging.is_progress_bar_enabled())")
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"


NEW_HEAD_REPORT = ("BertForSequenceClassification LOAD REPORT from: model\n"
                   "Key               | Status  | \n------------------+---------+-\n"
                   "classifier.bias   | MISSING | \nclassifier.weight | MISSING | \n\nNotes:\n"
                   "- MISSING:\tthose params were newly initialized because missing from the checkpoint.")


@pytest.mark.parametrize("report, shown", [
    (NEW_HEAD_REPORT, False),   # the new head the course adds on purpose
    (NEW_HEAD_REPORT.replace("classifier.weight | MISSING", "bert.pooler.dense.weight | MISSING"), True),
    (NEW_HEAD_REPORT.replace("classifier.weight | MISSING", "classifier.weight | UNEXPECTED"), True),
])
def test_only_the_new_head_load_report_is_dropped(report, shown):
    logger = logging.getLogger("transformers.modeling_utils")
    handler, disabled = Collect(), logger.disabled
    logger.addHandler(handler)
    logger.disabled = False
    try:
        logger.warning(report)
    finally:
        logger.removeHandler(handler)
        logger.disabled = disabled
    assert handler.messages == ([report] if shown else [])


def test_loading_minilm_with_a_new_head_prints_nothing():
    code = ("import peftcourse\nfrom peftcourse import models\n"
            "models.load_minilm(num_labels=8)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.stdout + out.stderr == ""
