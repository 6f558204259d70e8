"""Answer key of notebooks/01_finetuning_approaches.ipynb (worked solutions: solutions/01_finetuning_approaches.py)."""
import copy

import torch
from torch import nn

from .. import cnn, memory
from ..runtime import count_params
from .core import Case, Exercise, Feedback, where

FULL_FT_GB = Exercise(
    "01-full-ft-gb", "quick", "13B full fine-tuning, GB", "answer",
    hint="multiply the parameters by the lecture's bytes per parameter, then convert to GB (10⁹ bytes).",
    reread=where("3 (What does fine-tuning cost in memory?)", "'Naively Fine-Tuning LLaMA-3-8B takes 128GB of RAM!'"),
    explain="16 bytes per parameter: fp16 weight and gradient (2 + 2) plus Adam's fp32 master copy and two "
            "moments (12).",
    expected=lambda: memory.gb(memory.estimate(13e9, memory.LECTURE_FULL_FT)["total"]), tol=1.0,
    mistakes=((lambda e: e / 4, "only the fp16 weights: the gradient and Adam's states cost more than the weights."),
              (lambda e: e * 12 / 16, "the fp16 weight and gradient are missing: 2 + 2 bytes more per parameter.")))


def _feature_based_summary(student_fn):
    """Run a student's feature_based(model, n_classes) and summarise what it did as one tensor."""
    def run(model, n_classes):
        m = student_fn(copy.deepcopy(model), n_classes)  # a copy: the pretrained model stays as it was
        if m is None or m is Ellipsis:
            return m
        if not isinstance(m, nn.Module):
            raise Feedback(f"your function returned a {type(m).__name__}; return the model.")
        if len(list(m.parameters())) != len(list(model.parameters())):
            raise Feedback("the model has a different number of weight tensors: replace model.head[-1], "
                           "do not add or remove layers.")
        last = m.head[-1]
        flags = torch.tensor([p.requires_grad for p in m.parameters()], dtype=torch.float32)
        return torch.cat([flags, torch.tensor(list(last.weight.shape), dtype=torch.float32)])
    return run


def _feature_based_cases():
    cases = []
    for seed, n_classes in ((0, 5), (1, 3)):
        torch.manual_seed(seed)
        model = cnn.SmallCNN()
        reference = cnn.prepare(copy.deepcopy(model), "feature-based", n_classes)
        expected = torch.tensor([p.requires_grad for p in reference.parameters()], dtype=torch.float32)
        shapes = torch.tensor(list(reference.head[-1].weight.shape), dtype=torch.float32)
        everything = torch.ones_like(expected)
        head_frozen = torch.zeros_like(expected)
        old_shape = torch.tensor(list(model.head[-1].weight.shape), dtype=torch.float32)
        cases.append(Case(
            inputs={"model": model, "n_classes": n_classes},
            expected=torch.cat([expected, shapes]),
            wrong=((torch.cat([everything, shapes]), "everything still trains: freeze the pretrained layers "
                                                     "(requires_grad_(False)) before adding the new classifier."),
                   (torch.cat([head_frozen, shapes]), "nothing trains: the new classifier must stay trainable "
                                                      "(create it after freezing, or unfreeze it)."),
                   (torch.cat([everything, old_shape]), "nothing changed: freeze the pretrained layers, then replace "
                                                        "model.head[-1] by a new nn.Linear with n_classes outputs."),
                   (torch.cat([expected, old_shape]), "the last layer still has the source task's outputs: replace it "
                                                      "by a new nn.Linear with n_classes outputs.")),
            shape_note="Return the model itself (prepared in place).", wrap=_feature_based_summary))
    return cases


FEATURE_BASED = Exercise(
    "01-feature-based", "code", "feature-based fine-tuning", "feature_based",
    hint="freeze every pretrained parameter, then give the model a new, trainable last layer.",
    reread=where("2 (Three ways to adapt it)", "'Finetuning of Convolutional Neural Networks (CNNs)', approach (2)"),
    explain="Only the new classifier trains: a logistic regression on the frozen 64-d features.",
    cases=_feature_based_cases)


def _top_layer_share():
    model = cnn.prepare(cnn.SmallCNN(n_classes=5, image_size=12), "top-layer", 5)   # notebook 01: digits in a 12x12 frame
    return count_params(model, trainable_only=True) / count_params(model)


TOP_LAYER_SHARE = Exercise(
    "01-top-layer-share", "predict", "share of weights top-layer fine-tuning trains", "prediction",
    hint="", reread=where("2 (Three ways to adapt it)",
                          "'Finetuning of Convolutional Neural Networks (CNNs)', approach (3)"),
    explain="Top-layer fine-tuning trains {m:.0%} of SmallCNN: the last conv block and the dense head hold most "
            "of the weights, while the early layers, which see every pixel, are small. 'Top layers only' "
            "saves compute on the frozen part, not necessarily parameters.",
    options={"a": "under 10 %", "b": "10 to 50 %", "c": "over 50 %"},
    outcome=lambda share: "a" if share < 0.1 else "b" if share <= 0.5 else "c",
    measure=_top_layer_share)

EXERCISES = (FULL_FT_GB, FEATURE_BASED, TOP_LAYER_SHARE)
