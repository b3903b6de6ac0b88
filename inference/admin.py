"""Admin for every inference model. Computed rows are read-only (they come from the pipeline, and an
edited score would silently disagree with its model); batches are queued through a form."""
from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from inference.forms import BatchQueueForm
from inference.models import (
    Batch,
    BatchChunk,
    Dataset,
    Embedding,
    Generation,
    LLMConfig,
    PromptTemplate,
    Sample,
    Similarity,
    VAEstimate,
)
from inference.services.batches import (
    BatchInvalid,
    BatchStateError,
    batch_cancel,
    batch_queue,
    batch_queued_message,
    batch_retry_failed,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Pipeline output: viewable, deletable, never hand-edited or hand-made."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "format", "sample_count", "multilabel", "created_at"]
    list_filter = ["format", "multilabel"]
    search_fields = ["name", "description", "source_path"]
    readonly_fields = ["created_at", "sample_count"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Dataset]:
        return super().get_queryset(request).annotate(_sample_count=Count("samples"))

    @admin.display(description="samples", ordering="_sample_count")
    def sample_count(self, obj: Dataset) -> int:
        return getattr(obj, "_sample_count", None) or obj.samples.count()


def _thumbnail(sample: Sample, size: int) -> str:
    if not sample.image:
        return "—"
    return format_html('<img src="{}" alt="{}" style="max-width:{}px;max-height:{}px" loading="lazy">',
                       sample.image.url, sample.external_id, size, size)


@admin.register(Sample)
class SampleAdmin(ReadOnlyAdmin):
    list_display = ["thumbnail", "external_id", "dataset", "labels", "gt_valence", "gt_arousal", "width", "height"]
    list_display_links = ["thumbnail", "external_id"]
    list_filter = ["dataset"]
    search_fields = ["external_id", "image_sha256"]
    readonly_fields = ["preview"]
    list_select_related = ["dataset"]

    @admin.display(description="image")
    def thumbnail(self, obj: Sample) -> str:
        return _thumbnail(obj, 64)

    @admin.display(description="image")
    def preview(self, obj: Sample) -> str:
        return _thumbnail(obj, 400)


@admin.register(VAEstimate)
class VAEstimateAdmin(ReadOnlyAdmin):
    list_display = ["sample", "source", "status", "valence", "arousal", "detector", "face_count", "model_version"]
    list_filter = ["source", "status", "detector", "sample__dataset"]
    search_fields = ["sample__external_id", "model_sha256", "error"]
    list_select_related = ["sample__dataset"]

    @admin.display(description="model", ordering="model_sha256")
    def model_version(self, obj: VAEstimate) -> str:
        return obj.model_sha256[:12]


@admin.register(PromptTemplate)
class PromptTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "task", "version", "va_format", "multilabel", "created_at"]
    list_filter = ["task", "va_format", "multilabel"]
    search_fields = ["name", "text"]


@admin.register(LLMConfig)
class LLMConfigAdmin(admin.ModelAdmin):
    list_display = ["name", "backend", "model", "base_url", "temperature", "rate_limit_per_minute"]
    list_filter = ["backend"]
    search_fields = ["name", "model", "base_url"]


@admin.register(Generation)
class GenerationAdmin(ReadOnlyAdmin):
    list_display = ["id", "config", "prompt", "task", "status", "short_text", "labels", "latency_ms"]
    list_filter = ["status", "task", "config", "prompt", "va_estimate__source"]
    search_fields = ["text", "raw_text", "flag_reason", "va_estimate__sample__external_id"]
    list_select_related = ["config", "prompt"]

    @admin.display(description="text")
    def short_text(self, obj: Generation) -> str:
        text = obj.text or obj.raw_text
        return text if len(text) <= 80 else text[:79] + "…"


@admin.register(Similarity)
class SimilarityAdmin(ReadOnlyAdmin):
    list_display = ["generation", "reference_index", "embedder_family", "embedder_model", "cosine", "oov_rate", "note"]
    list_filter = ["embedder_family", "embedder_model"]
    search_fields = ["embedder_model", "note"]


@admin.register(Embedding)
class EmbeddingAdmin(ReadOnlyAdmin):
    list_display = ["text_sha256", "embedder_family", "embedder_model", "dim", "oov_rate", "created_at"]
    list_filter = ["embedder_family", "embedder_model"]
    search_fields = ["text_sha256"]
    exclude = ["vector"]  # raw float32 bytes mean nothing on a page


