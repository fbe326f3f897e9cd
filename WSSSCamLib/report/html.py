"""A self-contained HTML report of a study (inline CSS, no scripts, no external resources) and a
GitHub-markdown table writer for READMEs.

Images are referenced by paths relative to the report's folder, so the folder can be moved or
zipped as a whole. Every piece of text that comes from the data is escaped (html.escape).
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from ..atomic import write_text
from .honest import display_table, headline_sentence
from .tables import (
    MAIN_METRIC,
    agreement_summary,
    chosen_thresholds,
    correlation_matrix,
    correlation_table,
    markdown_table,
    measure_columns,
    threshold_table,
)

REPORT_NAME = "report.html"

_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table.data { border-collapse: collapse; font-size: .85em; margin: .5em 0 1em; }
table.data th, table.data td { border: 1px solid #ccc; padding: .25em .5em; text-align: right; }
table.data th { background: #f2f2f2; }
table.data td:first-child, table.data th:first-child { text-align: left; }
p.summary { font-size: 1.1em; background: #f6f8fa; border-left: 4px solid #0969da; padding: .6em 1em; }
figure { display: inline-block; margin: .5em 1em 1em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .85em; color: #555; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; font-size: .85em; }
.note { color: #666; font-size: .9em; }
"""

_DEFINITIONS = (
    ("Dice", "2|A and B| / (|A| + |B|) of the predicted mask A and the reference mask B."),
    ("IoU", "|A and B| / |A or B|."),
    ("Empty-mask convention", "when prediction and reference are both empty, Dice = IoU = 1."),
    (
        "pooled_fg_dice, pooled_fg_iou",
        "TP, FP and FN summed over all test slices of all folds, then "
        "2TP / (2TP + FP + FN) and TP / (TP + FP + FN) for the foreground class.",
    ),
    ("pooled_miou", "mean of the pooled background IoU and the pooled foreground IoU (counts over all test slices)."),
    ("pooled_dsc_miou", "2 mIoU / (1 + mIoU) from pooled_miou: the 'average DSC' of Ostrowski et al. 2023 (Table 1)."),
    (
        "dice_mean_abnormal_slices, iou_mean_abnormal_slices",
        "mean over the slices with abnormality (reference has foreground, TP + FN > 0) of the per-slice Dice / IoU.",
    ),
    ("dice_mean_all_slices", "mean over all test slices of the per-slice Dice (both empty = 1)."),
    ("dice_volume, iou_volume", "per case, counts summed over the case's slices."),
    (
        "Agreement",
        "per slice, the mean IoU over all unordered pairs of binarised CAMs: across CAM methods "
        "for a fixed model (Syed et al. 2023 eq. 17) or across models for a fixed CAM method (eq. 18); both empty = 1.",
    ),
    ("Empty baseline", "the all-background prediction for every slice."),
    (
        "Ensembles",
        "member thresholds (result 't1|t2') chosen by a grid search on each fold's training cases "
        "and applied unchanged to its test cases (result 'train-grid').",
    ),
    (
        "train-threshold",
        "for each single model / method and fold, the threshold rule (fixed t, percentile, mean, median, Otsu) "
        "with the best pooled DSC on the fold's training cases, applied unchanged to its test cases.",
    ),
    (
        "Best configuration",
        "the configuration whose rule chosen on the training cases has the highest training-case pooled DSC "
        "(mean over folds); configurations tied on it are all listed. No test result enters any choice.",
    ),
    (
        "a priori",
        "a rule fixed before seeing any data and using no mask: t = 0.50 on every min-max scaled map "
        "(p95 where t = 0.50 was not computed).",
    ),
    (
        "cv-threshold",
        "for fold k the fixed threshold best on the other folds' held-out cases (k-fold studies only).",
    ),
    (
        "oracle",
        "the best rule on the test cases themselves: an upper bound, shown only in a column labelled so.",
    ),
    (
        "95% CI",
        "case-level bootstrap (scipy.stats.bootstrap, percentile, 2000 resamples, seed 0) over the held-out "
        "cases; differences to Empty resample the same cases for both (paired).",
    ),
)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _table(df: pd.DataFrame, floatfmt: str = ".3f", index: bool = False) -> str:
    """DataFrame -> escaped HTML table (NaN as empty cells)."""
    df = df.copy()
    df.columns.name = None
    return df.to_html(
        index=index, escape=True, na_rep="", border=0, classes="data", float_format=lambda v: format(v, floatfmt)
    )


def _section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{_e(anchor)}">\n<h2>{_e(title)}</h2>\n{body}\n</section>\n'


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _relative_src(path: str | Path, out_dir: Path) -> str:
    """The image's path relative to ``out_dir`` as a URL (forward slashes, percent-encoded)."""
    path = Path(path)
    if path.is_absolute():
        target = path
    elif (out_dir / path).exists():
        target = out_dir / path
    else:
        target = path.resolve()
    if not target.is_file():
        raise FileNotFoundError(f"write_report: image {str(path)!r} not found (looked at {target})")
    relative = os.path.relpath(target.resolve(), out_dir.resolve())
    return quote(Path(relative).as_posix(), safe="/")


