"""Study writes: create, edit (drafts), duplicate, add check items, open/pause/close."""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils.text import slugify

from audit.models import AuditEvent
from audit.services import audit_record
from inference.models import Dataset, Generation, LLMConfig, PromptTemplate

from ..models import PROLIFIC_COMPLETION_URL, Item, Study, UnitOption

DEFAULT_LIKERT_LABELS = ["Not at all", "Slightly", "Moderately", "Well", "Very well"]
# The study's whole-number settings are 32-bit columns: a larger number is refused here, not by the database.
MAX_SETTING = 2**31 - 1
MAX_PAY_PER_HOUR = 1_000_000
MAX_SCALE_POINTS = 11  # beyond 0-10 the buttons no longer fit a phone and keyboard shortcuts run out
FAILED_CHECK_ACTIONS = tuple(Study.FailedCheckAction.values)
COMPARATIVE_QUESTIONS = {
    Study.Kind.BWS: "Which description matches the person's emotional expression best, and which worst?",
    Study.Kind.PAIRWISE: "Which description matches the person's emotional expression better?",
}


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


CODE_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
DEFAULT_CONSENT = (
    "This study is run for research on how well automatically written descriptions match people's "
    "emotional expressions. We store your ratings, any comments you type, the time you spend on each item, "
    "and the id your crowd-work platform gives you (for example your Prolific id). That id is used to pay "
    "you and is replaced by a pseudonym in every dataset we analyse or share; you can ask the researchers "
    "to delete it. You may stop at any time with the 'Finish now' button."
)


