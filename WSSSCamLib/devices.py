"""Choosing the compute device: ``auto | cpu | cuda | cuda:N``."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> the first CUDA device if there is one, else the CPU; otherwise ``torch.device(device)``.

    Raises ``ValueError`` for a CUDA device that does not exist here.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda":
        count = torch.cuda.device_count()
        index = resolved.index or 0
        if index >= count:
            raise ValueError(f"device '{device}' does not exist: this machine has {count} CUDA device(s)")
    return resolved
