"""Dense CRF against hand cases (needs the optional pydensecrf2, extra "refine"; .ci/run installs it where it builds): without a
pairwise term it is the 0.5 cut of the map; with the default kernels a CAM undecided across a sharp
edge, or a mask shifted over it, snaps to the edge in 2D and 3D; a missing pydensecrf2 is a clear error."""

import sys

import pytest
import torch
from refine_cases import dice, ring_case, shifted_case

from WSSSCamLib.refine import DenseCrf, MissingDependencyError, RefinementError

try:
    import pydensecrf.densecrf  # noqa: F401

    HAVE_PYDENSECRF = True
except ImportError:
    HAVE_PYDENSECRF = False
needs_pydensecrf = pytest.mark.skipif(not HAVE_PYDENSECRF, reason="pydensecrf2 (extra 'refine') is not installed")


@needs_pydensecrf
@pytest.mark.parametrize("dims", [2, 3])
def test_without_pairwise_terms_it_is_the_half_cut_of_the_map(dims):
    generator = torch.Generator().manual_seed(0)
    shape = (2,) + (12,) * dims
    maps = torch.rand(shape, generator=generator)
    maps = torch.where((maps - 0.5).abs() < 0.01, maps + 0.05, maps)  # nothing within float32 rounding of 0.5
    images = torch.randn((2, 1) + shape[1:], generator=generator)
    step = DenseCrf(compat_gaussian=0, compat_bilateral=0)
    assert torch.equal(step(maps > 0.3, maps, images), maps > 0.5)


@needs_pydensecrf
@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("channels", [1, 2])
def test_an_undecided_band_across_an_edge_snaps_to_the_edge(dims, channels):
    truth, maps, image = ring_case(dims, 0.0, channels)
    assert torch.equal(DenseCrf()(maps > 0.4, maps, image), truth)
    truth, maps, image = ring_case(dims, 0.1, channels)
    assert dice(DenseCrf()(maps > 0.4, maps, image), truth) >= 0.99


@needs_pydensecrf
@pytest.mark.parametrize("dims", [2, 3])
def test_unary_from_the_mask_snaps_a_shifted_mask_to_the_box(dims):
    truth, mask, image = shifted_case(dims, shift=3 if dims == 2 else 2)
    assert dice(mask, truth) < 0.9
    # the map is ignored with unary=mask: a map that says "nothing" changes nothing
    assert torch.equal(DenseCrf(unary="mask")(mask, torch.zeros(mask.shape), image), truth)


def test_a_missing_pydensecrf_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydensecrf", None)  # import pydensecrf -> ImportError
    _truth, maps, image = ring_case(2)
    with pytest.raises(MissingDependencyError, match=r"crf: .*pydensecrf2==1\.1.*pip install 'wssscam\[refine\]'"):
        DenseCrf()(maps > 0.4, maps, image)


def test_bad_input_is_refused_before_pydensecrf_is_needed(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydensecrf", None)
    _truth, maps, _image = ring_case(2)
    with pytest.raises(RefinementError, match="crf: needs images"):
        DenseCrf()(maps > 0.4, maps)


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"iterations": 0}, "iterations"),
        ({"sxy_gaussian": 0}, "sxy_gaussian"),
        ({"sxy_bilateral": -1}, "sxy_bilateral"),
        ({"schan": 0}, "schan"),
        ({"compat_gaussian": -1}, "compat_gaussian"),
        ({"compat_bilateral": -0.5}, "compat_bilateral"),
        ({"unary": "cam"}, "unary"),
        ({"confidence": 0.7}, "confidence"),
        ({"unary": "mask", "confidence": 0.5}, "confidence"),
        ({"unary": "mask", "confidence": 1.0}, "confidence"),
    ],
)
def test_bad_settings_are_refused_by_name(kwargs, setting):
    with pytest.raises(RefinementError, match=rf"^crf: setting {setting} "):
        DenseCrf(**kwargs)
