"""Rows of results (list of dicts or a pandas DataFrame) <-> ``vtkMRMLTableNode`` with typed columns.

Column types follow the values: bool -> ``vtkBitArray``, integers -> ``vtkIntArray``, floats ->
``vtkDoubleArray`` (NaN kept), anything else -> ``vtkStringArray``. Units and descriptions can be
attached per column (shown by Slicer's table view and written to the table's schema file).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import vtk


def _missing(value) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and bool(np.isnan(value)))


def _column_array(name: str, values: list):
    """A typed VTK array named ``name`` holding ``values``."""
    present = [v for v in values if not _missing(v)]
    if present and all(isinstance(v, (bool, np.bool_)) for v in present):
        array = vtk.vtkBitArray()
        for v in values:
            array.InsertNextValue(int(bool(v)))
    elif (
        present
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in present)
        and len(present) == len(values)
    ):
        array = vtk.vtkIntArray()
        for v in values:
            array.InsertNextValue(int(v))
    elif present and all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) for v in present
    ):
        array = vtk.vtkDoubleArray()
        for v in values:
            array.InsertNextValue(float("nan") if _missing(v) else float(v))
    else:
        array = vtk.vtkStringArray()
        for v in values:
            array.InsertNextValue("" if _missing(v) else str(v))
    array.SetName(name)
    return array


def _rows(rows) -> tuple[list[str], list[dict]]:
    """Column names (first-seen order) and rows as dicts, from a DataFrame or a sequence of mappings."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):
        columns = [str(c) for c in rows.columns]
        records = [
            {str(k): (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in rows.to_dict("records")
        ]
        return columns, records
    records = [dict(r) for r in rows]
    columns: list[str] = []
    for r in records:
        columns.extend(str(k) for k in r if str(k) not in columns)
    return columns, records


def table_node_from_rows(
    scene,
    rows: Sequence[Mapping] | object,
    name: str,
    node=None,
    units: Mapping[str, str] | None = None,
    descriptions: Mapping[str, str] | None = None,
):
    """A ``vtkMRMLTableNode`` (new, named ``name``, or ``node`` emptied and refilled) with one typed
    column per key of ``rows`` (missing values: NaN / empty string). Returns the node."""
    columns, records = _rows(rows)
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    table = vtk.vtkTable()
    for column in columns:
        table.AddColumn(_column_array(column, [r.get(column) for r in records]))
    node.SetAndObserveTable(table)
    node.SetUseColumnTitleAsColumnHeader(True)
    for column, unit in (units or {}).items():
        node.SetColumnUnitLabel(column, unit)
    for column, text in (descriptions or {}).items():
        node.SetColumnDescription(column, text)
    node.SetLocked(True)
    node.Modified()
    return node


def dataframe_from_table_node(node):
    """The table node's contents as a pandas DataFrame (bit columns as bool, int as int64, double as
    float64, strings as object)."""
    import pandas as pd

    table = node.GetTable()
    data = {}
    for c in range(table.GetNumberOfColumns()):
        array = table.GetColumn(c)
        values = [array.GetValue(r) for r in range(table.GetNumberOfRows())]
        if isinstance(array, vtk.vtkBitArray):
            values = np.array(values, dtype=bool)
        elif isinstance(array, vtk.vtkIntArray):
            values = np.array(values, dtype=np.int64)
        elif isinstance(array, vtk.vtkDoubleArray):
            values = np.array(values, dtype=np.float64)
        data[array.GetName()] = values
    return pd.DataFrame(data)
