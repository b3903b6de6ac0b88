from __future__ import annotations

from django.db.models import QuerySet

from audit.models import AuditEvent


def audit_events_for_study(*, study_id: int, limit: int = 50) -> QuerySet[AuditEvent]:
    """The latest events about one study, newest first."""
    return AuditEvent.objects.filter(study_id=study_id).select_related("actor")[:limit]
