"""The pipeline's stages, in order: VA → generate → similarity.

Each stage is one `Stage`: its name (the `Batch.Stage` member), the Celery queue its chunks go to, the
planner that lists what it has to do for a batch, the service that does one chunk of it, and the check
that it can run at all. The batch service (`inference.services.batches`) knows stages only through
`STAGES`; commands, the admin form and the experiment runner all reach a stage through a Batch.

Planners plan only what is missing: a sample that already has an estimate from the configured model,
an answer that exists for the (estimate, config, prompt), a description already scored by the
embedder's checkpoint are counted as reused, so re-running anything costs nothing twice.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from inference.embeddings import embedder_get
from inference.llm import LLMError, backend_for
from inference.models import (
    Batch,
    Dataset,
    Generation,
    LLMConfig,
    PromptTemplate,
    Sample,
    Similarity,
    VAEstimate,
)
from inference.selectors import va_estimates_usable
from inference.services.llm import generations_run_many
from inference.services.similarity import similarity_compute
from inference.services.va import va_extract_samples, va_model_version_configured, va_source_ready


@dataclass(frozen=True)
class PlanInput:
    """What a planner needs from a batch (or from a form that has not made one yet)."""

    dataset_id: int
    va_source: str
    config_ids: Sequence[int] = ()
    prompt_ids: Sequence[int] = ()
    embedders: Sequence[str] = ()

    @classmethod
    def of(cls, batch: Batch) -> PlanInput:
        return cls(dataset_id=batch.dataset_id, va_source=batch.va_source,
                   config_ids=list(batch.configs.order_by("id").values_list("id", flat=True)),
                   prompt_ids=list(batch.prompts.order_by("id").values_list("id", flat=True)),
                   embedders=list(batch.embedders))


@dataclass(frozen=True)
class ChunkGroup:
    """One independent stream of a stage's work: chunks share `params`; `item_ids` still to do."""

    key: str
    params: dict[str, Any]
    item_ids: list[int]
    reused: int = 0


@dataclass(frozen=True)
class StagePlan:
    groups: list[ChunkGroup] = field(default_factory=list)
    # Why the stage has nothing to do, in words a user can act on ("" when it has work).
    empty_reason: str = ""

    @property
    def items(self) -> int:
        return sum(len(group.item_ids) for group in self.groups)

    @property
    def reused(self) -> int:
        return sum(group.reused for group in self.groups)


@dataclass(frozen=True)
class Stage:
    name: Batch.Stage
    queue: str
    plan: Callable[[PlanInput], StagePlan]
    service: Callable[..., dict]
    # Chunk item ids and params → the service's keyword arguments.
    arguments: Callable[[list[int], dict], dict[str, Any]]
    # Raises (ImproperlyConfigured naming the setting, ValueError) when the stage cannot run at all.
    ready: Callable[[PlanInput], None]

    def run(self, item_ids: list[int], params: dict) -> dict:
        return self.service(**self.arguments(item_ids, params))


# --- va -------------------------------------------------------------------------------------------

def _va_plan(spec: PlanInput) -> StagePlan:
    samples = list(Sample.objects.filter(dataset_id=spec.dataset_id).order_by("id").values_list("id", flat=True))
    name = Dataset.objects.filter(pk=spec.dataset_id).values_list("name", flat=True).first()
    if not samples:
        return StagePlan(empty_reason=f"dataset {name!r} has no samples; import it first")
    # An `error` row (an unreadable image fixed since) is tried again; ok and no_face are results.
    have = set(VAEstimate.objects.filter(
        sample__dataset_id=spec.dataset_id, source=spec.va_source,
        model_sha256=va_model_version_configured(source=spec.va_source),
    ).exclude(status=VAEstimate.Status.ERROR).values_list("sample_id", flat=True))
    todo = [pk for pk in samples if pk not in have]
    plan = StagePlan(groups=[ChunkGroup(f"source={spec.va_source}", {"source": spec.va_source}, todo,
                                        reused=len(samples) - len(todo))])
    if not todo:
        return StagePlan(groups=plan.groups, empty_reason=(
            f"all {len(samples)} samples of {name!r} already have {spec.va_source!r} VA from this model version"))
    return plan


def _va_ready(spec: PlanInput) -> None:
    va_source_ready(source=spec.va_source)


VA = Stage(
    name=Batch.Stage.VA, queue="va", plan=_va_plan, service=va_extract_samples,
    arguments=lambda ids, params: {"sample_ids": ids, "source": params["source"]}, ready=_va_ready,
)


# --- generate -------------------------------------------------------------------------------------

