"""The batch page follows a running batch without a reload: Chromium keeps the page open while this test
plays the worker (running the queued chunks through the real service), and the polled status partial shows
the counters move and the batch finish."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from inference.models import Batch, BatchChunk, Dataset, Sample
from inference.services.batches import batch_chunk_run, batch_queue
from tests.conftest import queues_purge

pytestmark = pytest.mark.e2e


@pytest.fixture
def queued_batch(transactional_db, settings) -> Batch:
    from evalplatform.celery import app

    # No eager execution and no worker: the chunks wait in Redis until this test runs them.
    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.task_always_eager = False
    dataset = Dataset.objects.create(name="progress", format="manifest")
    Sample.objects.bulk_create(
        Sample(dataset=dataset, external_id=f"s{i}", image=f"samples/{i}.png", image_sha256=f"{i:064d}", width=8,
               height=8, gt_valence=0.1, gt_arousal=0.2) for i in range(12))
    try:
        yield batch_queue(dataset=dataset, stages=["va"], va_source="dataset", chunk_size=4)
    finally:
        queues_purge(app)
        app.conf.task_always_eager = True


def test_the_batch_page_updates_itself_while_chunks_finish(browser, live_server, queued_batch) -> None:
    staff = User.objects.create_user("sam-staff", password="pw", is_staff=True)
    client = Client()
    client.force_login(staff)
    context = browser.new_context()
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(f"{live_server.url}/pipeline/batches/{queued_batch.pk}/")
        page.evaluate("window.__notReloaded = true")  # gone if the page reloads instead of polling
        assert page.locator("#batch-status .done").inner_text() == "0 done"

        first, *rest = BatchChunk.objects.filter(batch=queued_batch).order_by("index")
        batch_chunk_run(chunk_id=first.pk)
        # Functions, not expression strings: Playwright evaluates a string with eval, which the CSP refuses.
        page.wait_for_function("() => document.querySelector('#batch-status .done').textContent.trim() === '4 done'")

        for chunk in rest:
            batch_chunk_run(chunk_id=chunk.pk)
        page.wait_for_function("() => document.querySelector('#batch-status .batch-status').dataset.finished === '1'")
        assert page.locator("#batch-status .done").inner_text() == "12 done"
        assert page.locator("#batch-status .status").inner_text() == "Succeeded"
        assert page.evaluate("window.__notReloaded") is True
    finally:
        context.close()
    queued_batch.refresh_from_db()
    assert (queued_batch.status, queued_batch.done) == ("succeeded", 12)
