import pytest
import torch

from peftcourse.cnn import SmallCNN, prepare, count_params, APPROACHES


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
