"""Comparative-study test data: several systems describing the same faces, and simulated choices."""
from __future__ import annotations

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from annotations.assignment import assignment_next
from annotations.models import Annotator, Study
from annotations.services.annotators import annotator_consent, annotator_join
from annotations.services.ratings import rating_submit
from inference.models import Dataset, Generation, LLMConfig, PromptTemplate, Sample, Similarity, VAEstimate

from .conftest import SECRET_MODEL, _png

SYSTEM_PREFIX = "secret-system-"
__all__ = ["SECRET_MODEL", "SYSTEM_PREFIX", "make_systems_on_faces", "choices_simulate"]


def make_systems_on_faces(samples: int = 3, systems: int = 8, *, short: int = 0) -> list[Generation]:
    """Every system (an LLM config) describes every face; `short` adds one face with that many descriptions."""
    dataset, _ = Dataset.objects.get_or_create(name="faces", defaults={"format": "manifest"})
    prompt, _ = PromptTemplate.objects.get_or_create(
        task=PromptTemplate.Task.DESCRIBE, name="describe", version=1, defaults={"text": "V={valence}"})
    configs = [LLMConfig.objects.get_or_create(name=f"{SYSTEM_PREFIX}{s}", defaults={
        "backend": LLMConfig.Backend.OPENAI, "model": SECRET_MODEL})[0] for s in range(systems)]
    out = []
    for i in range(samples + (1 if short else 0)):
        name = default_storage.save(f"samples/cmp-{i}.png", ContentFile(_png(i)))
        sample = Sample.objects.create(dataset=dataset, external_id=f"face-{i}", image=name,
                                       image_sha256=f"{i:064d}", width=8, height=8, references=["a smile"])
        estimate = VAEstimate.objects.create(sample=sample, source="expression", model_sha256="m" * 64,
                                             valence=0.1, arousal=0.2)
        for config in configs[: short if i == samples else systems]:
            out.append(Generation.objects.create(
                va_estimate=estimate, config=config, prompt=prompt, task=PromptTemplate.Task.DESCRIBE,
                text=f"Face {i} as told by system {config.name[-1]}.", status=Generation.Status.OK, raw_text="x"))
    return out


def quality_of(generation: Generation) -> float:
    """System s writes descriptions of quality s (system 0 worst)."""
    return float(generation.config.name.removeprefix(SYSTEM_PREFIX))


def similarities_add(generations: list[Generation], *, noise: dict[str, float], seed: int = 0) -> None:
    """Per embedder family: cosine = quality / 10 + N(0, noise)."""
    rng = np.random.default_rng(seed)
    Similarity.objects.bulk_create([
        Similarity(generation=gen, reference_index=0, embedder_family=family, embedder_model=f"{family}-model",
                   cosine=float(quality_of(gen) / 10 + rng.normal(0, sd)))
        for gen in generations for family, sd in noise.items()
    ])


def choices_simulate(study: Study, *, annotators: int, noise: float = 1.0, seed: int = 0) -> int:
    """Annotators judge through the real assignment and submit services: best = highest quality + noise."""
    rng = np.random.default_rng(seed)
    submitted = 0
    # Everyone joins first: a newcomer is turned away once every unit has its k raters.
    joined = [annotator_consent(annotator=annotator_join(
        study=study, platform=Annotator.Platform.PROLIFIC, external_id=f"sim-{a}")) for a in range(annotators)]
    for annotator in joined:
        while (assignment := assignment_next(annotator=annotator)) is not None:
            options = list(assignment.item.options.select_related("generation__config"))
            seen = [quality_of(o.generation) + rng.normal(0, noise) for o in options]
            best, worst = options[int(np.argmax(seen))], options[int(np.argmin(seen))]
            rating_submit(annotator=annotator, assignment_token=assignment.token, best=best.pk, worst=worst.pk)
            submitted += 1
    return submitted