def _positive_or_none(value: Any, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise StudyInvalid(f"{name} must be a whole number") from exc
    if number < 1:
        raise StudyInvalid(f"{name} must be at least 1 (leave it empty for no limit)")
    return number


def completion_url_validate(template: str) -> str:
    """A Prolific-style completion URL: http(s), with `{code}` as the only placeholder (optional)."""
    template = (template or "").strip()
    if not template:
        return ""
    longest = Study._meta.get_field("completion_url_template").max_length
    if len(template) > longest:  # the web form caps it; create_study and the services did not
        raise StudyInvalid(f"the completion URL is {len(template)} characters long; at most {longest}")
    probe = template.replace("{code}", "CODE")
    if "{" in probe or "}" in probe:
        raise StudyInvalid("the completion URL may contain {code} and no other {placeholder}")
    try:
        URLValidator(schemes=["https", "http"])(probe)
    except ValidationError as exc:
        raise StudyInvalid(f"the completion URL {template!r} is not an http(s) URL") from exc
    return template


def _code_validate(code: str | None, name: str) -> str | None:
    if code in (None, ""):
        return None
    code = str(code).strip()
    if not CODE_RE.match(code):
        raise StudyInvalid(f"the {name} must be 1-40 letters, digits, '-' or '_'")
    return code


def collaborators_validate(*, owner: AbstractBaseUser | None, collaborators: Iterable[Any]) -> list[Any]:
    from ..selectors import user_is_researcher

    people = list(collaborators)
    for person in people:
        if not user_is_researcher(person):
            raise StudyInvalid(f"collaborator {person.get_username()!r} is not a researcher")
    return [p for p in people if owner is None or p.pk != owner.pk]


def study_settings_clean(**raw: Any) -> dict[str, Any]:
    """Validate the settings a study shares between create, edit and duplicate; returns model fields.

    Only the keys given are checked and returned, so an edit may change a few of them.
    """
    fields: dict[str, Any] = {}
    if "name" in raw:
        fields["name"] = (raw["name"] or "").strip()
        if not fields["name"]:
            raise StudyInvalid("a study needs a name")
        longest = Study._meta.get_field("name").max_length
        if len(fields["name"]) > longest:
            raise StudyInvalid(f"the name is {len(fields['name'])} characters long; at most {longest}")
    if "raters_per_item" in raw and (raw["raters_per_item"] is None or int(raw["raters_per_item"]) < 1):
        raise StudyInvalid(f"k (raters per item) must be at least 1, got {raw['raters_per_item']}")
    if "failed_check_action" in raw and raw["failed_check_action"] not in FAILED_CHECK_ACTIONS:
        raise StudyInvalid(
            f"failed_check_action {raw['failed_check_action']!r}: choose {', '.join(FAILED_CHECK_ACTIONS)}"
        )
    if raw.get("max_failed_checks", 0) < 0 or raw.get("min_median_seconds", 0) < 0 or raw.get(
        "assignment_timeout_minutes", 1
    ) < 1:
        raise StudyInvalid("max_failed_checks and min_median_seconds must be >= 0, the timeout >= 1 minute")
    if "early_finish" in raw and raw["early_finish"] not in Study.EarlyFinish.values:
        raise StudyInvalid(f"early_finish {raw['early_finish']!r}: choose {', '.join(Study.EarlyFinish.values)}")
    for key in ("items_per_participant", "max_participants", "expected_minutes"):
        if key in raw:
            fields[key] = _positive_or_none(raw[key], key.replace("_", " "))
    if "pay_per_hour" in raw:
        pay = raw["pay_per_hour"]
        if pay in (None, ""):
            fields["pay_per_hour"] = None
        else:
            try:
                fields["pay_per_hour"] = Decimal(str(pay)).quantize(Decimal("0.01"))
            except (InvalidOperation, ValueError) as exc:
                raise StudyInvalid("pay per hour must be a number") from exc
            if not fields["pay_per_hour"].is_finite() or fields["pay_per_hour"] < 0:  # NaN cannot be compared
                raise StudyInvalid("pay per hour cannot be negative")
            if fields["pay_per_hour"] >= MAX_PAY_PER_HOUR:  # the column holds 8 digits, 2 after the point
                raise StudyInvalid(f"pay per hour must be below {MAX_PAY_PER_HOUR:,}")
    if "pay_currency" in raw:
        currency = (raw["pay_currency"] or "").strip().upper()
        if not re.fullmatch(r"[A-Z]{3}", currency):
            raise StudyInvalid("the currency is a three-letter code such as GBP or USD")
        fields["pay_currency"] = currency
    if "completion_url_template" in raw:
        fields["completion_url_template"] = completion_url_validate(raw["completion_url_template"])
    for key, label in (("completion_code", "completion code"), ("partial_completion_code", "partial code")):
        if key in raw:
            code = _code_validate(raw[key], label)
            if code is not None:
                fields[key] = code
    if raw.get("early_finish") == Study.EarlyFinish.PARTIAL_CODE and fields.get("completion_code") and (
        fields.get("completion_code") == fields.get("partial_completion_code")
    ):
        raise StudyInvalid("the partial-completion code must differ from the completion code")
    if "scale_min" in raw or "scale_max" in raw or "scale_labels" in raw:
        fields["scale_labels"] = _scale_validate(
            scale_min=raw.get("scale_min", 1), scale_max=raw.get("scale_max", 5), scale_labels=raw.get("scale_labels")
        )
    if "kind" in raw and raw["kind"] not in Study.Kind.values:
        raise StudyInvalid(f"study kind {raw['kind']!r}: choose one of {', '.join(Study.Kind.values)}")
    if raw.get("allow_ties") and raw.get("kind") != Study.Kind.PAIRWISE:
        raise StudyInvalid("'equally good' (ties) is an option of pairwise studies only")
    if "unit_appearances" in raw and (raw["unit_appearances"] is None or int(raw["unit_appearances"]) < 1):
        raise StudyInvalid(f"units per description must be at least 1, got {raw['unit_appearances']}")
    plain = ("raters_per_item", "failed_check_action", "max_failed_checks", "assignment_timeout_minutes",
             "early_finish", "scale_min", "scale_max", "show_image", "show_va", "show_reference", "instructions",
             "consent_text", "kind", "allow_ties", "design_seed", "unit_appearances")
    fields.update({key: raw[key] for key in plain if key in raw})
    if "min_median_seconds" in raw:
        fields["min_median_seconds"] = float(raw["min_median_seconds"])
        if not math.isfinite(fields["min_median_seconds"]):
            raise StudyInvalid("min_median_seconds must be a number of seconds")
    if fields.get("design_seed", 0) < 0:
        raise StudyInvalid(f"the design seed must be 0 or more, not {fields['design_seed']}")
    for key, value in fields.items():
        if isinstance(value, int) and not -MAX_SETTING <= value <= MAX_SETTING:
            raise StudyInvalid(f"{key.replace('_', ' ')} {value} is too large (at most {MAX_SETTING})")
    if raw.get("question"):
        fields["question"] = str(raw["question"]).strip()
    return fields


def _selection(*, dataset: Dataset | str | None, config_names: Sequence[str], prompt_names: Sequence[str],
               task: str, statuses: Sequence[str]) -> tuple[Dataset | None, dict[str, Any], list[Generation]]:
    dataset_obj = dataset_resolve(dataset)
    generations = generations_select(
        dataset=dataset_obj, config_names=config_names, prompt_names=prompt_names, task=task, statuses=statuses
    )
    if not generations:
        raise StudyInvalid(
            f"no {task} generations with status {'/'.join(statuses)} match dataset "
            f"{getattr(dataset_obj, 'name', 'any')!r}, configs {list(config_names)}, prompts {list(prompt_names)}"
        )
    selection = {
        "dataset": getattr(dataset_obj, "name", None), "configs": list(config_names),
        "prompts": list(prompt_names), "task": task, "statuses": list(statuses),
    }
    return dataset_obj, selection, generations


def _checks_match_kind(*, kind: str, attention_items: Iterable[Any] | None, gold_units: Iterable[Any] | None) -> None:
    if kind == Study.Kind.LIKERT and gold_units:
        raise StudyInvalid("gold units (known best and worst) belong to best–worst and pairwise studies")
    if kind != Study.Kind.LIKERT and attention_items:
        raise StudyInvalid("a comparative study takes gold units (known best and worst), not rating-range checks")


def _study_contents_add(
    *, study: Study, generations: Iterable[Generation], checks: Iterable[CheckItem] | None,
    gold_units: Iterable[Any] | None,
) -> None:
    """Likert: one item per description and its range checks; comparative: the design's units and gold units."""
    # Imported here: the units service builds on this module (StudyInvalid, item texts).
    from .units import study_gold_units_add, study_units_add

    if study.kind == Study.Kind.LIKERT:
        if generations is not None:
            study_items_add(study=study, generations=generations)
        if checks is not None:
            study_check_items_add(study=study, check_items=checks)
    else:
        if generations is not None:
            study_units_add(study=study, generations=generations)
        if gold_units is not None:
            study_gold_units_add(study=study, gold_units=gold_units)


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
    failed_check_action: str = Study.FailedCheckAction.WARN,
    assignment_timeout_minutes: int = 30,
    created_by: AbstractBaseUser | None = None,
    owner: AbstractBaseUser | None = None,
    collaborators: Iterable[AbstractBaseUser] = (),
    items_per_participant: int | None = None,
    max_participants: int | None = None,
    expected_minutes: int | None = None,
    pay_per_hour: Decimal | float | str | None = None,
    pay_currency: str = "GBP",
    completion_url_template: str = PROLIFIC_COMPLETION_URL,
    partial_completion_code: str | None = None,
    early_finish: str = Study.EarlyFinish.PARTIAL_CODE,
    open_now: bool = False,
    kind: str = Study.Kind.LIKERT,
    allow_ties: bool = False,
    design_seed: int = 0,
    unit_appearances: int = 8,
    gold_units: Iterable[Any] = (),
) -> Study:
    """Create a study with its items (Likert) or units (best–worst, pairwise) and check items, atomically.

    The one way a study is made: the web form, `create_study` and the demo all call this. The owner (and
    the collaborators) are who may see it; a study without an owner is visible to superusers only.
    """
    fields = study_settings_clean(
        name=name, raters_per_item=k, failed_check_action=failed_check_action,
        max_failed_checks=max_failed_checks, min_median_seconds=min_median_seconds,
        assignment_timeout_minutes=assignment_timeout_minutes, scale_min=scale_min, scale_max=scale_max,
        scale_labels=scale_labels, show_image=show_image, show_va=show_va, show_reference=show_reference,
        instructions=instructions, consent_text=consent_text or DEFAULT_CONSENT, question=question,
        completion_code=completion_code, partial_completion_code=partial_completion_code,
        early_finish=early_finish, items_per_participant=items_per_participant,
        max_participants=max_participants, expected_minutes=expected_minutes, pay_per_hour=pay_per_hour,
        pay_currency=pay_currency, completion_url_template=completion_url_template,
        kind=kind, allow_ties=allow_ties, design_seed=design_seed, unit_appearances=unit_appearances,
    )
    _checks_match_kind(kind=kind, attention_items=attention_items, gold_units=gold_units)
    if not question and kind in COMPARATIVE_QUESTIONS:
        fields["question"] = COMPARATIVE_QUESTIONS[kind]
    checks = [c if isinstance(c, CheckItem) else check_item_parse(c) for c in attention_items]
    people = collaborators_validate(owner=owner, collaborators=collaborators)
    if slug is not None:
        slug = slugify(slug)
        if not slug:
            raise StudyInvalid("slug is empty after slugifying")
        if len(slug) > Study._meta.get_field("slug").max_length:
            raise StudyInvalid(f"the slug is {len(slug)} characters long; at most "
                               f"{Study._meta.get_field('slug').max_length}")
        if Study.objects.filter(slug=slug).exists():
            raise StudyInvalid(f"a study with slug {slug!r} already exists")
    dataset_obj, selection, generations = _selection(
        dataset=dataset, config_names=config_names, prompt_names=prompt_names, task=task, statuses=statuses
    )
    fields.update({
        "slug": slug or _slug_unique(fields["name"]),
        "status": Study.Status.OPEN if open_now else Study.Status.DRAFT,
        "dataset": dataset_obj, "selection": selection,
        "created_by": created_by or owner, "owner": owner,
    })
    with transaction.atomic():
        study = Study.objects.create(**fields)
        study.collaborators.set(people)
        _study_contents_add(study=study, generations=generations, checks=checks, gold_units=gold_units)
    return study