def _figures(items: Iterable[tuple[str, Path]], out_dir: Path) -> str:
    parts = []
    for caption, path in items:
        src = _e(_relative_src(path, out_dir))
        parts.append(f'<figure><img src="{src}" alt="{_e(caption)}"><figcaption>{_e(caption)}</figcaption></figure>')
    return "\n".join(parts)


def _main_section(headline: pd.DataFrame | None, training_masks: int | None, folds: int | None) -> tuple[str, str]:
    if headline is None or headline.empty:
        text = "No choices made on training cases are available, so no configuration is named best."
        return text, _note("Not available: the study has no training-case choices (no headline table).")
    body = _table(display_table(headline)) + _note(
        "Every row is the configuration under the rule chosen on each fold's training cases (single maps: "
        "train-threshold; ensembles: train-grid), measured on the held-out cases, with case-level bootstrap "
        "95% intervals; 'DSC - Empty' and 'per-case Dice - Empty' are paired differences to the Empty prediction "
        "(Empty scores 0 on the foreground and lesion-slice Dice, so those columns are their own differences). "
        "The a priori columns use no mask at all; the oracle column picks the best rule on the test cases and "
        "is an upper bound, not a result."
    )
    return headline_sentence(headline, training_masks, folds), body


def _threshold_section(results: pd.DataFrame) -> str:
    try:
        matrix = threshold_table(results, MAIN_METRIC)
    except ValueError as error:
        return _note(f"Not available: {error}")
    return _table(matrix.reset_index()) + _note(
        "pooled_dsc_miou on the held-out cases per single model / CAM method and rule: descriptive only; "
        "picking the best cell of a row would be the oracle (an upper bound), not a choice."
    )


def _agreement_section(agreement: pd.DataFrame | None) -> str:
    if agreement is None or len(agreement) == 0:
        return _note("No agreement table.")
    summary = agreement_summary(agreement)
    return _table(summary) + _note(
        "Per-slice mean pairwise IoU; kind 'methods': across CAM methods for the model "
        "in 'group'; kind 'models': across models for the CAM method in 'group'."
    )


def _correlation_section(results: pd.DataFrame, cases: pd.DataFrame | None, result: str = "t=0.50") -> str:
    measures = measure_columns(cases) if cases is not None and len(cases) else []
    measure = measures[0] if measures else None
    try:
        table = correlation_table(results, cases, measure, result)
    except ValueError as error:
        return _note(f"Not available: {error}")
    rho, p = correlation_matrix(table, "rho"), correlation_matrix(table, "p")
    cells = rho.copy().astype(object)
    for i in range(rho.shape[0]):
        for j in range(rho.shape[1]):
            r, q = float(rho.iat[i, j]), float(p.iat[i, j])
            cells.iat[i, j] = (
                ""
                if math.isnan(r)
                else (f"{r:.2f}" if math.isnan(q) or rho.index[i] == rho.columns[j] else f"{r:.2f} (p={q:.3g})")
            )
    n = int(table["n"].max()) if len(table) else 0
    text = (
        f"Spearman rho (p) between per-case CAM areas (voxels) at {result}, up to {n} cases"
        + (f"; last column: the external measure '{measure}'" if measure else "")
        + "."
    )
    if len(measures) > 1:
        text += f" Other measures in the cases table: {', '.join(measures[1:])}."
    return _table(cells, index=True) + _note(text)


def _ensemble_section(grid: pd.DataFrame | None) -> str:
    if grid is None or len(grid) == 0:
        return _note("No ensembles in this study.")
    return _table(chosen_thresholds(grid)) + _note(
        "Member thresholds chosen per fold on the training cases (score: pooled_dsc_miou there); "
        "t2 empty for the 'mean' rule."
    )


def _provenance_section(provenance: Mapping) -> str:
    provenance = dict(provenance or {})
    parts = []
    config = provenance.pop("config", None)
    if config is not None:
        parts.append(
            "<h3>Configuration</h3><pre>" + _e(json.dumps(config, indent=2, sort_keys=False, default=str)) + "</pre>"
        )
    for key, title, header in (
        ("versions", "Versions", ("package", "version")),
        ("checkpoints", "Checkpoints", ("checkpoint", "sha256")),
    ):
        value = provenance.pop(key, None)
        if isinstance(value, Mapping) and value:
            frame = pd.DataFrame({header[0]: [str(k) for k in value], header[1]: [str(v) for v in value.values()]})
            parts.append(f"<h3>{_e(title)}</h3>" + _table(frame))
        elif value:
            parts.append(f"<h3>{_e(title)}</h3><pre>{_e(json.dumps(value, indent=2, default=str))}</pre>")
    command = provenance.pop("command", provenance.pop("command_line", None))
    if command is not None:
        text = " ".join(map(str, command)) if isinstance(command, (list, tuple)) else str(command)
        parts.append(f"<h3>Command line</h3><pre>{_e(text)}</pre>")
    if provenance:
        parts.append("<h3>Other</h3><pre>" + _e(json.dumps(provenance, indent=2, default=str)) + "</pre>")
    return "\n".join(parts) if parts else _note("No provenance recorded.")


