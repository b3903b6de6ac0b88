"""Factories for the rows most tests need (plain functions: each returns a saved row).

Defaults make a valid row; tests pass only what their assertion is about.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from inference import stages
from inference.models import Dataset, Generation, LLMConfig, PromptTemplate, Sample, VAEstimate


def dataset_make(name: str = "faces", *, fmt: str = "manifest", label_set: list[str] | None = None,
                 multilabel: bool = False) -> Dataset:
    return Dataset.objects.create(name=name, format=fmt, label_set=label_set if label_set is not None
                                  else ["happiness", "sadness"], multilabel=multilabel)


def sample_make(dataset: Dataset, external_id: str, *, references: list | None = None, labels: list[str] | None = None,
                gt: tuple[float, float] | None = None, image: str | None = None, **fields: Any) -> Sample:
    return Sample.objects.create(
        dataset=dataset, external_id=external_id, image=image or f"samples/{external_id}.png",
        image_sha256=fields.pop("image_sha256", "0" * 64), width=fields.pop("width", 64),
        height=fields.pop("height", 64), references=references or [], labels=labels or [],
        gt_valence=gt[0] if gt else None, gt_arousal=gt[1] if gt else None, **fields)


def va_make(sample: Sample, *, source: str = "dataset", valence: float | None = 0.5, arousal: float | None = 0.2,
            model_sha256: str = "dataset", status: str = "ok", details: dict | None = None) -> VAEstimate:
    return VAEstimate.objects.create(sample=sample, source=source, model_sha256=model_sha256, valence=valence,
                                     arousal=arousal, status=status, details=details or {})


def config_make(name: str = "tiny-llm", *, backend: str = "lexicon", **fields: Any) -> LLMConfig:
    return LLMConfig.objects.create(name=name, backend=backend, **fields)


def prompt_make(name: str = "describe", *, task: str = "describe", text: str = "V={valence} A={arousal}",
                **fields: Any) -> PromptTemplate:
    return PromptTemplate.objects.create(task=task, name=name, text=text, **fields)


def generation_make(va: VAEstimate, config: LLMConfig, prompt: PromptTemplate, *, text: str = "",
                    labels: list[str] | None = None, status: str = "ok") -> Generation:
    return Generation.objects.create(va_estimate=va, config=config, prompt=prompt, task=prompt.task, text=text,
                                     raw_text=text or str(labels), labels=labels or [], status=status)


def stage_service_use(monkeypatch: pytest.MonkeyPatch, stage: str, service: Callable[..., dict]) -> None:
    """Run `stage`'s chunks with `service` for this test (the registry entry is swapped, then restored)."""
    monkeypatch.setitem(stages.STAGES, stage, dataclasses.replace(stages.STAGES[stage], service=service))
