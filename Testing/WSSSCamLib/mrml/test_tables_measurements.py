"""Table nodes with typed columns, and measurements against a reference segment, under slicer-core."""

import numpy as np
import pandas as pd
import pytest
import slicer
import vtk

from WSSSCamLib.data.volume import affine_from_geometry
from WSSSCamLib.mrml import (
    agreement_rows,
    array_to_volume_node,
    dataframe_from_table_node,
    masks_to_segmentation,
    measure_masks,
    measure_segments,
    pairwise_iou_rows,
    table_node_from_rows,
)


def test_rows_become_typed_columns_and_come_back():
    scene = slicer.vtkMRMLScene()
    rows = [
        {"result": "grad-cam", "dice": 0.5, "voxels": 12, "empty": False},
        {"result": "and", "dice": float("nan"), "voxels": 0, "empty": True},
    ]
    node = table_node_from_rows(
        scene, rows, "metrics", units={"dice": "1"}, descriptions={"voxels": "foreground voxels"}
    )
    table = node.GetTable()
    assert node.IsA("vtkMRMLTableNode") and node.GetName() == "metrics"
    assert (table.GetNumberOfRows(), table.GetNumberOfColumns()) == (2, 4)
    types = [type(table.GetColumn(c)) for c in range(4)]
    assert types == [vtk.vtkStringArray, vtk.vtkDoubleArray, vtk.vtkIntArray, vtk.vtkBitArray]
    assert node.GetColumnUnitLabel("dice") == "1" and node.GetColumnDescription("voxels") == "foreground voxels"
    frame = dataframe_from_table_node(node)
    assert list(frame.columns) == ["result", "dice", "voxels", "empty"]
    assert frame["result"].tolist() == ["grad-cam", "and"]
    assert frame["dice"][0] == 0.5 and np.isnan(frame["dice"][1])
    assert frame["voxels"].dtype == np.int64 and frame["voxels"].tolist() == [12, 0]
    assert frame["empty"].dtype == bool and frame["empty"].tolist() == [False, True]
    # a DataFrame refills the same node; missing values in a row give NaN / empty string
    again = table_node_from_rows(scene, pd.DataFrame({"a": [1.5, 2.5], "b": ["x", None]}), "ignored", node=node)
    assert again is node and dataframe_from_table_node(node).to_dict("list") == {"a": [1.5, 2.5], "b": ["x", ""]}
    mixed = table_node_from_rows(scene, [{"n": 1}, {"n": 2.5}, {}], "mixed")
    values = dataframe_from_table_node(mixed)["n"].tolist()
    assert values[:2] == [1.0, 2.5] and np.isnan(values[2])


def test_measure_masks_by_hand():
    reference = np.zeros((2, 4, 4), bool)
    reference[0, :2, :2] = True  # 4 voxels
    result = np.zeros((2, 4, 4), bool)
    result[0, :2, :1] = True  # 2 voxels, both inside
    result[1, 3, 3] = True  # 1 outside
    affine = affine_from_geometry([0.5, 2.0, 4.0], [0, 0, 0], np.eye(3))  # 4 mm^3 per voxel
    (row,) = measure_masks({"r": result}, reference, affine)
    # |A and B| = 2, |A| = 3, |B| = 4: Dice = 4 / 7, IoU = 2 / 5
    assert row["dice"] == pytest.approx(4 / 7, abs=1e-12) and row["iou"] == pytest.approx(0.4, abs=1e-12)
    assert row["volume_cc"] == pytest.approx(3 * 4 / 1000, abs=1e-15) and row["reference_cc"] == pytest.approx(
        0.016, abs=1e-15
    )
    assert (row["voxels"], row["reference_voxels"]) == (3, 4)
    empty = measure_masks({"e": np.zeros((1, 1, 2), bool)}, np.zeros((1, 1, 2), bool), np.eye(4))[0]
    assert (empty["dice"], empty["iou"]) == (1.0, 1.0)
    with pytest.raises(ValueError, match="shape"):
        measure_masks({"bad": np.zeros((1, 1, 3), bool)}, np.zeros((1, 1, 2), bool), np.eye(4))


def test_agreement_across_methods_and_models_by_hand():
    a = np.array([[[1, 1, 0, 0]]], bool)
    b = np.array([[[1, 0, 0, 0]]], bool)
    c = np.array([[[1, 1, 1, 1]]], bool)
    rows = pairwise_iou_rows({"a": a, "b": b, "c": c}, "across methods", "m1")
    assert [(r["a"], r["b"]) for r in rows] == [("a", "b"), ("a", "c"), ("b", "c")]
    np.testing.assert_allclose([r["iou"] for r in rows], [0.5, 0.5, 0.25], atol=1e-12)
    results = {
        ("resnet", "grad-cam"): a,
        ("resnet", "layer-cam"): b,
        ("resnet", "score-cam"): c,
        ("densenet", "grad-cam"): c,
    }
    summary = agreement_rows(results)
    assert [(r["agreement"], r["fixed"], r["pairs"]) for r in summary] == [
        ("across methods", "resnet", 3),
        ("across models", "grad-cam", 1),
    ]
    assert summary[0]["mean_iou"] == pytest.approx(1.25 / 3, abs=1e-12)
    assert (summary[0]["min_iou"], summary[0]["max_iou"]) == (0.25, 0.5)
    assert summary[1]["mean_iou"] == pytest.approx(0.5, abs=1e-12) and summary[1]["members"] == "resnet, densenet"


def test_measure_segments_of_segmentation_nodes():
    scene = slicer.vtkMRMLScene()
    affine = affine_from_geometry([1.0, 1.0, 2.5], [3, 4, 5], np.eye(3))  # 2.5 mm^3 per voxel
    volume = array_to_volume_node(scene, np.zeros((3, 4, 5), np.float32), affine, "MR")
    reference = np.zeros((3, 4, 5), bool)
    reference[1, 1:3, 1:4] = True  # 6 voxels
    result = np.zeros((3, 4, 5), bool)
    result[1, 1:3, 1:3] = True  # 4 voxels inside
    reference_node = masks_to_segmentation(scene, {"lesion": reference}, volume, name="reference")
    results_node = masks_to_segmentation(scene, {"grad-cam": result, "empty": np.zeros_like(result)}, volume)
    rows = measure_segments(scene, results_node, None, reference_node, "lesion", volume)
    assert [r["result"] for r in rows] == ["grad-cam", "empty"]
    assert rows[0]["dice"] == pytest.approx(0.8, abs=1e-12) and rows[0]["iou"] == pytest.approx(4 / 6, abs=1e-12)
    assert rows[0]["volume_cc"] == pytest.approx(0.01, abs=1e-15) and rows[0]["reference_cc"] == pytest.approx(
        0.015, abs=1e-15
    )
    assert rows[1]["dice"] == 0.0 and rows[1]["voxels"] == 0
