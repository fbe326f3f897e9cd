"""The contract every refinement step follows: one call signature, settings as a frozen dataclass, and a
``parse``/``describe`` pair so that a configuration or command-line string can name a step.

Call: ``step(masks, maps, images=None, probabilities=None) -> refined masks``

- ``masks``: bool N x *spatial, N samples, each a 2D slice (N x H x W) or a 3D volume (N x D x H x W);
- ``maps``: float N x *spatial in [0, 1], the CAMs the masks came from (same grid, finite);
- ``images``: float N x C x *spatial, the normalised input intensities on the same grid (C channels,
  e.g. the z-scored MRI sequences the classifier saw), or None; steps that follow the image refuse None;
- ``probabilities``: float N, the classifier's target-class probability per sample, or None; steps
  that gate by the classifier refuse None.

The result is a bool tensor of the masks' shape on the masks' device. Every step works per sample;
the CPU libraries it wraps (scikit-image, cc3d, pydensecrf) run on numpy copies and the result is
moved back, as :func:`WSSSCamLib.masks.apply_threshold` does for its adaptive mode.

Names: ``"<kind>:<setting>=<value>,<setting>=<value>"``, e.g. ``"slic:n=200,compactness=0.1,min_fraction=0.5"``.
``describe()`` writes every setting (the canonical name), ``parse()`` accepts any subset in any order
(the others keep their defaults) and ``parse(step.describe()) == step``. Booleans are written
``true``/``false``; numbers as Python writes them (an integral float as ``1``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Protocol

import numpy as np
import torch

from ..errors import UserError


class RefinementError(UserError, ValueError):
    """A refinement setting or input is wrong; the message names the step, the setting and the problem."""


class MissingDependencyError(UserError, ImportError):
    """A refinement needs an optional package that is not installed; the message says how to install it."""


class Refinement(Protocol):
    """What a pipeline needs from a step (every step below is a frozen dataclass that satisfies it)."""

    kind: ClassVar[str]
    needs_images: ClassVar[bool]
    needs_probabilities: bool

    def __call__(
        self,
        masks: torch.Tensor,
        maps: torch.Tensor,
        images: torch.Tensor | None = None,
        probabilities: torch.Tensor | None = None,
    ) -> torch.Tensor: ...

    def describe(self) -> str: ...


def _field_type(field: dataclasses.Field) -> type:
    """The scalar type of a settings field from its annotation text ('float | None' -> float)."""
    text = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    kinds = {"bool": bool, "int": int, "float": float, "str": str}
    names = [part.strip() for part in text.split("|") if part.strip() != "None"]
    if len(names) != 1 or names[0] not in kinds:
        raise TypeError(f"settings field {field.name} has an unsupported type {text!r}")
    return kinds[names[0]]


def format_value(value: object) -> str:
    """A setting's text: 'true'/'false', an integral float as '1', other floats as repr, strings as they are."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _convert(kind: str, name: str, kind_type: type, text: str) -> object:
    try:
        if kind_type is bool:
            lowered = text.lower()
            if lowered in ("true", "yes", "1"):
                return True
            if lowered in ("false", "no", "0"):
                return False
            raise ValueError
        if kind_type is int:
            number = float(text)
            if not number.is_integer():
                raise ValueError
            return int(number)
        if kind_type is float:
            number = float(text)
            if not math.isfinite(number):
                raise ValueError
            return number
        return text.lower()
    except ValueError:
        expected = {bool: "true or false", int: "an integer", float: "a finite number", str: "a word"}[kind_type]
        raise RefinementError(f"{kind}: setting {name} must be {expected}, got {text!r}") from None


class Step:
    """Mixin of the refinement dataclasses: ``describe``/``parse`` over the dataclass fields (the settings).

    Subclasses set ``kind`` (the name before the colon), ``needs_images`` and are frozen dataclasses whose
    fields are scalar settings (bool, int, float, str, optionally None = "not set")."""

    kind: ClassVar[str] = ""
    needs_images: ClassVar[bool] = False

    @property
    def needs_probabilities(self) -> bool:
        return False

    def describe(self) -> str:
        """The canonical name: kind and every setting that is set, in field order; ``parse`` reads it back."""
        settings = [
            f"{f.name}={format_value(getattr(self, f.name))}"
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        ]
        return f"{self.kind}:{','.join(settings)}" if settings else self.kind

    @classmethod
    def parse(cls, text: str) -> Step:
        """``"<kind>"`` or ``"<kind>:<setting>=<value>,..."``; unknown, repeated or malformed settings are refused."""
        kind, _, rest = str(text).strip().partition(":")
        kind = kind.strip().lower()
        if kind != cls.kind:
            raise RefinementError(f"{cls.kind}: cannot parse {text!r} (it names {kind!r})")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        settings: dict[str, object] = {}
        for item in filter(None, (part.strip() for part in rest.split(","))):
            name, equals, value = item.partition("=")
            name, value = name.strip().lower(), value.strip()
            if not equals or not value:
                raise RefinementError(f"{cls.kind}: {item!r} is not <setting>=<value>; settings: {', '.join(fields)}")
            if name not in fields:
                raise RefinementError(f"{cls.kind}: unknown setting {name!r}; settings: {', '.join(fields) or 'none'}")
            if name in settings:
                raise RefinementError(f"{cls.kind}: setting {name} given twice in {text!r}")
            settings[name] = _convert(cls.kind, name, _field_type(fields[name]), value)
        return cls(**settings)


