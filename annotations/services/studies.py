"""Study writes: create a study from a selection of Generations, add check items, open and close."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils.text import slugify

from inference.models import Dataset, Generation, LLMConfig, PromptTemplate

from ..models import Item, Study

DEFAULT_LIKERT_LABELS = ["Not at all", "Slightly", "Moderately", "Well", "Very well"]
MAX_SCALE_POINTS = 11  # beyond 0-10 the buttons no longer fit a phone and keyboard shortcuts run out
FAILED_CHECK_ACTIONS = ("continue", "warn", "end")


class StudyInvalid(ValueError):
    """The study cannot be created or changed as asked; the message says which argument is wrong."""


@dataclass(frozen=True)
class CheckItem:
    """A gold or attention item: the annotator passes when their rating is within [expected_min, expected_max]."""

    text: str
    expected_min: int
    expected_max: int
    kind: str = Item.Kind.ATTENTION


def check_item_parse(spec: str | Mapping[str, Any], *, kind: str = Item.Kind.ATTENTION) -> CheckItem:
    """Accept `{"text", "expected_min", "expected_max"[, "kind"]}` or the command-line form `TEXT|MIN|MAX`."""
    if isinstance(spec, str):
        parts = spec.rsplit("|", 2)
        if len(parts) != 3:
            raise StudyInvalid(f"check item {spec!r}: expected 'TEXT|MIN|MAX'")
        spec = {"text": parts[0], "expected_min": parts[1], "expected_max": parts[2], "kind": kind}
    try:
        text = str(spec["text"]).strip()
        low, high = int(spec["expected_min"]), int(spec["expected_max"])
    except (KeyError, TypeError, ValueError) as exc:
        raise StudyInvalid(f"check item {spec!r}: needs text and integer expected_min/expected_max") from exc
    item_kind = spec.get("kind", kind)
    if item_kind not in (Item.Kind.GOLD, Item.Kind.ATTENTION):
        raise StudyInvalid(f"check item kind {item_kind!r}: must be 'gold' or 'attention'")
    if not text:
        raise StudyInvalid("check item text is empty")
    return CheckItem(text=text, expected_min=low, expected_max=high, kind=item_kind)


def _scale_validate(*, scale_min: int, scale_max: int, scale_labels: Sequence[str] | None) -> list[str]:
    if scale_max <= scale_min:
        raise StudyInvalid(f"scale_max ({scale_max}) must be greater than scale_min ({scale_min})")
    points = scale_max - scale_min + 1
    if points > MAX_SCALE_POINTS:
        raise StudyInvalid(f"the scale has {points} points; at most {MAX_SCALE_POINTS} are supported")
    if scale_labels is None:
        return list(DEFAULT_LIKERT_LABELS) if (scale_min, scale_max) == (1, 5) else []
    labels = [str(label).strip() for label in scale_labels]
    if labels and len(labels) != points:
        raise StudyInvalid(f"{len(labels)} scale labels given for {points} scale points")
    return labels


def _slug_unique(base: str) -> str:
    root = slugify(base)[:90] or "study"
    slug, n = root, 2
    while Study.objects.filter(slug=slug).exists():
        slug, n = f"{root}-{n}", n + 1
    return slug


def dataset_resolve(dataset: Dataset | str | None) -> Dataset | None:
    if dataset is None or isinstance(dataset, Dataset):
        return dataset
    found = Dataset.objects.filter(name=dataset).first()
    if found is None:
        raise StudyInvalid(f"dataset {dataset!r} does not exist")
    return found


def generations_select(
    *,
    dataset: Dataset | None,
    config_names: Sequence[str],
    prompt_names: Sequence[str],
    task: str = PromptTemplate.Task.DESCRIBE,
    statuses: Sequence[str] = (Generation.Status.OK,),
) -> list[Generation]:
    """The Generations a study selection names; unknown names are an error, not an empty study."""
    if task not in PromptTemplate.Task.values:
        raise StudyInvalid(f"task {task!r}: choose one of {', '.join(PromptTemplate.Task.values)}")
    bad_status = set(statuses) - set(Generation.Status.values)
    if bad_status:
        raise StudyInvalid(f"unknown generation status(es): {', '.join(sorted(bad_status))}")
    missing = set(config_names) - set(LLMConfig.objects.filter(name__in=config_names).values_list("name", flat=True))
    if missing:
        raise StudyInvalid(f"unknown LLM config(s): {', '.join(sorted(missing))}")
    known_prompts = set(PromptTemplate.objects.filter(name__in=prompt_names).values_list("name", flat=True))
    if set(prompt_names) - known_prompts:
        raise StudyInvalid(f"unknown prompt(s): {', '.join(sorted(set(prompt_names) - known_prompts))}")
    qs = Generation.objects.filter(task=task, status__in=list(statuses))
    if dataset is not None:
        qs = qs.filter(va_estimate__sample__dataset=dataset)
    if config_names:
        qs = qs.filter(config__name__in=list(config_names))
    if prompt_names:
        qs = qs.filter(prompt__name__in=list(prompt_names))
    return list(qs.order_by("id"))


def _item_text(generation: Generation) -> str:
    # A categorization is shown as its labels; a description as its cleaned text (never the raw reply).
    if generation.task == PromptTemplate.Task.CATEGORIZE:
        return ", ".join(str(label) for label in generation.labels)
    return generation.text.strip()


def study_items_add(*, study: Study, generations: Iterable[Generation]) -> int:
    """Add one item per generation not yet in the study (safe to re-run); returns how many were added."""
    present = set(study.items.filter(generation__isnull=False).values_list("generation_id", flat=True))
    new = [
        Item(study=study, generation=gen, kind=Item.Kind.NORMAL, text=_item_text(gen))
        for gen in generations
        if gen.id not in present and _item_text(gen)
    ]
    Item.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)


def study_check_items_add(*, study: Study, check_items: Iterable[CheckItem | Mapping[str, Any] | str]) -> int:
    """Add gold/attention items; one with the same kind and text as an existing one is skipped (re-runs)."""
    added = 0
    for raw in check_items:
        check = raw if isinstance(raw, CheckItem) else check_item_parse(raw)
        if not (study.scale_min <= check.expected_min <= check.expected_max <= study.scale_max):
            raise StudyInvalid(
                f"check item {check.text!r}: accepted range {check.expected_min}-{check.expected_max} "
                f"must lie within the scale {study.scale_min}-{study.scale_max}"
            )
        _, created = Item.objects.get_or_create(
            study=study, kind=check.kind, text=check.text, generation=None,
            defaults={"expected_min": check.expected_min, "expected_max": check.expected_max},
        )
        added += int(created)
    return added


def study_create(
    *,
    name: str,
    dataset: Dataset | str | None,
    config_names: Sequence[str],
    prompt_names: Sequence[str],
    k: int = 3,
    slug: str | None = None,
    task: str = PromptTemplate.Task.DESCRIBE,
    statuses: Sequence[str] = (Generation.Status.OK,),
    question: str | None = None,
    scale_min: int = 1,
    scale_max: int = 5,
    scale_labels: Sequence[str] | None = None,
    show_image: bool = True,
    show_va: bool = False,
    show_reference: bool = False,
    instructions: str = "",
    consent_text: str = "",
    completion_code: str | None = None,
    attention_items: Iterable[CheckItem | Mapping[str, Any] | str] = (),
    max_failed_checks: int = 0,
    min_median_seconds: float = 0.0,
    failed_check_action: str = "warn",
    assignment_timeout_minutes: int = 30,
    created_by: AbstractBaseUser | None = None,
    open_now: bool = False,
) -> Study:
    """Create a study with one item per selected Generation plus its gold/attention items, atomically."""
    name = (name or "").strip()
    if not name:
        raise StudyInvalid("a study needs a name")
    if k < 1:
        raise StudyInvalid(f"k (raters per item) must be at least 1, got {k}")
    if failed_check_action not in FAILED_CHECK_ACTIONS:
        raise StudyInvalid(f"failed_check_action {failed_check_action!r}: choose {', '.join(FAILED_CHECK_ACTIONS)}")
    if max_failed_checks < 0 or min_median_seconds < 0 or assignment_timeout_minutes < 1:
        raise StudyInvalid("max_failed_checks and min_median_seconds must be >= 0, the timeout >= 1 minute")
    labels = _scale_validate(scale_min=scale_min, scale_max=scale_max, scale_labels=scale_labels)
    checks = [c if isinstance(c, CheckItem) else check_item_parse(c) for c in attention_items]
    if slug is not None:
        slug = slugify(slug)
        if not slug:
            raise StudyInvalid("slug is empty after slugifying")
        if Study.objects.filter(slug=slug).exists():
            raise StudyInvalid(f"a study with slug {slug!r} already exists")
    dataset_obj = dataset_resolve(dataset)
    generations = generations_select(
        dataset=dataset_obj, config_names=config_names, prompt_names=prompt_names, task=task, statuses=statuses
    )
    if not generations:
        raise StudyInvalid(
            f"no {task} generations with status {'/'.join(statuses)} match dataset "
            f"{getattr(dataset_obj, 'name', 'any')!r}, configs {list(config_names)}, prompts {list(prompt_names)}"
        )
    fields: dict[str, Any] = {
        "name": name,
        "slug": slug or _slug_unique(name),
        "status": Study.Status.OPEN if open_now else Study.Status.DRAFT,
        "dataset": dataset_obj,
        "selection": {
            "dataset": getattr(dataset_obj, "name", None), "configs": list(config_names),
            "prompts": list(prompt_names), "task": task, "statuses": list(statuses),
        },
        "scale_min": scale_min, "scale_max": scale_max, "scale_labels": labels,
        "raters_per_item": k, "show_image": show_image, "show_va": show_va, "show_reference": show_reference,
        "instructions": instructions, "consent_text": consent_text,
        "max_failed_checks": max_failed_checks, "min_median_seconds": float(min_median_seconds),
        "failed_check_action": failed_check_action, "assignment_timeout_minutes": assignment_timeout_minutes,
        "created_by": created_by,
    }
    if question:
        fields["question"] = question
    if completion_code:
        fields["completion_code"] = completion_code.strip()
    with transaction.atomic():
        study = Study.objects.create(**fields)
        study_items_add(study=study, generations=generations)
        study_check_items_add(study=study, check_items=checks)
    return study


def study_status_set(*, study: Study, status: str) -> Study:
    """Open or close a study. A draft with no items cannot open (annotators would land on nothing)."""
    if status not in Study.Status.values:
        raise StudyInvalid(f"unknown study status {status!r}")
    if status == Study.Status.OPEN and not study.items.exists():
        raise StudyInvalid("a study with no items cannot be opened")
    Study.objects.filter(pk=study.pk).update(status=status)
    study.status = status
    return study
