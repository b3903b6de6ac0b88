"""Admin: every inference model is browsable; batches are queued through a form and acted on."""
from __future__ import annotations

import time

import pytest
from django.urls import reverse

from inference.models import (
    Batch,
    BatchChunk,
    Dataset,
    Embedding,
    Generation,
    LLMConfig,
    PromptTemplate,
    Similarity,
    VAEstimate,
)
from tests.factories import sample_make


@pytest.fixture
def rows(db) -> dict:
    dataset = Dataset.objects.create(name="faces", format="manifest", label_set=["happiness"])
    sample = sample_make(dataset, "joy-1", image="samples/ab/joy.png", image_sha256="a" * 64, gt=(0.6, 0.2),
                         references=["a smiling person"])
    va = VAEstimate.objects.create(sample=sample, source="dataset", model_sha256="dataset", valence=0.6, arousal=0.2)
    config = LLMConfig.objects.create(name="lex", backend="lexicon")
    prompt = PromptTemplate.objects.create(task="describe", name="plain", text="V={valence} A={arousal}")
    generation = Generation.objects.create(va_estimate=va, config=config, prompt=prompt, task="describe",
                                           text="<b>cheerful</b> and calm")
    Similarity.objects.create(generation=generation, reference_index=0, embedder_family="word",
                              embedder_model="glove-6b-50d", cosine=0.71)
    Embedding.objects.create(text_sha256="b" * 64, embedder_family="word", embedder_model="glove-6b-50d", dim=2,
                             vector=b"\x00" * 8)
    batch = Batch.objects.create(dataset=dataset, stages=["va"], va_source="dataset", status="failed",
                                 current_stage="va", total=4, done=3, failed=1, error="1 of 4 item(s) failed")
    BatchChunk.objects.create(batch=batch, stage="va", index=0, key="va:source=dataset:0", item_ids=[sample.pk],
                              status="failed", failed=1, errors={str(sample.pk): "no ground truth"})
    return {"dataset": dataset, "sample": sample, "config": config, "prompt": prompt, "batch": batch}


@pytest.mark.parametrize("model", ["dataset", "sample", "vaestimate", "prompttemplate", "llmconfig", "generation",
                                   "similarity", "embedding", "batch", "batchchunk"])
def test_it_lists_every_inference_model(admin_client, rows, model) -> None:
    from django.apps import apps

    response = admin_client.get(reverse(f"admin:inference_{model}_changelist"))
    assert response.status_code == 200
    assert f"1 {apps.get_model('inference', model)._meta.verbose_name}" in response.content.decode()


def test_it_shows_sample_thumbnails_and_searches_them(admin_client, rows) -> None:
    page = admin_client.get(reverse("admin:inference_sample_changelist"), {"q": "joy"}).content.decode()
    assert '<img src="/media/samples/ab/joy.png" alt="joy-1"' in page
    assert "0 samples" in admin_client.get(reverse("admin:inference_sample_changelist"), {"q": "grief"}).content.decode()


def test_it_keeps_pipeline_output_read_only(admin_client, rows) -> None:
    sample = rows["sample"]
    page = admin_client.get(reverse("admin:inference_sample_change", args=[sample.pk])).content.decode()
    assert 'name="gt_valence"' not in page and "<img" in page
    assert admin_client.get(reverse("admin:inference_generation_add")).status_code == 403


def test_it_escapes_model_output_in_lists(admin_client, rows) -> None:
    page = admin_client.get(reverse("admin:inference_generation_changelist")).content.decode()
    assert "&lt;b&gt;cheerful&lt;/b&gt;" in page and "<b>cheerful</b>" not in page


def test_it_filters_batches_and_shows_progress(admin_client, rows) -> None:
    page = admin_client.get(reverse("admin:inference_batch_changelist"), {"status__exact": "failed"}).content.decode()
    assert '<progress max="100" value="100"' in page and "4 / 4" in page and "(1 failed)" in page
    assert reverse("inference:batch_detail", args=[rows["batch"].pk]) in page
    other = admin_client.get(reverse("admin:inference_batch_changelist"), {"status__exact": "running"}).content.decode()
    assert "0 batches" in other


def test_it_shows_the_queue_form_for_add(admin_client, rows) -> None:
    page = admin_client.get(reverse("admin:inference_batch_add")).content.decode()
    assert "Queue a batch" in page
    for name in ["dataset", "stages", "va_source", "configs", "prompts", "embedders", "chunk_size"]:
        assert f'name="{name}"' in page


def test_it_queues_a_batch_from_the_form(admin_client, admin_user, rows, django_capture_on_commit_callbacks) -> None:
    # The sample's ground-truth VA is stored already (nothing to do for `dataset`): derive it instead.
    form = {"dataset": rows["dataset"].pk, "stages": ["va", "generate"], "va_source": "expression",
            "configs": [rows["config"].pk], "prompts": [rows["prompt"].pk], "chunk_size": 8}
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client.post(reverse("admin:inference_batch_add"), form)
    batch = Batch.objects.exclude(pk=rows["batch"].pk).get()
    assert response.status_code == 302 and response["Location"] == reverse("inference:batch_detail", args=[batch.pk])
    assert (batch.stages, batch.status, batch.total, batch.created_by) == (["va", "generate"], "queued", 1, admin_user)
    assert list(batch.configs.all()) == [rows["config"]] and list(batch.prompts.all()) == [rows["prompt"]]
    assert list(batch.chunks.values_list("stage", "item_ids")) == [("va", [rows["sample"].pk])]
    assert len(callbacks) == 1


