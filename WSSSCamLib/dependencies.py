"""Reading the pinned requirements the Slicer module installs (``WSSSCam/Resources/requirements*.txt``,
equal to the pins of ``pyproject.toml``), without Slicer or Qt.

Conventions: one requirement per line in PEP 508 form; blank lines, ``#`` comments and pip options
(lines starting with ``-``) are skipped; distribution names compare case-insensitively with ``-``,
``_`` and ``.`` equivalent (PEP 503). torch and torchvision go to the PyTorch extension's installer
(it chooses the CUDA build); everything else to pip.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

PYTORCH_DISTRIBUTIONS = ("torch", "torchvision")


def read_requirements(text: str) -> list[str]:
    """The requirement lines of a requirements file's text, in order."""
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith(("#", "-"))]


def requirement_name(requirement: str) -> str:
    """The canonical distribution name of a requirement ('PyYAML>=6' -> 'pyyaml')."""
    name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if name is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", name.group(1)).lower()


def requirement_specifier(requirement: str) -> str:
    """The version part of a requirement ('torch>=2.2,<=2.14.1' -> '>=2.2,<=2.14.1')."""
    return requirement[len(re.match(r"\s*[A-Za-z0-9._-]+(\[[^\]]*\])?", requirement).group(0)) :].split(";")[0].strip()


def split_pytorch(requirements: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """(torch/torchvision name -> version specifier, the other requirements)."""
    pytorch, others = {}, []
    for requirement in requirements:
        name = requirement_name(requirement)
        if name in PYTORCH_DISTRIBUTIONS:
            pytorch[name] = requirement_specifier(requirement)
        else:
            others.append(requirement)
    return pytorch, others


def missing_requirements(requirements: Sequence[str], installed_version: Callable[[str], str | None]) -> list[str]:
    """The requirements whose distribution is not installed (``installed_version(name)`` is None).
    Version ranges of installed distributions are left to ``slicer.packaging.pip_ensure``."""
    return [r for r in requirements if installed_version(requirement_name(r)) is None]


def installed_version(name: str) -> str | None:
    """The installed version of a distribution, or None (``importlib.metadata``)."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
