"""peftcourse.validate: the one set of argument checks, its messages and what it refuses."""
import math

import pytest
import torch

from peftcourse import validate


@pytest.mark.parametrize("value", [0, -1, 2.0, True, "3", None, math.nan])
def test_positive_int_refuses(value):
    with pytest.raises(ValueError, match=r"r must be a positive int, got"):
        validate.positive_int("r", value)


def test_positive_int_accepts_and_caps():
    assert validate.positive_int("r", 3) == 3
    with pytest.raises(ValueError, match="at most 10"):
        validate.positive_int("blocksize", 11, maximum=10)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, True, "1", None, torch.tensor(1.0)])
def test_number_refuses_non_finite_bools_and_strings(value):
    with pytest.raises(ValueError, match="x must be a finite number"):
        validate.number("x", value)


@pytest.mark.parametrize("check, value, words", [
    (validate.positive_number, 0, "a positive number"), (validate.positive_number, -2.5, "a positive number"),
    (validate.probability, 1.0, r"a probability in \[0, 1\)"), (validate.probability, -0.1, "a probability"),
])
def test_interval_messages_say_what_is_right(check, value, words):
    with pytest.raises(ValueError, match=words):
        check("p", value)


@pytest.mark.parametrize("value", ["no", "False", 0, 1, None])
def test_flag_accepts_only_real_booleans(value):
    with pytest.raises(TypeError, match="must be True or False"):
        validate.flag("rslora", value)
    assert validate.flag("rslora", False) is False


@pytest.mark.parametrize("value, error, words", [
    ("", ValueError, "empty"), ([], ValueError, "empty"), ("(", ValueError, "regular expression"),
    (5, TypeError, "regex string or a list"), (["q", 3], TypeError, "non-empty strings"),
])
def test_name_list(value, error, words):
    with pytest.raises(error, match=words):
        validate.name_list("target_modules", value)
    assert validate.name_list("target_modules", ["q"]) == ["q"]


def test_choice_and_tensor():
    with pytest.raises(ValueError, match=r"unknown schedule 'linear': use one of \['constant', 'cosine'\]"):
        validate.choice("schedule", "linear", ("constant", "cosine"))
    with pytest.raises(ValueError, match="unknown schedule"):
        validate.choice("schedule", ["unhashable"], ("constant",))
    with pytest.raises(ValueError, match="NaN or Inf"):
        validate.tensor("w", torch.tensor([1.0, math.inf]))
    with pytest.raises(ValueError, match="2-D"):
        validate.tensor("w", torch.ones(3), dims=2)
    with pytest.raises(TypeError, match="floating-point"):
        validate.tensor("w", torch.ones(3, dtype=torch.long))


@pytest.mark.parametrize("dtype, expected", [(torch.float64, torch.float64), (torch.float32, torch.float32),
                                             (torch.bfloat16, torch.float32), (torch.float16, torch.float32)])
def test_adapter_dtype_follows_peft(dtype, expected):
    assert validate.adapter_dtype(torch.ones(1, dtype=dtype)) is expected
