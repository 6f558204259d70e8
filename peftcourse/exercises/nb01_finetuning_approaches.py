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


def _prepared_summary(student_fn):
    """Run a student's bitfit(model, n_classes) and summarise what it did as one tensor: which parameter tensors
    train, then the last layer's shape."""
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


def _bitfit_reference(model, n_classes):
    """BitFit (Ben Zaken et al. 2022) on SmallCNN: every bias trains, every weight and kernel is frozen, and a new
    output layer with n_classes outputs trains whole."""
    for name, p in model.named_parameters():
        p.requires_grad_(name.endswith("bias"))
    model.head[-1] = nn.Linear(model.head[-1].in_features, n_classes)
    return model


def _bitfit_cases():
    cases = []
    for seed, n_classes in ((0, 5), (1, 3)):
        torch.manual_seed(seed)
        model = cnn.SmallCNN()
        def summarise(prepare):   # what the checker compares, for a (wrong) way of preparing the model
            return _prepared_summary(prepare)(model, n_classes)

        def weights_train_biases_frozen(m, n):
            m = _bitfit_reference(m, n)
            for name, p in m.named_parameters():
                p.requires_grad_(not name.endswith("bias"))
            return m

        def new_layer_weight_frozen(m, n):
            m = _bitfit_reference(m, n)
            m.head[-1].weight.requires_grad_(False)
            return m

        def biases_without_new_layer(m, n):
            for name, p in m.named_parameters():
                p.requires_grad_(name.endswith("bias"))
            return m

        cases.append(Case(
            inputs={"model": model, "n_classes": n_classes},
            expected=_prepared_summary(_bitfit_reference)(model, n_classes),
            wrong=((summarise(lambda m, n: cnn.prepare(m, "feature-based", n)),
                    "only the new layer trains: that is approach (2). BitFit also keeps every bias of the pretrained "
                    "layers trainable."),
                   (summarise(lambda m, n: cnn.prepare(m, "full", n)),
                    "everything still trains: freeze the weight matrices and kernels, keep only the biases (and the "
                    "new layer) trainable."),
                   (summarise(lambda m, n: m), "nothing changed: freeze every weight but the biases, then replace model.head[-1] "
                                     "by a new nn.Linear with n_classes outputs."),
                   (summarise(weights_train_biases_frozen),
                    "upside down: the biases should train and the weights stay frozen (parameter names end in "
                    "'.bias' or '.weight')."),
                   (summarise(new_layer_weight_frozen),
                    "the new output layer is random: its weight must train too, not only its bias."),
                   (summarise(biases_without_new_layer),
                    "the last layer still has the source task's outputs: replace it by a new nn.Linear with "
                    "n_classes outputs.")),
            shape_note="Return the model itself (prepared in place).", wrap=_prepared_summary))
    return cases


def _pretrained_biases():
    """The biases BitFit adds to approach (2) in the notebook's 12x12 SmallCNN (every bias but the new layer's)."""
    with torch.random.fork_rng():   # building a network draws random weights: leave the caller's generator alone
        model = cnn.SmallCNN(n_classes=5, image_size=12)
    return sum(p.numel() for name, p in model.named_parameters()
               if name.endswith("bias") and not name.startswith("head.2."))


_PRETRAINED_BIASES = _pretrained_biases()

BITFIT = Exercise(
    "01-bitfit", "code", "BitFit: train the biases and a new last layer", "bitfit",
    hint="go through model.named_parameters(): a bias keeps requires_grad, a weight loses it; then give the model a "
         "new last layer.",
    reread=where("2 (Three ways to adapt it)", "'Finetuning of Convolutional Neural Networks (CNNs)', approach (2)"),
    explain=f"BitFit trains approach (2)'s new layer plus every bias: {_PRETRAINED_BIASES} more numbers in SmallCNN, "
            f"under 1 % of its weights. Ben Zaken et al. 2022 report it close to full fine-tuning on GLUE with BERT; the "
            "lecture's GPT-3 table lists it beside LoRA.",
    cases=_bitfit_cases)


def _top_layer_share_8x8():
    model = cnn.prepare(cnn.SmallCNN(n_classes=5, image_size=8), "top-layer", 5)   # the bare 8x8 digits (canvas=8)
    return count_params(model, trainable_only=True) / count_params(model)


TOP_LAYER_SHARE = Exercise(
    "01-top-layer-share", "predict", "share of weights top-layer fine-tuning trains on the 8×8 digits", "prediction",
    hint="", reread=where("2 (Three ways to adapt it)",
                          "'Finetuning of Convolutional Neural Networks (CNNs)', approach (3)"),
    explain="On the 8×8 digits top-layer fine-tuning trains {m:.1%} of SmallCNN, against 85 % on the 12×12 frame. "
            "The conv blocks keep their size whatever the image, but after two 2×2 poolings the dense layer sees a "
            "2×2 map instead of 3×3: 32·2·2 = 128 inputs instead of 288, so it holds 128·64 weights instead of "
            "288·64. The dense layer still holds the most weights: 'top layers' is not 'few weights'.",
    options={"a": "under 60 %", "b": "60 to 75 %", "c": "75 to 85 %", "d": "over 85 %"},
    outcome=lambda share: "a" if share < 0.6 else "b" if share < 0.75 else "c" if share <= 0.85 else "d",
    measure=_top_layer_share_8x8)

EXERCISES = (FULL_FT_GB, BITFIT, TOP_LAYER_SHARE)
