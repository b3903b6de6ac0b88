"""Forms of the inference app. They check input shape; the batch service decides what is valid."""
from __future__ import annotations

from django import forms

from inference.models import Batch, Dataset, LLMConfig, PromptTemplate, Similarity, VAEstimate
from inference.services.batches import (
    MAX_CHUNK_SIZE,
    BatchInvalid,
    batch_stages_preview,
    batch_stages_ready,
    batch_stages_validate,
)
from inference.stages import PlanInput


class BatchQueueForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.all(), help_text="Imported dataset to process.")
    stages = forms.MultipleChoiceField(
        choices=Batch.Stage.choices, widget=forms.CheckboxSelectMultiple,
        help_text="Consecutive stages, run in order: VA → generate → similarity.",
    )
    va_source = forms.ChoiceField(
        choices=VAEstimate.Source.choices, initial=VAEstimate.Source.EXPRESSION,
        help_text="Which VA estimates to compute (va stage) or to use (later stages).",
    )
    configs = forms.ModelMultipleChoiceField(
        queryset=LLMConfig.objects.all(), required=False, widget=forms.CheckboxSelectMultiple,
        label="LLM configs", help_text="Needed by the generate stage; filters the similarity stage.",
    )
    prompts = forms.ModelMultipleChoiceField(
        queryset=PromptTemplate.objects.all(), required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Needed by the generate stage; filters the similarity stage.",
    )
    embedders = forms.MultipleChoiceField(
        choices=Similarity.Family.choices, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Needed by the similarity stage.",
    )
    chunk_size = forms.IntegerField(min_value=1, max_value=MAX_CHUNK_SIZE, initial=16,
                                    help_text="Items per Celery message (one unit of retry and recovery).")

    def clean_stages(self) -> list[str]:
        try:
            return batch_stages_validate(stages=self.cleaned_data["stages"])
        except BatchInvalid as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean(self) -> dict:
        cleaned = super().clean()
        stages = cleaned.get("stages") or []
        if "generate" in stages:
            if not cleaned.get("configs"):
                self.add_error("configs", "The generate stage needs at least one LLM config.")
            if not cleaned.get("prompts"):
                self.add_error("prompts", "The generate stage needs at least one prompt.")
        if "similarity" in stages and not cleaned.get("embedders"):
            self.add_error("embedders", "The similarity stage needs at least one embedder.")
        if self.errors or not cleaned.get("dataset"):
            return cleaned
        try:
            # A stage that could only fail (no FaceChannel weights, missing embedder checkpoint…) is
            # refused here, naming the setting, instead of failing every item on a worker.
            batch_stages_ready(stages=stages, spec=self.plan_input())
        except BatchInvalid as exc:
            self.add_error("va_source" if str(exc).startswith("va stage") else None, str(exc))
        return cleaned

    def plan_input(self) -> PlanInput:
        data = self.cleaned_data
        return PlanInput(dataset_id=data["dataset"].pk, va_source=data["va_source"],
                         config_ids=[c.pk for c in data.get("configs") or []],
                         prompt_ids=[p.pk for p in data.get("prompts") or []], embedders=list(data.get("embedders") or []))

    def preview(self) -> list[dict]:
        """What each chosen stage would plan now (valid form only)."""
        return batch_stages_preview(stages=self.cleaned_data["stages"], spec=self.plan_input())
