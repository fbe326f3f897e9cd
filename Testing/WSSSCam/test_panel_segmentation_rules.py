"""The panel's rules for segmentation checkpoints (WSSSCamLib.panel), headless: which methods and
settings apply, what the run is given, when Apply may run."""

from __future__ import annotations

from types import SimpleNamespace

from WSSSCamLib.panel import (
    CLASSIFIER,
    SEGMENTATION,
    ApplyState,
    apply_blocker,
    checkpoint_kind,
    kinds_note,
    methods_to_run,
    offered_methods,
    panel_controls,
    target_class_argument,
)

METHODS = ("grad-cam", "layer-cam", "seg-grad-cam", "seg-hires-grad-cam")


def state(**changes) -> ApplyState:
    fields = {
        "has_input_volume": True,
        "checkpoint": "/models/unet.pt",
        "card_error": None,
        "methods": ["grad-cam"],
        "threshold_mode": "fixed",
        "threshold_value": 0.5,
        "ensemble_rule": "none",
        "running": False,
        "checkpoint_kinds": (SEGMENTATION,),
        "has_region": False,
    }
    fields.update(changes)
    return ApplyState(**fields)


def test_the_kind_comes_from_the_card():
    from WSSSCamLib.models.card import ModelCard

    unet = ModelCard("monai-unet", 1, 2, ["background", "abnormal"], ["FLAIR"])
    cnn = ModelCard("small-cnn", 1, 2, ["normal", "lesion"], ["FLAIR"])
    assert checkpoint_kind(unet) == SEGMENTATION and checkpoint_kind(cnn) == CLASSIFIER
    assert checkpoint_kind(SimpleNamespace()) == CLASSIFIER  # a card-like object without the property


def test_each_kind_offers_the_methods_that_explain_it():
    assert offered_methods(METHODS, [SEGMENTATION]) == {
        "grad-cam": False,
        "layer-cam": False,
        "seg-grad-cam": True,
        "seg-hires-grad-cam": True,
    }
    assert offered_methods(METHODS, [CLASSIFIER]) == {
        "grad-cam": True,
        "layer-cam": True,
        "seg-grad-cam": False,
        "seg-hires-grad-cam": False,
    }
    assert all(offered_methods(METHODS, [CLASSIFIER, SEGMENTATION]).values())
    assert all(offered_methods(METHODS, []).values())  # no card read yet: nothing is disabled


def test_the_run_gets_only_the_methods_that_apply_and_none_for_a_segmentation_network_alone():
    # grad-cam is the default check: for a U-Net alone it is not passed (no CAM needed)
    assert methods_to_run(["grad-cam"], [SEGMENTATION]) == []
    assert methods_to_run(["grad-cam", "seg-grad-cam"], [SEGMENTATION]) == ["seg-grad-cam"]
    assert methods_to_run(["grad-cam", "seg-grad-cam"], [CLASSIFIER, SEGMENTATION]) == ["grad-cam", "seg-grad-cam"]
    assert methods_to_run(["seg-grad-cam"], [CLASSIFIER]) == []


def test_the_target_class_is_passed_only_when_a_cam_of_the_main_card_is_computed():
    assert target_class_argument("abnormal", [SEGMENTATION], ["grad-cam"]) is None  # nothing to explain
    assert target_class_argument("abnormal", [SEGMENTATION], ["seg-grad-cam"]) == "abnormal"
    # a U-Net first and a classifier in the ensemble: the classifier keeps its own last class
    assert target_class_argument("abnormal", [SEGMENTATION, CLASSIFIER], ["grad-cam"]) is None
    assert target_class_argument("lesion", [CLASSIFIER, SEGMENTATION], ["grad-cam"]) == "lesion"
    assert target_class_argument("", [CLASSIFIER], ["grad-cam"]) is None


def test_cam_settings_are_disabled_for_a_segmentation_network_until_a_seg_method_is_checked():
    alone = panel_controls(METHODS, ["grad-cam"], [SEGMENTATION])
    assert not alone.cam_settings and alone.methods["seg-grad-cam"] and not alone.methods["grad-cam"]
    assert "segmentation" in alone.note and alone.note == kinds_note([SEGMENTATION])
    assert panel_controls(METHODS, ["seg-grad-cam"], [SEGMENTATION]).cam_settings
    assert panel_controls(METHODS, ["grad-cam"], [SEGMENTATION, CLASSIFIER]).cam_settings
    classifier = panel_controls(METHODS, [], [CLASSIFIER])
    assert classifier.cam_settings and classifier.note == "" and kinds_note([CLASSIFIER]) == ""


def test_apply_runs_a_segmentation_network_without_any_method_or_valid_threshold():
    assert apply_blocker(state()) == ""
    assert apply_blocker(state(methods=[])) == ""
    assert apply_blocker(state(threshold_mode="fixed", threshold_value=95.0)) == ""  # no CAM, nothing cut
    assert "not valid" in apply_blocker(state(methods=["seg-grad-cam"], has_region=True, threshold_value=95.0))


def test_apply_asks_for_a_region_for_seg_methods_and_a_cam_method_for_a_classifier():
    assert "region" in apply_blocker(state(methods=["seg-grad-cam"]))
    assert apply_blocker(state(methods=["seg-grad-cam"], has_region=True)) == ""
    mixed = (CLASSIFIER, SEGMENTATION)
    assert "for the classifier" in apply_blocker(
        state(methods=["seg-grad-cam"], has_region=True, checkpoint_kinds=mixed)
    )
    assert apply_blocker(state(methods=["grad-cam"], checkpoint_kinds=mixed)) == ""
    assert "check at least one CAM method" in apply_blocker(state(methods=[], checkpoint_kinds=(CLASSIFIER,)))
    assert "check at least one CAM method" in apply_blocker(state(methods=[], checkpoint_kinds=()))


def test_a_3d_stack_network_is_explained_by_no_method_and_runs_alone():
    """A 3D U-Net over the stack of slices (a 3D card with a slice recipe): no method is offered, the CAM
    settings are off, Apply runs it without a method or region, and the note says why; beside a 2D U-Net the
    Seg- methods are offered for that one."""
    from WSSSCamLib.models.card import ModelCard
    from WSSSCamLib.panel import STACK_SEGMENTATION

    recipe = {"size": 32, "axis": "K", "clip_percentiles": [0.5, 99.5], "context_channel": None}
    stack = ModelCard("monai-unet", 1, 2, ["background", "abnormal"], ["x"], spatial_dims=3, recipe=recipe)
    volume = ModelCard("monai-unet", 1, 2, ["background", "abnormal"], ["x"], spatial_dims=3, recipe={"kind": "volume"})
    assert checkpoint_kind(stack) == STACK_SEGMENTATION and checkpoint_kind(volume) == SEGMENTATION
    assert not any(offered_methods(METHODS, [STACK_SEGMENTATION]).values())
    assert offered_methods(METHODS, [STACK_SEGMENTATION, SEGMENTATION])["seg-grad-cam"]
    controls = panel_controls(METHODS, ["seg-grad-cam"], [STACK_SEGMENTATION])
    assert not controls.cam_settings and "no CAM method explains it" in controls.note
    assert methods_to_run(["seg-grad-cam", "grad-cam"], [STACK_SEGMENTATION]) == []
    assert target_class_argument("abnormal", [STACK_SEGMENTATION], ["seg-grad-cam"]) is None
    assert apply_blocker(state(checkpoint_kinds=(STACK_SEGMENTATION,), methods=["seg-grad-cam"])) == ""
    assert "3D segmentation network" in kinds_note([STACK_SEGMENTATION])