def _cases_note(cases: pd.DataFrame | None) -> str:
    if cases is None or len(cases) == 0 or "case" not in cases.columns:
        return ""
    folds = cases.loc[cases["fold"] >= 0, "fold"].nunique() if "fold" in cases.columns else None
    text = f"{cases['case'].nunique()} cases" + (f" in {folds} fold{'s' if folds != 1 else ''}" if folds else "")
    if "slices" in cases.columns:
        text += f", {int(cases['slices'].sum())} slices"
    return _note(text + ".")


def write_report(
    out_dir: str | Path,
    results: pd.DataFrame,
    agreement: pd.DataFrame | None,
    grid: pd.DataFrame | None,
    cases: pd.DataFrame | None,
    provenance: Mapping,
    figures: Mapping[str, str | Path],
    overlays: Iterable[str | Path] = (),
    title: str = "WSSSCam study",
    tables: Mapping[str, pd.DataFrame] | None = None,
    correlation_result: str = "t=0.50",
    headline: pd.DataFrame | None = None,
    training_masks: int | None = None,
) -> Path:
    """Write ``out_dir``/report.html atomically and return its path.

    Sections: summary sentence (the best configuration chosen on the training cases vs Empty, pooled
    Ostrowski et al. 2023 DSC with bootstrap intervals), main table (``headline``:
    :func:`~WSSSCamLib.report.honest.headline_table`; ``training_masks``: how many training cases' masks
    the choices used),
    threshold table, figures (``figures``: caption -> PNG path; absolute, relative to the current
    folder, or relative to ``out_dir``; referenced by relative path), agreement summary, CAM-area
    correlations (with the first external measure of ``cases``), chosen ensemble thresholds per
    fold, overlays, metric definitions and conventions, provenance. ``agreement``, ``grid`` and
    ``cases`` may be None or empty (the section says so). ``tables``: further titled tables (e.g. the
    study's statistical tests), each a section after the correlations; ``correlation_result``: the
    threshold whose CAM areas are correlated. Raises FileNotFoundError for a missing
    image and ValueError for tables that lack schema columns."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    folds = int(cases["fold"][cases["fold"] >= 0].nunique()) if cases is not None and "fold" in cases else None
    summary, main_body = _main_section(headline, training_masks, folds)
    started = (provenance or {}).get("started")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{_e(title)}</title>\n'
        f"<style>{_CSS}</style>\n</head>\n<body>\n<h1>{_e(title)}</h1>\n"
        f'<p class="note">Report written {_e(stamp)}' + (f"; study started {_e(started)}" if started else "") + "</p>\n"
    )
    body = [f'<p class="summary">{_e(summary)}</p>', _cases_note(cases)]
    body.append(
        _section("Main table: every choice made on the training cases (Ostrowski et al. 2023 form)", main_body, "main")
    )
    body.append(
        _section(
            "Pooled DSC (Ostrowski et al. 2023) of every rule on the held-out cases (descriptive)",
            _threshold_section(results),
            "thresholds",
        )
    )
    figure_items = [(str(k), Path(v)) for k, v in (figures or {}).items()]
    body.append(
        _section("Figures", _figures(figure_items, out_dir) if figure_items else _note("No figures."), "figures")
    )
    body.append(_section("Agreement", _agreement_section(agreement), "agreement"))
    body.append(
        _section("Correlation of CAM areas", _correlation_section(results, cases, correlation_result), "correlation")
    )
    for index, (caption, frame) in enumerate((tables or {}).items()):
        body.append(_section(str(caption), _table(frame) if len(frame) else _note("Nothing to show."), f"table{index}"))
    body.append(_section("Chosen ensemble thresholds per fold", _ensemble_section(grid), "ensembles"))
    overlay_items = [(Path(p).name, Path(p)) for p in overlays]
    if overlay_items:
        body.append(_section("CAM overlays", _figures(overlay_items, out_dir), "overlays"))
    definitions = (
        "<dl>\n"
        + "\n".join(f"<dt><b>{_e(name)}</b></dt><dd>{_e(text)}</dd>" for name, text in _DEFINITIONS)
        + "\n</dl>"
    )
    body.append(_section("Metric definitions and conventions", definitions, "definitions"))
    body.append(_section("Provenance", _provenance_section(provenance), "provenance"))
    document = head + "\n".join(part for part in body if part) + "\n</body>\n</html>\n"
    return write_text(out_dir / REPORT_NAME, document)


__all__ = ["REPORT_NAME", "markdown_table", "write_report"]
