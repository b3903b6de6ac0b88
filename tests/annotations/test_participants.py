"""Participants' personal data (security issue item 8) and exports that join back to the data.

Platform ids are pseudonymised (keyed hash, per-study salt) in every export, the API and the report; the
raw id only in the payment export; a data-subject export and erasure; `participants_purge`.
"""
from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from annotations.exports import RATING_COLUMNS
from annotations.models import Annotator, Rating, Study
from annotations.participants import annotator_pseudonym, participant_erase
from annotations.reports import study_report_build
from annotations.services.studies import DEFAULT_CONSENT, study_create
from annotations.services.tokens import api_token_create

from .conftest import SECRET_CONFIG
from .test_views import current_item_url, rate_through

pytestmark = pytest.mark.django_db
PID = "5f0c1a2b3c4d5e6f7a8b9c0d"  # a Prolific-shaped id


def _csv(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode())))


@pytest.fixture
def rated(study, crowd) -> Study:
    client = crowd(study, PID)
    client.post(current_item_url(client, study), {"value": "4", "comment": "my comment"})
    rate_through(client, study)
    rate_through(crowd(study, "other-worker"), study)
    return study


@pytest.fixture
def rita(researcher) -> Client:
    client = Client()
    client.force_login(researcher)
    return client


def test_it_pseudonymises_every_export_the_api_and_the_report(rated, rita, researcher) -> None:
    Annotator.objects.filter(external_id=PID).update(excluded=True, exclusion_reason="too fast")
    pseudonym = annotator_pseudonym(annotator=Annotator.objects.get(external_id=PID))
    assert pseudonym.startswith("p-") and PID not in pseudonym
    bodies = [rita.get(f"/research/studies/match/exports/{name}").content
              for name in ("ratings.csv", "ratings.json", "items.csv", "items.json")]
    key = api_token_create(user=researcher)[1]
    bodies += [Client().get(f"/research/api/studies/match/{name}", HTTP_AUTHORIZATION=f"Bearer {key}").content
               for name in ("ratings", "items")]
    report = study_report_build(study=rated, resamples=20)
    bodies += [report.html.encode(), json.dumps(report.results).encode(), rita.get("/studies/match/manage/").content]
    for body in bodies:
        assert PID.encode() not in body
    assert pseudonym in _csv(bodies[0])[0]["annotator"] or pseudonym in {r["annotator"] for r in _csv(bodies[0])}
    assert pseudonym in report.html  # the exclusion table names the pseudonym


def test_it_gives_one_worker_unrelated_pseudonyms_in_two_studies(study, make_generations, researcher) -> None:
    make_generations(2, dataset_name="second")
    other = study_create(name="Second", dataset="second", config_names=[SECRET_CONFIG], prompt_names=["describe"],
                         owner=researcher, open_now=True)
    a = Annotator.objects.create(study=study, platform="prolific", external_id=PID)
    b = Annotator.objects.create(study=other, platform="prolific", external_id=PID)
    assert annotator_pseudonym(annotator=a) != annotator_pseudonym(annotator=b)
    assert annotator_pseudonym(annotator=a) == annotator_pseudonym(annotator=Annotator.objects.get(pk=a.pk))


def test_it_puts_raw_ids_only_in_the_payment_export(rated, rita) -> None:
    rows = _csv(rita.get("/research/studies/match/exports/payment.csv").content)
    mine = next(r for r in rows if r["platform_id"] == PID)
    assert mine["code"] == "DONE-4242" and mine["outcome"] == "complete" and mine["n_ratings"] == "6"
    assert mine["annotator"] == annotator_pseudonym(annotator=Annotator.objects.get(external_id=PID))


def test_it_exports_and_erases_one_participant_keeping_their_ratings(rated, rita) -> None:
    annotator = Annotator.objects.get(external_id=PID)
    pseudonym = annotator_pseudonym(annotator=annotator)
    response = rita.post("/research/studies/match/participants/export", {"participant": PID})
    data = json.loads(response.content)
    assert data["platform_id"] == PID and len(data["ratings"]) == 6
    assert {"value": 4, "comment": "my comment"}.items() <= data["ratings"][0].items()
    before = sorted(Rating.objects.values_list("item_id", "value"))
    response = rita.post("/research/studies/match/participants/erase", {"participant": pseudonym}, follow=True)
    assert "Erased the identity" in response.content.decode()
    annotator.refresh_from_db()
    assert annotator.identity_erased_at is not None and PID not in annotator.external_id
    assert annotator.external_session == "" and annotator.external_study == ""
    assert sorted(Rating.objects.values_list("item_id", "value")) == before  # the statistics stay valid
    assert not Rating.objects.filter(annotator=annotator).exclude(comment="").exists()
    assert annotator_pseudonym(annotator=annotator) == pseudonym  # earlier exports still match
    assert all(PID not in r["platform_id"] for r in _csv(rita.get(
        "/research/studies/match/exports/payment.csv").content))
    missing = rita.post("/research/studies/match/participants/export", {"participant": "nobody"}, follow=True)
    assert "No participant of this study" in missing.content.decode()


