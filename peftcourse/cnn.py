"""A small CNN and the lecture's three ways to fine-tune it ("Finetuning of CNNs").

(1) full fine-tuning: every weight trains;
(2) feature-based: the pretrained network is a frozen feature extractor; only a new linear
    classifier on its last hidden features trains (a logistic regression on embeddings);
(3) top-layer fine-tuning: the top layers (last conv block and the head) train, the early layers stay frozen.
"""
import torch
from torch import nn

from . import validate
from .runtime import eval_mode

APPROACHES = ("full", "feature-based", "top-layer")


class SmallCNN(nn.Module):
    """Square grey images (scikit-learn digits, 8x8 or placed on a larger canvas) -> class logits."""

    def __init__(self, n_classes=10, width=16, image_size=8):
        super().__init__()
        validate.positive_int("n_classes", n_classes)
        validate.positive_int("width", width, maximum=4096)
        validate.positive_int("image_size", image_size, maximum=256)
        if image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4 (two 2x2 poolings), got {image_size}")
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),                        # block 1: edges
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # block 2: strokes
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # block 3 ("top")
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Linear(2 * width * (image_size // 4) ** 2, 64), nn.ReLU(), nn.Linear(64, n_classes))

    def forward(self, x):
        return self.head(self.features(x))


def prepare(model, approach, n_classes):
    """Put a fresh output layer on `model` and freeze what `approach` keeps fixed. Returns the model."""
    if not isinstance(model, SmallCNN):
        raise TypeError(f"prepare works on a SmallCNN (its features and head), got {type(model).__name__}")
    if approach not in APPROACHES:
        raise ValueError(f"unknown approach {approach!r}: use one of {APPROACHES}")
    validate.positive_int("n_classes", n_classes)
    model.head[-1] = nn.Linear(model.head[-1].in_features, n_classes)  # the new task's classifier
    for p in model.parameters():
        p.requires_grad_(approach == "full")
    if approach == "feature-based":
        trainable = [model.head[-1]]
    elif approach == "top-layer":
        trainable = [model.features[5], model.head]  # last conv block + head
    else:
        trainable = []
    for module in trainable:
        for p in module.parameters():
            p.requires_grad_(True)
    return model


def embed(model, x):
    """The frozen 64-d features the classifier sees (input to the last layer)."""
    with eval_mode(model):
        return model.head[:-1](model.features(x))


def accuracy(model, x, y):
    """Fraction of images whose highest logit is the right class."""
    if not torch.is_tensor(x) or not torch.is_tensor(y) or len(x) != len(y) or len(y) == 0:
        raise ValueError("x and y must be non-empty tensors with one label per image")
    with eval_mode(model):
        return (model(x).argmax(-1) == y).float().mean().item()


def digits_transfer(n_per_class=20, seed=0, canvas=8):
    """The lecture's transfer setting on real images (scikit-learn's 1,797 8x8 digits):
    a *source* task (digits 0-4, plenty of labels) to pretrain on, and a *target* task
    (digits 5-9, only `n_per_class` labelled images each) to adapt to.

    canvas > 8 pastes each digit at a random position of a blank canvas x canvas image (the
    same position for every seed), so that a classifier must recognise strokes wherever they are.
    Returns {"source": (x_train, y_train, x_test, y_test), "target": (...)}; target labels are 0..4.
    """
    from sklearn.datasets import load_digits

    validate.positive_int("n_per_class", n_per_class)
    validate.positive_int("canvas", canvas, maximum=256)
    if canvas < 8:
        raise ValueError(f"canvas must be at least the digits' 8 pixels, got {canvas}")
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # pixel values 0..16
    offsets = torch.randint(0, canvas - 7, (len(x), 2), generator=torch.Generator().manual_seed(1234))
    placed = torch.zeros(len(x), 1, canvas, canvas)
    for image, (row, col), out in zip(x, offsets.tolist(), placed):
        out[:, row:row + 8, col:col + 8] = image
    x = placed
    y = torch.tensor(digits.target)
    g = torch.Generator().manual_seed(seed)
    out = {}
    for task, classes in (("source", range(0, 5)), ("target", range(5, 10))):
        train_idx, test_idx = [], []
        for c in classes:
            idx = torch.nonzero(y == c).flatten()
            idx = idx[torch.randperm(len(idx), generator=g)]
            n_train = len(idx) * 2 // 3 if task == "source" else n_per_class
            if n_train >= len(idx):
                raise ValueError(f"digit {c} has only {len(idx)} images: n_per_class must be below that "
                                 "so that test images remain")
            train_idx.append(idx[:n_train])
            test_idx.append(idx[n_train:])
        tr, te = torch.cat(train_idx), torch.cat(test_idx)
        offset = classes[0]
        out[task] = (x[tr], y[tr] - offset, x[te], y[te] - offset)
    return out

