"""Segmentation training: the loss ignores label 255, a U-Net learns a trivial generated task, the card loads."""

import pytest
import torch

from WSSSCamLib.errors import InvalidInputError
from WSSSCamLib.inference.segmentation import slice_segmentation, stack_segmentation
from WSSSCamLib.training.checkpoint import load_checkpoint, save_checkpoint
from WSSSCamLib.training.segmentation import (
    IGNORE,
    SegmentationTrainConfig,
    depth_windows,
    segmentation_card,
    segmentation_loss,
    train_segmentation,
)


def test_loss_ignores_label_255():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 4, 4, generator=generator)
    labels = torch.randint(0, 2, (2, 4, 4), generator=generator)
    ignored = labels.clone().to(torch.uint8)
    ignored[:, :2] = IGNORE
    # changing the logits of ignored pixels changes nothing
    other = logits.clone()
    other[:, :, :2] = torch.randn(2, 2, 2, 4, generator=generator) * 10
    a, b = segmentation_loss(logits, ignored), segmentation_loss(other, ignored)
    assert all(torch.allclose(x, y) for x, y in zip(a, b))
    # and the cross-entropy equals the one over the kept pixels by hand
    kept = logits[:, :, 2:].permute(0, 2, 3, 1).reshape(-1, 2)
    expected = torch.nn.functional.cross_entropy(kept, labels[:, 2:].reshape(-1))
    assert torch.allclose(a[1], expected)
    # soft Dice over the kept pixels by hand
    p = torch.softmax(logits, 1)[:, :, 2:]
    y = torch.nn.functional.one_hot(labels[:, 2:], 2).permute(0, 3, 1, 2).float()
    dice = (1 - (2 * (p * y).sum((0, 2, 3)) + 1) / (p.sum((0, 2, 3)) + y.sum((0, 2, 3)) + 1)).mean()
    assert torch.allclose(a[2], dice)
    # gradient never reaches an ignored pixel
    logits.requires_grad_(True)
    segmentation_loss(logits, ignored)[0].backward()
    assert logits.grad[:, :, :2].abs().max() == 0
    all_ignored = torch.full((2, 4, 4), IGNORE, dtype=torch.uint8)
    assert float(segmentation_loss(logits, all_ignored)[0].detach()) == 0.0


