"""Reporting: tables (Ostrowski et al. 2023 Table 1 form, threshold matrix, agreement, correlations), PNG figures
and a self-contained HTML report, all built from the study tables (slices, results, agreement,
threshold_grid, cases, provenance)."""

from .faithfulness import faithfulness_display, faithfulness_table
from .figures import (
    agreement_boxplots,
    correlation_heatmap,
    labelled_panels,
    threshold_curves,
    threshold_grid_heatmap,
)
from .honest import best_configurations, display_table, headline_sentence, headline_table, training_masks
from .html import write_report
from .tables import (
    agreement_summary,
    best_result,
    chosen_thresholds,
    config_label,
    correlation_matrix,
    correlation_table,
    external_measure,
    figure_result,
    main_table,
    markdown_table,
    threshold_table,
)

__all__ = [
    "agreement_boxplots",
    "agreement_summary",
    "best_configurations",
    "best_result",
    "chosen_thresholds",
    "config_label",
    "correlation_heatmap",
    "correlation_matrix",
    "correlation_table",
    "display_table",
    "external_measure",
    "faithfulness_display",
    "faithfulness_table",
    "figure_result",
    "main_table",
    "markdown_table",
    "headline_sentence",
    "headline_table",
    "labelled_panels",
    "threshold_curves",
    "threshold_grid_heatmap",
    "threshold_table",
    "training_masks",
    "write_report",
]
