"""The report's note for volume-level studies: with a volume recipe, every "slice" row is a slab (or a whole
volume), and the per-slice metrics (Dice on lesion slices, agreement per slice) are per slab."""

from __future__ import annotations

import pandas as pd

from ..data.recipe import Recipe


def slab_table(recipe: Recipe, test: pd.DataFrame) -> pd.DataFrame | None:
    """One row describing the items of a volume study (None for a slice recipe): the recipe, and the
    held-out items and those holding reference foreground, counted from the Empty rows of ``test``
    (one per held-out item and fold; FN = the item's reference voxels)."""
    if recipe.spatial_dims != 3:
        return None
    empty = test[test["kind"] == "empty"]
    return pd.DataFrame(
        [
            {
                "items": f"slabs of {recipe.slab} slices" if recipe.slab else "whole volumes",
                "axis": recipe.axis,
                "stride": (recipe.stride or recipe.slab) if recipe.slab else "",
                "grid D x H x W": " x ".join(map(str, recipe.size)),
                "held-out items": len(empty),
                "with abnormality": int((empty["fn"] > 0).sum()),
                "note": "rows, 'slices' and 'lesion slices' of this report are these items (3D maps on their native voxels)",
            }
        ]
    )


__all__ = ["slab_table"]