def test_it_purges_identities_older_than_the_retention_period(rated, capsys) -> None:
    Annotator.objects.filter(external_id=PID).update(created_at=timezone.now() - timedelta(days=40))
    call_command("participants_purge", "match", "--older-than", "30")
    assert "erased the identity of 1 participant(s)" in capsys.readouterr().out
    assert list(Annotator.objects.filter(identity_erased_at__isnull=False).values_list("pseudonym", flat=True))
    assert Annotator.objects.filter(external_id="other-worker").exists()
    call_command("participants_purge", "match")
    assert not Annotator.objects.filter(identity_erased_at__isnull=True).exists()
    assert Rating.objects.count() == 12
    with pytest.raises(CommandError, match="no study 'nope'"):
        call_command("participants_purge", "nope")
    with pytest.raises(CommandError, match="0 or more days"):
        call_command("participants_purge", "match", "--older-than", "-1")
    with pytest.raises(CommandError, match="at most 36500"):  # was an OverflowError traceback
        call_command("participants_purge", "match", "--older-than", str(2**70))


def test_it_states_truthfully_what_is_stored_by_default(make_generations, researcher) -> None:
    make_generations(1)
    study = study_create(name="Default consent", dataset="faces", config_names=[], prompt_names=[],
                         owner=researcher, open_now=True)
    assert study.consent_text == DEFAULT_CONSENT
    for fact in ("ratings", "comments", "time you spend", "Prolific id", "pseudonym", "delete it", "Finish now"):
        assert fact in DEFAULT_CONSENT
    assert "anonymous" not in DEFAULT_CONSENT.lower()  # a platform id is not anonymous


def test_it_exports_ratings_that_join_back_to_samples(rated, rita) -> None:
    rows = _csv(rita.get("/research/studies/match/exports/ratings.csv").content)
    assert list(rows[0]) == RATING_COLUMNS
    row = rows[0]
    rating = Rating.objects.select_related("item__generation__va_estimate__sample__dataset").get(pk=row["rating_id"])
    sample = rating.item.generation.va_estimate.sample
    assert (row["sample_id"], row["sample_external_id"], row["image_name"], row["image_sha256"]) == (
        str(sample.pk), sample.external_id, sample.image.name, sample.image_sha256)
    assert (row["dataset"], row["va_source"], float(row["valence"]), float(row["arousal"])) == (
        "faces", "expression", 0.25, -0.5)
    assert (row["llm_config"], row["prompt_name"], row["prompt_version"], row["generation_id"]) == (
        SECRET_CONFIG, "describe", "1", str(rating.item.generation_id))
    assert row["study"] == "match" and float(row["seconds_on_item"]) >= 0
    assert all(r["shown_at"] for r in rows if r["annotator"] != rows[0]["annotator"])
    items = _csv(rita.get("/research/studies/match/exports/items.csv").content)
    assert {"sample_id", "image_sha256", "valence", "llm_config", "prompt_version", "n_included"} <= set(items[0])


def test_it_writes_a_header_row_even_when_nothing_is_rated(study, rita) -> None:
    for name in ("ratings.csv", "items.csv", "payment.csv"):
        body = rita.get(f"/research/studies/match/exports/{name}").content.decode()
        assert body.splitlines()[0].startswith('"')  # the header row is there
    assert rita.get("/research/studies/match/exports/ratings.csv").content.decode().count("\n") == 1


def test_it_erases_identity_while_a_participant_is_mid_session(study, crowd) -> None:
    client = crowd(study, PID)
    location = current_item_url(client, study)
    participant_erase(annotator=Annotator.objects.get(external_id=PID))
    # The old session is forgotten with the identity: it cannot add ratings to the erased row.
    assert client.post(location, {"value": "3"})["Location"] == "/s/match/join"
    assert client.get("/s/match/")["Location"] == "/s/match/join"
    assert not Rating.objects.exists() and not Annotator.objects.filter(external_id=PID).exists()


@pytest.mark.parametrize("participant", ["a\x00b", "\x00", "é漢字", "p-é" + "0" * 14])
def test_it_answers_a_request_naming_an_unusable_id_with_a_message(rated, rita, participant) -> None:
    erased_before = Annotator.objects.filter(identity_erased_at__isnull=False).count()
    for action in ("export", "erase"):
        response = rita.post(f"/research/studies/match/participants/{action}", {"participant": participant},
                             follow=True)
        if "\x00" in participant:  # refused before any view (evalplatform.middleware.NulByteRefusalMiddleware)
            assert response.status_code == 400 and b"NUL byte" in response.content
        else:
            assert response.status_code == 200
            assert "No participant of this study" in response.content.decode()
    assert Annotator.objects.filter(identity_erased_at__isnull=False).count() == erased_before
