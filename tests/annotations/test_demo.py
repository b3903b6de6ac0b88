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
    assert VAEstimate.objects.filter(source="expression", status="ok").count() == 10
    assert Generation.objects.filter(config__name="lexicon-warriner", task="describe", status="ok").count() == 10
    assert set(Similarity.objects.values_list("embedder_family", flat=True)) == {"word", "bert", "sentence"}
    assert Batch.objects.get().status == Batch.Status.SUCCEEDED
    study = Study.objects.get(slug="demo-study")
    assert study.status == Study.Status.OPEN
    assert Item.objects.filter(study=study, kind="normal").count() == 10
    assert User.objects.get(username="demo-researcher").check_password("affect-eval-demo")
    assert "PROLIFIC_PID=demo-worker-1" in out

    # Re-running reuses everything: no new rows, the same study.
    counts = (VAEstimate.objects.count(), Generation.objects.count(), Similarity.objects.count())
    call_command("demo", "--skip-llm")
    assert (VAEstimate.objects.count(), Generation.objects.count(), Similarity.objects.count()) == counts
    assert Study.objects.count() == 1


def test_it_names_the_missing_manifest(tmp_path) -> None:
    with pytest.raises(CommandError, match="demo manifest not found"):
        call_command("demo", "--manifest", str(tmp_path / "none.csv"))
