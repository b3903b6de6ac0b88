"""50 annotators claim and rate at once on PostgreSQL: k is never exceeded and no rating is lost; a submit
repeated in parallel is stored once."""
from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

import pytest
from django.db import connection, connections
from django.utils import timezone

from annotations.assignment import assignment_next
from annotations.models import Annotator, Assignment, Item, Rating, Study
from annotations.services.ratings import rating_submit
from annotations.services.studies import study_create

from .conftest import SECRET_CONFIG

N_ANNOTATORS = 50
N_ITEMS = 40
K = 3
T = TypeVar("T")


def _study(make_generations, n_items: int, **options: object) -> Study:
    assert connection.vendor == "postgresql"
    make_generations(n_items)
    return study_create(name="Race", dataset="faces", config_names=[SECRET_CONFIG], prompt_names=["describe"],
                        open_now=True, **options)


def _at_once(work: Callable[[T], None], args: list[T], timeout: float) -> None:
    """Run `work(arg)` for every arg in its own thread, all released together; re-raise what any raised."""
    start = threading.Barrier(len(args))
    errors: list[BaseException] = []

    def run(arg: T) -> None:
        try:
            start.wait()
            work(arg)
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)
        finally:
            connections.close_all()  # each thread has its own connection; do not leak them

    threads = [threading.Thread(target=run, args=(arg,)) for arg in args]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_it_never_exceeds_k_nor_loses_a_rating_with_50_parallel_annotators(
    transactional_db, make_generations, join_annotator
) -> None:
    study = _study(make_generations, N_ITEMS, k=K)
    annotators = [join_annotator(study, f"racer-{i}") for i in range(N_ANNOTATORS)]
    submitted: list[tuple[int, int]] = []  # (annotator, item) for every submit the service accepted
    lock = threading.Lock()

    def work(annotator: Annotator) -> None:
        while (assignment := assignment_next(annotator=annotator)) is not None:
            result = rating_submit(annotator=annotator, assignment_token=assignment.token, value=3)
            assert result.created
            with lock:
                submitted.append((annotator.pk, assignment.item_id))

    _at_once(work, annotators, timeout=240)

    per_item = Counter(Rating.objects.values_list("item_id", flat=True))
    assert max(per_item.values()) <= K
    assert set(per_item.values()) == {K} and len(per_item) == N_ITEMS  # every slot was filled
    pairs = list(Rating.objects.values_list("annotator_id", "item_id"))
    assert len(pairs) == len(set(pairs))  # nobody rated an item twice
    assert sorted(pairs) == sorted(submitted)  # every accepted submit is stored, none invented
    assert not Assignment.objects.filter(status=Assignment.Status.ACTIVE).exists()
    assert Item.objects.filter(study=study).count() == N_ITEMS


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_it_stores_one_rating_and_counts_one_failed_check_when_20_identical_submits_race(
    transactional_db, make_generations, join_annotator
) -> None:
    study = _study(make_generations, 2, k=2, attention_items=["Attention: choose 5.|5|5"])
    Study.objects.filter(pk=study.pk).update(max_failed_checks=3)
    anna = join_annotator(study, "double-clicker")
    check = study.items.get(kind=Item.Kind.ATTENTION)
    assignment = Assignment.objects.create(item=check, annotator=anna,
                                           expires_at=timezone.now() + timedelta(minutes=30))
    results = []

    def submit(_: int) -> None:
        annotator = Annotator.objects.get(pk=anna.pk)  # each thread its own copy, as each request reads one
        results.append(rating_submit(annotator=annotator, assignment_token=assignment.token, value=1))

    _at_once(submit, list(range(20)), timeout=60)
    assert sorted(result.created for result in results) == [False] * 19 + [True]  # one stored, 19 replays
    assert Rating.objects.filter(assignment=assignment).count() == 1
    anna.refresh_from_db()
    assignment.refresh_from_db()
    assert anna.failed_checks == 1 and not anna.excluded
    assert assignment.status == Assignment.Status.SUBMITTED
    assert Rating.objects.get(assignment=assignment).passed_check is False
