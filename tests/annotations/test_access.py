"""Who may see and act on a study (annotations/access.py), route by route: owner and collaborator get the
page, another researcher and an annotator get 404 (as for a study that does not exist), anonymous visitors
the login page (HTML) or 401 (API). Batches: only who queued one (or a superuser) may cancel or retry it."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client

from annotations.access import studies_visible, study_visible
from annotations.models import RESEARCHER_GROUP, Report, Study
from annotations.participants import annotator_pseudonym
from annotations.services.tokens import api_token_create
from inference.models import Batch, Dataset
from tests.annotations.test_reports import study_make

pytestmark = pytest.mark.django_db

# (method, path template, status for owner/collaborator). {slug} is the study's slug.
HTML_ROUTES = [
    ("get", "/studies/{slug}/manage/", 200),
    ("get", "/studies/{slug}/manage/?items=lacking", 200),
    ("get", "/studies/{slug}/edit/", 302),  # an open study is not editable: back to its manage page
    ("get", "/studies/{slug}/preview/", 200),
    ("get", "/studies/{slug}/preview/item/1/", 200),
    ("get", "/studies/{slug}/preview/item/1/image", 200),
    ("get", "/studies/{slug}/preview/done", 200),
    ("post", "/studies/{slug}/duplicate", 302),
    ("post", "/studies/{slug}/manage/status", 302),
    ("get", "/research/studies/{slug}/reports/", 200),
    ("post", "/research/studies/{slug}/reports/build", 302),
    ("get", "/research/studies/{slug}/reports/1/", 200),
    ("get", "/research/studies/{slug}/reports/1/report.json", 200),
    ("get", "/research/studies/{slug}/reports/1/report.csv", 200),
    ("get", "/research/studies/{slug}/exports/ratings.csv", 200),
    ("get", "/research/studies/{slug}/exports/items.csv", 200),
    ("get", "/research/studies/{slug}/exports/ratings.json", 200),
    ("get", "/research/studies/{slug}/exports/items.json", 200),
    ("get", "/research/studies/{slug}/exports/payment.csv", 200),
    ("post", "/research/studies/{slug}/participants/export", 200),
    ("post", "/research/studies/{slug}/participants/erase", 302),
]
API_ROUTES = [
    "/research/api/studies/{slug}/ratings",
    "/research/api/studies/{slug}/items",
    "/research/api/studies/{slug}/reports/latest",
    "/research/api/studies/{slug}/reports/1",
]


def _researcher(username: str) -> User:
    user = User.objects.create_user(username, f"{username}@example.org", f"password-{username}")
    user.groups.add(Group.objects.get_or_create(name=RESEARCHER_GROUP)[0])
    return user


@pytest.fixture
def setup(researcher: User, annotator_user: User) -> dict:
    study = study_make(owner=researcher, items=6, raters=2)
    first = study.items.filter(kind="normal").order_by("id").first().generation.va_estimate.sample
    default_storage.save(first.image.name, ContentFile(b"\x89PNG fake image bytes"))
    collaborator = _researcher("carl-collaborator")
    study.collaborators.add(collaborator)
    # A stored report row is enough to test who may read it (building one per case would be slow).
    Report.objects.create(study=study, version=1, results={"analyses": {}}, html="<p>report v1</p>")
    pseudonym = annotator_pseudonym(annotator=study.annotators.order_by("id").first())
    return {"study": study, "owner": researcher, "collaborator": collaborator, "other": _researcher("rob-other"),
            "annotator": annotator_user, "pseudonym": pseudonym}


def _call(client: Client, method: str, path: str, setup: dict | None = None) -> int:
    data = {"participant": setup["pseudonym"]} if setup and "/participants/" in path else {}
    return (client.post(path, data) if method == "post" else client.get(path)).status_code


def _path(template: str, setup: dict) -> str:
    return template.format(slug=setup["study"].slug, pseudonym=setup["pseudonym"])


@pytest.mark.parametrize(("method", "template", "ok"), HTML_ROUTES)
@pytest.mark.parametrize("who", ["owner", "collaborator"])
def test_it_serves_every_study_route_to_owner_and_collaborator(setup, who, method, template, ok) -> None:
    # A fresh study per case: erase/duplicate/status change state, and a closed study changes nothing here.
    client = Client()
    client.force_login(setup[who])
    assert _call(client, method, _path(template, setup), setup) == ok


@pytest.mark.parametrize(("method", "template", "ok"), HTML_ROUTES)
@pytest.mark.parametrize("who", ["other", "annotator"])
def test_it_answers_404_on_every_study_route_to_other_researchers_and_annotators(
    setup, who, method, template, ok
) -> None:
    client = Client()
    client.force_login(setup[who])
    before = (Study.objects.count(), Report.objects.count(), setup["study"].status)
    assert _call(client, method, _path(template, setup), setup) == 404
    setup["study"].refresh_from_db()
    assert (Study.objects.count(), Report.objects.count(), setup["study"].status) == before
    assert setup["study"].annotators.filter(identity_erased_at__isnull=False).count() == 0
    assert setup["study"].annotators.count() == 3


@pytest.mark.parametrize(("method", "template", "ok"), HTML_ROUTES)
def test_it_sends_anonymous_visitors_of_every_study_route_to_login(setup, method, template, ok) -> None:
    response = getattr(Client(), method)(_path(template, setup))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("template", API_ROUTES)
def test_it_applies_the_same_rule_to_every_api_endpoint(setup, template) -> None:
    path = _path(template, setup)
    client = Client()
    assert client.get(path).status_code == 401
    for who, status in (("owner", 200), ("collaborator", 200), ("other", 404), ("annotator", 404)):
        key = api_token_create(user=setup[who])[1]
        assert client.get(path, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == status, who


def test_it_lists_only_owned_and_shared_studies(setup, admin_user) -> None:
    ownerless = study_make(slug="no-owner", items=2, raters=1, excluded_raters=0)
    study = setup["study"]
    assert list(studies_visible(user=setup["owner"])) == [study]
    assert list(studies_visible(user=setup["collaborator"])) == [study]
    assert list(studies_visible(user=setup["other"])) == []
    assert not study_visible(user=setup["other"], study=ownerless)  # no owner is not "everyone's"
    assert set(studies_visible(user=admin_user)) == {study, ownerless}
    client = Client()
    client.force_login(setup["other"])
    page = client.get("/studies/").content.decode()
    assert study.name not in page and "No studies yet" in page
    client.force_login(setup["collaborator"])
    assert study.name in client.get("/studies/").content.decode()


def test_it_drops_access_when_a_collaborator_stops_being_a_researcher(setup) -> None:
    setup["collaborator"].groups.clear()
    client = Client()
    client.force_login(setup["collaborator"])
    assert client.get(f"/studies/{setup['study'].slug}/manage/").status_code == 404


@pytest.fixture
def batch(researcher: User) -> Batch:
    dataset = Dataset.objects.create(name="batch-data", format=Dataset.Format.MANIFEST)
    return Batch.objects.create(dataset=dataset, stages=["va"], status=Batch.Status.RUNNING, created_by=researcher)


def test_it_lets_only_the_batch_owner_or_a_superuser_cancel_it(batch, researcher, admin_user) -> None:
    other_staff = User.objects.create_user("sam-staff", "s@example.org", "password-sam", is_staff=True)
    client = Client()
    client.force_login(other_staff)
    assert client.post(f"/pipeline/batches/{batch.pk}/cancel").status_code == 404
    assert client.post(f"/pipeline/batches/{batch.pk}/retry").status_code == 404
    batch.refresh_from_db()
    assert batch.status == Batch.Status.RUNNING
    client.force_login(researcher)
    assert client.post(f"/pipeline/batches/{batch.pk}/cancel").status_code == 302
    batch.refresh_from_db()
    assert batch.status == Batch.Status.CANCELLED


def test_it_lets_a_superuser_cancel_anyones_batch(batch, admin_user) -> None:
    client = Client()
    client.force_login(admin_user)
    assert client.post(f"/pipeline/batches/{batch.pk}/cancel").status_code == 302
    batch.refresh_from_db()
    assert batch.status == Batch.Status.CANCELLED
