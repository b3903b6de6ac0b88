"""Similarity stage throughput: pairs/s per embedder, the cached service against a naive loop.

    python benchmarks/similarity_throughput.py [--samples 200] [--generations 4] [--references 3]
        [--embedders word,bert,sentence] [--naive-pairs 300] [--threads 2]

A throwaway SQLite database gets `--samples` samples with `--references` human references each and
`--generations` describe answers per sample (drawn from a pool, so texts repeat as they do when several
prompts and temperature-0 models answer alike). For each embedder:
  cold   `similarity_compute` over every generation with empty caches (encodes each distinct text once,
         batched, stores Embedding rows, upserts Similarity rows);
  warm   the same call again after clearing the in-process dict (the Embedding table serves every text);
  no-DB  the same dedup + batching in memory, no Embedding/Similarity rows (what storage costs);
  naive  a loop that encodes both texts of every pair one call at a time and computes the cosine
         (no batching, no cache, nothing stored), timed on the first `--naive-pairs` pairs.
All three are measured in the same run, so load from other users of the machine affects them alike.
Texts are synthetic English descriptions of 8-20 words (the length of the LLM stage's descriptions).
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SUBJECTS = ["The person", "This woman", "The man", "The child", "She", "He", "The young adult", "The face"]
STATES = ["looks happy", "seems sad", "appears angry", "looks surprised", "seems calm", "looks afraid",
          "appears disgusted", "seems tired", "looks excited", "appears content", "seems anxious", "looks bored"]
DETAILS = ["with a wide smile and raised cheeks", "with lowered brows and a tight mouth", "with wide open eyes",
           "with drooping eyelids and a slack jaw", "with a wrinkled nose and raised upper lip",
           "with a relaxed face and soft eyes", "with trembling lips", "with a frown and narrowed eyes",
           "with the corners of the mouth turned down", "with a slight grin"]
ENDINGS = ["", " and is probably enjoying the moment", " as if something unexpected just happened",
           " and may be feeling overwhelmed", " and seems at ease", " and might be about to cry"]


def _sentence(rng: random.Random) -> str:
    return f"{rng.choice(SUBJECTS)} {rng.choice(STATES)} {rng.choice(DETAILS)}{rng.choice(ENDINGS)}."


def _setup(threads: int, db_path: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "evalplatform.settings"
    os.environ["DATABASE_URL"] = f"sqlite:///{db_path}"
    os.environ["REDIS_URL"] = ""
    os.environ["LOG_LEVEL"] = "WARNING"
    import django
    import torch

    django.setup()
    # One intra-op thread per core; more only adds contention on a 2-core machine.
    torch.set_num_threads(threads)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _populate(samples: int, generations: int, references: int, seed: int) -> list[int]:
    from inference.models import Dataset, Generation, LLMConfig, PromptTemplate, Sample, VAEstimate

    rng = random.Random(seed)
    pool = [_sentence(rng) for _ in range(max(20, samples))]
    dataset = Dataset.objects.create(name="bench", format="manifest", label_set=[])
    configs = [LLMConfig.objects.create(name=f"bench-{i}", backend="lexicon") for i in range(generations)]
    prompt = PromptTemplate.objects.create(task="describe", name="describe", text="{valence} {arousal}")
    ids = []
    for i in range(samples):
        sample = Sample.objects.create(dataset=dataset, external_id=str(i), image=f"x/{i}.png", image_sha256="0" * 64,
                                       width=1, height=1, references=[_sentence(rng) for _ in range(references)])
        va = VAEstimate.objects.create(sample=sample, source="dataset", model_sha256="dataset", valence=0, arousal=0)
        for config in configs:
            gen = Generation.objects.create(va_estimate=va, config=config, prompt=prompt, task="describe",
                                            text=rng.choice(pool))
            ids.append(gen.pk)
    return ids


def _naive(family: str, pairs: list[tuple[str, str]]) -> float:
    """Pairs/s of encode-every-pair: one model call per text, no batching, no cache."""
    from inference.embeddings import cosine, embedder_get

    embedder = embedder_get(family)
    start = time.perf_counter()
    for gen_text, ref_text in pairs:
        [a] = embedder.encode([gen_text])
        [b] = embedder.encode([ref_text])
        if a.vector is not None and b.vector is not None:
            cosine(a.vector, b.vector)
    return len(pairs) / (time.perf_counter() - start)


def _dedup_batched(family: str, pairs: list[tuple[str, str]]) -> float:
    """Pairs/s of the service's core without the database: each distinct text encoded once, batched."""
    from inference.embeddings import cosine, embedder_get

    embedder = embedder_get(family)
    start = time.perf_counter()
    texts = sorted({t for pair in pairs for t in pair})
    encoded = dict(zip(texts, embedder.encode(texts), strict=True))
    for gen_text, ref_text in pairs:
        a, b = encoded[gen_text], encoded[ref_text]
        if a.vector is not None and b.vector is not None:
            cosine(a.vector, b.vector)
    return len(pairs) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--generations", type=int, default=4, help="Describe answers per sample.")
    parser.add_argument("--references", type=int, default=3, help="Reference descriptions per sample.")
    parser.add_argument("--embedders", default="word,bert,sentence")
    parser.add_argument("--naive-pairs", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        _setup(args.threads, Path(tmp) / "bench.sqlite3")
        from inference.embeddings import embedder_families_parse, embedder_get
        from inference.models import Embedding, Generation, Similarity
        from inference.services.similarity import embedding_memo_clear, similarity_compute

        ids = _populate(args.samples, args.generations, args.references, args.seed)
        pairs = [(g.text, ref) for g in Generation.objects.filter(pk__in=ids).select_related("va_estimate__sample")
                 for ref in g.va_estimate.sample.references]
        distinct = len({t for pair in pairs for t in pair})
        print(f"{len(ids)} generations, {len(pairs)} pairs, {distinct} distinct texts; torch threads {args.threads}; "
              f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"{'embedder':<9} {'checkpoint':<42} {'load s':>7} {'cold pairs/s':>13} {'warm pairs/s':>13} "
              f"{'no-DB pairs/s':>14} {'naive pairs/s':>14} {'cold/naive':>11} {'encoded':>8}")
        for family in embedder_families_parse(args.embedders):
            embedder = embedder_get(family)
            start = time.perf_counter()
            embedder.model()  # load outside the timed runs: a worker loads once per process
            load = time.perf_counter() - start
            embedding_memo_clear()
            calls_before = embedder.encode_calls
            start = time.perf_counter()
            result = similarity_compute(generation_ids=ids, family=family)
            cold = len(pairs) / (time.perf_counter() - start)
            batches = embedder.encode_calls - calls_before
            embedding_memo_clear()
            start = time.perf_counter()
            similarity_compute(generation_ids=ids, family=family)
            warm = len(pairs) / (time.perf_counter() - start)
            assert embedder.encode_calls - calls_before == batches, "warm run must not encode"
            core = _dedup_batched(family, pairs)
            naive = _naive(family, pairs[:args.naive_pairs])
            encoded = Embedding.objects.filter(embedder_family=family).count()
            stored = Similarity.objects.filter(embedder_family=family).count()
            assert result["failed"] == 0 and stored == len(pairs), (result, stored)
            print(f"{family:<9} {embedder.model_id:<42} {load:>7.1f} {cold:>13.0f} {warm:>13.0f} {core:>14.0f} {naive:>14.0f} "
                  f"{cold / naive:>10.1f}x {encoded:>8}")
        print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
