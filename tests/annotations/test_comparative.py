"""Comparative judgments: design balance, scorers against hand-computed cases and choix, split-half."""
from __future__ import annotations

import math
import random

import choix
import numpy as np
import pytest
from scipy import stats

from annotations.comparative import (
    Choice,
    ComparativeInputError,
    bradley_terry_scores,
    choice_agreement,
    choice_contributions,
    choices_compile,
    counting_scores,
    design_generate,
    implied_pairs,
    split_half,
    system_scores,
)


def _groups(samples: int, per_sample: int) -> dict[str, list[str]]:
    return {f"s{g}": [f"s{g}d{i}" for i in range(per_sample)] for g in range(samples)}


def _simulate(design, quality: dict, *, per_unit: int, noise: float, rng: np.random.Generator) -> list[Choice]:
    """Thurstonian annotators: each sees quality + N(0, noise) and picks the max as best, min as worst."""
    out = []
    for u, unit in enumerate(design.units):
        for a in range(per_unit):
            seen = np.array([quality[i] for i in unit.items]) + rng.normal(0, noise, len(unit.items))
            out.append(Choice(unit=u, shown=unit.items, best=unit.items[int(np.argmax(seen))],
                              worst=unit.items[int(np.argmin(seen))], annotator=a))
    return out


# --- design --------------------------------------------------------------------------------------

def test_it_puts_every_description_in_8_tuples_with_2n_tuples_per_sample():
    design = design_generate(groups=_groups(10, 8), size=4, appearances=8, seed=3)
    assert len(design.units) == 10 * 16  # 2N per sample
    assert set(design.appearances.values()) == {8}
    for unit in design.units:
        assert len(set(unit.items)) == 4
        assert all(item.startswith(f"{unit.group}d") for item in unit.items)
    per_group: dict = {}
    for unit in design.units:
        per_group.setdefault(unit.group, []).append(frozenset(unit.items))
    assert all(len(set(tuples)) == len(tuples) for tuples in per_group.values())  # no tuple twice


@pytest.mark.parametrize("per_sample,size,appearances", [(7, 4, 8), (9, 4, 8), (6, 4, 3), (13, 4, 8), (5, 2, 2)])
def test_it_keeps_appearance_counts_within_one_of_each_other(per_sample, size, appearances):
    design = design_generate(groups=_groups(4, per_sample), size=size, appearances=appearances, seed=11)
    counts = list(design.appearances.values())
    assert len(counts) == 4 * per_sample
    assert max(counts) - min(counts) <= 1
    assert abs(np.mean(counts) - appearances) <= size / per_sample + 1e-9


def test_it_draws_pairs_within_a_sample_without_repeating_a_pair():
    design = design_generate(groups=_groups(3, 5), size=2, appearances=4, seed=0)
    assert len(design.units) == 3 * 10  # all C(5, 2) pairs of each sample
    assert all(unit.items[0][:2] == unit.items[1][:2] for unit in design.units)
    assert len({frozenset(u.items) for u in design.units}) == 30


def test_it_is_the_same_design_for_the_same_seed_whatever_the_input_order():
    groups = _groups(5, 8)
    shuffled = {g: list(reversed(items)) for g, items in reversed(list(groups.items()))}
    a = design_generate(groups=groups, size=4, seed=42)
    b = design_generate(groups=shuffled, size=4, seed=42)
    c = design_generate(groups=groups, size=4, seed=43)
    assert [u.items for u in a.units] == [u.items for u in b.units]
    assert [u.items for u in a.units] != [u.items for u in c.units]


def test_it_reports_samples_with_too_few_descriptions_instead_of_padding():
    groups = {"full": ["a", "b", "c", "d", "e"], "short": ["x", "y", "z"]}
    design = design_generate(groups=groups, size=4, seed=1)
    assert design.short_groups == {"short": 3}
    assert all(unit.group == "full" for unit in design.units)
    assert not {"x", "y", "z"} & set(design.appearances)
    assert design.summary()["short_groups"] == 1


def test_it_uses_each_distinct_tuple_once_when_a_sample_has_few_descriptions():
    design = design_generate(groups={"g": ["a", "b", "c", "d"]}, size=4, appearances=8, seed=1)
    assert len(design.units) == 1
    assert design.capped_groups == {"g": 1}


def test_it_refuses_a_description_in_two_samples_and_units_smaller_than_two():
    with pytest.raises(ComparativeInputError, match="two samples"):
        design_generate(groups={"g1": ["a", "b"], "g2": ["b", "c"]}, size=2)
    with pytest.raises(ComparativeInputError, match="at least 2"):
        design_generate(groups={"g1": ["a", "b"]}, size=1)


# --- counting ------------------------------------------------------------------------------------

