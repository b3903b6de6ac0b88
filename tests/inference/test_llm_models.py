"""Real models: the gguf backend on the SmolLM2-135M file (in-process), and the openai backend against a
real `python -m llama_cpp.server` on loopback. Assertions are structural (a label from the set or an
`unparseable` row with its raw text; a non-empty description), never the wording of this small model."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from django.core.exceptions import ImproperlyConfigured

from inference.llm.gguf_backend import gguf_model_path
from inference.models import BASIC_LABELS, EMOTIC_LABELS, Dataset, Generation, LLMConfig, VAEstimate
from inference.services.llm import generation_run, generations_run_many, prompt_defaults_ensure
from tests.factories import sample_make

pytestmark = pytest.mark.slow


def _va(valence: float, arousal: float) -> VAEstimate:
    dataset, _ = Dataset.objects.get_or_create(name="real", defaults={"format": "folder"})
    index = dataset.samples.count()
    sample = sample_make(dataset, f"r{index}", image_sha256=f"{index:064d}")
    return VAEstimate.objects.create(sample=sample, source="expression", model_sha256="e" * 64,
                                     valence=valence, arousal=arousal)


def _assert_structural(generation: Generation, labels: list[str]) -> None:
    assert generation.raw_text.strip(), "the model answered nothing at all"
    assert generation.attempts == 1 and generation.completion_tokens and generation.latency_ms > 0
    if generation.task == "describe":
        assert generation.status in ("ok", "flagged")
        if generation.status == "ok":
            assert generation.text.strip()
    elif generation.status == "ok":
        assert generation.labels and set(generation.labels) <= set(labels)
    else:
        assert generation.status == "unparseable" and generation.labels == [] and generation.flag_reason


def _all_tasks(config: LLMConfig) -> list[Generation]:
    prompts = {prompt.name: prompt for prompt in prompt_defaults_ensure()}
    va = _va(0.75, 0.45)
    generations = []
    for name, labels in (("categorize-basic", BASIC_LABELS), ("categorize-emotic", EMOTIC_LABELS),
                         ("describe", [])):
        generation = generation_run(va_estimate_id=va.pk, config_id=config.pk, prompt_id=prompts[name].pk)
        _assert_structural(generation, labels)
        generations.append(generation)
    return generations


def test_it_runs_all_three_tasks_on_the_real_smollm2_gguf(db):
    config = LLMConfig.objects.create(name="smollm2", backend="gguf", max_tokens=64, seed=0, extra={"n_ctx": 1024})
    basic, emotic, describe = _all_tasks(config)
    assert {basic.task, emotic.task, describe.task} == {"categorize", "describe"}


def test_it_names_gguf_model_when_the_file_is_missing(db, settings):
    settings.GGUF_MODEL = "/nonexistent/model.gguf"
    with pytest.raises(ImproperlyConfigured, match="GGUF_MODEL points at /nonexistent/model.gguf"):
        gguf_model_path()
    config = LLMConfig.objects.create(name="missing", backend="gguf")
    prompt = prompt_defaults_ensure()[0]
    with pytest.raises(ImproperlyConfigured, match="GGUF_MODEL"):
        generations_run_many(va_estimate_ids=[_va(0.1, 0.1).pk], config_id=config.pk, prompt_id=prompt.pk)
    assert not Generation.objects.exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory) -> Iterator[str]:
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", gguf_model_path(), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "1024", "--n_threads", "2"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server not ready in 90 s: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_it_runs_the_openai_backend_against_a_real_llama_cpp_server(db, llama_server):
    # llama-cpp-python's server takes {"type": "json_object", "schema": ...}, not OpenAI's json_schema.
    config = LLMConfig.objects.create(name="llama-server", backend="openai", model="smollm2", base_url=llama_server,
                                      max_tokens=64, seed=0, timeout_seconds=120,
                                      extra={"response_format": "json_object"})
    basic, emotic, describe = _all_tasks(config)
    assert basic.prompt_tokens and emotic.prompt_tokens and describe.prompt_tokens
