"""The audit log: one row per security-relevant event (who did what to which study or batch, when).

Its own app so that both `inference` (batches) and `annotations` (studies, reports, exports, API) can
write to it without importing each other. Rows name their target by type and id rather than by foreign
key for the same reason, and keep the actor's username, so the log survives a deleted user or study.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        STUDY_STATUS = "study.status", "Study status changed"
        REPORT_BUILT = "report.built", "Report built"
        EXPORT_DOWNLOADED = "export.downloaded", "Export downloaded"
        API_USED = "api.used", "Research API used"
        BATCH_QUEUED = "batch.queued", "Batch queued"
        BATCH_CANCELLED = "batch.cancelled", "Batch cancelled"
        BATCH_RETRIED = "batch.retried", "Batch failed items retried"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    action = models.CharField(max_length=32, choices=Action.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    actor_name = models.CharField(max_length=150, blank=True, help_text="Username at the time; empty: a command "
                                  "or the system.")
    target_type = models.CharField(max_length=50, help_text="e.g. annotations.study, inference.batch")
    target_id = models.BigIntegerField()
    study_id = models.BigIntegerField(null=True, blank=True, db_index=True,
                                      help_text="The study the event concerns, if any (for the manage page).")
    summary = models.CharField(max_length=300)
    details = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_name or 'system'}: {self.summary}"