def test_it_scores_percent_best_minus_percent_worst_by_hand():
    shown = ("a", "b", "c", "d")
    choices = [
        Choice(unit=1, shown=shown, best="a", worst="d"),
        Choice(unit=1, shown=("d", "c", "b", "a"), best="a", worst="c"),
        Choice(unit=2, shown=("a", "b", "c", "e"), best="b", worst="e"),
    ]
    result = counting_scores(choices, resamples=0)
    scores = result.score_of()
    assert scores == pytest.approx({"a": 2 / 3, "b": 1 / 3, "c": -1 / 3, "d": -1 / 2, "e": -1.0})
    row = {r["item"]: r for r in result.rows()}
    assert (row["a"]["shown"], row["a"]["best"], row["a"]["worst"]) == (3, 2, 0)


def test_it_counts_a_pairwise_tie_as_shown_but_neither_won_nor_lost():
    choices = [Choice(unit=1, shown=("a", "b"), best="a", worst="b"),
               Choice(unit=1, shown=("b", "a"), best=None, worst=None)]
    assert counting_scores(choices, resamples=0).score_of() == pytest.approx({"a": 0.5, "b": -0.5})


def test_it_gives_a_bootstrap_interval_over_units_that_holds_the_estimate():
    design = design_generate(groups=_groups(6, 8), size=4, seed=0)
    rng = np.random.default_rng(0)
    quality = {item: rng.normal() for item in design.appearances}
    choices = _simulate(design, quality, per_unit=3, noise=1.0, rng=rng)
    groups = {item: unit.group for unit in design.units for item in unit.items}
    a = counting_scores(choices, groups=groups, resamples=300, seed=5)
    b = counting_scores(choices, groups=groups, resamples=300, seed=5)
    assert np.all(a.ci_low <= a.scores + 1e-12) and np.all(a.scores <= a.ci_high + 1e-12)
    assert np.array_equal(a.ci_low, b.ci_low)
    assert np.all(a.ci_high - a.ci_low > 0)


# --- Bradley–Terry -------------------------------------------------------------------------------

def test_it_fits_two_descriptions_to_the_log_odds_of_their_wins():
    choices = [Choice(unit=1, shown=("a", "b"), best="a", worst="b")] * 3 + [
        Choice(unit=1, shown=("a", "b"), best="b", worst="a")]
    scores = bradley_terry_scores(choices, prior=0, resamples=0).score_of()
    assert scores["a"] - scores["b"] == pytest.approx(math.log(3), abs=1e-6)
    # A tie is half a win each: 1 win + 1 tie = 1.5 : 0.5.
    tied = [Choice(unit=1, shown=("a", "b"), best="a", worst="b"), Choice(unit=1, shown=("a", "b"), best=None, worst=None)]
    scores = bradley_terry_scores(tied, prior=0, resamples=0).score_of()
    assert scores["a"] - scores["b"] == pytest.approx(math.log(3), abs=1e-6)
    # The prior adds pseudo-wins each way: (3 + 0.5) : (1 + 0.5).
    scores = bradley_terry_scores(choices, prior=0.5, resamples=0).score_of()
    assert scores["a"] - scores["b"] == pytest.approx(math.log(3.5 / 1.5), abs=1e-6)


def test_it_turns_a_bws_choice_into_its_five_implied_pairs():
    data = choices_compile([Choice(unit=1, shown=("a", "b", "c", "d"), best="b", worst="c")])
    rows, win, lose, tie = implied_pairs(data)
    names = data.items
    assert {(names[w], names[v]) for w, v in zip(win, lose, strict=True)} == {
        ("b", "a"), ("b", "c"), ("b", "d"), ("a", "c"), ("d", "c")}
    assert not tie.any()


def test_it_matches_choix_maximum_likelihood_on_the_implied_pairs():
    design = design_generate(groups={"g": [f"d{i}" for i in range(8)]}, size=4, seed=2)
    rng = np.random.default_rng(2)
    quality = {item: rng.normal() for item in design.appearances}
    choices = _simulate(design, quality, per_unit=5, noise=1.0, rng=rng)
    ours = bradley_terry_scores(choices, prior=0, resamples=0)
    data = choices_compile(choices)
    _, win, lose, _ = implied_pairs(data)
    reference = choix.mm_pairwise(data.n_items, list(zip(win.tolist(), lose.tolist(), strict=True)), alpha=0.0)
    reference -= reference.mean()
    assert np.allclose(ours.scores, reference, atol=1e-4)
    # And it orders the descriptions like the simulated quality.
    assert stats.spearmanr(ours.scores, [quality[i] for i in ours.items])[0] > 0.8


