"""Metric meta-evaluation: values against scipy and published examples, paired comparisons, wording."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from annotations import agreement as A
from annotations import metaeval as M


def _study(*, n: int = 60, k: int = 4, seed: int = 1, noises: dict[str, float] | None = None):
    rng = np.random.default_rng(seed)
    truth = rng.normal(0, 1, n)
    units = np.repeat(np.arange(n), k).tolist()
    raters = np.tile(np.arange(k), n).tolist()
    values = np.clip(np.rint(3 + truth[units] + rng.normal(0, 0.8, n * k)), 1, 5).tolist()
    noises = noises or {"sentence": 0.4, "word": 1.5}
    scores = {name: {u: float(truth[u] + rng.normal(0, s)) for u in range(n)} for name, s in noises.items()}
    return units, raters, values, scores, truth


def test_it_matches_scipy_for_every_item_level_correlation() -> None:
    units, raters, values, scores, _ = _study()
    result = M.metaeval_compute(units=units, raters=raters, values=values, scores=scores, resamples=200, seed=1)
    human = [np.mean([v for u, v in zip(units, values, strict=True) if u == i]) for i in range(60)]
    x = [scores["word"][i] for i in range(60)]
    for method, fn in (("spearman", stats.spearmanr), ("kendall", stats.kendalltau), ("pearson", stats.pearsonr)):
        expected = fn(x, human)
        got = result["metrics"]["word"][method]
        assert got["r"] == pytest.approx(expected.statistic)
        assert got["p"] == pytest.approx(expected.pvalue)
        assert got["ci"][0] < got["r"] < got["ci"][1]


def test_it_matches_steigers_example_of_williams_test() -> None:
    # Steiger (1980), case A, also psych::r.test(103, .4, .5, .1): t = 0.89 (df 100), p = 0.37.
    t, p = M.williams_test(r12=0.5, r13=0.4, r23=0.1, n=103)
    assert t == pytest.approx(0.89, abs=0.005)
    assert p == pytest.approx(2 * stats.t.sf(0.8913, 100), abs=1e-3)
    assert p == pytest.approx(0.37, abs=0.01)


def test_it_keeps_williams_test_at_its_nominal_size_under_the_null() -> None:
    # Independent check: two metrics equally correlated with the human score reject in ~5 % of samples.
    rng = np.random.default_rng(4)
    cov = np.array([[1, 0.5, 0.5], [0.5, 1, 0.3], [0.5, 0.3, 1]])
    rejections = 0
    for _ in range(1000):
        data = rng.multivariate_normal(np.zeros(3), cov, size=40)
        r = np.corrcoef(data.T)
        rejections += M.williams_test(r12=r[0, 1], r13=r[0, 2], r23=r[1, 2], n=40)[1] < 0.05
    assert 0.03 <= rejections / 1000 <= 0.07


def test_it_estimates_the_sampling_sd_of_pearsons_r_by_the_normal_theory_value_for_normal_data() -> None:
    # For bivariate normal data Var(r) ~ (1 - rho^2)^2 / n (Fisher 1915); the influence values give it
    # without assuming normality, and agree with it when the data are normal.
    rng = np.random.default_rng(2)
    data = rng.multivariate_normal([0, 0], [[1, 0.6], [0.6, 1]], size=200_000)
    r, influence = A.pearson_influence(data[:, 0], data[:, 1])
    assert r == pytest.approx(stats.pearsonr(data[:, 0], data[:, 1]).statistic)
    assert np.sqrt(np.mean(influence**2)) == pytest.approx(1 - 0.6**2, rel=0.01)


def test_it_resamples_correlations_as_scipy_computes_them_on_the_resampled_items() -> None:
    # Draw counts instead of gathered copies: the same resamples (same seed), the same correlations.
    rng = np.random.default_rng(3)
    truth = rng.normal(0, 1, 30)
    human = np.clip(np.rint(3 + truth + rng.normal(0, 0.8, 30)), 1, 5)  # many ties
    metric = np.round(truth + rng.normal(0, 1, 30), 1)
    boot = M._boot_correlations(human=human, metrics={"m": metric}, resamples=50, rng=np.random.default_rng(5))
    for b, idx in enumerate(np.random.default_rng(5).integers(0, 30, (50, 30))):
        x, h = metric[idx], human[idx]
        assert boot.samples["m"]["spearman"][b] == pytest.approx(stats.spearmanr(x, h).statistic, abs=1e-12)
        assert boot.samples["m"]["pearson"][b] == pytest.approx(stats.pearsonr(x, h).statistic, abs=1e-12)
        assert boot.samples["m"]["kendall"][b] == pytest.approx(stats.kendalltau(x, h).statistic, abs=1e-12)


def test_it_gives_a_comparison_p_below_alpha_exactly_when_its_interval_excludes_zero() -> None:
    significant = set()
    for seed in range(12):
        units, raters, values, scores, _ = _study(n=40, seed=seed, noises={"a": 0.5, "b": 0.8})
        for confidence in (0.9, 0.95):
            result = M.metaeval_compute(units=units, raters=raters, values=values, scores=scores, resamples=199,
                                        seed=seed, confidence=confidence, znorm=False)
            for row in result["comparisons"]:
                excludes = row["ci"][0] > 0 or row["ci"][1] < 0
                assert (row["p"] < 1 - confidence) == excludes, (seed, confidence, row)
                assert row["test"] == M.TESTS[row["method"]]
                significant.add((row["method"], excludes))
    # Both outcomes occurred for both methods, so the check above was not vacuous.
    assert significant == {(m, e) for m in ("spearman", "pearson") for e in (True, False)}


def test_it_keeps_williams_test_as_a_secondary_figure_of_the_pearson_comparison() -> None:
    units, raters, values, scores, _ = _study()
    result = M.metaeval_compute(units=units, raters=raters, values=values, scores=scores, resamples=100, seed=1)
    row = next(c for c in result["comparisons"] if c["method"] == "pearson")
    r = {name: result["metrics"][name]["pearson"]["r"] for name in ("sentence", "word")}
    r23 = np.corrcoef([scores["sentence"][u] for u in range(60)], [scores["word"][u] for u in range(60)])[0, 1]
    t, p = M.williams_test(r12=r["sentence"], r13=r["word"], r23=r23, n=60)
    assert row["williams"]["t"] == pytest.approx(t) and row["williams"]["p"] == pytest.approx(p)
    assert row["williams"]["df"] == 57
    assert result["metrics"]["word"]["pearson"]["interval"] == "bootstrap-t on Fisher's z"
    assert result["metrics"]["word"]["spearman"]["interval"] == "percentile"


def test_it_adjusts_p_values_by_holm() -> None:
    assert M.holm_adjust([0.01, 0.04, 0.03, None]) == pytest.approx([0.03, 0.06, 0.06, None])
    assert M.holm_adjust([0.5, 0.9]) == [1.0, 1.0]


def test_it_finds_the_better_metric_with_a_paired_difference_and_says_so() -> None:
    units, raters, values, scores, _ = _study()
    result = M.metaeval_compute(units=units, raters=raters, values=values, scores=scores, resamples=400, seed=1)
    rho = [c for c in result["comparisons"] if c["method"] == "spearman"][0]
    assert (rho["a"], rho["b"]) == ("sentence", "word")
    expected = result["metrics"]["sentence"]["spearman"]["r"] - result["metrics"]["word"]["spearman"]["r"]
    assert rho["delta"] == pytest.approx(expected)
    assert rho["ci"][0] > 0 and rho["p_holm"] < 0.05
    assert all(c["p_holm"] >= c["p"] for c in result["comparisons"])
    s = result["metrics"]["sentence"]["spearman"]
    assert result["headline"].startswith(
        f"sentence: ρ = {s['r']:.2f} [{s['ci'][0]:.2f}, {s['ci'][1]:.2f}] with the mean human rating over 60 items")
    assert f"the best any metric could reach is {result['ceiling']:.2f}" in result["headline"]
    assert "sentence agrees with humans better than word (Δρ = " in result["headline"]
    assert result["metrics"]["sentence"]["disattenuated"]["spearman"] == pytest.approx(s["r"] / result["ceiling"])
    assert "znorm" in result["metrics"]["word"]


def test_its_headline_shows_the_p_that_goes_with_the_interval_and_the_corrected_one_it_decides_by() -> None:
    # A 95 % interval that excludes 0 (raw p 0.03) with a Holm p above 0.05 must not read as a contradiction:
    # the headline says "not clearly better" and gives both p-values and how many tests were corrected.
    units, raters, values, scores, _ = _study()
    result = M.metaeval_compute(units=units, raters=raters, values=values, scores=scores, resamples=100, seed=1)
    rho = next(c for c in result["comparisons"] if c["method"] == "spearman")
    rho.update(delta=0.41, ci=[0.02, 0.8], p=0.03, p_holm=0.06)
    text = M.headline_text(result=result)
    assert "sentence is not clearly better than word (Δρ = 0.41 [0.02, 0.80], p = 0.030, Holm p = 0.060 over " \
        f"{len(result['comparisons'])} tests)" in text
    rho.update(p=0.004, p_holm=0.008)
    assert "sentence agrees with humans better than word (Δρ = 0.41 [0.02, 0.80], p = 0.004, Holm p = 0.008" \
        in M.headline_text(result=result)


def test_it_shows_identical_checkpoints_once_with_both_names() -> None:
    units, raters, values, scores, _ = _study()
    scores["bert"] = dict(scores["sentence"])
    result = M.metaeval_compute(units=units, raters=raters, values=values, scores=scores, resamples=100, seed=1)
    assert set(result["metrics"]) == {"bert = sentence", "word"}
    assert result["identical"] == [["bert", "sentence"]]
    assert "bert and sentence gave identical scores on every item" in result["headline"]


def test_it_states_a_small_sample_instead_of_giving_intervals() -> None:
    units, raters, values, scores, _ = _study(n=4)
    result = M.metaeval_compute(units=units, raters=raters, values=values, scores=scores, resamples=100, seed=1)
    assert result["metrics"]["sentence"]["spearman"]["ci"] is None
    assert result["comparisons"] == []
    assert result["ceiling"] is None
    assert "no ceiling: only 4 item(s)" in result["headline"]
    assert "Only 4 item(s): too few for confidence intervals" in result["headline"]


def test_it_uses_the_same_items_for_every_figure() -> None:
    units, raters, values, scores, _ = _study()
    del scores["word"][0]  # item 0 lacks one metric: it leaves every figure, reliability included
    units, raters, values = units + [999], raters + [0], values + [3.0]  # a single-rated item
    result = M.metaeval_compute(units=units, raters=raters, values=values, scores=scores, resamples=100, seed=1)
    assert result["items"] == 59
    assert result["reliability"]["split_half"]["n"] == 59 and result["reliability"]["icc"]["n"] == 59
    assert all(m["spearman"]["n"] == 59 for m in result["metrics"].values())
    assert any("lack a score" in n for n in result["notes"])


def test_it_computes_system_level_correlation_and_pairwise_accuracy() -> None:
    # Human system means 1 < 2 < 3 < 4; the metric swaps the last two: 5 of 6 pairs agree.
    units, raters, values, scores = [], [], [], {"m": {}}
    systems = {}
    for s, (h, m) in enumerate([(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.3)]):
        for j in range(5):
            u = f"s{s}-{j}"
            units += [u, u]
            raters += ["a", "b"]
            values += [h, h + (j % 2)]
            scores["m"][u] = m + 0.01 * j
            systems[u] = f"sys{s}"
    result = M.metaeval_compute(units=units, raters=raters, values=values, scores=scores, systems=systems,
                                resamples=100, seed=1)
    level = result["system_level"]["metrics"]["m"]
    assert level["pairwise_accuracy"] == pytest.approx(5 / 6)
    human = [1.25, 2.25, 3.25, 4.25]
    metric = [0.12, 0.22, 0.42, 0.32]
    assert level["pearson"]["r"] == pytest.approx(stats.pearsonr(metric, human).statistic)
    assert level["kendall"]["r"] == pytest.approx(stats.kendalltau(metric, human).statistic)


def test_it_averages_the_within_group_correlation_over_groups() -> None:
    units, raters, values, scores, _ = _study(n=60)
    groups = {u: u // 3 for u in range(60)}
    result = M.metaeval_compute(units=units, raters=raters, values=values, scores=scores, groups=groups,
                                resamples=200, seed=1)
    human = {i: np.mean([v for u, v in zip(units, values, strict=True) if u == i]) for i in range(60)}
    taus = []
    for g in range(20):
        idx = [3 * g, 3 * g + 1, 3 * g + 2]
        h = [human[i] for i in idx]
        x = [scores["word"][i] for i in idx]
        if np.ptp(h) and np.ptp(x):
            taus.append(stats.kendalltau(x, h).statistic)
    grouped = result["grouped"]["metrics"]["word"]
    assert grouped["tau"] == pytest.approx(np.mean(taus))
    assert grouped["groups_used"] == len(taus)
    assert grouped["groups_skipped"] == 20 - len(taus)


def test_it_z_normalises_each_raters_ratings() -> None:
    out = M.human_scores(units=[1, 2, 1, 2], raters=["a", "a", "b", "b"], values=[1, 3, 4, 5], znorm=True)
    assert out[1][0] == pytest.approx(-1.0) and out[2][0] == pytest.approx(1.0)
