"""Ostrowski et al. 2023 ensembles: rules on hand masks, counting equal to the explicit loop, grid search by hand."""

import pytest
import torch

from WSSSCamLib.masks import (
    RULES,
    THRESHOLD_GRID,
    Threshold,
    apply_threshold,
    combine_masks,
    ensemble_combinations,
    ensemble_counts,
    grid_search,
    mean_map_mask,
)
from WSSSCamLib.metrics import confusion_counts, pooled_scores


def m(*rows):
    return torch.tensor(rows, dtype=torch.bool)


# two samples of 4 voxels; member areas: a = (2, 1), b = (1, 1), c = (3, 0)
A = m([1, 1, 0, 0], [0, 0, 0, 1])
B = m([0, 1, 0, 0], [1, 0, 0, 0])
C = m([1, 1, 1, 0], [0, 0, 0, 0])


def test_and_or_majority_by_hand():
    assert combine_masks([A, B], "and").tolist() == [[False, True, False, False], [False] * 4]
    assert combine_masks([A, B], "or").tolist() == [[True, True, False, False], [True, False, False, True]]
    # majority of 3: strictly more than 1.5 members
    assert combine_masks([A, B, C], "majority").tolist() == [[True, True, False, False], [False] * 4]
    # majority of 2 needs both
    assert torch.equal(combine_masks([A, B], "majority"), combine_masks([A, B], "and"))


def test_min_and_max_choose_whole_masks_with_ties_to_the_earlier_member():
    # sample 0: areas a 2, b 1 -> '<' b, '>' a; sample 1: tie 1 / 1 -> the earlier member (a) for both
    assert combine_masks([A, B], "<").tolist() == [B[0].tolist(), A[1].tolist()]
    assert combine_masks([A, B], ">").tolist() == [A[0].tolist(), A[1].tolist()]
    assert combine_masks([B, A], ">").tolist() == [A[0].tolist(), B[1].tolist()]
    # three members: sample 0 areas (2, 1, 3), sample 1 areas (1, 1, 0)
    assert combine_masks([A, B, C], "<").tolist() == [B[0].tolist(), C[1].tolist()]
    assert combine_masks([A, B, C], ">").tolist() == [C[0].tolist(), A[1].tolist()]


def test_rule_errors():
    with pytest.raises(ValueError, match="mean_map_mask"):
        combine_masks([A, B], "mean")
    with pytest.raises(ValueError, match="unknown ensemble rule"):
        combine_masks([A, B], "xor")
    with pytest.raises(ValueError, match="shape"):
        combine_masks([A, B[:1]], "and")


def test_mean_map_mask_and_combinations():
    maps = [torch.tensor([[0.2, 0.6, 1.0]]), torch.tensor([[0.4, 0.2, 0.0]])]
    # mean = 0.3, 0.4, 0.5 -> > 0.4 is only the last
    assert mean_map_mask(maps, 0.4).tolist() == [[False, False, True]]
    assert ensemble_combinations(2, "and", (0.1, 0.5)) == [(0.1, 0.1), (0.1, 0.5), (0.5, 0.1), (0.5, 0.5)]
    assert len(ensemble_combinations(3, "<")) == 9**3
    assert ensemble_combinations(3, "mean", (0.1, 0.5)) == [(0.1,), (0.5,)]


def _loop(member_maps, reference, rule, combos):
    rows = []
    for combo in combos:
        if rule == "mean":
            mask = mean_map_mask(member_maps, combo[0])
        else:
            masks = [apply_threshold(maps, Threshold("fixed", t)) for maps, t in zip(member_maps, combo)]
            mask = combine_masks(masks, rule)
        rows.append(confusion_counts(mask, reference))
    return torch.stack(rows)


def _members(shape, count, seed):
    g = torch.Generator().manual_seed(seed)
    maps = []
    for _ in range(count):
        values = torch.rand(*shape, generator=g)
        ties = torch.rand(*shape, generator=g) < 0.3
        values = torch.where(ties, torch.tensor(THRESHOLD_GRID)[torch.randint(0, 9, shape, generator=g)], values)
        maps.append(values)
    maps[0][0] = 0.0  # all-zero member map for sample 0
    reference = torch.rand(*shape, generator=g) < 0.35
    reference[-1] = False  # an empty reference
    return maps, reference


