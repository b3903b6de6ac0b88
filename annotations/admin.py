"""Admin for studies (edited here, created on the study page), items, annotators and their work.

Ratings and assignments are read-only here: an edited rating would silently disagree with the time
and check outcome recorded with it.
"""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from inference.admin import ReadOnlyAdmin

from .models import Annotator, ApiToken, Assignment, Item, Rating, Report, Study
from .services.studies import StudyInvalid, study_status_set
from .services.tokens import api_token_revoke


class StudyAdminForm(forms.ModelForm):
    """Editing an existing study's fields; studies are created on the study page (`study_create`)."""

    class Meta:
        model = Study
        # The design of comparative studies and the pseudonym salt belong to the creation service.
        exclude = ["selection", "created_by", "kind", "allow_ties", "design_seed", "unit_appearances",
                   "pseudonym_salt"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
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

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        # One creation service for the web form, `create_study` and the demo: items, comparative designs,
        # check items, owner and pseudonym salt are made there, never half in the admin.
        messages.info(request, "Studies are created on the study page, which builds their items and checks.")
        return redirect("annotations:study_create")

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
