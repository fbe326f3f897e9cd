"""How much of the gap between CAMs and full supervision a pseudo-label segmentation network closes.

From the headline table (:func:`~WSSSCamLib.report.honest.headline_table`; rows of kind ``segmentation`` come
from the study's ``segment`` stage), per headline metric m (pooled DSC, pooled foreground Dice, Dice on slices
with abnormality, per-case Dice; :data:`~WSSSCamLib.report.honest.METRICS`):

    gap closed = (m(network) - m(best CAM)) / (m(supervised U-Net) - m(best CAM))

where the best CAM is the configuration the report names best, chosen on the training cases only (the first
listed when several tie), and the network is the pseudo-label U-Net (and the self-trained U-Net where there is
one). 0: no better than the best CAM; 1: as good as the supervised network; negative: worse than the best CAM.
Undefined (NaN) when a row is missing or the supervised network does not beat the best CAM (denominator <= 0).
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
GAP_COLUMNS = ["network", "metric", "metric_name", "best_cam", "network_value", "supervised", "gap_closed"]


def _network_row(headline: pd.DataFrame, name: str) -> pd.Series | None:
    rows = headline[(headline["kind"] == SEGMENTATION) & (headline["model"] == name)]
    return rows.iloc[0] if not rows.empty else None


def gap_closed(headline: pd.DataFrame) -> pd.DataFrame:
    """One row per network (pseudo-label, self-trained) x metric with the best CAM's, the network's and the
    supervised U-Net's held-out value and the fraction of the gap closed (see the module docstring); empty
    when the headline has no pseudo-label network."""
    if headline.empty or "kind" not in headline:
        return pd.DataFrame(columns=GAP_COLUMNS)
    best = headline[headline["best"].astype(bool)] if "best" in headline else headline.iloc[0:0]
    best_row = best.iloc[0] if not best.empty else None
    supervised = _network_row(headline, SUPERVISED)
    rows = []
    for name in (PSEUDO, SELF_TRAINED):
        network = _network_row(headline, name)
        if network is None:
            continue
        for metric in METRICS:
            low = float(best_row[metric]) if best_row is not None else math.nan
            high = float(supervised[metric]) if supervised is not None else math.nan
            value = float(network[metric])
            gap = high - low
            closed = (value - low) / gap if math.isfinite(gap) and gap > 0 and math.isfinite(value) else math.nan
            rows.append(
                {
                    "network": name,
                    "metric": metric,
                    "metric_name": METRIC_NAMES[metric],
                    "best_cam": low,
                    "network_value": value,
                    "supervised": high,
                    "gap_closed": closed,
                }
            )
    return pd.DataFrame(rows, columns=GAP_COLUMNS)


def gap_title(headline: pd.DataFrame) -> str:
    """The report section's title, naming the best CAM it is measured from."""
    best = headline[headline["best"].astype(bool)] if "best" in headline else headline.iloc[0:0]
    name = best.iloc[0]["configuration"] if not best.empty else "none"
    return (
        "Gap closed by the pseudo-label U-Net: (network - best CAM) / (supervised U-Net - best CAM), held-out cases "
        f"(best CAM chosen on the training cases: {name})"
    )


__all__ = ["GAP_COLUMNS", "PSEUDO", "SELF_TRAINED", "SUPERVISED", "gap_closed", "gap_title"]
