"""Checkpoints (state_dict only) and their model cards (JSON), saved atomically, loaded safely.

``<name>.pt`` holds ``model.state_dict()``; ``<name>.json`` beside it is the model card: what the
network is, what it expects, how it was trained and how well it did. Loading uses
``torch.load(..., weights_only=True)`` and refuses anything that is not a plain state dict.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from ..atomic import atomic_path, write_text
from ..devices import resolve_device
from ..errors import UserError
from ..models.card import ModelCard
from ..models.zoo import ARCHITECTURES, build_model


class CheckpointError(UserError, ValueError):
    """A checkpoint or model card cannot be used; the message names the file and the problem."""


def library_versions() -> dict[str, str]:
    """Versions of Python, torch, torchvision, MONAI and WSSSCamLib (those installed)."""
    from .. import __version__

    versions = {"python": platform.python_version(), "torch": torch.__version__, "wssscam": __version__}
    for name in ("torchvision", "monai", "numpy"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    return versions


def fingerprint(items: list[tuple[str, ...]]) -> str:
    """SHA-256 of sorted text tuples (e.g. case id, file name, file size): names the data a model saw."""
    digest = hashlib.sha256()
    for item in sorted(items):
        digest.update("\x1f".join(item).encode() + b"\x1e")
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (a checkpoint's, for provenance and staleness checks), hex."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def card_path(checkpoint: str | Path) -> Path:
    """The model card beside ``checkpoint``: the same name with ``.json``."""
    return Path(checkpoint).with_suffix(".json")


def save_checkpoint(model: nn.Module, card: ModelCard, path: str | Path) -> Path:
    """Write ``model.state_dict()`` to ``path`` and the card beside it, each atomically."""
    path = Path(path)
    if not card.versions:
        card.versions = library_versions()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as temporary:
        torch.save(state, temporary)
    write_text(card_path(path), json.dumps(asdict(card), indent=2))
    return path


def read_card(path: str | Path) -> ModelCard:
    """The model card at ``path`` (a .json file); :class:`CheckpointError` naming it when it is missing, not a
    card, or names an unknown architecture or impossible channel/class counts."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        card = ModelCard(**data)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: model card missing") from None
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: not a WSSSCam model card ({error})") from None
    if card.architecture not in ARCHITECTURES:
        raise CheckpointError(f"{path}: unknown architecture '{card.architecture}'; known: {', '.join(ARCHITECTURES)}")
    for key in ("in_channels", "num_classes", "spatial_dims"):
        value = getattr(card, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CheckpointError(f"{path}: {key} must be a positive integer, got {value!r}")
    return card


def check_finite_weights(state: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse a state dict with NaN or infinite values in a floating-point tensor, naming the file and the tensor."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            count = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(
                f"{path}: weight '{name}' holds {count} NaN or infinite values (a diverged or corrupted training)"
            )


def load_checkpoint(
    path: str | Path, card: str | Path | ModelCard | None = None, device: str = "auto"
) -> tuple[nn.Module, ModelCard]:
    """Rebuild the network from its card and load the weights (``weights_only=True``), in eval mode.

    Raises :class:`CheckpointError` when the file is not a state dict of tensors (a pickled model or
    other objects are refused), or when its keys/shapes do not fit the card's architecture.
    """
    path = Path(path)
    card = card if isinstance(card, ModelCard) else read_card(card or card_path(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint missing") from None
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "weights_only" in str(error) or "Unsupported global" in str(error):
            reason = "it holds pickled objects, not just tensors (a whole pickled model?)"
        raise CheckpointError(
            f"{path}: not loadable with weights_only=True (only state_dict checkpoints are accepted): {reason}"
        ) from error
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"{path}: not a state_dict (a mapping of parameter names to tensors)")
    check_finite_weights(state, path)
    try:
        model = build_model(card.architecture, card.in_channels, card.num_classes, card.spatial_dims)
    except (KeyError, ValueError, TypeError) as error:
        raise CheckpointError(f"{card_path(path)}: cannot build the card's network ({error})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise CheckpointError(
            f"{path}: weights do not fit {card.architecture} with {card.in_channels} channels and {card.num_classes} classes: {error}"
        ) from None
    return model.to(resolve_device(device)).eval(), card
