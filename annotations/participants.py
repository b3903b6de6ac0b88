"""Participants' personal data: pseudonyms, the data-subject export and erasure, and retention purges.

A platform id (Prolific PID, MTurk workerId) identifies a person. Everything a researcher downloads or
reads carries a pseudonym instead: a keyed hash (HMAC-SHA256 under the site's key, `PSEUDONYM_KEY` or
`SECRET_KEY`, and the study's own random salt), so the same worker gets unrelated pseudonyms in two
studies and nobody without the key can test a guessed id. The raw id leaves the database only in the
explicit payment export. Erasing a participant keeps their ratings (the study's statistics stay valid)
and drops everything that identifies them: platform ids, account link, comments.
"""
from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from .models import Annotator, Assignment, Rating, Study


def pseudonym_make(*, salt: str, platform: str, external_id: str) -> str:
    key = (getattr(settings, "PSEUDONYM_KEY", "") or settings.SECRET_KEY).encode() + b"|" + salt.encode()
    digest = hmac.new(key, f"{platform}:{external_id}".encode(), hashlib.sha256).hexdigest()
    return f"p-{digest[:16]}"


def annotator_pseudonym(*, annotator: Annotator, study: Study | None = None) -> str:
    if annotator.pseudonym:
        return annotator.pseudonym
    study = study or annotator.study
    return pseudonym_make(salt=study.pseudonym_salt, platform=annotator.platform, external_id=annotator.external_id)


def participant_find(*, study: Study, participant: str) -> Annotator | None:
    """The participant a data-subject request names, by platform id or by pseudonym."""
    participant = (participant or "").strip()
    # Neither a platform id nor a pseudonym holds a NUL byte (PostgreSQL cannot even compare one): no match.
    if not participant or "\x00" in participant:
        return None
    found = Annotator.objects.filter(study=study, external_id=participant, identity_erased_at__isnull=True).first()
    if found is not None:
        return found
    for annotator in Annotator.objects.filter(study=study).only("id", "platform", "external_id", "pseudonym"):
        # Bytes: compare_digest refuses non-ASCII str, and a researcher may paste anything.
        if hmac.compare_digest(annotator_pseudonym(annotator=annotator, study=study).encode(), participant.encode()):
            return Annotator.objects.get(pk=annotator.pk)
    return None


def participant_export(*, annotator: Annotator) -> dict[str, Any]:
    """Everything stored about one participant (a data-subject access request)."""
    ratings = Rating.objects.filter(annotator=annotator).select_related("item").order_by("id")
    return {
        "study": annotator.study.slug,
        "pseudonym": annotator_pseudonym(annotator=annotator),
        "platform": annotator.platform,
        "platform_id": annotator.external_id if annotator.identity_erased_at is None else None,
        "platform_session": annotator.external_session,
        "platform_study": annotator.external_study,
        "identity_erased_at": annotator.identity_erased_at,
        "joined_at": annotator.created_at,
        "consented_at": annotator.consented_at,
        "completed_at": annotator.completed_at,
        "outcome": annotator.outcome,
        "failed_checks": annotator.failed_checks,
        "excluded": annotator.excluded,
        "exclusion_reason": annotator.exclusion_reason,
        "ratings": [
            {"item_id": r.item_id, "item_text": r.item.text, "value": r.value, "comment": r.comment,
             "seconds_on_item": r.seconds_on_item, "created_at": r.created_at}
            for r in ratings
        ],
    }


def participant_erase(*, annotator: Annotator) -> Annotator:
    """Drop the identity, keep the ratings (values, times, check outcomes) under the same pseudonym."""
    with transaction.atomic():
        pseudonym = annotator_pseudonym(annotator=annotator)
        now = timezone.now()
        Annotator.objects.filter(pk=annotator.pk).update(
            pseudonym=pseudonym, external_id=f"erased-{annotator.pk}", external_session="", external_study="",
            submit_to="", user=None, identity_erased_at=now,
        )
        # Free text may name the person; the statistics never use it.
        Rating.objects.filter(annotator_id=annotator.pk).update(comment="")
        Assignment.objects.filter(annotator_id=annotator.pk, status=Assignment.Status.ACTIVE).update(
            status=Assignment.Status.EXPIRED
        )
    annotator.refresh_from_db()
    return annotator


def participants_to_purge(*, study: Study, older_than_days: int | None = None) -> QuerySet[Annotator]:
    qs = Annotator.objects.filter(study=study, identity_erased_at__isnull=True)
    if older_than_days is not None:
        qs = qs.filter(created_at__lt=timezone.now() - timedelta(days=older_than_days))
    return qs


def participants_purge(*, study: Study, older_than_days: int | None = None) -> int:
    """Retention: erase the identity of every participant who joined more than N days ago (all if None)."""
    if older_than_days is not None and older_than_days < 0:
        raise ValueError("--older-than must be 0 or more days")
    erased = 0
    for annotator in participants_to_purge(study=study, older_than_days=older_than_days):
        participant_erase(annotator=annotator)
        erased += 1
    return erased