def _generate_plan(spec: PlanInput) -> StagePlan:
    usable = list(va_estimates_usable(dataset_id=spec.dataset_id, source=spec.va_source)
                  .order_by("id").values_list("id", flat=True))
    if not usable:
        name = Dataset.objects.filter(pk=spec.dataset_id).values_list("name", flat=True).first()
        return StagePlan(empty_reason=f"dataset {name!r} has no usable {spec.va_source!r} VA estimates; "
                                      f"run the va stage first")
    groups = []
    for config_id in spec.config_ids:
        for prompt_id in spec.prompt_ids:
            # A failed call (`error`) is asked again; every other status is the model's answer.
            answered = set(Generation.objects.filter(config_id=config_id, prompt_id=prompt_id, va_estimate_id__in=usable)
                           .exclude(status=Generation.Status.ERROR).values_list("va_estimate_id", flat=True))
            groups.append(ChunkGroup(f"config={config_id},prompt={prompt_id}",
                                     {"config_id": config_id, "prompt_id": prompt_id},
                                     [pk for pk in usable if pk not in answered], reused=len(answered)))
    plan = StagePlan(groups=groups)
    if groups and not plan.items:
        return StagePlan(groups=groups, empty_reason=f"all {plan.reused} answers for the chosen configs and prompts "
                                                     f"exist already")
    return plan


def _generate_ready(spec: PlanInput) -> None:
    if not (spec.config_ids and spec.prompt_ids):
        raise ValueError("the generate stage needs at least one LLM config and one prompt")
    for config in LLMConfig.objects.filter(pk__in=spec.config_ids):
        try:
            backend_for(config)  # checks the model file / settings; a GGUF model itself loads on first call
        except LLMError as exc:
            raise ValueError(str(exc)) from exc


GENERATE = Stage(
    name=Batch.Stage.GENERATE, queue="llm", plan=_generate_plan, service=generations_run_many,
    arguments=lambda ids, params: {"va_estimate_ids": ids, "config_id": params["config_id"],
                                   "prompt_id": params["prompt_id"],
                                   **({"concurrency": params["concurrency"]} if "concurrency" in params else {})},
    ready=_generate_ready,
)


# --- similarity -----------------------------------------------------------------------------------

def _similarity_plan(spec: PlanInput) -> StagePlan:
    dataset = Dataset.objects.get(pk=spec.dataset_id)
    if not dataset.samples.exclude(references=[]).exists():
        return StagePlan(empty_reason=(
            f"dataset {dataset.name!r} has no reference descriptions (Sample.references is empty for all "
            f"{dataset.samples.count()} samples): similarity needs human references; import a manifest with a "
            f"references column"))
    # Only what can be scored: descriptions that succeeded, of samples with human references.
    generations = Generation.objects.filter(
        va_estimate__in=va_estimates_usable(dataset_id=spec.dataset_id, source=spec.va_source),
        task=PromptTemplate.Task.DESCRIBE, status=Generation.Status.OK,
    ).exclude(va_estimate__sample__references=[])
    if spec.config_ids:
        generations = generations.filter(config_id__in=spec.config_ids)
    if spec.prompt_ids:
        generations = generations.filter(prompt_id__in=spec.prompt_ids)
    ids = list(generations.order_by("id").values_list("id", flat=True))
    if not ids:
        return StagePlan(empty_reason=f"dataset {dataset.name!r} has no successful describe generations for the "
                                      f"chosen configs/prompts; run the generate stage first")
    groups = []
    for family in spec.embedders:
        scored = set(Similarity.objects.filter(embedder_family=family, embedder_model=embedder_get(family).model_id,
                                               generation_id__in=ids).values_list("generation_id", flat=True))
        groups.append(ChunkGroup(f"family={family}", {"family": family}, [pk for pk in ids if pk not in scored],
                                 reused=len(scored)))
    plan = StagePlan(groups=groups)
    if groups and not plan.items:
        return StagePlan(groups=groups, empty_reason=f"all {len(ids)} descriptions are already scored by "
                                                     f"{', '.join(spec.embedders)}")
    return plan


def _similarity_ready(spec: PlanInput) -> None:
    if not spec.embedders:
        raise ValueError("the similarity stage needs at least one embedder (word, bert, sentence)")
    for family in spec.embedders:
        embedder_get(family)  # raises EmbedderUnavailable naming the setting; resolves the file, loads nothing


SIMILARITY = Stage(
    name=Batch.Stage.SIMILARITY, queue="embed", plan=_similarity_plan, service=similarity_compute,
    arguments=lambda ids, params: {"generation_ids": ids, "family": params["family"]}, ready=_similarity_ready,
)


STAGES: dict[str, Stage] = {stage.name.value: stage for stage in (VA, GENERATE, SIMILARITY)}
STAGE_ORDER: list[str] = list(STAGES)
QUEUES: list[str] = sorted({stage.queue for stage in STAGES.values()})
