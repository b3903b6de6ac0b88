"""Researcher routes and the Bearer-token JSON API: who may see which study, and what they get."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.test import Client

from annotations.models import RESEARCHER_GROUP, ApiToken, Report, Study
from annotations.reports import study_report_build
from annotations.services.tokens import api_token_create, api_token_hash
from tests.annotations.test_reports import study_make


@pytest.fixture
def study(researcher: User) -> Study:
    return study_make(owner=researcher, items=8)


@pytest.fixture
def other_researcher(db) -> User:
    user = User.objects.create_user("rob-researcher", "rob@example.org", "password-rob")
    user.groups.add(Group.objects.get_or_create(name=RESEARCHER_GROUP)[0])
    return user


def _api(client: Client, path: str, key: str | None = None, scheme: str = "Bearer") -> object:
    headers = {"HTTP_AUTHORIZATION": f"{scheme} {key}"} if key is not None else {}
    return client.get(path, **headers)


def test_it_refuses_the_api_without_a_token(client: Client, study: Study) -> None:
    response = _api(client, f"/research/api/studies/{study.slug}/ratings")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "Bearer" in response.json()["error"]


def test_it_refuses_a_wrong_token_and_a_wrong_scheme(client: Client, study: Study, researcher: User) -> None:
    _, key = api_token_create(user=researcher)
    assert _api(client, f"/research/api/studies/{study.slug}/ratings", "not-a-key").status_code == 401
    assert _api(client, f"/research/api/studies/{study.slug}/ratings", key, scheme="Token").status_code == 401
    researcher.is_active = False
    researcher.save()
    assert _api(client, f"/research/api/studies/{study.slug}/ratings", key).status_code == 401


def test_it_answers_annotators_and_other_researchers_as_if_the_study_did_not_exist(
    client: Client, study: Study, annotator_user: User, other_researcher: User
) -> None:
    annotator_key = api_token_create(user=annotator_user)[1]
    other_key = api_token_create(user=other_researcher)[1]
    assert _api(client, f"/research/api/studies/{study.slug}/ratings", annotator_key).status_code == 404
    response = _api(client, f"/research/api/studies/{study.slug}/items", other_key)
    missing = _api(client, "/research/api/studies/no-such-study/items", other_key)
    assert response.status_code == missing.status_code == 404
    assert response.json()["error"].replace(study.slug, "X") == missing.json()["error"].replace("no-such-study", "X")


def test_it_serves_ratings_items_and_reports_to_the_owner(client: Client, study: Study, researcher: User) -> None:
    token, key = api_token_create(user=researcher)
    ratings = _api(client, f"/research/api/studies/{study.slug}/ratings", key).json()
    assert len(ratings["ratings"]) == 5 * 9
    assert {"annotator_id", "value", "annotator_excluded"} <= set(ratings["columns"])
    items = _api(client, f"/research/api/studies/{study.slug}/items", key).json()["items"]
    assert sum(1 for i in items if i["kind"] == "normal") == 8
    assert _api(client, f"/research/api/studies/{study.slug}/reports/latest", key).status_code == 404
    study_report_build(study=study, resamples=50)
    study_report_build(study=study, resamples=50)
    latest = _api(client, f"/research/api/studies/{study.slug}/reports/latest", key).json()
    assert latest["version"] == 2
    assert "ordinal" in latest["results"]["analyses"]["included"]["alpha"]
    assert _api(client, f"/research/api/studies/{study.slug}/reports/1", key).json()["version"] == 1
    assert _api(client, f"/research/api/studies/{study.slug}/reports/7", key).status_code == 404
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_it_lets_a_superuser_read_every_study(client: Client, study: Study, admin_user: User) -> None:
    key = api_token_create(user=admin_user)[1]
    assert _api(client, f"/research/api/studies/{study.slug}/ratings", key).status_code == 200


def test_it_creates_tokens_from_the_command(researcher: User, capsys) -> None:
    call_command("create_api_token", researcher.username, "--name", "notebook")
    key = capsys.readouterr().out.strip()
    assert ApiToken.objects.get(key_hash=api_token_hash(key)).user == researcher
    with pytest.raises(CommandError, match="no user 'ghost'"):
        call_command("create_api_token", "ghost")


def test_it_sends_anonymous_visitors_to_login_and_hides_the_study_from_annotators(
    client: Client, study: Study, annotator_user: User
) -> None:
    response = client.get(f"/research/studies/{study.slug}/reports/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    client.force_login(annotator_user)
    assert client.get(f"/research/studies/{study.slug}/reports/").status_code == 404
    assert client.post(f"/research/studies/{study.slug}/reports/build").status_code == 404
    assert client.get(f"/research/studies/{study.slug}/exports/ratings.csv").status_code == 404
    assert not Report.objects.exists()


def test_it_hides_another_researchers_report_pages(client: Client, study: Study, other_researcher: User) -> None:
    study_report_build(study=study, resamples=50)
    client.force_login(other_researcher)
    assert client.get(f"/research/studies/{study.slug}/reports/1/").status_code == 404
    assert client.get(f"/research/studies/{study.slug}/reports/1/report.json").status_code == 404


def test_it_builds_a_report_from_the_post_route(
    client: Client, study: Study, researcher: User, django_capture_on_commit_callbacks
) -> None:
    client.force_login(researcher)
    assert client.get(f"/research/studies/{study.slug}/reports/build").status_code == 405
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/research/studies/{study.slug}/reports/build")
    assert response.status_code == 302 and response["Location"] == f"/research/studies/{study.slug}/reports/"
    report = Report.objects.get(study=study)
    assert report.version == 1 and report.created_by == researcher
    page = client.get(response["Location"])
    assert "Report build queued" in page.content.decode()
    assert f"/research/studies/{study.slug}/reports/1/" in page.content.decode()


def test_it_serves_the_report_page_with_plots_and_no_scripts(client: Client, study: Study, researcher: User) -> None:
    study_report_build(study=study, resamples=50)
    client.force_login(researcher)
    response = client.get(f"/research/studies/{study.slug}/reports/1/")
    assert response.status_code == 200
    assert "script-src" not in response["Content-Security-Policy"]
    assert response["Content-Security-Policy"].startswith("default-src 'none'")
    body = response.content.decode()
    assert body.count("<svg") >= 3 and "Krippendorff" in body
    assert client.get(f"/research/studies/{study.slug}/reports/2/").status_code == 404
