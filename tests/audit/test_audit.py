"""The audit log: a row per event, by whom, from where; read-only in the admin; on the study's page."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.template import Context, Template
from django.test import Client
from django.urls import reverse

from annotations.reports import study_report_build
from annotations.services.tokens import api_token_create
from audit.models import AuditEvent
from inference.models import Batch, BatchChunk, Dataset, Sample
from inference.services.batches import batch_queue
from tests.annotations.test_reports import study_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset(db) -> Dataset:
    dataset = Dataset.objects.create(name="faces", format="manifest")
    Sample.objects.bulk_create(
        Sample(dataset=dataset, external_id=f"s{i}", image=f"samples/{i}.png", image_sha256=f"{i:064d}", width=8,
               height=8, gt_valence=0.1, gt_arousal=0.2) for i in range(3))
    return dataset


@pytest.fixture
def running_batch(dataset: Dataset, researcher: User) -> Batch:
    batch = Batch.objects.create(dataset=dataset, stages=["va"], va_source="dataset", status="running",
                                 current_stage="va", total=2, created_by=researcher)
    BatchChunk.objects.create(batch=batch, stage="va", index=0, key="va:0", item_ids=[1, 2])
    return batch


def test_it_records_who_queued_a_batch(dataset: Dataset, researcher: User) -> None:
    batch = batch_queue(dataset=dataset, stages=["va"], va_source="dataset", created_by=researcher)
    event = AuditEvent.objects.get(action="batch.queued")
    assert (event.actor, event.actor_name, event.target_type, event.target_id) == (
        researcher, "rita-researcher", "inference.batch", batch.pk)
    assert "dataset faces" in event.summary


def test_it_records_a_cancel_from_the_button_with_the_address(client: Client, researcher: User,
                                                              running_batch: Batch) -> None:
    client.force_login(researcher)
    client.post(reverse("inference:batch_cancel", args=[running_batch.pk]), REMOTE_ADDR="192.0.2.44")
    event = AuditEvent.objects.get(action="batch.cancelled")
    assert (event.actor, event.target_id, event.ip_address) == (researcher, running_batch.pk, "192.0.2.44")
    # A refused cancel (already cancelled) changes nothing and records nothing.
    client.post(reverse("inference:batch_cancel", args=[running_batch.pk]))
    assert AuditEvent.objects.filter(action="batch.cancelled").count() == 1


def test_it_records_a_retry_from_the_admin(client: Client, admin_user: User, running_batch: Batch) -> None:
    running_batch.chunks.update(status="failed", failed=2, errors={"1": "x", "2": "y"})
    Batch.objects.filter(pk=running_batch.pk).update(status="failed", failed=2)
    client.force_login(admin_user)
    client.post("/admin/inference/batch/", {"action": "retry_failed_items", "_selected_action": [running_batch.pk]})
    event = AuditEvent.objects.get(action="batch.retried")
    assert event.actor == admin_user and "retried 2 failed item(s)" in event.summary


def test_it_records_a_report_build_and_shows_it_for_the_study(researcher: User) -> None:
    study = study_make(owner=researcher, items=4, raters=2, excluded_raters=0)
    study_report_build(study=study, user=researcher, resamples=20)
    event = AuditEvent.objects.get(action="report.built")
    assert (event.study_id, event.actor_name, event.summary) == (study.pk, "rita-researcher", "built report v1")
    html = Template("{% load audit %}{% audit_events study %}").render(Context({"study": study}))
    assert "built report v1" in html and "rita-researcher" in html


def test_the_admin_shows_events_read_only(client: Client, admin_user: User, dataset: Dataset,
                                          researcher: User) -> None:
    batch_queue(dataset=dataset, stages=["va"], va_source="dataset", created_by=researcher)
    event = AuditEvent.objects.get()
    client.force_login(admin_user)
    assert b"queued batch" in client.get("/admin/audit/auditevent/").content
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    assert client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    change = client.post(f"/admin/audit/auditevent/{event.pk}/change/", {"summary": "nothing happened"})
    assert change.status_code == 403
    event.refresh_from_db()
    assert event.summary.startswith("queued batch")


@pytest.fixture
def owned_study(researcher: User):
    return study_make(owner=researcher, items=4, raters=2, excluded_raters=0)


def test_it_records_status_changes_from_the_manage_page_and_shows_them_there(client: Client, researcher: User,
                                                                             owned_study) -> None:
    client.force_login(researcher)
    client.post(f"/studies/{owned_study.slug}/manage/status", {"status": "paused"}, REMOTE_ADDR="192.0.2.9")
    event = AuditEvent.objects.get(action="study.status")
    assert (event.study_id, event.actor, event.summary, event.ip_address) == (
        owned_study.pk, researcher, "status open → paused", "192.0.2.9")
    page = client.get(f"/studies/{owned_study.slug}/manage/").content.decode()
    assert 'id="audit-log"' in page and "status open → paused" in page


def test_it_records_status_changes_from_the_admin(client: Client, admin_user: User, owned_study) -> None:
    client.force_login(admin_user)
    client.post("/admin/annotations/study/", {"action": "close_studies", "_selected_action": [owned_study.pk]})
    event = AuditEvent.objects.get(action="study.status")
    assert event.actor == admin_user and event.summary == "status open → closed"


def test_it_records_each_export_download_but_not_a_refused_one(client: Client, researcher: User, owned_study,
                                                                outsider: User) -> None:
    client.force_login(researcher)
    for path in ("exports/ratings.csv", "exports/items.csv", "exports/payment.csv"):
        assert client.get(f"/research/studies/{owned_study.slug}/{path}").status_code == 200
    summaries = sorted(AuditEvent.objects.filter(action="export.downloaded").values_list("summary", flat=True))
    assert summaries == [f"downloaded {owned_study.slug}-{name}.csv" for name in ("items", "payment", "ratings")]
    client.force_login(outsider)
    assert client.get(f"/research/studies/{owned_study.slug}/exports/ratings.csv").status_code == 404
    assert AuditEvent.objects.filter(action="export.downloaded").count() == 3


def test_it_records_api_use_with_the_token(client: Client, researcher: User, owned_study) -> None:
    token, key = api_token_create(user=researcher, name="notebook")
    client.get(f"/research/api/studies/{owned_study.slug}/items", HTTP_AUTHORIZATION=f"Bearer {key}")
    client.get(f"/research/api/studies/{owned_study.slug}/items", HTTP_AUTHORIZATION="Bearer wrong")
    event = AuditEvent.objects.get(action="api.used")
    assert (event.actor, event.study_id) == (researcher, owned_study.pk)
    assert event.summary == f"API items with token {token.prefix}…"
