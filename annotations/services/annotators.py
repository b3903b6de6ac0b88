"""Joining a study: by account or by a crowd link (Prolific, MTurk), and consent."""
from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from ..models import Annotator, Assignment, Study

# Prolific ids are 24 hex digits and MTurk ids upper-case alphanumerics; this admits both and any
# similar panel while refusing markup, whitespace and absurd lengths.
CROWD_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}$")
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"


# MTurk's ExternalQuestion passes turkSubmitTo; the external-submit form may only ever post back to MTurk.
MTURK_SUBMIT_HOSTS = ("https://www.mturk.com", "https://workersandbox.mturk.com")


class JoinInvalid(ValueError):
    """The join request cannot identify an annotator (missing or malformed worker id, closed study)."""


class StudyUnavailable(JoinInvalid):
    """A newcomer cannot start: the study is closed, paused or full. `reason` is one of those words."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class CrowdIdentity:
    platform: str
    worker_id: str
    session_id: str
    study_id: str
    preview: bool = False
    submit_to: str = ""


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
        submit_to = (params.get("turkSubmitTo") or "").strip().rstrip("/")
        return CrowdIdentity(
            platform=Annotator.Platform.MTURK,
            worker_id=_clean(params.get("workerId"), "workerId (your MTurk worker id)", required=True),
            session_id=_clean(assignment_id, "assignmentId", required=False),
            study_id=_clean(params.get("hitId"), "hitId", required=False),
            # Anything but MTurk's own hosts falls back to the production host: never post a worker's
            # assignment to a URL an attacker put in the link.
            submit_to=submit_to if submit_to in MTURK_SUBMIT_HOSTS else MTURK_SUBMIT_HOSTS[0],
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
    submit_to: str = "",
) -> Annotator:
    """The annotator for this worker id in this study: the same worker id always gets the same row back,
    whatever the study's state (a participant already in resumes their own session). A newcomer needs an
    open study with room: under the participant cap and with at least one item still short of k raters."""
    if platform not in Annotator.Platform.values:
        raise JoinInvalid(f"unknown platform {platform!r}")
    if not external_id:
        raise JoinInvalid("a worker id is required")
    existing = Annotator.objects.filter(study=study, platform=platform, external_id=external_id).first()
    if existing is not None:
        if submit_to and existing.submit_to != submit_to:
            Annotator.objects.filter(pk=existing.pk).update(submit_to=submit_to)
            existing.submit_to = submit_to
        return existing
    try:
        with transaction.atomic():
            # The study row lock serialises newcomers, so two joins cannot both take the last place.
            locked = Study.objects.select_for_update().get(pk=study.pk)
            study_room_check(study=locked)
            return Annotator.objects.create(
                study=study, platform=platform, external_id=external_id, external_session=external_session,
                external_study=external_study, user=user, order_seed=secrets.randbits(62), submit_to=submit_to,
            )
    except IntegrityError:
        # The same worker opened the link twice at once; both requests end up on one row.
        return Annotator.objects.get(study=study, platform=platform, external_id=external_id)


def study_room_check(*, study: Study) -> None:
    """Raise StudyUnavailable when a newcomer cannot start this study now."""
    from ..selectors import study_has_free_slot

    if study.status == Study.Status.PAUSED:
        raise StudyUnavailable("paused", "this study is paused and is not taking new participants right now")
    if study.status != Study.Status.OPEN:
        raise StudyUnavailable("closed", "this study is closed and is not taking new participants")
    if study.max_participants is not None and (
        Annotator.objects.filter(study=study).count() >= study.max_participants
    ):
        raise StudyUnavailable("full", "this study already has all the participants it needs")
    if not study_has_free_slot(study=study):
        raise StudyUnavailable("full", "every item of this study already has enough ratings")


def annotator_join_account(*, study: Study, user: AbstractBaseUser) -> Annotator:
    return annotator_join(study=study, platform=Annotator.Platform.ACCOUNT, external_id=str(user.pk), user=user)


def annotator_consent(*, annotator: Annotator) -> Annotator:
    """Record consent once; the first timestamp is the one that counts."""
    Annotator.objects.filter(pk=annotator.pk, consented_at__isnull=True).update(consented_at=timezone.now())
    annotator.refresh_from_db(fields=["consented_at"])
    return annotator


def annotator_complete(*, annotator: Annotator, outcome: str = Annotator.Outcome.COMPLETE) -> Annotator:
    """End the session once; the first outcome is the one that counts (a reload cannot change it)."""
    Annotator.objects.filter(pk=annotator.pk, completed_at__isnull=True).update(
        completed_at=timezone.now(), outcome=outcome
    )
    annotator.refresh_from_db(fields=["completed_at", "outcome"])
    return annotator


def annotator_finish_early(*, annotator: Annotator) -> Annotator:
    """'Finish now': release the item in hand (its slot goes back to the pool) and end the session.

    A participant whose budget is already used up has completed; anyone else finished early and gets
    what the study states on its consent page (partial code, the full code, or none).
    """
    from ..selectors import annotator_budget_left

    with transaction.atomic():
        Assignment.objects.filter(annotator=annotator, status=Assignment.Status.ACTIVE).update(
            status=Assignment.Status.EXPIRED
        )
        left = annotator_budget_left(annotator=annotator)
        outcome = Annotator.Outcome.COMPLETE if left == 0 else Annotator.Outcome.PARTIAL
        return annotator_complete(annotator=annotator, outcome=outcome)
