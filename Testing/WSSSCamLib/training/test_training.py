"""A short training run on generated data beats chance; checkpoints round-trip and refuse pickles."""

import json

import pytest
import torch

from WSSSCamLib.data.augment import ContrastStretch, HistogramEqualize, RandomAffine, syed2023_augmentation
from WSSSCamLib.data.slices import SliceSet
from WSSSCamLib.data.synthetic import synthetic_batch
from WSSSCamLib.metrics import roc_auc
from WSSSCamLib.models.zoo import build_model
from WSSSCamLib.training import (
    CheckpointError,
    ModelCard,
    TrainConfig,
    evaluate,
    load_checkpoint,
    save_checkpoint,
    train_classifier,
)


def slices(count, seed):
    batch = synthetic_batch(count, (48, 48), seed=seed)
    return SliceSet(
        batch.images, batch.labels, batch.masks, [f"s{seed}_{i}" for i in range(count)], torch.arange(count)
    )


def test_short_training_on_phantoms_beats_chance():
    train, validation, test = slices(192, 0), slices(48, 1), slices(64, 2)
    model = build_model("small-cnn", 1, 2)
    config = TrainConfig(epochs=6, batch_size=32, learning_rate=3e-3, patience=0, device="cpu", progress=False, seed=0)
    result = train_classifier(model, train, validation, config)
    auc, _ = evaluate(model, test, device="cpu")
    assert len(result.history) == 6 and 1 <= result.best_epoch <= 6
    assert auc > 0.75, auc  # held-out phantoms; chance is 0.5


def test_early_stopping_restores_the_best_epoch():
    train, validation = slices(64, 3), slices(32, 4)
    model = build_model("small-cnn", 1, 2)
    config = TrainConfig(epochs=8, patience=2, device="cpu", progress=False, augment=False, balance="sampler")
    result = train_classifier(model, train, validation, config)
    best = max(r.val_auc for r in result.history)
    assert result.val_auc == best
    assert evaluate(model, validation, device="cpu", flip_averaging=config.flip_averaging)[0] == pytest.approx(best)
    assert len(result.history) <= result.best_epoch + 2


def test_checkpoint_round_trip_and_refusals(tmp_path):
    model = build_model("small-cnn", 2, 3).eval()
    card = ModelCard("small-cnn", 2, 3, ["a", "b", "c"], ["t1", "flair"], input_size=[48, 48])
    path = save_checkpoint(model, card, tmp_path / "m.pt")
    assert json.loads((tmp_path / "m.json").read_text())["target_layer"] == "features"
    loaded, loaded_card = load_checkpoint(path, device="cpu")
    x = torch.rand(2, 2, 48, 48)
    torch.testing.assert_close(loaded(x), model(x))
    assert loaded_card.class_names == ["a", "b", "c"] and loaded_card.versions["torch"] == torch.__version__

    torch.save(model, tmp_path / "pickled.pt")  # a whole pickled module, not a state_dict
    with pytest.raises(CheckpointError, match="pickled.pt: not loadable with weights_only=True"):
        load_checkpoint(tmp_path / "pickled.pt", card)
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "wrong.pt")
    with pytest.raises(CheckpointError, match="wrong.pt: weights do not fit small-cnn"):
        load_checkpoint(tmp_path / "wrong.pt", card)


def test_auc_with_ties_matches_the_pairwise_definition():
    scores = torch.tensor([0.1, 0.4, 0.4, 0.8, 0.4])
    labels = torch.tensor([0, 1, 0, 1, 1])
    pairs = [(p, n) for p in scores[labels == 1] for n in scores[labels == 0]]
    expected = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
    assert roc_auc(scores, labels) == pytest.approx(expected)


def test_augmentations_are_seeded_and_shape_preserving():
    x = torch.rand(4, 2, 16, 16)
    a = syed2023_augmentation()(x, torch.Generator().manual_seed(1))
    b = syed2023_augmentation()(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b)
    identity = RandomAffine(0.0, 0.0, flips=False)(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(identity, x, atol=1e-5, rtol=0)
    ranks = HistogramEqualize(p=1.0)(torch.tensor([[[[3.0, 1.0], [2.0, 4.0]]]]), torch.Generator())
    torch.testing.assert_close(ranks, torch.tensor([[[[3.0, 1.0], [2.0, 4.0]]]]))  # already uniform ranks
    stretched = ContrastStretch(p=1.0)(x, torch.Generator().manual_seed(2))
    assert torch.isfinite(stretched).all()
