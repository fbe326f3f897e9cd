"""The shared contract: parse/describe round trips for every step, parse errors that name the setting, the
pipeline composes (in order, 'none' is the identity), and every step returns bool masks of the input's
shape on the input's device without touching its inputs, in 2D and (where the step allows) 3D."""

import dataclasses

import pytest
import torch
from refine_cases import ring_case, shifted_case

from WSSSCamLib.refine import (
    STEPS,
    Components,
    DenseCrf,
    Felzenszwalb,
    Gate,
    Pipeline,
    RandomWalker,
    RefinementError,
    Slic,
    parse_refinement,
)
from WSSSCamLib.refine.crf import _densecrf

try:
    _densecrf()
    HAVE_PYDENSECRF = True
except ImportError:
    HAVE_PYDENSECRF = False

EXAMPLES = [
    Slic(),
    Slic(n=200, compactness=0.1, min_fraction=0.5),
    Slic(pool="map", min_mean=0.25, sigma=0.5, max_iter=4),
    Felzenszwalb(),
    Felzenszwalb(scale=50.5, sigma=0, min_size=5, pool="map"),
    RandomWalker(),
    RandomWalker(low=0.05, high=0.95, beta=90, tol=1e-4),
    DenseCrf(),
    DenseCrf(iterations=10, unary="mask", confidence=0.9, compat_bilateral=0),
    Components(),
    Components(keep="above", min_peak=0.75, connectivity=4, gate=True),
    Components(keep="largest"),
    Gate(),
]


@pytest.mark.parametrize("step", EXAMPLES, ids=lambda s: s.describe())
def test_describe_and_parse_round_trip(step):
    name = step.describe()
    assert parse_refinement(name) == step
    assert type(step).parse(name) == step
    assert parse_refinement(name).describe() == name


def test_names_are_canonical_and_parse_accepts_subsets_spaces_and_case():
    step = parse_refinement("slic:n=200,compactness=0.1,min_fraction=0.5")
    assert step == Slic(n=200, compactness=0.1, min_fraction=0.5)
    assert step.describe() == "slic:n=200,compactness=0.1,sigma=0,max_iter=10,pool=mask,min_fraction=0.5"
    assert parse_refinement(" SLIC : Compactness = 0.1 , n=200 ") == step
    assert parse_refinement("components:gate=true") == Components(gate=True)
    assert parse_refinement("components:gate=no") == Components()
    assert parse_refinement("gate") == Gate() and Gate().describe() == "gate"
    assert parse_refinement("random_walker") == RandomWalker()
    assert set(STEPS) == {"slic", "felzenszwalb", "random_walker", "crf", "components", "gate"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("watershed:n=3", r"^refinement: unknown step 'watershed'.*steps: slic, felzenszwalb"),
        ("slic:segments=200", r"^slic: unknown setting 'segments'; settings: n, compactness"),
        ("slic:n=200,n=300", r"^slic: setting n given twice"),
        ("slic:n", r"^slic: 'n' is not <setting>=<value>"),
        ("slic:n=", r"^slic: 'n=' is not <setting>=<value>"),
        ("slic:n=2.5", r"^slic: setting n must be an integer, got '2.5'"),
        ("slic:compactness=abc", r"^slic: setting compactness must be a finite number, got 'abc'"),
        ("slic:compactness=nan", r"^slic: setting compactness must be a finite number"),
        ("slic:n=0", r"^slic: setting n must be an integer > 0, got 0"),
        ("components:gate=maybe", r"^components: setting gate must be true or false, got 'maybe'"),
        ("random_walker:low=0.9", r"^random_walker: setting low must be below high=0.8, got 0.9"),
        ("gate:strict=true", r"^gate: unknown setting 'strict'; settings: none"),
    ],
)
def test_parse_errors_name_the_step_and_the_setting(text, message):
    with pytest.raises(RefinementError, match=message):
        parse_refinement(text)


def test_a_refinement_error_is_a_user_error_and_a_value_error():
    from WSSSCamLib.errors import UserError

    with pytest.raises(UserError):
        parse_refinement("slic:n=-1")
    with pytest.raises(ValueError):
        parse_refinement("slic:n=-1")


def test_pipeline_names_round_trip():
    text = "slic:n=200,compactness=0.1,min_fraction=0.5 | components:keep=peak,gate=true"
    pipeline = Pipeline.parse(text)
    assert pipeline.steps == (Slic(n=200, compactness=0.1, min_fraction=0.5), Components(gate=True))
    assert Pipeline.parse(pipeline.describe()) == pipeline
    assert Pipeline.parse(["slic:n=200,compactness=0.1,min_fraction=0.5", "components:gate=true"]) == pipeline
    assert pipeline.needs_images and pipeline.needs_probabilities
    assert not Pipeline.parse("components").needs_images and not Pipeline.parse("components").needs_probabilities
    for empty in ("none", "", " NONE ", []):
        assert Pipeline.parse(empty) == Pipeline() and Pipeline.parse(empty).describe() == "none"
    with pytest.raises(RefinementError, match="pipeline: step 1 of 'slic | ' is empty"):
        Pipeline.parse("slic | ")
    with pytest.raises(RefinementError, match="pipeline: step 0 is not a refinement step"):
        Pipeline((42,))