def _task(n=24, size=16, seed=0):
    """Bright squares on noise: the label is the square."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 2, size, size, generator=generator) * 0.1
    labels = torch.zeros(n, size, size, dtype=torch.uint8)
    for i in range(n):
        r, c = torch.randint(0, size - 6, (2,), generator=generator).tolist()
        images[i, :, r : r + 6, c : c + 6] += 1.0
        labels[i, r : r + 6, c : c + 6] = 1
    return images, labels


def test_unet_learns_a_trivial_task_and_logs_epochs(tmp_path):
    images, labels = _task()
    config = SegmentationTrainConfig(epochs=15, batch_size=8, learning_rate=1e-2, seed=0, augment=True, device="cpu")
    model, result = train_segmentation(images, labels, config, log_path=tmp_path / "log.csv")
    assert len(result.history) == 15 and result.history[-1].loss < result.history[0].loss
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert lines[0] == "epoch,loss,cross_entropy,dice_loss,seconds" and len(lines) == 16
    test_images, test_labels = _task(8, seed=1)
    _, mask = slice_segmentation(model, test_images, (16, 16), 2)
    tp = (mask & (test_labels == 1)).sum()
    dice = 2 * tp / (mask.sum() + (test_labels == 1).sum())
    assert dice > 0.8
    # seeded: the same settings give the same weights
    again, _ = train_segmentation(images, labels, SegmentationTrainConfig(**{**config.__dict__, "epochs": 2}))
    twice, _ = train_segmentation(images, labels, SegmentationTrainConfig(**{**config.__dict__, "epochs": 2}))
    assert all(torch.equal(x, y) for x, y in zip(again.state_dict().values(), twice.state_dict().values()))


def test_card_makes_a_checkpoint_the_predict_engine_loads(tmp_path):
    images, labels = _task(4)
    model, _ = train_segmentation(images, labels, SegmentationTrainConfig(epochs=1, device="cpu"))
    recipe = {"size": 16, "axis": "K", "clip_percentiles": [0.5, 99.5], "context_channel": None}
    card = segmentation_card(2, ["T1", "FLAIR"], recipe, {"train": ["x"], "test": ["y"]}, {"epochs": 1})
    assert card.is_segmentation and card.class_names == ["background", "abnormal"]
    save_checkpoint(model, card, tmp_path / "model.pt")
    loaded, loaded_card = load_checkpoint(tmp_path / "model.pt", device="cpu")
    assert loaded_card.is_segmentation and loaded_card.input_size == [16, 16]
    assert torch.equal(loaded(images), model(images))


def test_bad_labels_are_refused():
    images, labels = _task(2)
    with pytest.raises(InvalidInputError, match="values \\[7\\]"):
        train_segmentation(images, torch.where(labels == 1, 7, 0).to(torch.uint8), SegmentationTrainConfig(epochs=1))
    with pytest.raises(InvalidInputError, match="do not match"):
        train_segmentation(images, labels[:, :8], SegmentationTrainConfig(epochs=1))


def test_3d_loss_is_the_2d_loss_of_the_same_voxels():
    """The loss sums over every spatial axis: a 3D batch scores as the 2D batch of its slices."""
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 2, 3, 4, 4, generator=generator)
    labels = torch.randint(0, 2, (2, 3, 4, 4), generator=generator).to(torch.uint8)
    labels[0, 1, :2] = IGNORE
    flat = segmentation_loss(logits.movedim(2, 1).reshape(6, 2, 4, 4), labels.reshape(6, 4, 4))
    assert all(torch.allclose(a, b) for a, b in zip(segmentation_loss(logits, labels), flat))


def test_depth_windows_by_hand():
    images = torch.arange(10, dtype=torch.float32).view(10, 1, 1, 1).expand(10, 2, 3, 3)
    labels = torch.arange(10, dtype=torch.uint8).view(10, 1, 1).expand(10, 3, 3)
    windows, targets = depth_windows(images, labels, 4)
    assert windows.shape == (4, 2, 4, 3, 3) and targets.shape == (4, 4, 3, 3)
    assert [w[0, :, 0, 0].tolist() for w in windows] == [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9]]
    assert torch.equal(targets[:, :, 0, 0].float(), windows[:, 0, :, 0, 0])
    short, short_targets = depth_windows(images[:3], labels[:3], 8)  # shorter than a window: padded
    assert short.shape == (1, 2, 8, 3, 3) and short[0, :, 3:].abs().sum() == 0
    assert short_targets[0, 3:].eq(IGNORE).all() and short_targets[0, :3, 0, 0].tolist() == [0, 1, 2]


def test_a_3d_unet_learns_bright_cubes_and_runs_over_a_stack():
    """Stacks of slices with a bright cube: the 3D U-Net (trained on 8-slice windows) segments a new stack."""

    def stacks(n, seed):
        generator = torch.Generator().manual_seed(seed)
        images = torch.randn(n, 1, 8, 16, 16, generator=generator) * 0.1
        labels = torch.zeros(n, 8, 16, 16, dtype=torch.uint8)
        for i in range(n):
            d, r, c = (
                torch.randint(0, 4, (1,), generator=generator).item(),
                *torch.randint(0, 10, (2,), generator=generator).tolist(),
            )
            images[i, :, d : d + 4, r : r + 6, c : c + 6] += 1.0
            labels[i, d : d + 4, r : r + 6, c : c + 6] = 1
        return images, labels

    images, labels = stacks(12, 0)
    config = SegmentationTrainConfig(epochs=12, batch_size=4, learning_rate=1e-2, seed=0, device="cpu")
    model, result = train_segmentation(images, labels, config)
    assert result.history[-1].loss < result.history[0].loss
    test_images, test_labels = stacks(1, 1)
    _, mask = stack_segmentation(model, test_images[0].movedim(1, 0)[:6], (16, 16), 2)  # 6 slices: padded to 8
    reference = test_labels[0, :6] == 1
    dice = 2 * (mask & reference).sum() / (mask.sum() + reference.sum())
    assert dice > 0.7
