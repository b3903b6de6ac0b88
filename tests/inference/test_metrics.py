"""Classification metrics against hand-computed cases (and scikit-learn, which is installed here as a
dependency of the stack; the cross-check is skipped where it is not)."""
from __future__ import annotations

import pytest
from scipy import stats

from inference.metrics import (
    accuracy,
    ccc,
    ccc_bootstrap,
    chance_accuracy,
    confusion_matrix,
    exact_match,
    jaccard_mean,
    majority_baseline,
    mcnemar_test,
    multilabel_baselines,
    multilabel_f1,
    multilabel_per_label,
    multilabel_report,
    paired_mean_difference,
    per_class_scores,
    single_label_report,
    wilson_interval,
)

# Six items, one unanswered (None). Worked by hand:
#   a: TP 1, predicted 2, support 2 -> P .5, R .5, F1 2/(2+1+1) = .5
#   b: TP 2, predicted 3, support 2 -> P 2/3, R 1, F1 4/(4+1+0) = .8
#   c: TP 0, predicted 0, support 2 -> P undefined, R 0, F1 0/(0+0+2) = 0
#   d: never seen -> all undefined; macro-F1 runs over the full label set, d counting 0: (.5 + .8 + 0 + 0) / 4
Y_TRUE = ["a", "a", "b", "b", "c", "c"]
Y_PRED = ["a", "b", "b", "b", None, "a"]
LABELS = ["a", "b", "c", "d"]

# Emotic-style sets, worked by hand: exact 1/4; Jaccard (1 + .5 + 0 + .5) / 4;
#   A: TP 2 -> F1 1;  B: TP 2 -> F1 1;  C: TP 0, FP 1, FN 2 -> F1 0
#   micro: TP 4, FP 1, FN 2 -> 8 / 11;  macro (1 + 1 + 0) / 3
SETS_TRUE = [{"A", "B"}, {"A"}, {"C"}, {"B", "C"}]
SETS_PRED = [{"A", "B"}, {"A", "C"}, None, {"B"}]


def test_it_counts_an_unanswered_item_as_wrong() -> None:
    assert accuracy(Y_TRUE, Y_PRED) == 0.5
    assert accuracy([], []) is None


def test_it_scores_each_class_by_hand() -> None:
    scores = {s.label: s for s in per_class_scores(Y_TRUE, Y_PRED, LABELS)}
    assert (scores["a"].precision, scores["a"].recall, scores["a"].f1) == (0.5, 0.5, 0.5)
    assert scores["b"].precision == pytest.approx(2 / 3) and scores["b"].recall == 1.0
    assert scores["b"].f1 == pytest.approx(0.8)
    assert (scores["c"].precision, scores["c"].recall, scores["c"].f1) == (None, 0.0, 0.0)
    assert (scores["d"].precision, scores["d"].recall, scores["d"].f1, scores["d"].support) == (None, None, None, 0)


def test_it_builds_the_confusion_matrix_with_a_no_answer_column() -> None:
    confusion = confusion_matrix(Y_TRUE, Y_PRED, ["a", "b", "c"])
    assert confusion.columns == ["a", "b", "c", None]
    assert confusion.matrix == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 1]]
    assert confusion_matrix(["a"], ["a"], ["a", "b"]).columns == ["a", "b"]


def test_it_rejects_labels_outside_the_label_set_and_unequal_lengths() -> None:
    with pytest.raises(ValueError, match="'zebra'"):
        confusion_matrix(["a"], ["zebra"], ["a", "b"])
    with pytest.raises(ValueError, match="y_true has 2 items but y_pred has 1"):
        accuracy(["a", "b"], ["a"])
    with pytest.raises(ValueError):
        chance_accuracy(0)


