"""Choosing the compute device: ``auto | cpu | cuda | cuda:N | mps``.

:func:`check_device` validates the spelling (at configuration load time, without touching a GPU);
:func:`resolve_device` also checks that the device exists here, and is called before any work starts.
"""

from __future__ import annotations

import re

import torch

from .errors import UserError

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"


class DeviceError(UserError, ValueError):
    """A device string is malformed or names a device this machine does not have."""


def check_device(device: object, where: str = "device") -> str:
    """``device`` when it is spelled ``auto | cpu | cuda | cuda:N | mps``; else :class:`DeviceError` naming ``where``."""
    if isinstance(device, torch.device):
        return str(device)
    if not isinstance(device, str) or not DEVICE_PATTERN.match(device):
        raise DeviceError(f"{where}: '{device}' is not a device; expected {DEVICE_CHOICES}")
    return device


def resolve_device(device: str | torch.device = "auto", where: str = "device") -> torch.device:
    """``auto`` -> the first CUDA device if there is one, else the CPU; otherwise that device.

    Raises :class:`DeviceError` (a ``ValueError``) for a malformed name or a device that does not exist here.
    """
    if isinstance(device, torch.device):
        return device
    device = check_device(device, where)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = resolved.index or 0
        if index >= count:
            raise DeviceError(f"{where}: device '{device}' does not exist: this machine has {count} CUDA device(s)")
    if resolved.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise DeviceError(f"{where}: device 'mps' is not available on this machine")
    return resolved
