"""How much of the gap between CAMs and full supervision a pseudo-label segmentation network closes.

From the headline table (:func:`~WSSSCamLib.report.honest.headline_table`; rows of kind ``segmentation`` come
from the study's ``segment`` stage), per headline metric m (pooled DSC, pooled foreground Dice, Dice on slices
with abnormality, per-case Dice; :data:`~WSSSCamLib.report.honest.METRICS`) and per anchor:

    gap closed = (m(network) - m(anchor)) / (m(supervised U-Net) - m(anchor))

Two anchors, both chosen on the training cases only (the first listed when several tie): ``best CAM``, the
configuration the report names best among single maps and ensembles, and ``best refined CAM``, the best refined
configuration (where the study has refinements). Pseudo-labels made from a refined CAM owe part of their gain
over the best CAM to the refinement; the gap from the best refined CAM counts the network's own part. The
network is the pseudo-label U-Net (and the self-trained U-Net where there is one). 0: no better than the
anchor; 1: as good as the supervised network; negative: worse than the anchor. Undefined (NaN) when a row is
missing or the supervised network does not beat the anchor (denominator <= 0).
"""

from __future__ import annotations

import math

import pandas as pd

from .honest import METRIC_NAMES, METRICS
from .tables import SEGMENTATION

PSEUDO = "pseudo-label U-Net"
SELF_TRAINED = "self-trained U-Net"
SUPERVISED = "supervised U-Net"
"""The segmentation networks' names in the study tables (model column, kind ``segmentation``)."""
GAP_COLUMNS = [
    "network",
    "anchor",
    "anchor_configuration",
    "metric",
    "metric_name",
    "anchor_value",
    "network_value",
    "supervised",
    "gap_closed",
]
ANCHORS = {"best CAM": "best", "best refined CAM": "best_refined"}
"""Anchor name -> the headline column that marks it."""


def _network_row(headline: pd.DataFrame, name: str) -> pd.Series | None:
    rows = headline[(headline["kind"] == SEGMENTATION) & (headline["model"] == name)]
    return rows.iloc[0] if not rows.empty else None


def _anchor_row(headline: pd.DataFrame, column: str) -> pd.Series | None:
    marked = headline[headline[column].astype(bool)] if column in headline else headline.iloc[0:0]
    return marked.iloc[0] if not marked.empty else None


def gap_closed(headline: pd.DataFrame) -> pd.DataFrame:
    """One row per network (pseudo-label, self-trained) x anchor (best CAM, best refined CAM) x metric with the
    anchor's, the network's and the supervised U-Net's held-out value and the fraction of the gap closed (see the
    module docstring); empty when the headline has no pseudo-label network."""
    if headline.empty or "kind" not in headline:
        return pd.DataFrame(columns=GAP_COLUMNS)
    supervised = _network_row(headline, SUPERVISED)
    rows = []
    for name in (PSEUDO, SELF_TRAINED):
        network = _network_row(headline, name)
        if network is None:
            continue
        for anchor, column in ANCHORS.items():
            anchor_row = _anchor_row(headline, column)
            if anchor_row is None and column != "best":
                continue  # no refinements in this study
            for metric in METRICS:
                low = float(anchor_row[metric]) if anchor_row is not None else math.nan
                high = float(supervised[metric]) if supervised is not None else math.nan
                value = float(network[metric])
                gap = high - low
                closed = (value - low) / gap if math.isfinite(gap) and gap > 0 and math.isfinite(value) else math.nan
                rows.append(
                    {
                        "network": name,
                        "anchor": anchor,
                        "anchor_configuration": anchor_row["configuration"] if anchor_row is not None else None,
                        "metric": metric,
                        "metric_name": METRIC_NAMES[metric],
                        "anchor_value": low,
                        "network_value": value,
                        "supervised": high,
                        "gap_closed": closed,
                    }
                )
    return pd.DataFrame(rows, columns=GAP_COLUMNS)


def gap_title(headline: pd.DataFrame) -> str:
    """The report section's title, naming the best CAM it is measured from."""
    return (
        "Gap closed by the pseudo-label U-Net: (network - anchor) / (supervised U-Net - anchor), held-out cases; "
        "anchors (best CAM, best refined CAM) chosen on the training cases. Same network, epochs, seed and folds for "
        "both U-Nets; the supervised one sees every training slice, the pseudo-label one the slices its filter keeps."
    )


__all__ = ["ANCHORS", "GAP_COLUMNS", "PSEUDO", "SELF_TRAINED", "SUPERVISED", "gap_closed", "gap_title"]
