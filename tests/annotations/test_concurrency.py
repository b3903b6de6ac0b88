"""50 annotators claim and rate at once on PostgreSQL: k is never exceeded and no rating is lost."""
from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection, connections

from annotations.assignment import assignment_next
from annotations.models import Annotator, Assignment, Item, Rating
from annotations.services.ratings import rating_submit
from annotations.services.studies import study_create

from .conftest import SECRET_CONFIG

N_ANNOTATORS = 50
N_ITEMS = 40
K = 3


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_it_never_exceeds_k_nor_loses_a_rating_with_50_parallel_annotators(
    transactional_db, make_generations, join_annotator
) -> None:
    assert connection.vendor == "postgresql"
    make_generations(N_ITEMS)
    study = study_create(name="Race", dataset="faces", config_names=[SECRET_CONFIG], prompt_names=["describe"],
                         k=K, open_now=True)
    annotators = [join_annotator(study, f"racer-{i}") for i in range(N_ANNOTATORS)]
    start = threading.Barrier(N_ANNOTATORS)
    submitted: list[tuple[int, int]] = []  # (annotator, item) for every submit the service accepted
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(annotator: Annotator) -> None:
        try:
            start.wait()
            while (assignment := assignment_next(annotator=annotator)) is not None:
                result = rating_submit(annotator=annotator, assignment_token=assignment.token, value=3)
                assert result.created
                with lock:
                    submitted.append((annotator.pk, assignment.item_id))
        except BaseException as exc:  # surfaced in the main thread below
            with lock:
                errors.append(exc)
        finally:
            connections.close_all()  # each thread has its own connection; do not leak 50 of them

    threads = [threading.Thread(target=work, args=(a,)) for a in annotators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []

    per_item = Counter(Rating.objects.values_list("item_id", flat=True))
    assert max(per_item.values()) <= K
    assert set(per_item.values()) == {K} and len(per_item) == N_ITEMS  # every slot was filled
    pairs = list(Rating.objects.values_list("annotator_id", "item_id"))
    assert len(pairs) == len(set(pairs))  # nobody rated an item twice
    assert sorted(pairs) == sorted(submitted)  # every accepted submit is stored, none invented
    assert not Assignment.objects.filter(status=Assignment.Status.ACTIVE).exists()
    assert Item.objects.filter(study=study).count() == N_ITEMS
