"""The batch page, its polled status partial, and the cancel / retry buttons."""
from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from inference.models import Batch, BatchChunk, Dataset


@pytest.fixture
def batch(db, researcher) -> Batch:
    dataset = Dataset.objects.create(name="faces", format="manifest")
    # Queued by the researcher persona: only they (or a superuser) may cancel or retry it.
    batch = Batch.objects.create(dataset=dataset, stages=["va", "generate"], va_source="dataset", status="running",
                                 current_stage="va", total=4, done=1, failed=1, created_by=researcher)
    BatchChunk.objects.create(batch=batch, stage="va", index=0, key="va:source=dataset:0", item_ids=[11, 12],
                              status="failed", done=1, failed=1, errors={"12": "<script>alert(1)</script> no face"})
    BatchChunk.objects.create(batch=batch, stage="va", index=1, key="va:source=dataset:1", item_ids=[13, 14])
    return batch


def _url(name: str, batch: Batch) -> str:
    return reverse(f"inference:{name}", args=[batch.pk])


def test_it_shows_progress_counters_stages_and_errors_to_staff(client, researcher, batch) -> None:
    client.force_login(researcher)
    response = client.get(_url("batch_detail", batch))
    assert response.status_code == 200
    page = response.content.decode()
    assert '<progress max="100" value="50.0"' in page
    assert "1 done" in page and "1 failed" in page and "4 planned" in page
    assert 'data-stage="va"' in page and "not planned yet" in page  # generate comes after va
    assert "1 / 0 / 0 / 1 / 0" in page  # va chunks: queued / running / done / failed / cancelled
    assert "&lt;script&gt;alert(1)&lt;/script&gt; no face" in page and "<script>alert(1)" not in page
    assert _url("batch_status", batch) in page and '<script src="/static/inference/batch_detail.js"' in page
    assert "Cancel batch" in page
    assert "Retry failed items" not in page  # only once the batch has finished as failed


@pytest.mark.parametrize("name", ["batch_detail", "batch_status"])
def test_it_sends_anonymous_visitors_to_log_in(client, batch, name) -> None:
    response = client.get(_url(name, batch))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", ["batch_detail", "batch_status", "batch_cancel", "batch_retry"])
def test_it_forbids_non_staff(client, outsider, batch, name) -> None:
    client.force_login(outsider)
    response = client.post(_url(name, batch)) if name in {"batch_cancel", "batch_retry"} else client.get(_url(name, batch))
    assert response.status_code == 403
    batch.refresh_from_db()
    assert batch.status == "running"


def test_it_serves_the_status_partial_as_html_and_json(client, researcher, batch) -> None:
    client.force_login(researcher)
    partial = client.get(_url("batch_status", batch)).content.decode()
    assert partial.lstrip().startswith('<div class="batch-status"') and "<html" not in partial
    assert 'data-finished="0"' in partial
    data = client.get(_url("batch_status", batch), {"format": "json"}).json()
    assert (data["status"], data["done"], data["failed"], data["total"], data["percent"]) == ("running", 1, 1, 4, 50.0)
    assert data["stages"][0]["chunks"]["queued"] == 1 and data["stages"][1]["planned"] is False


def test_it_says_404_for_an_unknown_batch(client, researcher) -> None:
    client.force_login(researcher)
    assert client.get(reverse("inference:batch_status", args=[999999])).status_code == 404


def test_it_cancels_from_the_button(client, researcher, batch) -> None:
    client.force_login(researcher)
    assert client.get(_url("batch_cancel", batch)).status_code == 405  # a link must not cancel work
    response = client.post(_url("batch_cancel", batch), follow=True)
    batch.refresh_from_db()
    assert batch.status == "cancelled"
    assert list(batch.chunks.order_by("index").values_list("status", flat=True)) == ["failed", "cancelled"]
    assert "1 queued chunk(s) will not run" in response.content.decode()
    again = client.post(_url("batch_cancel", batch), follow=True).content.decode()
    assert "was not cancelled: only a queued or running batch can be cancelled" in again


def test_it_retries_failed_items_from_the_button(client, researcher, batch, django_capture_on_commit_callbacks) -> None:
    client.force_login(researcher)
    refused = client.post(_url("batch_retry", batch), follow=True).content.decode()
    assert "only a failed batch can retry" in refused
    batch.chunks.filter(index=1).update(status="done", done=2)
    Batch.objects.filter(pk=batch.pk).update(status="failed", error="1 of 4 item(s) failed", done=3)
    assert "Retry failed items" in client.get(_url("batch_detail", batch)).content.decode()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(_url("batch_retry", batch), follow=True)
    assert "1 failed item(s) queued again" in response.content.decode()
    assert len(callbacks) == 1  # one message, for the one failed chunk
    batch.refresh_from_db()
    chunk = batch.chunks.get(index=0)
    assert (batch.status, batch.failed, chunk.status, chunk.params["retry_ids"]) == ("running", 0, "queued", [12])


def test_it_requires_a_csrf_token_to_cancel(researcher, batch) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(researcher)
    assert client.post(_url("batch_cancel", batch)).status_code == 403
    batch.refresh_from_db()
    assert batch.status == "running"


def test_it_says_why_a_stage_of_a_finished_batch_has_no_items(client, researcher, db) -> None:
    dataset = Dataset.objects.create(name="plain", format="manifest")
    note = "dataset 'plain' has no reference descriptions (Sample.references is empty for all 2 samples)"
    batch = Batch.objects.create(
        dataset=dataset, stages=["va", "generate", "similarity"], va_source="dataset", status="succeeded",
        current_stage="similarity", total=2, done=2, created_by=researcher,
        plan={"va": {"planned": 2, "reused": 0, "note": ""},
              "generate": {"planned": 0, "reused": 2, "note": "all 2 answers for the chosen configs and prompts "
                                                               "exist already"},
              "similarity": {"planned": 0, "reused": 0, "note": note}})
    BatchChunk.objects.create(batch=batch, stage="va", index=0, key="va:source=dataset:0", item_ids=[1, 2],
                              status="done", done=2)
    client.force_login(researcher)
    page = client.get(_url("batch_status", batch)).content.decode()
    assert "not planned yet" not in page
    assert "nothing to do: all 2 answers for the chosen configs and prompts exist already" in page
    assert "nothing to do: dataset &#x27;plain&#x27; has no reference descriptions" in page
    progress = client.get(_url("batch_status", batch) + "?format=json").json()
    assert [(s["stage"], s["considered"], s["note"]) for s in progress["stages"]][2] == ("similarity", True, note)


def test_it_says_a_stage_was_not_reached_when_the_batch_ended_before_it(client, researcher, batch) -> None:
    Batch.objects.filter(pk=batch.pk).update(status="cancelled")
    client.force_login(researcher)
    page = client.get(_url("batch_status", batch)).content.decode()
    assert "not planned yet" not in page and "not run: the batch ended (cancelled) before this stage" in page
