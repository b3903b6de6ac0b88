"""A real round trip: a task sent through the real Redis broker, run by a real worker process, writing to
the real PostgreSQL test database."""
from __future__ import annotations

import time

import pytest

from inference.models import Dataset, Sample
from inference.tasks.imports import dataset_import_task
from tests.conftest import FACES


@pytest.mark.celery_worker
def test_it_runs_an_import_on_a_real_worker(celery_worker_process) -> None:
    result = dataset_import_task.delay(str(FACES / "demo-manifest.csv"), "roundtrip", "manifest")
    assert result.id
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and Sample.objects.filter(dataset__name="roundtrip").count() < 4:
        assert celery_worker_process.poll() is None, "worker died"
        time.sleep(0.5)
    assert Dataset.objects.get(name="roundtrip").format == "manifest"
    assert Sample.objects.filter(dataset__name="roundtrip").count() == 4


@pytest.mark.django_db
def test_the_import_task_refuses_bad_arguments_clearly(tmp_path) -> None:
    from inference.services.imports import ImportFailed

    with pytest.raises(ImportFailed, match="path does not exist"):
        dataset_import_task.apply(args=(str(tmp_path / "missing.csv"), "bad", "manifest"), throw=True)
    with pytest.raises(ImportFailed, match="unknown format 'xml'"):
        dataset_import_task.apply(args=(str(FACES / "demo-manifest.csv"), "bad", "xml"), throw=True)
    # The command checked the name; the task took any (a dataset "has spaces") or crashed on a non-str.
    with pytest.raises(ImportFailed, match="must be a slug"):
        dataset_import_task.apply(args=(str(FACES / "demo-manifest.csv"), "has spaces", "manifest"), throw=True)
    with pytest.raises(ImportFailed, match="must be a slug"):
        dataset_import_task.apply(args=(str(FACES / "demo-manifest.csv"), 7, "manifest"), throw=True)
    with pytest.raises(ImportFailed, match="must be a file or folder name"):
        dataset_import_task.apply(args=(7, "bad", "manifest"), throw=True)
    with pytest.raises(ImportFailed, match="unknown format"):  # unhashable: a TypeError before
        dataset_import_task.apply(args=(str(FACES / "demo-manifest.csv"), "bad", ["manifest"]), throw=True)
    with pytest.raises(ImportFailed, match="unknown label set"):
        dataset_import_task.apply(args=(str(FACES / "demo-manifest.csv"), "bad", "manifest", ["basic"]), throw=True)
    assert not Dataset.objects.exists()
    report = dataset_import_task.apply(args=(str(FACES / "demo-manifest.csv"), "ok", "manifest")).get()
    assert (report["created"], report["errors"]) == (4, [])
