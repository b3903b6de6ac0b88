"""`{% audit_events study %}`: the study's audit trail as a partial, for pages whose view should not
need to know about the audit app (the study manage page)."""
from __future__ import annotations

from typing import Any

from django import template

from audit.selectors import audit_events_for_study

register = template.Library()


@register.inclusion_tag("audit/_events.html")
def audit_events(study: Any, limit: int = 50) -> dict[str, Any]:
    return {"events": list(audit_events_for_study(study_id=study.pk, limit=limit))}
