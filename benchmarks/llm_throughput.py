"""LLM stage throughput: does the `llm` queue overlap network-bound calls?

N generations go through the real code path — `generations_run_many` → openai backend (the `openai`
client over HTTP) → parsing → Generation upserts in PostgreSQL — against a loopback OpenAI-compatible
server that answers every request after a fixed latency (200 ms). At concurrency c the ideal throughput
is c / latency; the script prints measured / ideal for c = 1, 8, 32, 64 (target: >= 0.80 at 32).

It creates and drops its own throwaway database (test_affect_eval<TEST_DB_SUFFIX>, default suffix
_llmbench) with the test settings, so it never touches real data:

    TEST_DB_SUFFIX=_llmbench python benchmarks/llm_throughput.py [--calls-per-thread 4] [--latency 0.2]
"""
from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalplatform.settings_test")
os.environ.setdefault("TEST_DB_SUFFIX", "_llmbench")

import django  # noqa: E402

django.setup()
logging.disable(logging.INFO)  # the HTTP clients log one INFO line per request otherwise

from django.db import connection  # noqa: E402

from inference.models import Dataset, Generation, LLMConfig, Sample, VAEstimate  # noqa: E402
from inference.services.llm import generations_run_many, prompt_defaults_ensure  # noqa: E402
from tests.inference.llm_fakes import FakeOpenAIServer, Reply, openai_completion  # noqa: E402


def va_estimates(n: int) -> list[int]:
    dataset = Dataset.objects.create(name=f"bench-{time.time_ns()}", format="folder")
    samples = Sample.objects.bulk_create(
        Sample(dataset=dataset, external_id=f"s{i}", image=f"samples/{i}.png", image_sha256=f"{i:064d}", width=1,
               height=1) for i in range(n))
    estimates = VAEstimate.objects.bulk_create(
        VAEstimate(sample=sample, source="expression", model_sha256="b" * 64, valence=0.5, arousal=0.2)
        for sample in samples)
    return [va.pk for va in estimates]


def serve(latency: float, port_queue: multiprocessing.Queue) -> None:
    """The fake server in its own process, as a real one would be: it must not share our GIL."""
    reply = Reply(200, openai_completion('{"label": "happiness"}'), delay_s=latency)
    with FakeOpenAIServer(default=reply) as server:
        port_queue.put(server.url)
        threading.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.2, help="Server answer delay in seconds.")
    parser.add_argument("--calls-per-thread", type=int, default=4, help="N = this × concurrency (at least 16).")
    parser.add_argument("--concurrency", default="1,8,32,64", help="Comma-separated concurrency levels.")
    args = parser.parse_args()
    levels = [int(level) for level in args.concurrency.split(",")]

    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        prompt = next(p for p in prompt_defaults_ensure() if p.name == "categorize-basic")
        port_queue: multiprocessing.Queue = multiprocessing.Queue()
        server = multiprocessing.Process(target=serve, args=(args.latency, port_queue), daemon=True)
        server.start()
        try:
            url = port_queue.get(timeout=30)
            config = LLMConfig.objects.create(name="bench", backend="openai", model="fake-model",
                                              base_url=url + "/v1", max_retries=0, timeout_seconds=30)
            generations_run_many(va_estimate_ids=va_estimates(2), config_id=config.pk, prompt_id=prompt.pk,
                                 concurrency=2)  # warm-up: client and connection pool built
            print(f"server latency {args.latency * 1000:.0f} ms; each call = HTTP + parse + upsert")
            print(f"{'concurrency':>11} {'calls':>6} {'seconds':>8} {'calls/s':>8} {'ideal/s':>8} {'ratio':>6}")
            for level in levels:
                ids = va_estimates(max(16, args.calls_per_thread * level))
                started = time.perf_counter()
                report = generations_run_many(va_estimate_ids=ids, config_id=config.pk, prompt_id=prompt.pk,
                                              concurrency=level)
                elapsed = time.perf_counter() - started
                if report["done"] != len(ids):
                    raise SystemExit(f"only {report['done']} of {len(ids)} calls succeeded: {report['errors']}")
                measured, ideal = len(ids) / elapsed, level / args.latency
                print(f"{level:>11} {len(ids):>6} {elapsed:>8.2f} {measured:>8.1f} {ideal:>8.1f} "
                      f"{measured / ideal:>6.2f}")
            assert Generation.objects.filter(status="ok").count() == 2 + sum(
                max(16, args.calls_per_thread * level) for level in levels)
        finally:
            server.terminate()
    finally:
        connection.creation.destroy_test_db(test_db, verbosity=0)


if __name__ == "__main__":
    main()
