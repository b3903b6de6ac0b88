"""Every interval the report shows holds its coverage in simulated studies with known population values.

One design, the hardest of `annotations.simulation.DESIGNS` (crowd raters with leniency bias, 30 %
of ratings missing; 80 items x 5 raters), 200 seeded data sets through the report's own code with
200 resamples each; population values from one simulated data set of 100,000 items. With 200 data
sets a share near 5 % or 95 % has a Monte Carlo SE of about 1.5 points, so the bounds sit about two
SEs from nominal. Larger runs of every design: `python benchmarks/ci_coverage.py` (figures in
docs/reports.md).
"""
from __future__ import annotations

import pytest

from annotations import simulation as S

DESIGN = S.Design("rater bias + missing 30 %, crowd pool", bias_sd=0.5, missing=0.3)


@pytest.fixture(scope="module")
def coverage() -> dict[str, float]:
    population = S.population_compute(DESIGN, items=100_000, seed=7)
    return S.coverage_run(DESIGN, datasets=200, resamples=200, seed=20250101, population=population)


@pytest.mark.parametrize("interval", ["alpha", "icc"])
def test_it_covers_the_population_value_in_at_least_90_percent_of_studies(coverage, interval: str) -> None:
    assert coverage[f"coverage_{interval}"] >= 0.90, coverage


@pytest.mark.parametrize("interval", ["spearman", "pearson", "kendall", "delta_spearman", "delta_pearson"])
def test_it_covers_a_correlation_near_95_percent_without_being_grossly_conservative(coverage, interval: str) -> None:
    assert 0.91 <= coverage[f"coverage_{interval}"] <= 0.985, coverage


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_it_rarely_calls_two_equally_good_metrics_different(coverage, method: str) -> None:
    assert coverage[f"significant_equal_{method}"] <= 0.07, coverage


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_it_still_finds_the_better_of_a_good_and_a_weak_metric(coverage, method: str) -> None:
    assert coverage[f"significant_weak_{method}"] >= 0.65, coverage


def test_it_says_significant_exactly_when_the_interval_excludes_zero(coverage) -> None:
    assert coverage["p_and_ci_agree"] == 1.0, coverage


def test_it_keeps_a_perfect_metric_at_the_ceiling_within_noise(coverage) -> None:
    assert abs(coverage["perfect_minus_ceiling_mean"]) < 0.03, coverage
    assert coverage["perfect_over_ceiling_plus_0.05"] <= 0.10, coverage