@pytest.mark.parametrize(("change", "message"), [
    ({"stages": []}, "This field is required."),
    ({"stages": ["generate", "va"]}, "stages must run in the order"),
    ({"stages": ["va", "similarity"], "embedders": ["word"]}, "stages must be consecutive"),
    ({"stages": ["va", "generate"], "configs": []}, "The generate stage needs at least one LLM config."),
    ({"stages": ["va", "generate"], "prompts": []}, "The generate stage needs at least one prompt."),
    ({"stages": ["similarity"]}, "The similarity stage needs at least one embedder."),
    ({"embedders": ["elmo"]}, "Select a valid choice. elmo is not one of the available choices."),
    ({"dataset": 999999}, "Select a valid choice."),
    ({"configs": [999999]}, "Select a valid choice. 999999 is not one of the available choices."),
    ({"prompts": [999999]}, "Select a valid choice. 999999 is not one of the available choices."),
    ({"chunk_size": 0}, "Ensure this value is greater than or equal to 1."),
    ({"stages": ["generate"], "va_source": "expression"}, "has no usable &#x27;expression&#x27; VA estimates"),
])
def test_it_rejects_an_invalid_queue_form(admin_client, rows, change, message) -> None:
    form = {"dataset": rows["dataset"].pk, "stages": ["va"], "va_source": "dataset", "configs": [rows["config"].pk],
            "prompts": [rows["prompt"].pk], "chunk_size": 8, **change}
    response = admin_client.post(reverse("admin:inference_batch_add"), form)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert Batch.objects.count() == 1  # only the fixture's


def test_it_refuses_the_queue_form_to_non_staff(client, outsider, rows) -> None:
    client.force_login(outsider)
    response = client.post(reverse("admin:inference_batch_add"), {"dataset": rows["dataset"].pk, "stages": ["va"]})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert Batch.objects.count() == 1


def test_it_retries_and_cancels_with_admin_actions(admin_client, rows, django_capture_on_commit_callbacks) -> None:
    batch = rows["batch"]
    changelist = reverse("admin:inference_batch_changelist")
    with django_capture_on_commit_callbacks(execute=False):
        page = admin_client.post(changelist, {"action": "retry_failed_items", "_selected_action": [batch.pk]},
                                 follow=True).content.decode()
    batch.refresh_from_db()
    assert f"Retried: batch {batch.pk}." in page
    assert (batch.status, batch.failed, batch.chunks.get().status) == ("running", 0, "queued")
    page = admin_client.post(changelist, {"action": "cancel_batches", "_selected_action": [batch.pk]},
                             follow=True).content.decode()
    batch.refresh_from_db()
    assert f"Cancelled: batch {batch.pk}." in page
    assert (batch.status, batch.chunks.get().status) == ("cancelled", "cancelled")
    page = admin_client.post(changelist, {"action": "cancel_batches", "_selected_action": [batch.pk]},
                             follow=True).content.decode()
    assert f"Not cancelled: {batch.pk} (only a queued or running batch can be cancelled)." in page


def test_it_queues_the_batch_in_the_request_and_leaves_the_work_to_the_worker(admin_client, rows, embedded_broker,
                                                                              django_capture_on_commit_callbacks) -> None:
    form = {"dataset": rows["dataset"].pk, "stages": ["va", "generate"], "va_source": "expression",
            "configs": [rows["config"].pk], "prompts": [rows["prompt"].pk], "chunk_size": 8}
    started = time.perf_counter()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:inference_batch_add"), form, follow=True)
    elapsed = time.perf_counter() - started
    batch = Batch.objects.exclude(pk=rows["batch"].pk).get()
    batch.refresh_from_db()
    # Queued, not run: the message waits in the embedded broker's folder for the worker.
    assert (batch.status, batch.done, batch.total) == ("queued", 0, 1)
    assert not VAEstimate.objects.filter(source="expression").exists()
    assert len(list((embedded_broker / "queue").iterdir())) == 1
    assert elapsed < 1.0, f"the form took {elapsed:.2f} s"
    page = response.content.decode()
    assert f"Batch {batch.pk} queued: 1 item(s) to do in VA extraction" in page
    assert "later stages are planned when the one before finishes" in page


def test_it_refuses_facechannel_without_weights_naming_the_setting(admin_client, rows, settings) -> None:
    settings.FACECHANNEL_WEIGHTS = ""
    form = {"dataset": rows["dataset"].pk, "stages": ["va"], "va_source": "facechannel", "chunk_size": 8}
    response = admin_client.post(reverse("admin:inference_batch_add"), form)
    assert response.status_code == 200
    assert "va stage: FACECHANNEL_WEIGHTS is not set" in response.content.decode()
    assert Batch.objects.count() == 1  # only the fixture's


def test_it_previews_what_each_stage_will_plan(admin_client, rows) -> None:
    form = {"dataset": rows["dataset"].pk, "stages": ["va", "generate", "similarity"], "va_source": "dataset",
            "configs": [rows["config"].pk], "prompts": [rows["prompt"].pk], "embedders": ["word"], "chunk_size": 8,
            "preview": "1"}
    page = admin_client.post(reverse("admin:inference_batch_add"), form).content.decode()
    assert Batch.objects.count() == 1  # a preview queues nothing
    assert 'data-stage="va"><td>VA extraction</td><td>0</td><td>1</td>' in page
    assert "all 1 samples of &#x27;faces&#x27; already have &#x27;dataset&#x27; VA from this model version" in page
    assert 'data-stage="generate"><td>LLM generation</td><td>0</td><td>1</td>' in page


def test_it_explains_a_first_stage_with_nothing_to_do(admin_client, rows) -> None:
    form = {"dataset": rows["dataset"].pk, "stages": ["va"], "va_source": "dataset", "chunk_size": 8}
    page = admin_client.post(reverse("admin:inference_batch_add"), form).content.decode()
    assert "already have &#x27;dataset&#x27; VA from this model version" in page
    assert Batch.objects.count() == 1