def test_it_fits_each_sample_on_its_own_and_centres_it():
    design = design_generate(groups=_groups(3, 6), size=4, seed=4)
    rng = np.random.default_rng(4)
    quality = {item: rng.normal() + (5 if item.startswith("s0") else 0) for item in design.appearances}
    choices = _simulate(design, quality, per_unit=3, noise=0.5, rng=rng)
    groups = {item: unit.group for unit in design.units for item in unit.items}
    result = bradley_terry_scores(choices, groups=groups, resamples=30, seed=1)
    for g in ("s0", "s1", "s2"):
        members = [i for i, item in enumerate(result.items) if groups[item] == g]
        assert abs(result.scores[members].mean()) < 1e-9
    assert np.all(result.ci_low <= result.ci_high)


def test_it_scores_systems_by_counting_and_bradley_terry_with_intervals():
    design = design_generate(groups=_groups(12, 4), size=2, appearances=3, seed=0)
    system_of = {item: ("good" if item.endswith(("d0", "d1")) else "weak") for item in design.appearances}
    rng = np.random.default_rng(0)
    quality = {item: (1.0 if system_of[item] == "good" else 0.0) for item in design.appearances}
    choices = _simulate(design, quality, per_unit=2, noise=0.7, rng=rng)
    result = system_scores(choices, system_of=system_of, resamples=200, seed=0)
    rows = {row["system"]: row for row in result.rows()}
    assert rows["good"]["counting"] > 0 > rows["weak"]["counting"]
    assert rows["good"]["bradley_terry"] > rows["weak"]["bradley_terry"]
    assert rows["good"]["counting_ci"][0] > rows["weak"]["counting_ci"][1]
    assert rows["good"]["bradley_terry_ci"][0] <= rows["good"]["bradley_terry"] <= rows["good"]["bradley_terry_ci"][1]


# --- split-half ----------------------------------------------------------------------------------

def _replicate_reliability(design, quality, groups, *, per_unit, noise, seed, reps=6):
    """The reliability split-half estimates: correlation of the scores of two independent full data sets."""
    rng = np.random.default_rng(seed)
    rs = []
    for _ in range(reps):
        one = counting_scores(_simulate(design, quality, per_unit=per_unit, noise=noise, rng=rng), groups=groups,
                              resamples=0).score_of()
        two = counting_scores(_simulate(design, quality, per_unit=per_unit, noise=noise, rng=rng), groups=groups,
                              resamples=0).score_of()
        keys = sorted(one)
        rs.append(stats.spearmanr([one[k] for k in keys], [two[k] for k in keys])[0])
    return float(np.mean(rs))


def test_it_estimates_the_reliability_of_a_simulated_study():
    design = design_generate(groups=_groups(30, 8), size=4, seed=9)
    groups = {item: unit.group for unit in design.units for item in unit.items}
    rng = np.random.default_rng(9)
    quality = {item: rng.normal() for item in design.appearances}
    for noise in (1.0, 2.5):
        truth = _replicate_reliability(design, quality, groups, per_unit=4, noise=noise, seed=int(noise * 10))
        choices = _simulate(design, quality, per_unit=4, noise=noise, rng=rng)
        estimate = split_half(choices, groups=groups, splits=60, seed=0)
        assert estimate.n == 240
        assert estimate.spearman_brown == pytest.approx(truth, abs=0.04), (noise, truth)


def test_it_gives_split_half_near_zero_for_random_choices_and_one_for_unanimous_ones():
    design = design_generate(groups=_groups(20, 8), size=4, seed=1)
    rnd = random.Random(0)
    noise_only = []
    for u, unit in enumerate(design.units):
        for _ in range(4):
            best, worst = rnd.sample(unit.items, 2)
            noise_only.append(Choice(unit=u, shown=unit.items, best=best, worst=worst))
    assert abs(split_half(noise_only, splits=40).spearman_brown) < 0.2
    quality = {item: i for i, item in enumerate(sorted(design.appearances))}
    unanimous = _simulate(design, quality, per_unit=2, noise=0.0, rng=np.random.default_rng(0))
    assert split_half(unanimous, splits=10).spearman_brown == pytest.approx(1.0)


def _study_choices(*, n_groups: int, seed: int, per_unit: int, noise: float) -> tuple[list[Choice], dict]:
    """Simulated best-worst choices on a generated design, and each item's group."""
    design = design_generate(groups=_groups(n_groups, 8), size=4, seed=seed)
    groups = {item: unit.group for unit in design.units for item in unit.items}
    rng = np.random.default_rng(seed)
    quality = {item: rng.normal() for item in design.appearances}
    return _simulate(design, quality, per_unit=per_unit, noise=noise, rng=rng), groups


def test_its_split_half_does_not_depend_on_the_order_the_choices_come_in():
    choices, groups = _study_choices(n_groups=12, seed=3, per_unit=3, noise=1.5)
    shuffled = list(choices)
    random.Random(1).shuffle(shuffled)
    first = split_half(choices, groups=groups, splits=30, seed=2)
    assert split_half(shuffled, groups=groups, splits=30, seed=2).r_half == pytest.approx(first.r_half, abs=1e-12)


