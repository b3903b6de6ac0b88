"""Fixtures for the annotation site: generations to rate, a study over them, joined crowd annotators."""
from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from PIL import Image

from annotations.models import Annotator, Study
from annotations.services.annotators import annotator_consent, annotator_join
from annotations.services.studies import study_create
from inference.models import Dataset, Generation, LLMConfig, PromptTemplate, Sample, VAEstimate

SECRET_CONFIG = "secret-gpt-config"  # must never reach an annotator's page
SECRET_MODEL = "gpt-secret-model-9"


def _png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (seed * 37 % 256, 90, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def make_generations(db) -> Callable[..., list[Generation]]:
    """`make_generations(n, texts=…, status=…, task=…)`: n generations on n samples of one dataset."""

    def make(
        n: int = 6, *, texts: list[str] | None = None, status: str = Generation.Status.OK,
        task: str = PromptTemplate.Task.DESCRIBE, config_name: str = SECRET_CONFIG,
        prompt_name: str = "describe", dataset_name: str = "faces",
    ) -> list[Generation]:
        dataset, _ = Dataset.objects.get_or_create(name=dataset_name, defaults={"format": "manifest"})
        config, _ = LLMConfig.objects.get_or_create(
            name=config_name, defaults={"backend": LLMConfig.Backend.OPENAI, "model": SECRET_MODEL}
        )
        prompt, _ = PromptTemplate.objects.get_or_create(
            task=task, name=prompt_name, version=1, defaults={"text": "V={valence} A={arousal}"}
        )
        start = Sample.objects.filter(dataset=dataset).count()
        generations = []
        for i in range(start, start + n):
            name = default_storage.save(f"samples/test-{i}.png", ContentFile(_png(i)))
            sample = Sample.objects.create(
                dataset=dataset, external_id=f"img-{i}", image=name, image_sha256=f"{i:064d}", width=8,
                height=8, references=[f"reference text {i}"],
            )
            estimate = VAEstimate.objects.create(
                sample=sample, source="expression", model_sha256="m" * 64, valence=0.25, arousal=-0.5
            )
            text = texts[i - start] if texts else f"The person looks calm and content ({i})."
            generations.append(Generation.objects.create(
                va_estimate=estimate, config=config, prompt=prompt, task=task, text=text,
                labels=["happiness"] if task == PromptTemplate.Task.CATEGORIZE else [], status=status,
                raw_text=text,
            ))
        return generations

    return make


@pytest.fixture
def study(make_generations, researcher) -> Study:
    make_generations(6)
    return study_create(
        name="Match study", slug="match", dataset="faces", config_names=[SECRET_CONFIG], owner=researcher,
        prompt_names=["describe"], k=2, open_now=True, completion_code="DONE-4242",
        consent_text="You agree to rate descriptions.", instructions="Rate how well each text fits.",
    )


@pytest.fixture
def join_annotator() -> Callable[..., Annotator]:
    """A consented crowd annotator (service level)."""

    def join(study: Study, worker_id: str) -> Annotator:
        annotator = annotator_join(study=study, platform=Annotator.Platform.PROLIFIC, external_id=worker_id)
        return annotator_consent(annotator=annotator)

    return join


def crowd_client(study: Study, worker_id: str, *, consent: bool = True, **client_kwargs: object) -> Client:
    """A browser-like client that joined through a Prolific link (and consented)."""
    client = Client(**client_kwargs)
    response = client.get(f"/s/{study.slug}/join", {"PROLIFIC_PID": worker_id, "STUDY_ID": "st", "SESSION_ID": "se"})
    assert response.status_code == 302, response.content[:500]
    if consent:
        client.post(f"/s/{study.slug}/consent", {"agree": "on"})
    return client


@pytest.fixture
def crowd() -> Callable[..., Client]:
    return crowd_client
