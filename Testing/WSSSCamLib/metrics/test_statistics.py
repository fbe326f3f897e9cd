"""Statistics wrappers against scipy.stats directly, NaN handling and error cases."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from WSSSCamLib.metrics import kruskal_wallis, shapiro_wilk, spearman


def test_spearman_against_scipy_and_by_hand():
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    y = [2.0, 1.0, 4.0, 3.0, 5.0]
    rho, p = spearman(x, y)
    # ranks differ by d = (1, 1, 1, 1, 0): rho = 1 - 6 * 4 / (5 * 24) = 0.8
    assert rho == pytest.approx(0.8, abs=1e-12)
    expected = stats.spearmanr(x, y)
    assert (rho, p) == pytest.approx((expected.statistic, expected.pvalue), abs=1e-12)


def test_spearman_drops_nan_pairs_and_accepts_tensors():
    x = [1.0, 2.0, float("nan"), 3.0, 4.0, 5.0, 6.0]
    y = [2.0, 1.0, 9.0, 4.0, float("nan"), 3.0, 6.0]
    expected = stats.spearmanr([1, 2, 3, 5, 6], [2, 1, 4, 3, 6])
    assert spearman(torch.tensor(x), np.array(y)) == pytest.approx((expected.statistic, expected.pvalue), abs=1e-12)


def test_spearman_errors():
    with pytest.raises(ValueError, match="at least 3"):
        spearman([1.0, 2.0, float("nan")], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="3 values but y has 2"):
        spearman([1.0, 2.0, 3.0], [1.0, 2.0])


def test_shapiro_wilk_against_scipy():
    values = np.random.default_rng(0).normal(size=20)
    expected = stats.shapiro(values)
    assert shapiro_wilk(list(values) + [float("nan")]) == pytest.approx(
        (expected.statistic, expected.pvalue), abs=1e-12
    )
    with pytest.raises(ValueError, match="at least 3"):
        shapiro_wilk([1.0, float("nan"), 2.0])


def test_kruskal_wallis_against_scipy_and_by_hand():
    groups = {"a": [1.0, 2.0, 3.0], "b": [4.0, 5.0, 6.0]}
    h, p = kruskal_wallis(groups)
    # no ties: H = 12 / (N (N + 1)) * sum R_i^2 / n_i - 3 (N + 1) = 12/42 * (36 + 225)/3 - 21 = 27/7
    assert h == pytest.approx(27 / 7, abs=1e-12)
    expected = stats.kruskal([1, 2, 3], [4, 5, 6])
    assert (h, p) == pytest.approx((expected.statistic, expected.pvalue), abs=1e-12)
    three = {"x": [0.1, 0.5, float("nan"), 0.7], "y": [0.2, 0.9], "z": [0.3, 0.4, 0.8]}
    expected = stats.kruskal([0.1, 0.5, 0.7], [0.2, 0.9], [0.3, 0.4, 0.8])
    assert kruskal_wallis(three) == pytest.approx((expected.statistic, expected.pvalue), abs=1e-12)
    assert not math.isnan(kruskal_wallis(three)[1])


def test_kruskal_wallis_errors():
    with pytest.raises(ValueError, match="at least 2 groups"):
        kruskal_wallis({"a": [1.0, 2.0]})
    with pytest.raises(ValueError, match="'b' has no values"):
        kruskal_wallis({"a": [1.0, 2.0], "b": [float("nan")]})
    with pytest.raises(ValueError, match="identical"):
        kruskal_wallis({"a": [1.0, 1.0], "b": [1.0]})
