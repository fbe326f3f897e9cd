"""The panel's rules (WSSSCamLib.panel), headless: each test names the defect of issue 12 it guards."""

from __future__ import annotations

import pytest

from WSSSCamLib.masks import Threshold
from WSSSCamLib.panel import (
    THRESHOLD_SPECS,
    ApplyState,
    apply_blocker,
    channel_order,
    checkpoint_or_none,
    checkpoint_to_remember,
    default_export_directory,
    initial_checkpoint,
    result_prefix,
    segment_to_select,
    target_class,
    threshold_argument,
    threshold_spec,
    threshold_value,
)


def ready(**changes) -> ApplyState:
    fields = {
        "has_input_volume": True,
        "checkpoint": "/models/fold0.pt",
        "card_error": None,
        "methods": ["grad-cam"],
        "threshold_mode": "fixed",
        "threshold_value": 0.5,
        "ensemble_rule": "none",
        "running": False,
    }
    fields.update(changes)
    return ApplyState(**fields)


# --- defect 2: a chosen checkpoint snaps back to "." and Apply never enables ---------------------


def test_unset_checkpoint_is_dot_or_empty_and_never_remembered():
    assert checkpoint_or_none(".") is None and checkpoint_or_none("") is None and checkpoint_or_none(None) is None
    assert checkpoint_to_remember(".", card_read=True) is None
    assert checkpoint_to_remember("/m/a.pt", card_read=False) is None
    assert checkpoint_to_remember("/m/a.pt", card_read=True) == "/m/a.pt"


def test_remembered_checkpoint_survives_start_up_with_an_empty_parameter_node(tmp_path):
    remembered = tmp_path / "fold0.pt"
    remembered.write_bytes(b"x")
    # the parameter node's default Path() reads "." -> the remembered file is used, not overwritten
    assert initial_checkpoint(".", str(remembered)) == str(remembered)
    assert initial_checkpoint("/scene/model.pt", str(remembered)) == "/scene/model.pt"
    assert initial_checkpoint(".", str(tmp_path / "gone.pt")) is None


def test_apply_enables_once_volume_checkpoint_and_method_are_set():
    assert apply_blocker(ready()) == ""
    assert "checkpoint" in apply_blocker(ready(checkpoint="."))
    assert "input volume" in apply_blocker(ready(has_input_volume=False))
    assert "method" in apply_blocker(ready(methods=[]))
    assert "cannot be used" in apply_blocker(ready(card_error="no model card"))
    assert "running" in apply_blocker(ready(running=True))


# --- defect 3: percentile and adaptive modes cannot be selected ---------------------------------


@pytest.mark.parametrize(
    ("mode", "default", "minimum", "maximum", "step", "decimals"),
    [("fixed", 0.5, 0.0, 1.0, 0.01, 2), ("percentile", 95.0, 1.5, 99.5, 0.5, 1), ("adaptive", 15.0, 3.0, 99.0, 2.0, 0)],
)
def test_each_valued_mode_has_its_range_step_and_default(mode, default, minimum, maximum, step, decimals):
    spec = threshold_spec(mode)
    assert (spec.enabled, spec.default, spec.minimum, spec.maximum, spec.step, spec.decimals) == (
        True,
        default,
        minimum,
        maximum,
        step,
        decimals,
    )
    # the step fits the range (ctkSliderWidget rejects a step larger than its range: defect 4's adaptive slider)
    assert spec.step <= spec.maximum - spec.minimum
    assert spec.valid(default)


def test_switching_mode_gives_a_value_valid_in_the_new_mode():
    # from fixed 0.5 to percentile / adaptive: the defaults, which the library accepts
    assert threshold_value("percentile", 0.5) == 95.0
    assert threshold_value("adaptive", 0.5) == 15.0
    assert threshold_value("adaptive", 95.0) == 95.0 and threshold_value("adaptive", 96.0) == 15.0  # odd only
    assert threshold_value("fixed", 95.0) == 0.5
    assert threshold_value("percentile", 90.0) == 90.0  # a valid user value is kept
    for mode in THRESHOLD_SPECS:
        Threshold(mode, threshold_argument(mode, 0.5))  # raises if the library would reject it


def test_apply_refuses_a_value_invalid_for_its_mode_and_mean_ensemble_without_fixed():
    assert "not valid" in apply_blocker(ready(threshold_mode="fixed", threshold_value=95.0))
    assert "not valid" in apply_blocker(ready(threshold_mode="adaptive", threshold_value=14.0))
    assert apply_blocker(ready(threshold_mode="otsu", threshold_value=95.0)) == ""
    assert "mean" in apply_blocker(ready(threshold_mode="percentile", threshold_value=95.0, ensemble_rule="mean"))


# --- defect 4 ------------------------------------------------------------------------------------


def test_target_class_defaults_to_the_last_class_and_a_saved_class_survives():
    assert target_class(["normal", "lesion"], "") == "lesion"
    assert target_class(["normal", "lesion"], "normal") == "normal"
    assert target_class(["a", "b", "c"], "gone") == "c"
    assert target_class([], "x") == ""


def test_saved_segment_id_is_restored_after_a_scene_load():
    assert segment_to_select("Segment_2", ["Segment_1", "Segment_2"]) == "Segment_2"
    assert segment_to_select("", ["Segment_1", "Segment_2"]) == "Segment_1"
    assert segment_to_select("gone", []) == ""


def test_exports_default_to_documents_or_home_never_the_working_directory(tmp_path, monkeypatch):
    documents = tmp_path / "Documents"
    documents.mkdir()
    saved = tmp_path / "exports"
    saved.mkdir()
    monkeypatch.chdir(tmp_path)
    assert default_export_directory(str(saved), str(documents), str(tmp_path)) == str(saved)
    assert default_export_directory("", str(documents), str(tmp_path)) == str(documents)
    assert default_export_directory(".", None, "/home/u") == "/home/u"
    assert default_export_directory("relative", str(tmp_path / "missing"), "/home/u") == "/home/u"


def test_result_names_carry_the_volume_name():
    assert result_prefix("FLAIR") == "WSSSCam FLAIR"
    assert (
        result_prefix("FLAIR", taken_by_other_volume=True, volume_id="vtkMRMLScalarVolumeNode3")
        == "WSSSCam FLAIR (vtkMRMLScalarVolumeNode3)"
    )


def test_extra_channels_follow_the_model_card_order():
    # selected in scene order T1, FLAIR after the input; the card says FLAIR, T1, T2
    assert channel_order(["case7 T2", "case7 T1", "case7 FLAIR"], ["FLAIR", "T1", "T2"]) == [2, 1, 0]
    # one unnamed volume left for one channel
    assert channel_order(["flair", "volume 2"], ["FLAIR", "T1"]) == [0, 1]
    assert channel_order(["anything"], ["FLAIR"]) == [0]
    with pytest.raises(ValueError, match="2 channel"):
        channel_order(["a"], ["FLAIR", "T1"])
    with pytest.raises(ValueError, match="which volume"):
        channel_order(["a", "b", "c"], ["FLAIR", "T1", "T2"])
