"""Writing the audit log. Call `audit_record` next to the change it describes, inside the same
transaction when there is one, so an event is stored exactly when its change is."""
from __future__ import annotations

from typing import Any

from django.db import models
from django.http import HttpRequest

from audit.middleware import current_ip
from audit.models import AuditEvent


def audit_record(
    *,
    action: str,
    target: models.Model,
    summary: str,
    actor: Any = None,
    study_id: int | None = None,
    details: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
) -> AuditEvent:
    """Store one event. `actor` is a user (or None for a command or the system); `request`, when given,
    supplies the actor and the client address (otherwise the address of the request being served, if
    any: see `audit.middleware`). A target that is a study is its own `study_id`."""
    if actor is None and request is not None:
        actor = request.user
    user = actor if getattr(actor, "is_authenticated", False) else None
    target_type = target._meta.label_lower
    if study_id is None and target_type == "annotations.study":
        study_id = target.pk
    return AuditEvent.objects.create(
        action=action, actor=user, actor_name=user.get_username() if user else "",
        target_type=target_type, target_id=target.pk, study_id=study_id, summary=summary[:300],
        details=details or {}, ip_address=request.META.get("REMOTE_ADDR") if request is not None else current_ip.get(),
    )
