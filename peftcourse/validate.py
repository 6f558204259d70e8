"""Argument checks shared by the whole package: one rule, one message, wherever an argument enters.

Every public function checks all of its arguments with these BEFORE it changes a model, a layer or
a file, so that a bad call raises a clear error and leaves everything as it was. The messages say
what was given and what would be right.
"""
import math
import numbers
import re

import numpy as np
import torch


def _describe(value):
    return f"{value!r} ({type(value).__name__})"


def is_real(value):
    """A real number that is not a bool (True would otherwise pass as 1) and not a tensor."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def as_number(value):
    """A Python float from an int, float, numpy scalar or 0-d array, or 0-d torch tensor; None if it is not one.

    bool is not a number here (True would otherwise pass as 1).
    """
    if isinstance(value, (bool, np.bool_)):
        return None
    if torch.is_tensor(value):
        if value.dim() != 0 or value.dtype == torch.bool or value.is_complex():
            return None
        return float(value.item())
    if isinstance(value, np.ndarray):
        if value.ndim != 0 or value.dtype.kind not in "iuf":
            return None
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    return None


def positive_int(name, value, maximum=None):
    """An int >= 1 (bools and floats such as 4.0 are refused), at most `maximum` when given."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {_describe(value)}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}={value} is too large: at most {maximum:,}")
    return int(value)


def int_in(name, value, low, high):
    """An int with low <= value <= high (bools refused)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be an int in [{low}, {high}], got {_describe(value)}")
    return int(value)


def number(name, value, low=-math.inf, high=math.inf, low_open=False, high_open=False, kind=None):
    """A finite real number (not a bool, not NaN) in the interval [low, high] (ends open on request).
    kind: how the message names what is wanted (default: "a finite number in [low, high]")."""
    ok = is_real(value) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        if kind is None:
            bounds = (f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
                      if (low, high) != (-math.inf, math.inf) else "")
            kind = f"a finite number{bounds}"
        raise ValueError(f"{name} must be {kind}, got {_describe(value)}")
    return value


def positive_number(name, value, hint=""):
    """A finite real number > 0."""
    return number(name, value, 0, math.inf, low_open=True, kind=f"a positive number{hint}")


def probability(name, value):
    """A dropout-style probability in [0, 1)."""
    return number(name, value, 0, 1, high_open=True, kind="a probability in [0, 1)")


def flag(name, value):
    """A real bool: a string such as 'no' is truthy and would silently switch the option on."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {_describe(value)}")
    return value


def choice(name, value, options):
    """One of `options` (compared with ==, after checking the value is hashable-like)."""
    try:
        ok = value in options
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"unknown {name} {value!r}: use one of {list(options)}")
    return value


def name_list(name, value):
    """A regex string or a non-empty list/tuple/set of strings (peft's target_modules rules)."""
    if isinstance(value, str):
        if not value:
            raise ValueError(f"{name} is empty: give a regex or a list of layer names")
        try:
            re.compile(value)
        except re.error as err:
            raise ValueError(f"{name}={value!r} is not a valid regular expression ({err}); "
                             "a list of names such as ['c_attn'] needs no regex") from None
        return value
    if not isinstance(value, (list, tuple, set)):
        raise TypeError(f"{name} must be a regex string or a list of names, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} is empty: name the layers, e.g. ['c_attn'] or ['query', 'value']")
    bad = [v for v in value if not isinstance(v, str) or not v]
    if bad:
        raise TypeError(f"{name} must hold non-empty strings, got {bad[:3]}")
    return value


def module(name, value):
    """A torch nn.Module (a model or a layer)."""
    if not isinstance(value, torch.nn.Module):
        raise TypeError(f"{name} must be a torch nn.Module, got {type(value).__name__}")
    return value


def tensor(name, value, dims=None, floating=True, finite=True):
    """A torch.Tensor (of a floating dtype, with `dims` dimensions, without NaN/Inf, as asked)."""
    if not torch.is_tensor(value):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {value.dtype}")
    if dims is not None and value.dim() != dims:
        raise ValueError(f"{name} must be {dims}-D, got shape {tuple(value.shape)}")
    if finite and value.is_floating_point() and not torch.isfinite(value).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return value


def float_dtype(name, value):
    """A torch floating dtype such as torch.float32 or torch.bfloat16."""
    if not (isinstance(value, torch.dtype) and value.is_floating_point):
        raise ValueError(f"{name} must be a torch floating dtype (torch.float32, torch.bfloat16, ...), got {value!r}")
    return value


def adapter_dtype(weight):
    """The dtype of new adapter weights, as peft chooses it: fp32, or fp64 for an fp64 base
    (fp16/bf16/4-bit bases get fp32 adapters: small updates would round away in 16 bits)."""
    return torch.float64 if weight.dtype == torch.float64 else torch.float32
