"""Reads of the inference app: name → row lookups and "which rows count" rules, each written once.

A lookup that finds nothing raises `NotFound` with the names that do exist ("known: …"), so every
command, form and service answers a typo the same way.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db.models import QuerySet

from inference.models import Dataset, LLMConfig, PromptTemplate, VAEstimate

KNOWN_SHOWN = 20


class NotFound(ValueError):
    """No row by that name; the message lists the known ones."""


def names_split(raw: str | Sequence[str] | None) -> list[str]:
    """"a, b,,a" or ["a", "b"] → ["a", "b"]: stripped, blanks dropped, first occurrence kept."""
    parts = (raw or "").split(",") if isinstance(raw, str | None) else raw
    return list(dict.fromkeys(part.strip() for part in parts if part and part.strip()))


def _known(values: Iterable[str], empty: str = "none") -> str:
    values = list(dict.fromkeys(values))
    shown = ", ".join(values[:KNOWN_SHOWN])
    return (shown + (", …" if len(values) > KNOWN_SHOWN else "")) if values else empty


def dataset_get(*, key: str | int) -> Dataset:
    """A dataset by name, or by numeric id when no dataset has that name."""
    found = Dataset.objects.filter(name=str(key)).first()
    if found is None and str(key).isdigit():
        found = Dataset.objects.filter(pk=int(key)).first()
    if found is None:
        known = _known(Dataset.objects.values_list("name", flat=True), "none imported yet; run import_dataset")
        raise NotFound(f"unknown dataset {str(key)!r} (known: {known})")
    return found


def llm_configs_get(*, names: Sequence[str]) -> list[LLMConfig]:
    """The configs in the order named; every unknown name is reported at once."""
    found = {config.name: config for config in LLMConfig.objects.filter(name__in=list(names))}
    missing = [name for name in names if name not in found]
    if missing:
        known = _known(LLMConfig.objects.values_list("name", flat=True), "none; run llm_defaults")
        raise NotFound(f"unknown LLM config(s) {', '.join(map(repr, missing))} (known: {known})")
    return [found[name] for name in names]


def prompt_get(*, spec: str) -> PromptTemplate:
    """`name`, `name@3` or `describe/name@3`; without a version, the newest one."""
    rest, _, version = spec.partition("@")
    task, _, name = rest.rpartition("/")
    prompts = PromptTemplate.objects.filter(name=name)
    if task:
        prompts = prompts.filter(task=task)
    if version:
        if not version.isdigit():
            raise NotFound(f"prompt {spec!r}: version must be a number, as in name@2")
        prompts = prompts.filter(version=int(version))
    tasks = set(prompts.values_list("task", flat=True))
    if not tasks:
        known = _known(f"{p.task}/{p.name}@{p.version}" for p in PromptTemplate.objects.all())
        raise NotFound(f"unknown prompt {spec!r} (known: {known})")
    if len(tasks) > 1:
        raise NotFound(f"prompt {spec!r} exists for tasks {', '.join(sorted(tasks))}; write task/name")
    return prompts.order_by("-version").first()


def va_model_version_current(*, dataset_id: int, source: str) -> str | None:
    """The model version (weights sha256) of the source's most recently written estimate on the dataset.

    Every later stage and every table uses this one version, so two weight files never mix in one
    analysis; None when the source has no estimate on the dataset."""
    return (VAEstimate.objects.filter(sample__dataset_id=dataset_id, source=source)
            .order_by("-updated_at", "-id").values_list("model_sha256", flat=True).first())


def va_estimates_current(*, dataset_id: int, source: str) -> QuerySet[VAEstimate]:
    """All estimates (any status) of the current model version of a source on a dataset."""
    version = va_model_version_current(dataset_id=dataset_id, source=source)
    if version is None:
        return VAEstimate.objects.none()
    return VAEstimate.objects.filter(sample__dataset_id=dataset_id, source=source, model_sha256=version)


def va_estimates_usable(*, dataset_id: int, source: str) -> QuerySet[VAEstimate]:
    """Current-version estimates with a valence and arousal to give the LLM stage."""
    return va_estimates_current(dataset_id=dataset_id, source=source).filter(
        status=VAEstimate.Status.OK, valence__isnull=False, arousal__isnull=False)