def test_it_gives_chance_and_majority_baselines() -> None:
    assert chance_accuracy(7) == pytest.approx(1 / 7)
    assert majority_baseline(["x", "y", "y", "z"]) == ("y", 0.5)
    assert majority_baseline(Y_TRUE) == ("a", pytest.approx(1 / 3))  # tie: first seen
    assert majority_baseline([]) == (None, None)


def test_it_reports_single_label_results_together() -> None:
    report = single_label_report(Y_TRUE, Y_PRED, LABELS)
    assert (report.n, report.n_answered, report.accuracy) == (6, 5, 0.5)
    assert report.macro_f1 == pytest.approx((0.5 + 0.8 + 0.0 + 0.0) / 4)
    assert report.chance == 0.25 and report.majority_accuracy == pytest.approx(1 / 3)


def test_it_scores_multilabel_sets_by_hand() -> None:
    assert exact_match(SETS_TRUE, SETS_PRED) == 0.25
    assert jaccard_mean(SETS_TRUE, SETS_PRED) == 0.5
    f1 = multilabel_f1(SETS_TRUE, SETS_PRED, ["A", "B", "C"])
    assert f1["micro"] == pytest.approx(8 / 11) and f1["macro"] == pytest.approx(2 / 3)
    per_label = {c.label: c for c in multilabel_per_label(SETS_TRUE, SETS_PRED, ["A", "C", "D"])}
    assert (per_label["A"].hits, per_label["A"].support, per_label["A"].f1) == (2, 2, 1.0)
    assert (per_label["C"].precision, per_label["C"].recall, per_label["C"].predicted) == (0.0, 0.0, 1)
    assert per_label["D"].f1 is None
    assert jaccard_mean([set()], [set()]) == 1.0
    report = multilabel_report(SETS_TRUE, SETS_PRED, ["A", "B", "C", "D"])
    assert report["n_answered"] == 3 and report["macro_f1"] == pytest.approx(2 / 4)  # D never seen: counts 0


def test_it_agrees_with_scikit_learn() -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    from sklearn.preprocessing import MultiLabelBinarizer

    pred = ["(none)" if p is None else p for p in Y_PRED]
    precision, recall, f1, _ = sklearn_metrics.precision_recall_fscore_support(
        Y_TRUE, pred, labels=["a", "b"], zero_division=0)
    ours = per_class_scores(Y_TRUE, Y_PRED, ["a", "b"])
    assert [s.precision for s in ours] == pytest.approx(list(precision))
    assert [s.recall for s in ours] == pytest.approx(list(recall))
    assert [s.f1 for s in ours] == pytest.approx(list(f1))
    assert single_label_report(Y_TRUE, Y_PRED, ["a", "b", "c"]).macro_f1 == pytest.approx(
        sklearn_metrics.f1_score(Y_TRUE, pred, labels=["a", "b", "c"], average="macro", zero_division=0))
    # The full label set, with a class nobody predicted or had: still scikit-learn's value.
    assert single_label_report(Y_TRUE, Y_PRED, LABELS).macro_f1 == pytest.approx(
        sklearn_metrics.f1_score(Y_TRUE, pred, labels=LABELS, average="macro", zero_division=0))
    assert confusion_matrix(Y_TRUE, Y_PRED, ["a", "b", "c"]).matrix == [
        row[:3] + [row[3]] for row in sklearn_metrics.confusion_matrix(
            Y_TRUE, pred, labels=["a", "b", "c", "(none)"])[:3].tolist()]
    binarizer = MultiLabelBinarizer(classes=["A", "B", "C"])
    t = binarizer.fit_transform(SETS_TRUE)
    p = binarizer.transform([s or set() for s in SETS_PRED])
    f1_ours = multilabel_f1(SETS_TRUE, SETS_PRED, ["A", "B", "C"])
    assert f1_ours["micro"] == pytest.approx(sklearn_metrics.f1_score(t, p, average="micro"))
    assert f1_ours["macro"] == pytest.approx(sklearn_metrics.f1_score(t, p, average="macro", zero_division=0))
    assert jaccard_mean(SETS_TRUE, SETS_PRED) == pytest.approx(sklearn_metrics.jaccard_score(t, p, average="samples"))
    assert exact_match(SETS_TRUE, SETS_PRED) == pytest.approx(sklearn_metrics.accuracy_score(t, p))


