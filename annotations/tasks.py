"""Celery tasks of the annotations app: thin wrappers that load rows by id and call one service."""
from __future__ import annotations

import logging

from celery import shared_task
from django.contrib.auth import get_user_model
from django.db import OperationalError

from annotations.models import Study
from annotations.reports import study_report_build

log = logging.getLogger(__name__)


# Not acks_late: a redelivered build would add a second, identical report version. If a worker dies
# mid-build nothing is stored (the insert is the last, atomic step) and the researcher builds again.
# A database hiccup is retried: the failed attempt stored nothing, so a retry cannot duplicate.
@shared_task(name="annotations.tasks.study_report_build_task", autoretry_for=(OperationalError,),
             retry_backoff=True, max_retries=3)
def study_report_build_task(study_id: int, user_id: int | None = None) -> int | None:
    for name, value in (("study_id", study_id), ("user_id", user_id)):
        if isinstance(value, bool) or not isinstance(value, int) and not (name == "user_id" and value is None):
            raise TypeError(f"study_report_build_task takes ids (int), got {name}={value!r}")
    study = Study.objects.filter(pk=study_id).first()
    if study is None:
        log.warning("report build skipped: study %s no longer exists", study_id)
        return None
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    return study_report_build(study=study, user=user).version
