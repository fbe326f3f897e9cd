"""Refinement of CAM masks (maps -> masks -> refined masks): composable steps after thresholds and ensembles.

Every step has one signature, ``step(masks, maps, images=None, probabilities=None) -> masks`` (bool
N x *spatial; see :mod:`.base` for the shapes), carries its settings as a frozen dataclass and is named
by a string ``"<kind>:<setting>=<value>,..."`` (``describe`` / ``parse``). Steps:

- ``slic``, ``felzenszwalb``: superpixel pooling on the image (Achanta et al. 2012; Felzenszwalb and
  Huttenlocher 2004, 2D only), :mod:`.superpixels`;
- ``random_walker``: seeded from confident CAM foreground and background (Grady 2006), :mod:`.random_walker`;
- ``crf``: dense CRF with the CAM as unary (Krähenbühl and Koltun 2011; optional pydensecrf2), :mod:`.crf`;
- ``components``: connected components kept by CAM peak, size or peak value, optional classifier
  gating; ``gate``: the gating alone, :mod:`.components`.

:class:`Pipeline` applies steps in order; :func:`parse_refinement` reads any step's name.
"""

from .base import MissingDependencyError, Refinement, RefinementError
from .components import Components, Gate
from .crf import DenseCrf
from .pipeline import STEPS, Pipeline, parse_refinement
from .random_walker import RandomWalker
from .superpixels import Felzenszwalb, Slic

__all__ = [
    "STEPS",
    "Components",
    "DenseCrf",
    "Felzenszwalb",
    "Gate",
    "MissingDependencyError",
    "Pipeline",
    "RandomWalker",
    "Refinement",
    "RefinementError",
    "Slic",
    "parse_refinement",
]
