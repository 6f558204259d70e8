import pytest
import torch

from peftcourse.cnn import SmallCNN, prepare, APPROACHES
from peftcourse.runtime import count_params


@pytest.mark.parametrize("approach", APPROACHES)
def test_each_approach_trains_what_the_lecture_says(approach):
    model = prepare(SmallCNN(n_classes=10), approach, n_classes=5)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "head.2.weight" in trainable  # the new classifier always trains
    assert ("features.0.weight" in trainable) == (approach == "full")
    assert ("features.5.weight" in trainable) == (approach in ("full", "top-layer"))
    assert ("head.0.weight" in trainable) == (approach != "feature-based")
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 5)


def test_fewer_trainable_parameters_from_full_to_feature_based():
    counts = [count_params(prepare(SmallCNN(), a, 5), trainable_only=True) for a in APPROACHES]
    assert counts[0] > counts[2] > counts[1]


def test_unknown_approach():
    with pytest.raises(ValueError, match="unknown approach"):
        prepare(SmallCNN(), "lora", 5)


def test_digits_on_a_canvas_keep_every_pixel_and_move():
    from peftcourse.cnn import digits_transfer
    plain = digits_transfer(n_per_class=5, seed=0)["target"][0]
    placed = digits_transfer(n_per_class=5, seed=0, canvas=12)["target"][0]
    assert plain.shape[1:] == (1, 8, 8) and placed.shape[1:] == (1, 12, 12)
    assert torch.allclose(placed.sum(dim=(1, 2, 3)), plain.sum(dim=(1, 2, 3)))   # the same digits, pasted whole
    assert len({int(placed[i, 0].sum(1).nonzero()[0]) for i in range(len(placed))}) > 1   # first inked row varies
    assert SmallCNN(n_classes=5, image_size=12)(placed).shape == (len(placed), 5)
    with pytest.raises(ValueError, match="multiple of 4"):
        SmallCNN(image_size=10)
    with pytest.raises(ValueError, match="canvas"):
        digits_transfer(canvas=6)
