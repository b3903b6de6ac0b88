"""The report's headline answer, built from ratings given through the real annotator pages."""
from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import stats

from annotations.metaeval import _p
from annotations.models import Assignment, Rating
from annotations.reports import study_report_build
from annotations.services.studies import study_create
from inference.models import Similarity

from .conftest import SECRET_CONFIG, crowd_client

pytestmark = pytest.mark.django_db


def test_it_answers_the_question_in_a_headline_with_the_right_numbers(make_generations, researcher) -> None:
    rng = np.random.default_rng(11)
    generations = make_generations(14)
    quality = {g.pk: q for g, q in zip(generations, np.linspace(1.2, 4.8, 14), strict=True)}
    position = {g.pk: i for i, g in enumerate(generations)}
    for g in generations:  # sentence tracks the quality closely, word loosely
        for family, model, noise in (("sentence", "all-MiniLM-L6-v2", 0.05), ("word", "glove-6b-50d", 1.0)):
            Similarity.objects.create(generation=g, reference_index=0, embedder_family=family, embedder_model=model,
                                      cosine=float((quality[g.pk] - 1) / 4 + rng.normal(0, noise)))
    study = study_create(name="Headline", slug="headline", dataset="faces", config_names=[SECRET_CONFIG],
                         prompt_names=["describe"], k=3, open_now=True, completion_code="DONE-1")
    study.created_by = researcher
    study.save()
    for worker in range(3):
        client = crowd_client(study, f"worker{worker}")
        while "/a/" in (location := client.get(f"/s/{study.slug}/")["Location"]):
            token = re.search(r"/a/([0-9a-f-]+)/", location).group(1)
            item = Assignment.objects.get(token=token).item
            # each (rater, item) draws its own noise, so the ratings do not depend on the order the study
            # hands items out in (which is random) and every run sees the same data
            noise = np.random.default_rng([11, worker, position[item.generation_id]]).normal(0, 0.6)
            value = int(np.clip(np.rint(quality[item.generation_id] + noise), 1, 5))
            assert client.post(location, {"value": value, "comment": ""}).status_code == 302
    assert Rating.objects.filter(item__study=study).count() == 14 * 3

    report = study_report_build(study=study, user=researcher, resamples=300)

    ratings = Rating.objects.filter(item__study=study).values_list("item__generation_id", "value")
    means: dict[int, list[int]] = {}
    for gen_id, value in ratings:
        means.setdefault(gen_id, []).append(value)
    gens = sorted(means)
    human = [np.mean(means[g]) for g in gens]
    sentence = [Similarity.objects.get(generation_id=g, embedder_family="sentence").cosine for g in gens]
    rho = stats.spearmanr(sentence, human).statistic
    analysis = report.results["analyses"]["included"]
    ceiling = analysis["ceiling"]
    headline = report.results["headline"]
    assert headline.startswith(f"sentence (all-MiniLM-L6-v2): ρ = {rho:.2f} [")
    assert "with the mean human rating over 14 items" in headline
    assert f"the best any metric could reach is {ceiling['ceiling']:.2f} (reliability {ceiling['reliability']:.2f})" \
        in headline
    assert ceiling["ceiling"] == pytest.approx(analysis["reliability"]["split_half_sb"] ** 0.5)
    comparison = next(c for c in analysis["comparisons"] if c["method"] == "spearman")
    assert (comparison["a"], comparison["b"]) == ("sentence/all-MiniLM-L6-v2", "word/glove-6b-50d")
    assert "; sentence agrees with humans better than word (" in headline
    assert f"(Δρ = {comparison['delta']:.2f} [" in headline
    tests = len(analysis["comparisons"])
    assert f", p {_p(comparison['p'])}, Holm p {_p(comparison['p_holm'])} over {tests} tests)" in headline
    assert headline in report.html.replace("&#x27;", "'")