# --- checks shared by the steps ------------------------------------------------------------------------------


def check_setting(condition: bool, kind: str, name: str, problem: str, value: object) -> None:
    """Raise ``RefinementError('<kind>: setting <name> <problem>, got <value>')`` unless ``condition``."""
    if not condition:
        raise RefinementError(f"{kind}: setting {name} {problem}, got {value!r}")


def check_unit(kind: str, name: str, value: float) -> None:
    """Refuse (naming step ``kind`` and setting ``name``) a value outside [0, 1]."""
    ok = isinstance(value, (int, float)) and 0.0 <= float(value) <= 1.0
    check_setting(ok, kind, name, "must be in [0, 1]", value)


def check_positive(kind: str, name: str, value: float, integer: bool = False, zero: bool = False) -> None:
    """Refuse a value that is not a finite number > 0 (>= 0 with ``zero``; a whole number with ``integer``)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = number and (value >= 0 if zero else value > 0) and (not integer or float(value).is_integer())
    what = ("an integer" if integer else "a number") + (" >= 0" if zero else " > 0")
    check_setting(ok, kind, name, f"must be {what}", value)


def check_choice(kind: str, name: str, value: str, choices: tuple[str, ...]) -> None:
    """Refuse a value that is not one of ``choices``."""
    check_setting(value in choices, kind, name, f"must be one of {', '.join(choices)}", value)


def check_inputs(
    kind: str,
    masks: torch.Tensor,
    maps: torch.Tensor,
    images: torch.Tensor | None,
    probabilities: torch.Tensor | None,
    need_images: bool = False,
    need_probabilities: bool = False,
    dims: tuple[int, ...] = (2, 3),
) -> None:
    """Refuse inputs that break the contract of the module docstring; messages name the step and the input."""
    if not isinstance(masks, torch.Tensor) or masks.dtype != torch.bool:
        got = getattr(masks, "dtype", type(masks))
        raise RefinementError(f"{kind}: masks must be a bool tensor N x *spatial, got {got}")
    if masks.ndim - 1 not in dims or masks.shape[0] == 0:
        wanted = " or ".join(("N x H x W", "N x D x H x W")[d - 2] for d in dims)
        raise RefinementError(
            f"{kind}: masks must be {wanted} with N >= 1, got shape {tuple(masks.shape)}"
            + (" (this step is 2D only)" if dims == (2,) and masks.ndim == 4 else "")
        )
    if not isinstance(maps, torch.Tensor) or not maps.is_floating_point() or maps.shape != masks.shape:
        raise RefinementError(
            f"{kind}: maps must be a float tensor of the masks' shape {tuple(masks.shape)}, "
            f"got {getattr(maps, 'dtype', type(maps))} {tuple(getattr(maps, 'shape', ()))}"
        )
    if images is None:
        if need_images:
            raise RefinementError(f"{kind}: needs images (N x C x *spatial, the normalised intensities), got None")
    elif (
        not isinstance(images, torch.Tensor)
        or not images.is_floating_point()
        or images.ndim != masks.ndim + 1
        or images.shape[0] != masks.shape[0]
        or images.shape[2:] != masks.shape[1:]
        or images.shape[1] == 0
    ):
        raise RefinementError(
            f"{kind}: images must be a float tensor N x C x *spatial matching masks "
            f"{tuple(masks.shape)}, "
            f"got {getattr(images, 'dtype', type(images))} {tuple(getattr(images, 'shape', ()))}"
        )
    elif need_images and not bool(torch.isfinite(images).all()):
        raise RefinementError(f"{kind}: images contain NaN or infinite values")
    if probabilities is None:
        if need_probabilities:
            raise RefinementError(f"{kind}: gating needs the classifier probabilities (N floats), got None")
    elif tuple(torch.as_tensor(probabilities).shape) != (masks.shape[0],):
        raise RefinementError(
            f"{kind}: probabilities must have shape ({masks.shape[0]},), "
            f"got {tuple(torch.as_tensor(probabilities).shape)}"
        )


def in_dtype_of(value: float, maps: torch.Tensor) -> float:
    """A cut as the nearest number of the maps' dtype (0.6 -> float32(0.6) for float32 maps), so that cuts
    compare with map values as in :mod:`WSSSCamLib.masks` ("cuts are compared in the maps' dtype")."""
    return float(torch.tensor(value, dtype=maps.dtype))


def to_numpy(tensor: torch.Tensor, dtype=None) -> np.ndarray:
    """A CPU numpy copy (float64 for floats unless ``dtype``)."""
    array = tensor.detach().cpu()
    if array.is_floating_point():
        array = array.double()
    out = array.numpy()
    return out.astype(dtype) if dtype is not None else out


def channels_last(image: np.ndarray) -> tuple[np.ndarray, int | None]:
    """C x *spatial -> (*spatial x C, channel_axis=-1), or (*spatial, None) for one channel (scikit-image style)."""
    if image.shape[0] == 1:
        return image[0], None
    return np.moveaxis(image, 0, -1), -1


def back(array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """A bool numpy result onto the device of ``like``."""
    return torch.from_numpy(np.ascontiguousarray(array, dtype=bool)).to(like.device)
