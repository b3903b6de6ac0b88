"""The extract_va command: a batch with the va stage, run inline, on the va queue, or by a real worker."""
from __future__ import annotations

import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from inference.models import Batch, Dataset, VAEstimate
from inference.services.va import va_extract_samples
from inference.tasks.batch import batch_chunk_run_task
from tests.inference.test_va_service import face_sample, sample_create

FACE_FILES = ["astronaut.png", "biden.jpg", "obama.jpg", "obama-speech.jpg"]


@pytest.fixture
def dataset(db) -> Dataset:
    dataset = Dataset.objects.create(name="faces", format=Dataset.Format.FOLDER)
    for name in FACE_FILES:
        face_sample(dataset, name, gt_valence=0.2, gt_arousal=0.1)
    return dataset


def _extract(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("extract_va", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_sends_va_chunks_to_the_va_queue_acknowledged_late(dataset, settings, monkeypatch,
                                                             django_capture_on_commit_callbacks) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = False
    sent: list = []
    monkeypatch.setattr(batch_chunk_run_task, "apply_async", lambda args, queue: sent.append((args, queue)))
    with django_capture_on_commit_callbacks(execute=True):
        out, _ = _extract("faces", "--source", "dataset", "--chunk-size", "3")
    batch = Batch.objects.get()
    assert batch.stages == ["va"] and batch.status == "queued" and batch.total == 4
    assert sent == [([chunk.pk], "va") for chunk in batch.chunks.order_by("index")]
    assert f"queued batch {batch.pk} (va over faces): 2 chunk(s) (4 items) on the 'va' queue" in out
    assert batch_chunk_run_task.acks_late is True and batch_chunk_run_task.reject_on_worker_lost is True
    assert not VAEstimate.objects.exists()  # nothing ran in the command


def test_it_runs_a_chunk_and_records_a_json_safe_report(dataset) -> None:
    ids = list(dataset.samples.values_list("id", flat=True))
    assert va_extract_samples(sample_ids=ids, source="dataset") == {"done": 4, "failed": 0, "no_face": 0,
                                                                    "errors": {}}
    assert VAEstimate.objects.filter(source="dataset", status="ok").count() == 4


def test_it_reports_a_missing_sample_by_its_id(dataset) -> None:
    result = va_extract_samples(sample_ids=[424242], source="dataset")
    assert result["failed"] == 1 and list(result["errors"]) == [424242]


def test_it_extracts_a_dataset_in_process_with_a_summary(dataset) -> None:
    out, err = _extract("faces", "--source", "expression", "--chunk-size", "3", "--sync")
    batch = Batch.objects.get()
    assert out.strip().endswith(f"dataset faces, source expression: 4 ok, 0 no face, 0 error(s) "
                                f"(batch {batch.pk} succeeded)")
    assert (batch.stages, batch.done, batch.chunks.count()) == (["va"], 4, 2)
    rows = VAEstimate.objects.filter(source="expression")
    assert rows.count() == 4 and all(r.status == "ok" for r in rows)


def test_it_is_idempotent_when_run_twice(dataset) -> None:
    _extract("faces", "--source", "expression", "--sync")
    first = sorted(VAEstimate.objects.values_list("id", "sample_id", "model_sha256"))
    _extract("faces", "--source", "expression", "--sync")
    assert sorted(VAEstimate.objects.values_list("id", "sample_id", "model_sha256")) == first
    assert len(first) == 4


def test_it_runs_in_process_when_celery_is_eager(dataset, settings) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    out, _ = _extract(str(dataset.pk), "--source", "dataset")
    assert "4 ok" in out and VAEstimate.objects.filter(source="dataset").count() == 4


def test_it_lists_bad_samples_and_finishes_the_rest(dataset) -> None:
    bad = sample_create(dataset, "garbage", b"not an image at all", "png")
    out, err = _extract("faces", "--source", "expression", "--sync")
    assert "4 ok, 0 no face, 1 error(s)" in out
    assert f"sample {bad.pk}:" in err and "cannot be decoded" in err


@pytest.mark.parametrize(("args", "message"), [
    (["no-such-dataset", "--source", "dataset"], "unknown dataset 'no-such-dataset'"),
    (["faces", "--source", "telepathy"], "invalid choice"),
    (["faces", "--source", "dataset", "--chunk-size", "0"], "--chunk-size must be at least 1"),
    (["faces", "--source", "dataset", "--chunk-size", "many"], "invalid int value"),
    # time.sleep refuses NaN and inf only once the wait has begun (a traceback with the batch queued)
    (["faces", "--source", "dataset", "--wait", "--poll", "nan"], "--poll must be > 0"),
    (["faces", "--source", "dataset", "--wait", "--poll", "inf"], "--poll must be > 0"),
])
def test_it_rejects_bad_command_arguments(dataset, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        _extract(*args)
    assert not VAEstimate.objects.exists()


def test_it_names_the_missing_setting_when_facechannel_weights_are_unset(dataset, settings) -> None:
    settings.FACECHANNEL_WEIGHTS = ""
    with pytest.raises(CommandError, match="FACECHANNEL_WEIGHTS"):
        _extract("faces", "--source", "facechannel", "--sync")
    assert not VAEstimate.objects.exists()


@pytest.mark.slow
@pytest.mark.celery_worker
def test_it_queues_chunks_that_a_real_worker_extracts(celery_worker_process, settings) -> None:
    dataset = Dataset.objects.create(name="faces-worker", format=Dataset.Format.FOLDER)
    for name in FACE_FILES:
        face_sample(dataset, name)
    out, _ = _extract("faces-worker", "--source", "expression", "--chunk-size", "2")
    assert "2 chunk(s) (4 items) on the 'va' queue" in out
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and VAEstimate.objects.filter(sample__dataset=dataset).count() < 4:
        assert celery_worker_process.poll() is None, "worker died"
        time.sleep(0.5)
    rows = VAEstimate.objects.filter(sample__dataset=dataset, source="expression")
    assert rows.count() == 4 and {r.status for r in rows} == {"ok"}
    assert rows.get(sample__external_id="obama").valence > 0.3
