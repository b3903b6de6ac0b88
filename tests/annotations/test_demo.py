"""The README's demo command, on the real sample faces and real offline models (the GGUF model is
left out here to keep the suite fast; the lexicon baseline generates instead)."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from annotations.models import Item, Study
from inference.models import Batch, Generation, Similarity, VAEstimate

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_it_runs_every_stage_and_opens_a_study(capsys, settings) -> None:
    settings.FACECHANNEL_WEIGHTS = ""
    call_command("demo", "--skip-llm")
    out = capsys.readouterr().out
    assert "VA is DERIVED" in out and "not FaceChannel" in out
    # The four public-domain portraits shipped in assets/faces.
    assert VAEstimate.objects.filter(source="expression", status="ok").count() == 4
    assert Generation.objects.filter(config__name="lexicon-warriner", task="describe", status="ok").count() == 4
    assert set(Similarity.objects.values_list("embedder_family", flat=True)) == {"word", "bert", "sentence"}
    assert Batch.objects.get().status == Batch.Status.SUCCEEDED
    study = Study.objects.get(slug="demo-study")
    assert study.status == Study.Status.OPEN
    assert Item.objects.filter(study=study, kind="normal").count() == 4
    assert User.objects.get(username="demo-researcher").check_password("affect-eval-demo")
    assert "PROLIFIC_PID=demo-worker-1" in out
    assert study.owner == User.objects.get(username="demo-researcher")  # made by the same service as the web form
    assert f"/studies/{study.slug}/manage/" in out and f"/studies/{study.slug}/preview/" in out
    assert "no pairwise study: only one system describes each face" in out  # --skip-llm: the lexicon alone

    # Re-running reuses everything: no new rows, the same study.
    counts = (VAEstimate.objects.count(), Generation.objects.count(), Similarity.objects.count())
    call_command("demo", "--skip-llm")
    assert (VAEstimate.objects.count(), Generation.objects.count(), Similarity.objects.count()) == counts
    assert Study.objects.count() == 1


def test_a_demo_study_rated_by_three_workers_gives_a_report_with_plots(settings) -> None:
    from annotations.assignment import assignment_next
    from annotations.reports import study_report_build
    from annotations.services.annotators import annotator_consent, annotator_join
    from annotations.services.ratings import rating_submit

    settings.FACECHANNEL_WEIGHTS = ""
    call_command("demo", "--skip-llm", "--raters", "3")
    study = Study.objects.get(slug="demo-study")
    for worker in range(3):
        annotator = annotator_consent(annotator=annotator_join(study=study, platform="prolific",
                                                               external_id=f"worker-{worker}"))
        while (assignment := assignment_next(annotator=annotator)) is not None:
            # Raters agree on the ordering of items (plus a little noise): alpha must come out defined.
            value = 1 + (assignment.item_id + worker % 2) % 5
            rating_submit(annotator=annotator, assignment_token=assignment.token, value=value)
    assert Item.objects.filter(study=study, kind="normal", ratings__isnull=True).count() == 0
    report = study_report_build(study=study, resamples=200)
    assert report.version == 1
    assert report.html.count("<svg") >= 2
    everyone = report.results["analyses"]["all"]
    assert (everyone["ratings"], everyone["items"], everyone["annotators"]) == (12, 4, 3)
    assert everyone["alpha"]["ordinal"]["alpha"] is not None and everyone["alpha"]["ordinal"]["reason"] == ""
    families = {e["family"] for e in everyone["embedders"]}
    assert families == {"word", "bert", "sentence"}
    assert all(e["items"] == 4 and e["correlations"]["spearman"]["r"] is not None for e in everyone["embedders"])
    assert "stand-in for BERT" in report.html  # the report says which checkpoint produced the bert scores


def test_it_names_the_missing_manifest(tmp_path) -> None:
    with pytest.raises(CommandError, match="demo manifest not found"):
        call_command("demo", "--manifest", str(tmp_path / "none.csv"))


def test_it_refuses_fewer_than_one_rater_before_doing_any_work() -> None:
    # It ran every stage, then the study refused k=0 with a StudyInvalid traceback.
    with pytest.raises(CommandError, match="--raters must be at least 1, not 0"):
        call_command("demo", "--skip-llm", "--raters", "0")
    assert not VAEstimate.objects.exists() and not Study.objects.exists()


def test_it_adds_a_pairwise_study_when_two_systems_describe_the_faces() -> None:
    from annotations.management.commands.demo import DEMO_PAIRWISE, Command
    from inference.models import Dataset
    from tests.annotations.comparative_data import SYSTEM_PREFIX, make_systems_on_faces

    make_systems_on_faces(samples=3, systems=2)
    command = Command()
    command._accounts()
    dataset = Dataset.objects.get(name="faces")
    configs = [f"{SYSTEM_PREFIX}0", f"{SYSTEM_PREFIX}1"]
    study, why = command._pairwise_study(dataset=dataset, configs=configs, raters=2)
    assert why == "" and study.slug == DEMO_PAIRWISE and study.kind == Study.Kind.PAIRWISE
    assert study.status == Study.Status.OPEN and study.owner.username == "demo-researcher"
    units = Item.objects.filter(study=study, kind="normal")
    assert units.count() > 0 and all(unit.options.count() == 2 for unit in units)
    assert command._pairwise_study(dataset=dataset, configs=configs, raters=2)[0].pk == study.pk  # re-run
    Study.objects.filter(pk=study.pk).delete()
    assert command._pairwise_study(dataset=dataset, configs=configs[:1], raters=2) == (
        None, "only one system describes each face (run without --skip-llm for two)")
