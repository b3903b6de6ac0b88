"""The batch page follows a running batch without a reload, with the demo's set-up: the batch is queued on the
embedded broker (kombu filesystem transport, no server) and the real `manage.py embedded_worker` runs it while
Chromium keeps the page open; the polled status partial shows the counters move and the batch finish."""
from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from inference.models import Batch, Dataset, Sample
from inference.services.batches import batch_queue

pytestmark = pytest.mark.e2e


@pytest.fixture
def queued_batch(embedded_worker_process) -> Batch:
    dataset = Dataset.objects.create(name="progress", format="manifest")
    Sample.objects.bulk_create(
        Sample(dataset=dataset, external_id=f"s{i}", image=f"samples/{i}.png", image_sha256=f"{i:064d}", width=8,
               height=8, gt_valence=0.1, gt_arousal=0.2) for i in range(12))
    # 0.6 s per item: each 4-item chunk takes longer than the page's 2 s poll, so the page sees it land.
    return batch_queue(dataset=dataset, stages=["va"], va_source="dataset", chunk_size=4, item_delay_s=0.6)


def test_the_batch_page_updates_itself_while_the_embedded_worker_runs_it(browser, live_server,
                                                                         queued_batch) -> None:
    staff = User.objects.create_user("sam-staff", password="pw", is_staff=True)
    client = Client()
    client.force_login(staff)
    context = browser.new_context()
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(f"{live_server.url}/pipeline/batches/{queued_batch.pk}/")
        page.evaluate("window.__notReloaded = true")  # gone if the page reloads instead of polling
        first = int(re.match(r"\d+", page.locator("#batch-status .done").inner_text()).group())
        assert first < 12  # the worker has not finished before the page first showed it
        # A partial count: the worker finished some chunks and the page showed it without a reload.
        page.wait_for_function("() => { const n = parseInt(document.querySelector('#batch-status .done')"
                               ".textContent); return n > 0 && n < 12; }")
        page.wait_for_function("() => document.querySelector('#batch-status .batch-status').dataset.finished === '1'")
        assert page.locator("#batch-status .done").inner_text() == "12 done"
        assert page.locator("#batch-status .status").inner_text() == "Succeeded"
        assert page.evaluate("window.__notReloaded") is True
    finally:
        context.close()
    queued_batch.refresh_from_db()
    assert (queued_batch.status, queued_batch.done) == ("succeeded", 12)
