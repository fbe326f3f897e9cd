"""The README's main job (for now): CAMs of a small classifier on built-in synthetic phantoms.

Generates phantoms with and without lesions, trains a small CNN on the image-level labels only,
computes every CAM method for the held-out lesion images in one call of the engine, measures each
method's IoU against the true lesion masks at threshold 0.5, and writes heat-coloured overlay PNGs.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .atomic import write_text
from .cams import METHODS, CamEngine
from .data.synthetic import synthetic_batch
from .devices import resolve_device
from .figures.overlays import overlay_rgb, write_png
from .metrics.overlap import iou
from .models import SmallCNN

DEMO_METHODS = [name for name, method in METHODS.items() if not method.segmentation]


@dataclass
class DemoSummary:
    """What the demo measured; ``mean_iou`` per method over held-out lesion images at threshold 0.5."""

    device: str
    train_images: int
    test_images: int
    test_accuracy: float
    cam_seconds: float
    target_layer: str
    mean_iou: dict[str, float]
    outputs: list[str]


def _train(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epochs: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    device = next(model.parameters()).device
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        total, correct, loss_sum = 0, 0, 0.0
        for start in range(0, len(order), 32):
            index = order[start : start + 32]
            batch = images[index]
            flips = torch.rand(len(index), generator=generator) < 0.5
            batch = torch.where(flips[:, None, None, None], batch.flip(-1), batch).to(device)
            target = labels[index].to(device)
            logits = model(batch)
            loss = loss_fn(logits, target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            loss_sum += loss.item() * len(index)
            correct += int((logits.argmax(1) == target).sum())
            total += len(index)
        print(f"  epoch {epoch + 1}/{epochs}: loss {loss_sum / total:.3f}, train accuracy {correct / total:.3f}")
    model.eval()


def run_demo(out_dir: str | Path = "wssscam-demo", device: str = "auto", seed: int = 0, epochs: int = 12, size: int = 64) -> DemoSummary:
    """Run the demo, write PNGs and ``summary.json`` into ``out_dir``, and return the summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    run_device = resolve_device(device)
    print(f"Generating synthetic phantoms ({size} x {size}) ...")
    train = synthetic_batch(320, (size, size), seed=seed)
    test = synthetic_batch(64, (size, size), seed=seed + 1)
    print(f"Training a small CNN on image-level labels only, on {run_device} ...")
    model = SmallCNN(in_channels=1, num_classes=2).to(run_device)
    _train(model, train.images, train.labels, epochs, seed)
    with torch.no_grad():
        accuracy = float((model(test.images.to(run_device)).argmax(1).cpu() == test.labels).float().mean())
    print(f"  held-out accuracy: {accuracy:.3f}")

    positives = test.labels == 1
    images, masks = test.images[positives], test.masks[positives]
    engine = CamEngine(model)
    started = time.perf_counter()
    result = engine(images, target=1, methods=DEMO_METHODS)
    cam_seconds = time.perf_counter() - started
    truth = masks.to(run_device)
    mean_iou = {name: float(iou(cam >= 0.5, truth).mean()) for name, cam in result.items()}

    outputs = [str(_write_grid(out / "cam_grid.png", images, masks, result.maps, rows=6))]
    for case in range(min(4, len(images))):
        for name, cam in result.items():
            png = overlay_rgb(images[case, 0].numpy(), cam[case].cpu().numpy(), outline=masks[case].numpy())
            outputs.append(str(write_png(out / "overlays" / f"case{case:02d}_{name.replace('+', 'p')}.png", png)))
    summary = DemoSummary(str(run_device), len(train.labels), len(test.labels), accuracy, cam_seconds,
                          result.target_layer, mean_iou, outputs)
    write_text(out / "summary.json", json.dumps(asdict(summary), indent=2))
    return summary


def _write_grid(path: Path, images: torch.Tensor, masks: torch.Tensor, maps: dict[str, torch.Tensor], rows: int) -> Path:
    """Rows = cases; columns = the image with the true mask outline, then one overlay per method."""
    rows = min(rows, len(images))
    tiles = []
    for case in range(rows):
        image = images[case, 0].numpy()
        outline = masks[case].numpy()
        row = [overlay_rgb(image, np.zeros_like(image), outline=outline)]
        row += [overlay_rgb(image, cam[case].cpu().numpy(), outline=outline) for cam in maps.values()]
        tiles.append(np.concatenate(row, axis=1))
    return write_png(path, np.concatenate(tiles, axis=0))


def print_summary(summary: DemoSummary, out_dir: str | Path) -> None:
    print(f"\nCAMs of {sum(1 for _ in summary.mean_iou)} methods for the held-out lesion images in "
          f"{summary.cam_seconds:.2f} s (target layer '{summary.target_layer}', {summary.device}).")
    print(f"{'method':<20} IoU@0.5 vs true lesion mask")
    for name, value in sorted(summary.mean_iou.items(), key=lambda item: -item[1]):
        print(f"{name:<20} {value:.3f}")
    print(f"\nOverlay grid: {Path(out_dir) / 'cam_grid.png'} (columns: image, {', '.join(summary.mean_iou)})")
    print(f"Summary: {Path(out_dir) / 'summary.json'}")
