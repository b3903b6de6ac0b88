"""Joining a study: by account or by a crowd link (Prolific, MTurk), and consent."""
from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from ..models import Annotator, Study

# Prolific ids are 24 hex digits and MTurk ids upper-case alphanumerics; this admits both and any
# similar panel while refusing markup, whitespace and absurd lengths.
CROWD_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}$")
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"


class JoinInvalid(ValueError):
    """The join request cannot identify an annotator (missing or malformed worker id, closed study)."""


@dataclass(frozen=True)
class CrowdIdentity:
    platform: str
    worker_id: str
    session_id: str
    study_id: str
    preview: bool = False


def _clean(value: str | None, name: str, *, required: bool) -> str:
    value = (value or "").strip()
    if not value:
        if required:
            raise JoinInvalid(f"the link is missing {name}")
        return ""
    if not CROWD_ID_RE.match(value):
        raise JoinInvalid(f"{name} is not a valid id")
    return value


def crowd_identity_parse(params: Mapping[str, str]) -> CrowdIdentity | None:
    """Read a crowd link's query string; None when it carries no crowd parameter at all."""
    if any(params.get(key) for key in ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")):
        return CrowdIdentity(
            platform=Annotator.Platform.PROLIFIC,
            worker_id=_clean(params.get("PROLIFIC_PID"), "PROLIFIC_PID (your Prolific id)", required=True),
            session_id=_clean(params.get("SESSION_ID"), "SESSION_ID", required=False),
            study_id=_clean(params.get("STUDY_ID"), "STUDY_ID", required=False),
        )
    if any(params.get(key) for key in ("workerId", "assignmentId", "hitId")):
        assignment_id = (params.get("assignmentId") or "").strip()
        if assignment_id == MTURK_PREVIEW:
            # MTurk shows the task before a worker accepts the HIT; nobody is identified yet.
            return CrowdIdentity(Annotator.Platform.MTURK, "", "", "", preview=True)
        return CrowdIdentity(
            platform=Annotator.Platform.MTURK,
            worker_id=_clean(params.get("workerId"), "workerId (your MTurk worker id)", required=True),
            session_id=_clean(assignment_id, "assignmentId", required=False),
            study_id=_clean(params.get("hitId"), "hitId", required=False),
        )
    return None


def annotator_join(
    *,
    study: Study,
    platform: str,
    external_id: str,
    external_session: str = "",
    external_study: str = "",
    user: AbstractBaseUser | None = None,
) -> Annotator:
    """The annotator for this worker id in this study: the same worker id always gets the same row back."""
    if platform not in Annotator.Platform.values:
        raise JoinInvalid(f"unknown platform {platform!r}")
    if not external_id:
        raise JoinInvalid("a worker id is required")
    existing = Annotator.objects.filter(study=study, platform=platform, external_id=external_id).first()
    if existing is not None:
        return existing
    if study.status != Study.Status.OPEN:
        raise JoinInvalid("this study is not accepting annotators")
    try:
        with transaction.atomic():
            return Annotator.objects.create(
                study=study, platform=platform, external_id=external_id, external_session=external_session,
                external_study=external_study, user=user, order_seed=secrets.randbits(62),
            )
    except IntegrityError:
        # The same worker opened the link twice at once; both requests end up on one row.
        return Annotator.objects.get(study=study, platform=platform, external_id=external_id)


def annotator_join_account(*, study: Study, user: AbstractBaseUser) -> Annotator:
    return annotator_join(study=study, platform=Annotator.Platform.ACCOUNT, external_id=str(user.pk), user=user)


def annotator_consent(*, annotator: Annotator) -> Annotator:
    """Record consent once; the first timestamp is the one that counts."""
    Annotator.objects.filter(pk=annotator.pk, consented_at__isnull=True).update(consented_at=timezone.now())
    annotator.refresh_from_db(fields=["consented_at"])
    return annotator


def annotator_complete(*, annotator: Annotator) -> Annotator:
    Annotator.objects.filter(pk=annotator.pk, completed_at__isnull=True).update(completed_at=timezone.now())
    annotator.refresh_from_db(fields=["completed_at"])
    return annotator