def study_update(
    *,
    study: Study,
    config_names: Sequence[str] | None = None,
    prompt_names: Sequence[str] | None = None,
    dataset: Dataset | str | None = None,
    task: str | None = None,
    statuses: Sequence[str] | None = None,
    attention_items: Iterable[CheckItem | Mapping[str, Any] | str] | None = None,
    gold_units: Iterable[Any] | None = None,
    collaborators: Iterable[AbstractBaseUser] | None = None,
    **settings_fields: Any,
) -> Study:
    """Edit a draft study: its settings and, when given, its selection (items rebuilt) and check items.

    Only drafts: once participants can see a study, changing what they rate would mix two studies in one
    table. A change that fails validation changes nothing.
    """
    if study.status != Study.Status.DRAFT:
        raise StudyInvalid("only a draft study can be edited; duplicate it to change an opened one")
    if "allow_ties" in settings_fields and "kind" not in settings_fields:
        settings_fields["kind"] = study.kind
    fields = study_settings_clean(**settings_fields)
    kind = fields.get("kind", study.kind)
    _checks_match_kind(kind=kind, attention_items=attention_items, gold_units=gold_units)
    # A new instrument or design needs new units, and check items of the other instrument no longer apply.
    redesign = any(key in fields and fields[key] != getattr(study, key)
                   for key in ("kind", "design_seed", "unit_appearances"))
    if "raters_per_item" in settings_fields:
        fields["raters_per_item"] = int(settings_fields["raters_per_item"])
    checks = None if attention_items is None else [
        c if isinstance(c, CheckItem) else check_item_parse(c) for c in attention_items]
    people = None if collaborators is None else collaborators_validate(owner=study.owner, collaborators=collaborators)
    generations = None
    if config_names is not None:
        current = study.selection or {}
        dataset_obj, selection, generations = _selection(
            dataset=dataset, config_names=config_names, prompt_names=prompt_names or [],
            task=task or current.get("task", PromptTemplate.Task.DESCRIBE),
            statuses=statuses or current.get("statuses", [Generation.Status.OK]),
        )
        fields.update({"dataset": dataset_obj, "selection": selection})
    elif redesign:
        current = study.selection or {}
        dataset_obj, selection, generations = _selection(
            dataset=study.dataset, config_names=current.get("configs", []), prompt_names=current.get("prompts", []),
            task=current.get("task", PromptTemplate.Task.DESCRIBE),
            statuses=current.get("statuses", [Generation.Status.OK]),
        )
    if "kind" in fields and fields["kind"] != study.kind and not settings_fields.get("question"):
        fields["question"] = COMPARATIVE_QUESTIONS.get(fields["kind"], Study._meta.get_field("question").default)
    with transaction.atomic():
        locked = Study.objects.select_for_update().get(pk=study.pk)
        if locked.status != Study.Status.DRAFT:
            raise StudyInvalid("only a draft study can be edited; duplicate it to change an opened one")
        for key, value in fields.items():
            setattr(locked, key, value)
        scale = (locked.scale_min, locked.scale_max)
        if "scale_labels" not in settings_fields and ("scale_min" in fields or "scale_max" in fields):
            locked.scale_labels = _scale_validate(scale_min=scale[0], scale_max=scale[1], scale_labels=None)
        locked.save()
        if people is not None:
            locked.collaborators.set(people)
        if generations is not None:
            locked.items.filter(kind=Item.Kind.NORMAL).delete()
        if checks is not None or gold_units is not None or ("kind" in fields and fields["kind"] != study.kind):
            locked.items.exclude(kind=Item.Kind.NORMAL).delete()
        _study_contents_add(study=locked, generations=generations, checks=checks, gold_units=gold_units)
        # Comparative check units have no rating range to keep within the scale.
        if locked.kind == Study.Kind.LIKERT and checks is None and ("scale_min" in fields or "scale_max" in fields):
            for check in locked.items.exclude(kind=Item.Kind.NORMAL):
                if not (locked.scale_min <= check.expected_min <= check.expected_max <= locked.scale_max):
                    raise StudyInvalid(f"check item {check.text!r} no longer fits the new scale")
    return locked