@pytest.mark.parametrize("rule", RULES)
def test_ensemble_counts_equal_the_explicit_loop_two_members_2d(rule):
    maps, reference = _members((4, 6, 5), 2, seed=10)
    combos, counts = ensemble_counts(maps, reference, rule, chunk=7)
    assert combos == ensemble_combinations(2, rule)
    assert counts.dtype == torch.int64 and counts.shape == (len(combos), 4, 4)
    assert torch.equal(counts, _loop(maps, reference, rule, combos))


@pytest.mark.parametrize("rule", RULES)
def test_ensemble_counts_equal_the_explicit_loop_three_members_3d(rule):
    maps, reference = _members((3, 3, 4, 4), 3, seed=11)
    grid = (0.2, 0.5, 0.8)
    combos, counts = ensemble_counts(maps, reference, rule, grid=grid, chunk=5)
    assert torch.equal(counts, _loop(maps, reference, rule, combos))


def test_grid_search_picks_the_hand_computed_combo():
    # one sample of 4 voxels, reference 0110, grid (0.1, 0.5):
    # a > 0.1 = 1111, a > 0.5 = 0111; b > 0.1 = 1111, b > 0.5 = 1110
    ref = m([0, 1, 1, 0])
    a = torch.tensor([[0.15, 0.95, 0.95, 0.95]])
    b = torch.tensor([[0.95, 0.95, 0.95, 0.15]])
    # 'or': every combination gives 1111 -> all scores tie -> the first combo (0.1, 0.1) wins
    combos, counts = ensemble_counts([a, b], ref, "or", grid=(0.1, 0.5))
    best, scores = grid_search(counts, combos)
    assert best == 0 and torch.all(scores == scores[0])
    # 'and' grid (0.1, 0.5) x (0.1, 0.5): a>0.1 = 1111, a>0.5 = 0111; b>0.1 = 1111, b>0.5 = 1110
    # products: (0.1,0.1) 1111, (0.1,0.5) 1110, (0.5,0.1) 0111, (0.5,0.5) 0110 = reference -> index 3
    combos, counts = ensemble_counts([a, b], ref, "and", grid=(0.1, 0.5))
    best, scores = grid_search(counts, combos)
    assert best == 3 and combos[best] == (0.5, 0.5) and scores[3].item() == 1.0
    # (0.1, 0.1): tp 2, fp 2, fn 0, tn 0 -> fg IoU 1/2, bg IoU 0 -> mIoU 1/4 -> DSC 0.5/1.25 = 0.4
    assert scores[0].item() == pytest.approx(0.4, abs=1e-15)
    assert scores[1].item() == pytest.approx(scores[2].item(), abs=1e-15)  # symmetric 1110 / 0111
    assert scores[0].item() == pytest.approx(pooled_scores(counts[0]).dsc_miou, abs=1e-15)


def test_grid_search_ties_no_foreground_and_validation():
    counts = torch.tensor([[[1, 1, 1, 1]], [[2, 0, 0, 2]], [[2, 0, 0, 2]]])
    best, scores = grid_search(counts, [(0.1,), (0.2,), (0.3,)])
    assert best == 1 and scores.dtype == torch.float64  # tie between 1 and 2 -> the lower index
    # no foreground in prediction nor reference anywhere: fg IoU 1 by convention, no NaN
    best, scores = grid_search(torch.tensor([[[0, 2, 0, 2]], [[0, 0, 0, 4]]]), [(0.1,), (0.2,)])
    # combo 0: tp 0, fp 2, tn 2 -> fg IoU 0, bg IoU 2/4 -> mIoU 1/4 -> DSC 0.4; combo 1: both IoU 1 -> 1
    assert best == 1 and scores.tolist() == [pytest.approx(0.4, abs=1e-15), 1.0]
    with pytest.raises(ValueError, match="combos"):
        grid_search(counts, [(0.1,)])
    with pytest.raises(ValueError, match="C x N x 4"):
        grid_search(counts[0], [(0.1,)])
