"""Reliability of the mean rating (ICC, split-half) and the ceiling sqrt(R), against published values.

Shrout, P. E., & Fleiss, J. L. (1979), Table 2: 6 targets rated by 4 judges; their Table 4 gives
ICC(1,1) = .17, ICC(2,1) = .29, ICC(3,1) = .71, ICC(1,4) = .44, ICC(2,4) = .62, ICC(3,4) = .91.
"""
from __future__ import annotations

import numpy as np
import pytest

from annotations import reliability as R

SHROUT_FLEISS = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]],
                         dtype=float)


def _long(matrix: np.ndarray) -> tuple[list[int], list[int], list[float]]:
    items, raters = np.nonzero(~np.isnan(matrix))
    return items.tolist(), raters.tolist(), matrix[items, raters].tolist()


def test_it_matches_shrout_and_fleiss_icc2_on_their_worked_example() -> None:
    result = R.icc_from_matrix(SHROUT_FLEISS)
    assert result.model == "ICC(2,k)"
    assert result.single == pytest.approx(0.29, abs=0.005)
    assert result.average == pytest.approx(0.62, abs=0.005)
    assert result.single_ci_low < result.single < result.single_ci_high
    # McGraw & Wong's average-measures bounds are the Spearman-Brown step-up of the single ones.
    assert result.ci_low == pytest.approx(4 * result.single_ci_low / (1 + 3 * result.single_ci_low))
    assert result.ci_low < result.average < result.ci_high


def test_it_matches_shrout_and_fleiss_icc1_one_way_on_the_same_data() -> None:
    units, _, values = _long(SHROUT_FLEISS)
    result = R.icc_one_way(units=units, values=values)
    assert result.model == "ICC(1,k)" and result.k == 4
    assert result.single == pytest.approx(0.17, abs=0.005)
    assert result.average == pytest.approx(0.44, abs=0.005)


def test_it_uses_the_two_way_model_only_for_a_complete_table() -> None:
    units, raters, values = _long(SHROUT_FLEISS)
    assert R.icc_compute(units=units, raters=raters, values=values).model == "ICC(2,k)"
    holes = SHROUT_FLEISS.copy()
    holes[0, 1] = np.nan
    units, raters, values = _long(holes)
    result = R.icc_compute(units=units, raters=raters, values=values)
    assert result.model == "ICC(1,k)"
    assert result.k == pytest.approx((23 - (3**2 + 5 * 4**2) / 23) / 5)  # k0 for sizes 3,4,4,4,4,4
    assert "one-way" in result.method_note


def test_it_says_why_icc_is_undefined() -> None:
    assert "at least 3" in R.icc_one_way(units=[1, 1, 2, 2], values=[1, 2, 3, 4]).reason
    flat = R.icc_from_matrix(np.full((5, 3), 2.0))
    assert flat.average is None and "no variation" in flat.reason


def test_it_takes_the_square_root_of_reliability_as_the_ceiling() -> None:
    ceiling = R.ceiling_compute(reliability=0.64, items=50, source="split-half")
    assert ceiling.ceiling == pytest.approx(0.8)
    assert ceiling.disattenuate(0.4) == pytest.approx(0.5)


@pytest.mark.parametrize(("reliability", "items", "words"), [
    (-0.2, 50, "no ceiling: the reliability estimate is -0.200"),
    (0.0, 50, "no ceiling: the reliability estimate is 0.000"),
    (0.8, 9, "no ceiling: only 9 item(s)"),
    (None, 50, "no ceiling: the reliability is undefined"),
])
def test_it_gives_no_ceiling_for_nonpositive_reliability_or_few_items(reliability, items, words) -> None:
    ceiling = R.ceiling_compute(reliability=reliability, items=items, source="split-half")
    assert ceiling.ceiling is None and ceiling.reason.startswith(words)
    assert ceiling.disattenuate(0.5) is None


def test_it_computes_split_half_and_icc_on_the_same_items() -> None:
    rng = np.random.default_rng(2)
    truth = rng.normal(0, 1, 80)
    matrix = truth[:, None] + rng.normal(0, 1, (80, 4))
    units, raters, values = _long(matrix)
    units += [999]  # a single-rated item is in neither estimate
    raters += [0]
    values += [3.0]
    out = R.reliability_compute(units=units, raters=raters, values=values, seed=1)
    assert out["split_half"]["n"] == 80 and out["icc"]["n"] == 80
    # population reliability of a 4-rater mean: 1 / (1 + 1/4) = 0.8
    assert out["split_half"]["spearman_brown"] == pytest.approx(0.8, abs=0.08)
    assert out["icc"]["average"] == pytest.approx(0.8, abs=0.08)
    assert out["ceiling"]["ceiling"] == pytest.approx(out["split_half"]["spearman_brown"] ** 0.5)
