"""Classification metrics: pure functions over label lists (no ORM), for the LLM-from-VA answers, the
vision-only `expression` prediction and the `lexicon` baseline alike.

Conventions (each checked by hand in tests/inference/test_metrics.py):
- A prediction of None means "no valid answer" (unparseable, no face): it counts as wrong, and as a
  false negative of the true class; it is never dropped, so a model cannot gain by refusing.
- Undefined ratios are None, not 0: precision of a class never predicted, recall of a class absent
  from the truth. F1 is 2·TP / (2·TP + FP + FN), which equals the harmonic mean where both are
  defined and is 0 (not undefined) when the class was predicted or present but never hit.
- Macro averages run over the classes whose F1 is defined (present in truth or predictions).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

NO_ANSWER = None


def _check_lengths(y_true: Sequence, y_pred: Sequence) -> None:
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}")


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _mean_defined(values: Sequence[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


def accuracy(y_true: Sequence[str], y_pred: Sequence[str | None]) -> float | None:
    _check_lengths(y_true, y_pred)
    return _ratio(sum(t == p for t, p in zip(y_true, y_pred, strict=True)), len(y_true))


@dataclass(frozen=True)
class ClassScore:
    label: str
    precision: float | None
    recall: float | None
    f1: float | None
    support: int
    predicted: int
    hits: int  # true positives


def _prf(tp: int, fp: int, fn: int) -> tuple[float | None, float | None, float | None]:
    return _ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn)


def per_class_scores(y_true: Sequence[str], y_pred: Sequence[str | None],
                     labels: Sequence[str] | None = None) -> list[ClassScore]:
    """Precision/recall/F1 per class, in `labels` order (default: sorted labels seen in either list)."""
    _check_lengths(y_true, y_pred)
    labels = list(labels) if labels is not None else sorted({*y_true, *(p for p in y_pred if p is not None)})
    scores = []
    for label in labels:
        tp = sum(t == label and p == label for t, p in zip(y_true, y_pred, strict=True))
        predicted = sum(p == label for p in y_pred)
        support = sum(t == label for t in y_true)
        precision, recall, f1 = _prf(tp, predicted - tp, support - tp)
        scores.append(ClassScore(label, precision, recall, f1, support, predicted, tp))
    return scores


@dataclass(frozen=True)
class Confusion:
    """Rows are true labels, columns predicted labels; a last column None counts the non-answers."""

    labels: list[str]
    columns: list[str | None]
    matrix: list[list[int]]


def confusion_matrix(y_true: Sequence[str], y_pred: Sequence[str | None], labels: Sequence[str]) -> Confusion:
    _check_lengths(y_true, y_pred)
    labels = list(labels)
    unknown = sorted({*y_true, *(p for p in y_pred if p is not None)} - set(labels))
    if unknown:
        raise ValueError(f"labels not in the label set: {', '.join(map(repr, unknown))}")
    columns: list[str | None] = list(labels) + ([None] if any(p is None for p in y_pred) else [])
    index = {label: i for i, label in enumerate(columns)}
    matrix = [[0] * len(columns) for _ in labels]
    for t, p in zip(y_true, y_pred, strict=True):
        matrix[index[t]][index[p]] += 1
    return Confusion(labels, columns, matrix)


def chance_accuracy(n_classes: int) -> float:
    """Expected accuracy of a uniform random guess among the allowed labels."""
    if n_classes < 1:
        raise ValueError("chance accuracy needs at least one class")
    return 1.0 / n_classes


def majority_baseline(y_true: Sequence[str]) -> tuple[str | None, float | None]:
    """(most frequent true label, accuracy of always answering it); ties go to the label seen first."""
    if not y_true:
        return None, None
    counts = Counter(y_true)
    label = max(counts, key=lambda k: (counts[k], -list(y_true).index(k)))
    return label, counts[label] / len(y_true)


@dataclass
class SingleLabelReport:
    n: int
    n_answered: int
    accuracy: float | None
    macro_f1: float | None
    chance: float
    majority_label: str | None
    majority_accuracy: float | None
    per_class: list[ClassScore] = field(default_factory=list)
    confusion: Confusion | None = None


def single_label_report(y_true: Sequence[str], y_pred: Sequence[str | None],
                        labels: Sequence[str]) -> SingleLabelReport:
    per_class = per_class_scores(y_true, y_pred, labels)
    majority_label, majority_acc = majority_baseline(y_true)
    return SingleLabelReport(
        n=len(y_true), n_answered=sum(p is not None for p in y_pred), accuracy=accuracy(y_true, y_pred),
        macro_f1=_mean_defined([c.f1 for c in per_class]), chance=chance_accuracy(len(labels)),
        majority_label=majority_label, majority_accuracy=majority_acc, per_class=per_class,
        confusion=confusion_matrix(y_true, y_pred, labels),
    )


# --- multi-label (Emotic) --------------------------------------------------------------------------

def _as_sets(rows: Sequence[Collection[str] | None]) -> list[frozenset[str] | None]:
    return [None if row is None else frozenset(row) for row in rows]


def exact_match(true_sets: Sequence[Collection[str]], pred_sets: Sequence[Collection[str] | None]) -> float | None:
    _check_lengths(true_sets, pred_sets)
    truth, preds = _as_sets(true_sets), _as_sets(pred_sets)
    return _ratio(sum(p is not None and t == p for t, p in zip(truth, preds, strict=True)), len(truth))


def jaccard_mean(true_sets: Sequence[Collection[str]], pred_sets: Sequence[Collection[str] | None]) -> float | None:
    """Mean per-sample |T ∩ P| / |T ∪ P|; two empty sets agree perfectly (1), a non-answer scores 0."""
    _check_lengths(true_sets, pred_sets)
    scores = []
    for t, p in zip(_as_sets(true_sets), _as_sets(pred_sets), strict=True):
        p = p or frozenset()
        union = t | p
        scores.append(len(t & p) / len(union) if union else 1.0)
    return _ratio(sum(scores), len(scores))


def multilabel_per_label(true_sets: Sequence[Collection[str]], pred_sets: Sequence[Collection[str] | None],
                         labels: Sequence[str]) -> list[ClassScore]:
    """Each label as its own binary task (present or not per sample)."""
    _check_lengths(true_sets, pred_sets)
    truth = _as_sets(true_sets)
    preds = [p or frozenset() for p in _as_sets(pred_sets)]
    scores = []
    for label in labels:
        tp = sum(label in t and label in p for t, p in zip(truth, preds, strict=True))
        predicted = sum(label in p for p in preds)
        support = sum(label in t for t in truth)
        precision, recall, f1 = _prf(tp, predicted - tp, support - tp)
        scores.append(ClassScore(label, precision, recall, f1, support, predicted, tp))
    return scores


def multilabel_f1(true_sets: Sequence[Collection[str]], pred_sets: Sequence[Collection[str] | None],
                  labels: Sequence[str]) -> dict[str, float | None]:
    """Micro F1 (pooled TP/FP/FN over all labels) and macro F1 (mean of per-label F1 where defined)."""
    per_label = multilabel_per_label(true_sets, pred_sets, labels)
    tp = sum(s.hits for s in per_label)
    fp = sum(s.predicted for s in per_label) - tp
    fn = sum(s.support for s in per_label) - tp
    return {"micro": _prf(tp, fp, fn)[2], "macro": _mean_defined([s.f1 for s in per_label])}


def multilabel_report(true_sets: Sequence[Collection[str]], pred_sets: Sequence[Collection[str] | None],
                      labels: Sequence[str]) -> dict[str, float | int | None]:
    f1 = multilabel_f1(true_sets, pred_sets, labels)
    return {"n": len(true_sets), "n_answered": sum(p is not None for p in pred_sets),
            "exact_match": exact_match(true_sets, pred_sets), "jaccard": jaccard_mean(true_sets, pred_sets),
            "micro_f1": f1["micro"], "macro_f1": f1["macro"]}
