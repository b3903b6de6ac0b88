"""The rating flow: two requests per item (the page, then the submit that leads straight to the next page),
the study and annotator read once per request, and few queries (the page at most 3; on PostgreSQL the submit
at most 4 with the claim of the next item included, which the old flow did in a request of its own).

Queries are counted with CaptureQueriesContext; SAVEPOINT/RELEASE lines are left out because they exist
only inside the test's own transaction (in production the submit's atomic block is BEGIN/COMMIT).
"""
from __future__ import annotations

import re
from collections.abc import Callable

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from annotations.assignment import assignment_next
from annotations.models import Annotator, Assignment, Rating, Study

ITEM_URL = re.compile(r"^/s/match/a/(?P<token>[0-9a-f-]{36})/$")


def _counted(run: Callable[[], object]) -> tuple[object, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        result = run()
    return result, [q["sql"] for q in captured.captured_queries
                    if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]


def _value(page_html: str) -> str:
    return "5" if "choose 5" in page_html else "4"


def test_it_goes_from_each_submit_straight_to_the_next_items_page(study, crowd) -> None:
    client = crowd(study, "w-two")
    url = client.get("/s/match/")["Location"]  # the first item: the assignment redirect, once
    requests_per_item, tokens = [], []
    while ITEM_URL.match(url):
        page = client.get(url)
        assert page.status_code == 200
        posted = client.post(url, {"value": _value(page.content.decode()), "comment": ""})
        assert posted.status_code == 302
        requests_per_item.append(2)
        tokens.append(ITEM_URL.match(url)["token"])
        url = posted["Location"]
    annotator = Annotator.objects.get(external_id="w-two")
    assert url == "/s/match/done"  # the last submit ends the session itself
    assert Rating.objects.filter(annotator=annotator).count() == len(tokens) == study.items.count()
    assert len(set(tokens)) == len(tokens)  # a new item each time, never the one just rated
    assert not Assignment.objects.filter(annotator=annotator, status=Assignment.Status.ACTIVE).exists()
    annotator.refresh_from_db()
    assert annotator.completed_at is not None


def test_it_reads_the_page_in_3_queries_and_the_submit_in_at_most_4(study, crowd, join_annotator) -> None:
    client = crowd(study, "w-queries")
    url = client.get("/s/match/")["Location"]
    first = client.get(url)  # the session's first page also estimates the progress bar's total (cached a minute)
    url = client.post(url, {"value": _value(first.content.decode())})["Location"]
    for _ in range(3):
        page, page_sql = _counted(lambda u=url: client.get(u))
        reload, reload_sql = _counted(lambda u=url: client.get(u))
        assert page.status_code == reload.status_code == 200
        assert len(page_sql) <= 3, page_sql  # annotator + study, assignment + done count, first-shown time
        assert len(reload_sql) <= 2, reload_sql  # a reload does not restart the clock
        # What claiming the next item costs on its own, for an annotator in the same state.
        other = join_annotator(study, f"w-other-{len(Rating.objects.all())}")
        _, claim_sql = _counted(lambda a=other: assignment_next(annotator=a))
        posted, post_sql = _counted(lambda u=url, p=page: client.post(u, {"value": _value(p.content.decode())}))
        assert posted.status_code == 302 and ITEM_URL.match(posted["Location"])
        if connection.vendor == "postgresql":  # lock a window, then recount and claim; SQLite takes the exact path
            assert len(claim_sql) <= 2, claim_sql
            # The whole submit, claiming the next item included: annotator + study, then one statement that
            # marks the assignment submitted and inserts the rating, then the claim's two.
            assert len(post_sql) <= 4, post_sql
            assert len(post_sql) - len(claim_sql) <= 2, post_sql
        else:
            # SQLite: annotator + study, the assignment, the rating, the assignment's status.
            assert len(post_sql) - len(claim_sql) <= 4, post_sql
        assert sum("annotations_study" in q.split("FROM")[1].split("WHERE")[0] for q in post_sql[:1]) == 1
        url = posted["Location"]


def test_it_reads_the_study_and_the_annotator_in_one_query(study, crowd) -> None:
    client = crowd(study, "w-once")
    url = client.get("/s/match/")["Location"]
    client.get(url)
    _, sql = _counted(lambda: client.get(url))
    study_reads = [q for q in sql if '"annotations_study"' in q]
    assert len(study_reads) == 1 and '"annotations_annotator"' in study_reads[0]  # one join, not two reads


def test_it_does_not_let_a_session_of_one_study_reach_another(study, crowd, make_generations, researcher) -> None:
    from annotations.services.studies import study_create

    other = study_create(name="Other", slug="other", dataset="faces", config_names=["secret-gpt-config"],
                         owner=researcher, prompt_names=["describe"], k=2, open_now=True)
    client = crowd(study, "w-cross")
    assert client.get("/s/other/")["Location"] == "/s/other/join"
    # A session holding this annotator's id under the other study's key is not their session there.
    annotator = Annotator.objects.get(external_id="w-cross")
    session = client.session
    session[f"annotations.annotator.{other.pk}"] = annotator.pk
    session.save()
    assert client.get("/s/other/")["Location"] == "/s/other/join"
    assert client.get("/s/match/")["Location"].startswith("/s/match/a/")


def test_it_forgets_an_erased_participant_and_hides_a_draft_study(study, crowd) -> None:
    client = crowd(study, "w-erased")
    Annotator.objects.filter(external_id="w-erased").update(identity_erased_at="2026-01-01T00:00:00Z")
    assert client.get("/s/match/")["Location"] == "/s/match/join"
    client2: Client = crowd(study, "w-draft")
    Study.objects.filter(pk=study.pk).update(status=Study.Status.DRAFT)
    assert client2.get("/s/match/").status_code == 404
