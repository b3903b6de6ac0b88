"""The LLM service end to end over real loopback HTTP: the real `openai` / `ollama` clients talk to
scripted servers (tests/inference/llm_fakes.py), so retries, timeouts and parsing run unmodified."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from django.core.exceptions import ImproperlyConfigured

from inference.llm.ratelimit import RateLimiter, backoff_delay
from inference.models import (
    BASIC_LABELS,
    EMOTIC_LABELS,
    Dataset,
    Generation,
    LLMConfig,
    PromptTemplate,
    VAEstimate,
)
from inference.services.batches import batch_queue
from inference.services.llm import (
    GenerationInvalid,
    generation_run,
    generations_run_many,
    llm_config_defaults_ensure,
    prompt_defaults_ensure,
    prompt_revise,
)
from inference.tasks.batch import batch_chunk_run_task
from tests.factories import sample_make

from .llm_fakes import FakeOllamaServer, FakeOpenAIServer, Reply, ollama_chat, openai_completion

FAST_RETRY = {"retry_base_seconds": 0.01, "retry_max_seconds": 0.05}


def va_make(dataset: Dataset, n: int, *, valence: float = 0.7, arousal: float = 0.4,
            status: str = VAEstimate.Status.OK) -> list[VAEstimate]:
    start = dataset.samples.count()
    estimates = []
    for i in range(start, start + n):
        sample = sample_make(dataset, f"s{i}", image=f"samples/{i}.png", image_sha256=f"{i:064d}")
        ok = status == VAEstimate.Status.OK
        estimates.append(VAEstimate.objects.create(
            sample=sample, source="expression", model_sha256="m" * 64, status=status,
            valence=valence if ok else None, arousal=arousal if ok else None,
        ))
    return estimates


@pytest.fixture
def dataset(db) -> Dataset:
    return Dataset.objects.create(name="faces", format="folder", label_set=["anger"], multilabel=False)


@pytest.fixture
def prompts(db) -> dict[str, PromptTemplate]:
    return {prompt.name: prompt for prompt in prompt_defaults_ensure()}


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


def openai_config(server: FakeOpenAIServer, **fields) -> LLMConfig:
    values = {"name": "fake-openai", "backend": "openai", "model": "fake-model", "base_url": server.url + "/v1",
              "max_retries": 2, "timeout_seconds": 5, "extra": dict(FAST_RETRY)}
    values.update(fields)
    return LLMConfig.objects.create(**values)


def run(va: VAEstimate, config: LLMConfig, prompt: PromptTemplate) -> Generation:
    generation = generation_run(va_estimate_id=va.pk, config_id=config.pk, prompt_id=prompt.pk)
    generation.refresh_from_db()
    return generation


# --- openai backend: outcomes ---------------------------------------------------------------------


def test_it_stores_a_parsed_label_with_tokens_latency_and_the_prompt(dataset, prompts, openai_server):
    [va] = va_make(dataset, 1)
    generation = run(va, openai_config(openai_server), prompts["categorize-basic"])
    assert (generation.status, generation.labels, generation.attempts) == ("ok", ["happiness"], 1)
    assert (generation.prompt_tokens, generation.completion_tokens) == (42, 7)
    assert generation.latency_ms > 0 and "Valence: +0.70" in generation.prompt_text
    sent = openai_server.requests[0]
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"]["properties"]["label"]["enum"][0] == "anger"
    assert sent["messages"][0]["role"] == "system"


def test_it_retries_a_429_and_then_succeeds(dataset, prompts, openai_server):
    [va] = va_make(dataset, 1)
    openai_server.queue(Reply(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "0"}))
    generation = run(va, openai_config(openai_server), prompts["categorize-basic"])
    assert (generation.status, generation.attempts, generation.labels) == ("ok", 2, ["happiness"])
    assert "HTTP 429: slow down" in generation.error  # the retried failure stays on record


def test_it_gives_up_after_max_retries_on_500_and_retries_the_error_row_next_run(dataset, prompts, openai_server):
    [va] = va_make(dataset, 1)
    config = openai_config(openai_server)
    openai_server.queue(*[Reply(500, {"error": {"message": "boom"}})] * 3)
    generation = run(va, config, prompts["categorize-basic"])
    assert (generation.status, generation.attempts, generation.raw_text) == ("error", 3, "")
    assert "gave up after 3 attempt(s)" in generation.error and "HTTP 500: boom" in generation.error
    again = run(va, config, prompts["categorize-basic"])
    assert (again.pk, again.status, again.attempts) == (generation.pk, "ok", 1)
    assert len(openai_server.requests) == 4


def test_it_does_not_retry_a_4xx(dataset, prompts, openai_server):
    [va] = va_make(dataset, 1)
    openai_server.queue(Reply(404, {"error": {"message": "model 'fake-model' not found"}}))
    generation = run(va, openai_config(openai_server), prompts["categorize-basic"])
    assert (generation.status, generation.attempts) == ("error", 1)
    assert "HTTP 404" in generation.error and len(openai_server.requests) == 1


def test_it_retries_a_timeout(dataset, prompts, openai_server):
    [va] = va_make(dataset, 1)
    openai_server.queue(Reply(200, openai_completion('{"label": "fear"}'), delay_s=1.5))
    generation = run(va, openai_config(openai_server, timeout_seconds=0.3), prompts["categorize-basic"])
    assert (generation.status, generation.attempts, generation.labels) == ("ok", 2, ["happiness"])
    assert "Timeout" in generation.error


def test_it_records_a_malformed_response_body_as_an_error(dataset, prompts, openai_server):
    [va] = va_make(dataset, 1)
    openai_server.queue(Reply(200, "{this is not json"))
    generation = run(va, openai_config(openai_server), prompts["categorize-basic"])
    assert generation.status == "error" and "malformed" in generation.error


def test_it_keeps_the_raw_text_of_unparseable_answers(dataset, prompts, openai_server):
    va1, va2, va3 = va_make(dataset, 3)
    config = openai_config(openai_server)
    openai_server.queue(Reply(200, openai_completion('{"label": "happi')),
                        Reply(200, openai_completion('{"label": "contempt"}')),
                        Reply(200, openai_completion("")))
    malformed, outside, empty = (run(va, config, prompts["categorize-basic"]) for va in (va1, va2, va3))
    assert (malformed.status, malformed.raw_text, malformed.labels) == ("unparseable", '{"label": "happi', [])
    assert outside.status == "unparseable" and "contempt" in outside.flag_reason
    assert (empty.status, empty.flag_reason) == ("unparseable", "empty answer")


def test_it_keeps_hostile_answers_as_rows_instead_of_failing_the_item(dataset, prompts, openai_server):
    """Answers PostgreSQL cannot store (NUL, a lone surrogate) or json cannot parse (nesting past the
    recursion limit) were a failed item with the paid-for answer lost; now each is a row with its raw text."""
    va1, va2, va3 = va_make(dataset, 3)
    config = openai_config(openai_server)
    openai_server.queue(Reply(200, openai_completion("[" * 100_000)),
                        Reply(200, openai_completion('{"label": "happy\x00"}')),
                        Reply(200, openai_completion("A smile\x00 with \ud800 raised cheeks.")))
    nested, nul = (run(va, config, prompts["categorize-basic"]) for va in (va1, va2))
    described = run(va3, config, prompts["describe"])
    assert (nested.status, nested.raw_text) == ("unparseable", "[" * 100_000)
    assert "nested too deeply" in nested.flag_reason
    assert (nul.status, nul.raw_text) == ("unparseable", '{"label": "happy\ufffd"}')
    assert (described.status, described.text) == ("ok", "A smile\ufffd with \ufffd raised cheeks.")
    assert Generation.objects.filter(status="error").count() == 0


def test_it_records_a_reply_of_the_wrong_types_as_an_error_or_drops_the_bad_count(dataset, prompts, openai_server):
    # Content that is not text raised TypeError out of generation_run; a token count of "x" or 2**70
    # failed the insert (ValueError, DataError), losing the answer.
    va1, va2, va3 = va_make(dataset, 3)
    config = openai_config(openai_server)
    answer = {"index": 0, "message": {"role": "assistant", "content": "A calm face."}, "finish_reason": "stop"}
    openai_server.queue(Reply(200, openai_completion(["not", "text"])),
                        Reply(200, {"choices": [answer], "usage": {"prompt_tokens": "x", "completion_tokens": -5}}),
                        Reply(200, {"choices": [answer], "usage": {"prompt_tokens": 2**70, "completion_tokens": 7}}))
    listed, strange, huge = (run(va, config, prompts["describe"]) for va in (va1, va2, va3))
    assert listed.status == "error" and "the message content is list, not text" in listed.error
    assert (strange.status, strange.text, strange.prompt_tokens, strange.completion_tokens) == (
        "ok", "A calm face.", None, None)
    assert (huge.status, huge.prompt_tokens, huge.completion_tokens) == ("ok", None, 7)


def test_it_flags_empty_and_refusal_descriptions(dataset, prompts, openai_server):
    va1, va2, va3 = va_make(dataset, 3)
    config = openai_config(openai_server)
    openai_server.queue(Reply(200, openai_completion("   ")),
                        Reply(200, openai_completion("I'm sorry, but I can't help with that.")),
                        Reply(200, openai_completion("A broad smile with raised cheeks: joyful.")))
    empty, refusal, good = (run(va, config, prompts["describe"]) for va in (va1, va2, va3))
    assert (empty.status, empty.flag_reason) == ("flagged", "empty answer")
    assert (refusal.status, refusal.flag_reason) == ("flagged", "refusal-like answer")
    assert refusal.raw_text.startswith("I'm sorry")
    assert (good.status, good.text) == ("ok", "A broad smile with raised cheeks: joyful.")
    assert "response_format" not in openai_server.requests[-1]


def test_it_calls_no_model_twice_for_the_same_va_config_and_prompt_version(dataset, prompts, openai_server):
    [va] = va_make(dataset, 1)
    config = openai_config(openai_server)
    first = run(va, config, prompts["categorize-basic"])
    second = run(va, config, prompts["categorize-basic"])
    assert first.pk == second.pk and len(openai_server.requests) == 1
    revised = prompt_revise(prompt=prompts["categorize-basic"], text="V {valence} A {arousal}; pick one of {labels}")
    run(va, config, revised)
    assert len(openai_server.requests) == 2 and Generation.objects.count() == 2


def test_it_runs_a_chunk_concurrently(transactional_db, openai_server):
    dataset = Dataset.objects.create(name="conc", format="folder")
    prompt = next(p for p in prompt_defaults_ensure() if p.name == "categorize-basic")
    estimates = va_make(dataset, 8)
    openai_server.default = Reply(200, openai_completion('{"label": "neutral"}'), delay_s=0.4)
    config = openai_config(openai_server)
    started = time.perf_counter()
    report = generations_run_many(va_estimate_ids=[va.pk for va in estimates], config_id=config.pk,
                                  prompt_id=prompt.pk, concurrency=8)
    elapsed = time.perf_counter() - started
    assert report["done"] == 8 and report["failed"] == 0 and report["statuses"] == {"ok": 8}
    assert elapsed < 8 * 0.4 / 2, f"8 calls of 0.4 s took {elapsed:.2f} s: not concurrent"
    assert Generation.objects.filter(status="ok", labels=["neutral"]).count() == 8


def test_it_upserts_a_concurrent_chunk_in_groups_and_repairs_error_rows_in_place(transactional_db, openai_server):
    dataset = Dataset.objects.create(name="groups", format="folder")
    prompt = next(p for p in prompt_defaults_ensure() if p.name == "categorize-basic")
    estimates = va_make(dataset, 70)  # more than two store groups (STORE_BATCH = 32)
    config = openai_config(openai_server, max_retries=0)
    failing = {va.pk for va in estimates[::7]}
    VAEstimate.objects.filter(pk__in=failing).update(valence=-0.93)  # the server fails these by their VA

    def reply(payload: dict) -> Reply:
        if "-0.93" in json.dumps(payload["messages"]):
            return Reply(500, {"error": "boom"})
        return Reply(200, openai_completion('{"label": "happiness"}'))

    openai_server.default = reply
    ids = [va.pk for va in estimates]
    first = generations_run_many(va_estimate_ids=ids, config_id=config.pk, prompt_id=prompt.pk, concurrency=16)
    assert (first["done"], first["failed"]) == (70 - len(failing), len(failing))
    assert set(first["errors"]) == failing
    error_ids = set(Generation.objects.filter(status="error").values_list("id", flat=True))
    assert len(error_ids) == len(failing)

    openai_server.default = Reply(200, openai_completion('{"label": "happiness"}'))
    second = generations_run_many(va_estimate_ids=ids, config_id=config.pk, prompt_id=prompt.pk, concurrency=16)
    assert (second["done"], second["failed"]) == (70, 0)
    assert Generation.objects.count() == 70  # one row per (VA, config, prompt), never a duplicate
    repaired = Generation.objects.filter(id__in=error_ids)
    assert {g.status for g in repaired} == {"ok"} and all(g.labels == ["happiness"] for g in repaired)


def test_it_reports_bad_items_without_stopping_the_chunk(dataset, prompts, openai_server):
    [good] = va_make(dataset, 1)
    [no_face] = va_make(dataset, 1, status=VAEstimate.Status.NO_FACE)
    config = openai_config(openai_server)
    report = generations_run_many(va_estimate_ids=[good.pk, no_face.pk, 999999], config_id=config.pk,
                                  prompt_id=prompts["categorize-basic"].pk, concurrency=1)
    assert report["done"] == 1 and report["failed"] == 1
    assert "999999 does not exist" in report["errors"][999999]
    assert "no valence/arousal (status no_face)" in report["skipped"][no_face.pk]
    assert Generation.objects.filter(va_estimate=no_face).count() == 0


def test_it_rejects_bad_task_arguments(dataset, prompts, openai_server):
    config = openai_config(openai_server)
    with pytest.raises(GenerationInvalid, match="list of integers"):
        generations_run_many(va_estimate_ids="1,2", config_id=config.pk, prompt_id=prompts["describe"].pk)
    with pytest.raises(GenerationInvalid, match="LLM config 424242 does not exist"):
        generations_run_many(va_estimate_ids=[1], config_id=424242, prompt_id=prompts["describe"].pk)
    with pytest.raises(GenerationInvalid, match="concurrency"):
        generations_run_many(va_estimate_ids=[1], config_id=config.pk, prompt_id=prompts["describe"].pk,
                             concurrency=0)


def test_it_runs_a_generate_batch_chunk_on_ids(dataset, prompts, openai_server):
    [va] = va_make(dataset, 1)
    config = openai_config(openai_server)
    batch = batch_queue(dataset=dataset, stages=["generate"], va_source=va.source, configs=[config],
                        prompts=[prompts["describe"]], inline=True)
    assert batch_chunk_run_task.apply(args=[batch.chunks.get().pk]).get()["done"] == 1
    assert Generation.objects.get(va_estimate=va).text == '{"label": "happiness"}'
    batch.refresh_from_db()
    assert (batch.status, batch.done) == ("succeeded", 1)


def test_it_paces_calls_to_the_configured_rate_limit_across_threads(transactional_db, openai_server):
    # Committed rows (transactional_db): the pool threads have their own database connections.
    estimates = va_make(Dataset.objects.create(name="paced", format="folder"), 4)
    prompt = next(p for p in prompt_defaults_ensure() if p.name == "describe")
    config = openai_config(openai_server, rate_limit_per_minute=600)  # one call per 0.1 s
    started = time.perf_counter()
    report = generations_run_many(va_estimate_ids=[va.pk for va in estimates], config_id=config.pk,
                                  prompt_id=prompt.pk, concurrency=4)
    assert report["done"] == 4
    assert time.perf_counter() - started >= 0.3  # 4 starts, 0.1 s apart, although 4 threads were free


def test_it_spaces_rate_limited_slots_across_threads():
    now = [100.0]
    waits: list[float] = []
    limiter = RateLimiter(60, clock=lambda: now[0], sleep=waits.append)  # one per second
    for _ in range(4):
        limiter.acquire()
    assert waits == [1.0, 2.0, 3.0]
    assert 0 <= backoff_delay(attempt=3, base_s=1, cap_s=30) <= 4
    assert backoff_delay(attempt=1, base_s=1, cap_s=30, retry_after=7) == 7


def test_it_refuses_the_hosted_openai_api_without_a_key(dataset, prompts, monkeypatch, settings):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    settings.OPENAI_API_KEY = ""
    settings.OPENAI_BASE_URL = ""
    config = LLMConfig.objects.create(name="hosted", backend="openai", model="gpt-4o-mini")
    [va] = va_make(dataset, 1)
    with pytest.raises(ImproperlyConfigured, match="OPENAI_API_KEY is not set"):
        generations_run_many(va_estimate_ids=[va.pk], config_id=config.pk, prompt_id=prompts["describe"].pk)


# --- ollama backend -------------------------------------------------------------------------------


def test_it_speaks_ollama_chat_with_a_format_schema_and_retries_5xx(dataset, prompts):
    [va] = va_make(dataset, 1)
    with FakeOllamaServer(default=Reply(200, ollama_chat('{"labels": ["Peace", "Happy"]}'))) as server:
        server.queue(Reply(503, {"error": "loading model"}))
        config = LLMConfig.objects.create(name="fake-ollama", backend="ollama", model="llama3.2", base_url=server.url,
                                          max_retries=2, extra=dict(FAST_RETRY))
        generation = run(va, config, prompts["categorize-emotic"])
        sent = server.requests[-1]
    assert (generation.status, generation.labels, generation.attempts) == ("ok", ["Peace", "Happiness"], 2)
    assert (generation.prompt_tokens, generation.completion_tokens) == (31, 9)
    assert sent["format"]["properties"]["labels"]["items"]["enum"] == EMOTIC_LABELS
    assert sent["options"]["num_predict"] == config.max_tokens and sent["stream"] is False


def test_it_runs_basic_categorization_and_description_on_ollama(dataset, prompts):
    [va] = va_make(dataset, 1)
    replies = {"categorize": ollama_chat('{"label": "Happy"}'),
               "describe": ollama_chat("A relaxed, contented face with a slight smile.")}

    def reply(payload: dict) -> Reply:
        return Reply(200, replies["categorize" if "format" in payload else "describe"])

    with FakeOllamaServer(default=reply) as server:
        config = LLMConfig.objects.create(name="ollama-two", backend="ollama", model="llama3.2", base_url=server.url)
        basic = run(va, config, prompts["categorize-basic"])
        described = run(va, config, prompts["describe"])
        sent = server.requests
    assert (basic.status, basic.labels) == ("ok", ["happiness"])
    assert sent[0]["format"]["properties"]["label"]["enum"] == BASIC_LABELS
    assert (described.status, described.text) == ("ok", "A relaxed, contented face with a slight smile.")
    assert "format" not in sent[1] and described.task == "describe"


# --- lexicon baseline and defaults ---------------------------------------------------------------


def test_it_answers_from_the_word_norm_in_the_lexicon_baseline(dataset, prompts):
    lexicon = next(c for c in llm_config_defaults_ensure() if c.backend == "lexicon")
    [happy] = va_make(dataset, 1, valence=0.8, arousal=0.4)
    [sad] = va_make(dataset, 1, valence=-0.7, arousal=-0.5)
    assert run(happy, lexicon, prompts["categorize-basic"]).labels == ["happiness"]
    assert run(sad, lexicon, prompts["categorize-basic"]).labels == ["sadness"]
    emotic = run(happy, lexicon, prompts["categorize-emotic"])
    assert emotic.status == "ok" and 1 <= len(emotic.labels) <= 3 and set(emotic.labels) <= set(EMOTIC_LABELS)
    description = run(sad, lexicon, prompts["describe"])
    assert description.status == "ok" and description.text.startswith("The person looks ")


def test_it_creates_defaults_once_and_never_rewrites_a_prompt(db):
    first = prompt_defaults_ensure()
    assert {p.name for p in first} >= {"categorize-basic", "categorize-basic-words", "categorize-emotic",
                                       "describe", "describe-words"}
    revised = prompt_revise(prompt=first[0], text=first[0].text + "\nBe brief.")
    again = prompt_defaults_ensure()
    assert revised.version == 2 and again[0].pk == revised.pk
    assert PromptTemplate.objects.get(pk=first[0].pk).text == first[0].text
    assert PromptTemplate.objects.count() == len(first) + 1
    assert len(llm_config_defaults_ensure()) == 2 and LLMConfig.objects.count() == 2
    with pytest.raises(ValueError, match=r"\{labels\}"):
        prompt_revise(prompt=first[0], text="{valence} {arousal} no labels")
