"""A pipeline of refinement steps applied in order, and parsing any step or pipeline from its name.

A pipeline's name joins its steps' names with ``" | "``, e.g.
``"slic:n=200,compactness=0.1,min_fraction=0.5 | components:keep=peak,gate=true"``; ``"none"`` (or an
empty string) is the empty pipeline, which returns the masks unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .base import Refinement, RefinementError
from .components import Components, Gate
from .crf import DenseCrf
from .random_walker import RandomWalker
from .superpixels import Felzenszwalb, Slic

STEPS: dict[str, type] = {step.kind: step for step in (Slic, Felzenszwalb, RandomWalker, DenseCrf, Components, Gate)}
"""kind -> step class, the names a configuration or command line can use."""

SEPARATOR = "|"
NONE = "none"


def parse_refinement(text: str) -> Refinement:
    """One step from its name (``"<kind>"`` or ``"<kind>:<setting>=<value>,..."``)."""
    kind = str(text).strip().partition(":")[0].strip().lower()
    if kind not in STEPS:
        raise RefinementError(f"refinement: unknown step {kind!r} in {str(text).strip()!r}; steps: {', '.join(STEPS)}")
    return STEPS[kind].parse(text)


@dataclass(frozen=True)
class Pipeline:
    """Steps applied in order, each to the previous step's masks (same maps, images and probabilities)."""

    steps: tuple[Refinement, ...] = ()

    def __post_init__(self) -> None:
        steps = tuple(self.steps)
        for index, step in enumerate(steps):
            if not callable(step) or not hasattr(step, "describe"):
                raise RefinementError(f"pipeline: step {index} is not a refinement step: {step!r}")
        object.__setattr__(self, "steps", steps)

    @property
    def needs_images(self) -> bool:
        return any(step.needs_images for step in self.steps)

    @property
    def needs_probabilities(self) -> bool:
        return any(step.needs_probabilities for step in self.steps)

    def __call__(
        self,
        masks: torch.Tensor,
        maps: torch.Tensor,
        images: torch.Tensor | None = None,
        probabilities: torch.Tensor | None = None,
    ) -> torch.Tensor:
        for step in self.steps:
            masks = step(masks, maps, images, probabilities)
        return masks

    def describe(self) -> str:
        return f" {SEPARATOR} ".join(step.describe() for step in self.steps) if self.steps else NONE

    @classmethod
    def parse(cls, text: str | Sequence[str]) -> Pipeline:
        """A pipeline from its name (steps joined by ``|``) or from a list of step names (e.g. a YAML list)."""
        parts = str(text).split(SEPARATOR) if isinstance(text, str) else [str(part) for part in text]
        parts = [part.strip() for part in parts]
        if len(parts) == 1 and parts[0].lower() in ("", NONE):
            return cls(())
        for index, part in enumerate(parts):
            if not part:
                raise RefinementError(f"pipeline: step {index} of {text!r} is empty")
        return cls(tuple(parse_refinement(part) for part in parts))