def test_the_empty_pipeline_is_the_identity():
    _truth, mask, image = shifted_case(2)
    assert Pipeline()(mask, mask.float(), image) is mask


def test_the_pipeline_applies_its_steps_in_order():
    truth, mask, image = shifted_case(2, shift=3)
    mask = mask.clone()
    mask[0, 0:3, 0:3] = True  # a spurious blob in the corner, with a weak CAM
    maps = mask.float() * 0.6
    maps[0, 20, 20] = 1.0  # the CAM peak, inside the square
    slic, components = Slic(n=20), Components()
    both = Pipeline((slic, components))(mask, maps, image, torch.tensor([0.9]))
    assert torch.equal(both, components(slic(mask, maps, image), maps, image))
    assert torch.equal(both, truth)  # superpixels snap to the square, the peak drops the corner blob
    gated = Pipeline.parse("slic:n=20 | components:gate=true")(mask, maps, image, torch.tensor([0.3]))
    assert not gated.any()


@pytest.mark.parametrize("dims", [2, 3])
def test_a_sample_emptied_by_the_gate_stays_empty_after_every_step(dims):
    _truth, maps, image = ring_case(dims, noise=0.1)
    ones = [1] * dims
    masks, maps, image = (maps > 0.4).repeat(2, *ones), maps.repeat(2, *ones), image.repeat(2, 1, *ones)
    probabilities = torch.tensor([0.9, 0.2])
    steps = steps_for(dims) + [Slic(n=20 if dims == 2 else 27, pool="map")]
    for step in steps:
        out = Pipeline((Gate(), step))(masks, maps, image, probabilities)
        assert out[0].any() and not out[1].any(), step.describe()


def steps_for(dims):
    steps = [Slic(n=20 if dims == 2 else 27), RandomWalker(), Components(), Components(keep="largest"), Gate()]
    if dims == 2:
        steps.append(Felzenszwalb())
    if HAVE_PYDENSECRF:
        steps.append(DenseCrf())
    return steps


@pytest.mark.parametrize("dims", [2, 3])
def test_every_step_returns_bool_masks_of_the_input_shape_and_leaves_the_inputs_alone(dims):
    _truth, maps, image = ring_case(dims, noise=0.1, channels=2)
    masks = (maps > 0.4).repeat(2, *([1] * dims))
    maps, image = maps.repeat(2, *([1] * dims)), image.repeat(2, 1, *([1] * dims))
    probabilities = torch.tensor([0.9, 0.1])
    copies = [t.clone() for t in (masks, maps, image, probabilities)]
    for step in steps_for(dims):
        out = step(masks, maps, image, probabilities)
        assert out.dtype == torch.bool and out.shape == masks.shape and out.device == masks.device, step.describe()
        for before, after in zip(copies, (masks, maps, image, probabilities)):
            assert torch.equal(before, after), step.describe()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_results_return_to_the_masks_device():
    _truth, maps, image = ring_case(2, noise=0.1)
    masks = maps > 0.4
    for step in steps_for(2):
        out = step(masks.cuda(), maps.cuda(), image.cuda(), torch.tensor([0.9]).cuda())
        assert out.is_cuda and torch.equal(out.cpu(), step(masks, maps, image, torch.tensor([0.9]))), step.describe()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, p, i: Components()(m.float(), p), r"components: masks must be a bool tensor"),
        (lambda m, p, i: Components()(m[0, 0], p[0, 0]), r"components: masks must be N x H x W or N x D x H x W"),
        (lambda m, p, i: Components()(m[:, None, None], p[:, None, None]), r"masks must be N x H x W or N x D x H x W"),
        (lambda m, p, i: Components()(m[:0], p[:0]), r"with N >= 1"),
        (lambda m, p, i: Components()(m, p[:, :-1]), r"components: maps must be a float tensor of the masks' shape"),
        (lambda m, p, i: Components()(m, m), r"components: maps must be a float tensor"),
        (lambda m, p, i: Slic()(m, p, i[:, :, :-1]), r"slic: images must be a float tensor N x C x \*spatial"),
        (lambda m, p, i: Slic()(m, p, i[:, 0]), r"slic: images must be a float tensor N x C x \*spatial"),
        (lambda m, p, i: Slic()(m, p, i.double().fill_(float("nan"))), r"slic: images contain NaN"),
        (
            lambda m, p, i: RandomWalker()(m, p, i, torch.tensor([0.1, 0.2])),
            r"random_walker: probabilities must have shape",
        ),
    ],
)
def test_inputs_that_break_the_contract_are_refused_by_name(call, message):
    _truth, maps, image = ring_case(2)
    with pytest.raises(RefinementError, match=message):
        call(maps > 0.4, maps, image)


def test_steps_are_frozen_settings():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Slic().n = 3