def test_it_agrees_between_counting_and_bradley_terry_split_half():
    choices, groups = _study_choices(n_groups=10, seed=5, per_unit=4, noise=1.0)
    counting = split_half(choices, groups=groups, splits=20, seed=0)
    bt = split_half(choices, groups=groups, method="bradley_terry", splits=20, seed=0)
    assert bt.spearman_brown == pytest.approx(counting.spearman_brown, abs=0.05)


def test_it_says_why_split_half_is_undefined_with_one_choice_per_unit():
    design = design_generate(groups=_groups(3, 8), size=4, seed=0)
    choices = _simulate(design, {i: 0.0 for i in design.appearances}, per_unit=1, noise=1.0,
                        rng=np.random.default_rng(0))
    result = split_half(choices)
    assert result.spearman_brown is None
    assert "cannot be split" in result.reason


# --- metric agreement ----------------------------------------------------------------------------

def test_it_counts_the_share_of_judged_pairs_a_metric_orders_the_same_way():
    choices = [Choice(unit=1, shown=("a", "b", "c", "d"), best="a", worst="d"),
               Choice(unit=2, shown=("a", "b"), best=None, worst=None)]
    same = choice_agreement(choices, metric_scores={"a": 4, "b": 3, "c": 2, "d": 1}, resamples=0)
    assert same.agreement == 1.0 and same.pairs == 5  # the tie decides no pair
    reverse = choice_agreement(choices, metric_scores={"a": 1, "b": 2, "c": 3, "d": 4}, resamples=0)
    assert reverse.agreement == 0.0
    # a>b yes, a>c yes, a>d tie (half), b>d no, c>d no: 2.5 of 5.
    mixed = choice_agreement(choices, metric_scores={"a": 2, "b": 3, "c": 1, "d": 2}, resamples=0)
    assert mixed.agreement == pytest.approx(0.5)
    assert mixed.metric_ties == 1


def test_it_gives_metric_agreement_an_interval_over_units():
    design = design_generate(groups=_groups(10, 6), size=4, seed=3)
    rng = np.random.default_rng(3)
    quality = {item: rng.normal() for item in design.appearances}
    choices = _simulate(design, quality, per_unit=2, noise=1.0, rng=rng)
    result = choice_agreement(choices, metric_scores=quality, resamples=300, seed=0)
    assert 0.5 < result.ci_low <= result.agreement <= result.ci_high <= 1.0


# --- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("choice,message", [
    (Choice(unit=1, shown=("a", "b", "c", "d"), best="x", worst="a"), "among the shown"),
    (Choice(unit=1, shown=("a", "b", "c", "d"), best="a", worst="a"), "the same description"),
    (Choice(unit=1, shown=("a", "b", "c", "d"), best=None, worst=None), "only a pair"),
    (Choice(unit=1, shown=("a", "a"), best="a", worst="a"), "shown twice"),
    (Choice(unit=1, shown=("a",), best="a", worst="a"), "at least 2"),
])
def test_it_refuses_a_malformed_choice_with_a_clear_error(choice, message):
    with pytest.raises(ComparativeInputError, match=message):
        counting_scores([choice], resamples=0)


def test_it_refuses_a_unit_that_changes_its_descriptions_or_mixes_samples():
    with pytest.raises(ComparativeInputError, match="other descriptions"):
        counting_scores([Choice(unit=1, shown=("a", "b"), best="a", worst="b"),
                         Choice(unit=1, shown=("a", "c"), best="a", worst="c")], resamples=0)
    with pytest.raises(ComparativeInputError, match="different samples"):
        counting_scores([Choice(unit=1, shown=("a", "b"), best="a", worst="b")], groups={"a": 1, "b": 2},
                        resamples=0)
    with pytest.raises(ComparativeInputError, match="no choices"):
        counting_scores([], resamples=0)


def test_it_turns_choices_into_values_whose_mean_is_the_counting_score():
    choices = [Choice(unit=1, shown=("a", "b", "c", "d"), best="a", worst="d", annotator="x"),
               Choice(unit=2, shown=("a", "b"), best="b", worst="a", annotator="x")]
    units, raters, values = choice_contributions(choices)
    assert list(zip(units, values, strict=True)) == [("a", 1), ("b", 0), ("c", 0), ("d", -1), ("a", -1), ("b", 1)]
    assert raters == ["x:1"] * 4 + ["x:2"] * 2
    means = {u: np.mean([v for w, v in zip(units, values, strict=True) if w == u]) for u in set(units)}
    assert means == pytest.approx(counting_scores(choices, resamples=0).score_of())