def test_it_matches_newcombes_wilson_intervals() -> None:
    # Newcombe (1998), Stat Med 17:857, Table I, method 3 (score): 81/263 -> 0.2553-0.3662; 15/148 -> 0.0624-0.1605.
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert wilson_interval(15, 148) == pytest.approx((0.0624, 0.1605), abs=1e-4)
    # Independent check of the definition: at each bound |p_hat - p| = z sqrt(p (1 - p) / n).
    low, high = wilson_interval(7, 20)
    z = stats.norm.ppf(0.975)
    for p in (low, high):
        assert abs(0.35 - p) == pytest.approx(z * (p * (1 - p) / 20) ** 0.5)
    assert wilson_interval(0, 0) == (None, None)


def test_it_runs_mcnemars_exact_test_with_a_paired_interval() -> None:
    a = [True, True, True, True, False, False, True, False, True, True]
    b = [False, False, False, True, True, False, True, False, True, False]
    test = mcnemar_test(a, b)
    assert (test["n"], test["a_only"], test["b_only"]) == (10, 4, 1)
    assert test["delta"] == pytest.approx(0.3)
    assert test["p"] == pytest.approx(stats.binomtest(4, 5, 0.5).pvalue)  # 0.375
    p12, p21 = 4.5 / 12, 1.5 / 12
    half = stats.norm.ppf(0.975) * ((p12 + p21 - (p12 - p21) ** 2) / 12) ** 0.5
    assert (test["ci_low"], test["ci_high"]) == pytest.approx((p12 - p21 - half, p12 - p21 + half))
    assert mcnemar_test([True], [True])["p"] == 1.0


def test_it_gives_a_paired_t_interval_like_scipy() -> None:
    diffs = [0.1, 0.3, -0.05, 0.2, 0.15]
    out = paired_mean_difference(diffs)
    assert out["p"] == pytest.approx(stats.ttest_1samp(diffs, 0).pvalue)
    assert out["ci_low"] < out["delta"] < out["ci_high"]


def test_it_computes_lins_ccc_and_drops_it_for_a_shift_that_pearson_ignores() -> None:
    x = [0.1, -0.4, 0.5, 0.2, -0.1, 0.7]
    y = [0.2, -0.3, 0.4, 0.1, 0.0, 0.6]
    mx, my = sum(x) / 6, sum(y) / 6
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / 6
    sx2, sy2 = sum((a - mx) ** 2 for a in x) / 6, sum((b - my) ** 2 for b in y) / 6
    assert ccc(x, y) == pytest.approx(2 * sxy / (sx2 + sy2 + (mx - my) ** 2))
    shifted = [v + 0.5 for v in x]
    assert stats.pearsonr(x, shifted).statistic == pytest.approx(1.0) and ccc(x, shifted) < 0.6
    out = ccc_bootstrap(x, y, resamples=500)
    assert out["ci_low"] <= out["ccc"] <= out["ci_high"] and out["n"] == 6


def test_it_gives_multilabel_majority_and_chance_baselines() -> None:
    truth = [{"A", "B"}, {"A"}, {"C"}, {"A"}]
    rows = {r["system"].split(" (")[0]: r for r in multilabel_baselines(truth, ["A", "B", "C", "D"])}
    majority = rows["baseline: majority label set"]
    assert majority["exact_match"] == 0.5 and majority["jaccard"] == pytest.approx((0.5 + 1 + 0 + 1) / 4)
    assert rows["baseline: most frequent label"]["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))
    chance = rows["baseline: chance"]
    assert 0 < chance["exact_match"] < majority["exact_match"]