class BatchChunkInline(admin.TabularInline):
    model = BatchChunk
    fields = ["stage", "index", "status", "attempts", "item_count", "done", "failed", "started_at", "finished_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="items")
    def item_count(self, obj: BatchChunk) -> int:
        return len(obj.item_ids)


def _progress_bar(batch: Batch) -> str:
    percent = round(100 * (batch.done + batch.failed) / batch.total) if batch.total else 0
    return format_html('<progress max="100" value="{}" title="{}%"></progress> {} / {}{}', percent, percent,
                       batch.done + batch.failed, batch.total,
                       format_html(' <span style="color:#b00">({} failed)</span>', batch.failed) if batch.failed else "")


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ["id", "dataset", "stage_list", "status", "current_stage", "progress", "created_by", "created_at",
                    "page_link"]
    list_filter = ["status", "current_stage", "dataset"]
    search_fields = ["dataset__name", "error"]
    list_select_related = ["dataset", "created_by"]
    readonly_fields = ["dataset", "stages", "va_source", "configs", "prompts", "embedders", "chunk_size", "status",
                       "current_stage", "total", "done", "failed", "progress", "error", "created_by", "created_at",
                       "started_at", "finished_at", "cancelled_at", "page_link"]
    fields = readonly_fields
    inlines = [BatchChunkInline]
    actions = ["cancel_batches", "retry_failed_items"]

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Viewable (so the chunk table shows), but the counters are the pipeline's, not the operator's.
        return False if obj is not None else super().has_change_permission(request, obj)

    @admin.display(description="stages")
    def stage_list(self, obj: Batch) -> str:
        return " → ".join(obj.stages)

    @admin.display(description="progress")
    def progress(self, obj: Batch) -> str:
        return _progress_bar(obj)

    @admin.display(description="live page")
    def page_link(self, obj: Batch) -> str:
        return format_html('<a href="{}">progress</a>', reverse("inference:batch_detail", args=[obj.pk]))

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        """The "add batch" button opens the queue form: a batch is planned by the service, not typed in."""
        if not self.has_add_permission(request):
            return super().add_view(request, form_url, extra_context)  # renders the usual 403
        form = BatchQueueForm(request.POST or None)
        preview = None
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            if "preview" in request.POST:
                preview = form.preview()
            else:
                try:
                    batch = batch_queue(
                        dataset=data["dataset"], stages=data["stages"], va_source=data["va_source"],
                        configs=data["configs"], prompts=data["prompts"], embedders=data["embedders"],
                        chunk_size=data["chunk_size"], created_by=request.user,
                    )
                except BatchInvalid as exc:
                    form.add_error(None, str(exc))
                    preview = form.preview()
                else:
                    self.message_user(request, batch_queued_message(batch=batch), messages.SUCCESS)
                    return HttpResponseRedirect(reverse("inference:batch_detail", args=[batch.pk]))
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "form": form,
                   "preview": preview, "title": "Queue a batch", **(extra_context or {})}
        return TemplateResponse(request, "admin/inference/batch/queue.html", context)

    @admin.action(description="Cancel selected batches (queued chunks stop, running ones finish)")
    def cancel_batches(self, request: HttpRequest, queryset: QuerySet[Batch]) -> None:
        self._each(request, queryset, batch_cancel, "cancelled")

    @admin.action(description="Retry the failed items of selected batches")
    def retry_failed_items(self, request: HttpRequest, queryset: QuerySet[Batch]) -> None:
        self._each(request, queryset, batch_retry_failed, "retried")

    def _each(self, request: HttpRequest, queryset: QuerySet[Batch], action: Callable[..., int], verb: str) -> None:
        ok, skipped = [], []
        for batch in queryset:
            try:
                action(batch_id=batch.pk, by=request.user)
                ok.append(str(batch.pk))
            except BatchStateError as exc:
                skipped.append(f"{batch.pk} ({exc})")
        if ok:
            self.message_user(request, f"{verb.capitalize()}: batch {', '.join(ok)}.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Not {verb}: {'; '.join(skipped)}.", messages.WARNING)


@admin.register(BatchChunk)
class BatchChunkAdmin(ReadOnlyAdmin):
    list_display = ["key", "batch", "stage", "status", "attempts", "done", "failed", "queued_at", "started_at",
                    "finished_at"]
    list_filter = ["stage", "status"]
    search_fields = ["key"]