COPIED_FIELDS = (
    "dataset", "selection", "question", "scale_min", "scale_max", "scale_labels", "raters_per_item", "show_image",
    "show_va", "show_reference", "instructions", "consent_text", "max_failed_checks", "min_median_seconds",
    "failed_check_action", "assignment_timeout_minutes", "completion_url_template", "early_finish",
    "items_per_participant", "max_participants", "expected_minutes", "pay_per_hour", "pay_currency",
    "kind", "allow_ties", "design_seed", "unit_appearances",
)


def study_duplicate(*, study: Study, owner: AbstractBaseUser) -> Study:
    """A new draft with the same settings, items and checks; new codes and salt, nobody enrolled."""
    fields = {key: getattr(study, key) for key in COPIED_FIELDS}
    name = f"Copy of {study.name}"[:200]
    with transaction.atomic():
        copy = Study.objects.create(
            name=name, slug=_slug_unique(name), status=Study.Status.DRAFT, owner=owner, created_by=owner, **fields
        )
        # Whoever could see the original can see the copy; the one who duplicated it owns it.
        people = [*study.collaborators.all(), *([study.owner] if study.owner else [])]
        copy.collaborators.set([p for p in people if p.pk != owner.pk])
        originals = list(study.items.order_by("id").prefetch_related("options"))
        copies = Item.objects.bulk_create([
            Item(study=copy, generation_id=item.generation_id, kind=item.kind, text=item.text,
                 expected_min=item.expected_min, expected_max=item.expected_max, sample_id=item.sample_id)
            for item in originals
        ])
        UnitOption.objects.bulk_create([
            UnitOption(item=new, position=option.position, generation_id=option.generation_id, text=option.text,
                       expected=option.expected)
            for old, new in zip(originals, copies, strict=True) for option in old.options.all()
        ])
    return copy


def study_status_set(*, study: Study, status: str, by: Any = None) -> Study:
    """Open, pause or close a study. A draft with no items cannot open (annotators would land on nothing);
    nothing goes back to draft (participants may have seen it). The change is audited (`by`: the user)."""
    if status not in Study.Status.values:
        raise StudyInvalid(f"unknown study status {status!r}")
    if status == Study.Status.DRAFT and study.status != Study.Status.DRAFT:
        raise StudyInvalid("a study that was opened cannot go back to draft; duplicate it instead")
    if status == Study.Status.OPEN and not study.items.exists():
        raise StudyInvalid("a study with no items cannot be opened")
    old = study.status
    with transaction.atomic():
        Study.objects.filter(pk=study.pk).update(status=status)
        audit_record(action=AuditEvent.Action.STUDY_STATUS, target=study, actor=by,
                     summary=f"status {old} → {status}", details={"from": old, "to": status})
    study.status = status
    return study
