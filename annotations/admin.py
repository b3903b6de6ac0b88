"""Admin for studies (created from a selection of Generations), items, annotators and their work.

Ratings and assignments are read-only here: an edited rating would silently disagree with the time
and check outcome recorded with it.
"""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from inference.admin import ReadOnlyAdmin
from inference.models import Generation, LLMConfig, PromptTemplate

from .models import Annotator, ApiToken, Assignment, Item, Rating, Report, Study
from .services.studies import StudyInvalid, generations_select, study_items_add, study_status_set
from .services.tokens import api_token_revoke


class StudyAdminForm(forms.ModelForm):
    """The model's fields plus the Generation selection that fills a new study with items."""

    select_configs = forms.ModelMultipleChoiceField(
        queryset=LLMConfig.objects.all(), required=False, help_text="LLM configs whose generations are rated."
    )
    select_prompts = forms.ModelMultipleChoiceField(
        queryset=PromptTemplate.objects.all(), required=False, help_text="Prompts (all versions of each name)."
    )
    select_task = forms.ChoiceField(choices=PromptTemplate.Task.choices, initial=PromptTemplate.Task.DESCRIBE)
    select_any_status = forms.BooleanField(
        required=False, help_text="Also include unparseable/flagged generations (default: status ok only)."
    )

    class Meta:
        model = Study
        # Comparative (best–worst, pairwise) studies are built by study_create, which makes their design;
        # the admin makes Likert studies only.
        exclude = ["selection", "created_by", "kind", "allow_ties", "design_seed", "unit_appearances",
                   "pseudonym_salt"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.instance.pk is None and not self.errors:
            statuses = Generation.Status.values if cleaned.get("select_any_status") else [Generation.Status.OK]
            try:
                self.selected = generations_select(
                    dataset=cleaned.get("dataset"),
                    config_names=[c.name for c in cleaned.get("select_configs") or []],
                    prompt_names=sorted({p.name for p in cleaned.get("select_prompts") or []}),
                    task=cleaned.get("select_task") or PromptTemplate.Task.DESCRIBE, statuses=statuses,
                )
            except StudyInvalid as exc:
                raise forms.ValidationError(str(exc)) from exc
            if not self.selected:
                raise forms.ValidationError("No generations match this selection; the study would be empty.")
            self.selection = {
                "dataset": getattr(cleaned.get("dataset"), "name", None),
                "configs": [c.name for c in cleaned.get("select_configs") or []],
                "prompts": sorted({p.name for p in cleaned.get("select_prompts") or []}),
                "task": cleaned.get("select_task"), "statuses": list(statuses),
            }
        if cleaned.get("scale_max") is not None and cleaned.get("scale_min") is not None:
            if cleaned["scale_max"] <= cleaned["scale_min"]:
                raise forms.ValidationError("scale_max must be greater than scale_min.")
        return cleaned


class CheckItemInline(admin.TabularInline):
    """Gold/attention items with their accepted range; normal items come from the selection."""

    model = Item
    fields = ["kind", "text", "expected_min", "expected_max"]
    extra = 1
    verbose_name = "gold / attention item"
    verbose_name_plural = "gold / attention items"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Item]:
        return super().get_queryset(request).exclude(kind=Item.Kind.NORMAL)

    def formfield_for_choice_field(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "kind":
            kwargs["choices"] = [(Item.Kind.ATTENTION, "Attention check"), (Item.Kind.GOLD, "Gold")]
        return super().formfield_for_choice_field(db_field, request, **kwargs)


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    form = StudyAdminForm
    list_display = ["name", "slug", "status", "owner", "raters_per_item", "dataset", "created_at"]
    list_filter = ["status"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [CheckItemInline]
    actions = ["open_studies", "close_studies"]
    readonly_fields = ["selection"]

    def get_fieldsets(self, request: HttpRequest, obj: Study | None = None) -> Any:
        fieldsets = [(None, {"fields": [f for f in self.form.base_fields if not f.startswith("select_")]})]
        if obj is None:
            fieldsets.insert(1, ("Generations to rate", {"fields": [
                "select_configs", "select_prompts", "select_task", "select_any_status"]}))
        else:
            fieldsets.append(("Selection", {"fields": ["selection"]}))
        return fieldsets

    def save_model(self, request: HttpRequest, obj: Study, form: StudyAdminForm, change: bool) -> None:
        if not change:
            obj.created_by = request.user
            obj.owner = obj.owner or request.user
            obj.selection = form.selection
        super().save_model(request, obj, form, change)
        if not change:
            added = study_items_add(study=obj, generations=form.selected)
            messages.info(request, f"{added} item(s) added from the selection.")

    @admin.action(description="Open the selected studies")
    def open_studies(self, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        self._set_status(request, queryset, Study.Status.OPEN)

    @admin.action(description="Close the selected studies")
    def close_studies(self, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        self._set_status(request, queryset, Study.Status.CLOSED)

    def _set_status(self, request: HttpRequest, queryset: QuerySet[Study], status: str) -> None:
        for study in queryset:
            try:
                study_status_set(study=study, status=status, by=request.user)
            except StudyInvalid as exc:
                messages.error(request, f"{study}: {exc}")


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["id", "study", "kind", "text", "expected_min", "expected_max"]
    list_filter = ["kind", "study"]
    search_fields = ["text"]
    raw_id_fields = ["generation"]


@admin.register(Annotator)
class AnnotatorAdmin(admin.ModelAdmin):
    list_display = ["external_id", "platform", "study", "consented_at", "completed_at", "failed_checks", "excluded"]
    list_filter = ["platform", "excluded", "study"]
    search_fields = ["external_id", "external_session"]
    readonly_fields = ["order_seed", "consented_at", "completed_at", "failed_checks", "created_at"]


@admin.register(Assignment)
class AssignmentAdmin(ReadOnlyAdmin):
    list_display = ["id", "item", "annotator", "status", "created_at", "expires_at", "submitted_at"]
    list_filter = ["status"]


@admin.register(Rating)
class RatingAdmin(ReadOnlyAdmin):
    list_display = ["id", "item", "annotator", "value", "passed_check", "seconds_on_item", "created_at"]
    list_filter = ["passed_check"]


@admin.register(Report)
class ReportAdmin(ReadOnlyAdmin):
    list_display = ["study", "version", "created_at"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are listed and revoked here, never shown: only a hash of each key is stored. New tokens come
    from the researcher's token page (/research/tokens/) or `manage.py create_api_token`, which show the
    key once."""

    list_display = ["prefix", "name", "user", "created_at", "expires_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix", "user__username"]
    fields = ["user", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = sum(api_token_revoke(token=token) for token in queryset)
        self.message_user(request, f"{revoked} token(s) revoked.")
