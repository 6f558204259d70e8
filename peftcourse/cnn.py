"""A small CNN and the lecture's three ways to fine-tune it ("Finetuning of CNNs").

(1) full fine-tuning: every weight trains;
(2) feature-based: the pretrained network is a frozen feature extractor; only a new linear
    classifier on its last hidden features trains (a logistic regression on embeddings);
(3) top-layer fine-tuning: the top layers (last conv block and the head) train, the early layers stay frozen.
"""
import torch
from torch import nn

APPROACHES = ("full", "feature-based", "top-layer")


class SmallCNN(nn.Module):
    """8x8 grey images (scikit-learn digits) -> class logits."""

    def __init__(self, n_classes=10, width=16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),                        # block 1: edges
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # block 2: strokes
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # block 3 ("top")
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Linear(2 * width * 4, 64), nn.ReLU(), nn.Linear(64, n_classes))

    def forward(self, x):
        return self.head(self.features(x))


def prepare(model, approach, n_classes):
    """Put a fresh output layer on `model` and freeze what `approach` keeps fixed. Returns the model."""
    if approach not in APPROACHES:
        raise ValueError(f"unknown approach {approach!r}: use one of {APPROACHES}")
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


def count_params(model, trainable_only=False):
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def embed(model, x):
    """The frozen 64-d features the classifier sees (input to the last layer)."""
    model.eval()
    return model.head[:-1](model.features(x))


@torch.no_grad()
def accuracy(model, x, y):
    model.eval()
    return (model(x).argmax(-1) == y).float().mean().item()
