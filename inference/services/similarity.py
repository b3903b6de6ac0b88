"""Similarity stage: cosine between each generated description and each reference description of its
sample, per embedder, upserted by (generation, reference_index, embedder_family, embedder_model).

Each distinct text is encoded once per embedder checkpoint: an in-process dict in front of the
`Embedding` table in front of the model. Undefined similarities (empty text, no in-vocabulary word)
are stored as NULL with a note, never as a made-up 0.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from django.db import transaction
from django.db.models import Avg, Count, Max, Q

from inference.embeddings import (
    EncodedText,
    cosine,
    embedder_family_check,
    embedder_get,
    text_is_mostly_non_latin,
    text_normalize,
    text_sha256,
)
from inference.models import Embedding, Generation, PromptTemplate, Similarity

SIMILARITY_CHUNK_SIZE = 256


@dataclass(frozen=True)
class _CacheKey:
    family: str
    model: str
    sha: str


# Per-process memo in front of the Embedding table; bounded so a long-lived worker does not grow
# without limit (when full it is simply cleared: the table still has everything).
_memo: dict[_CacheKey, EncodedText] = {}
_memo_lock = threading.Lock()
MEMO_MAX_ITEMS = 200_000


def embedding_memo_clear() -> None:
    with _memo_lock:
        _memo.clear()


def _vector_from_row(row: Embedding) -> EncodedText:
    if row.dim == 0:
        # A stored "no vector" result (no in-vocabulary word): cached too, so it is not recomputed.
        return EncodedText(None, row.oov_rate, "no in-vocabulary words")
    return EncodedText(np.frombuffer(bytes(row.vector), dtype="<f4").copy(), row.oov_rate)


def embeddings_get_or_compute(*, texts: Iterable[str], family: str) -> dict[str, EncodedText]:
    """{normalized text: encoding} for every text, encoding only what neither cache holds."""
    embedder = embedder_get(family)
    wanted = {text_sha256(t): t for t in {text_normalize(t) for t in texts}}
    found: dict[str, EncodedText] = {}
    with _memo_lock:
        for sha in wanted:
            hit = _memo.get(_CacheKey(family, embedder.model_id, sha))
            if hit is not None:
                found[sha] = hit
    missing = [sha for sha in wanted if sha not in found]
    if missing:
        for row in Embedding.objects.filter(embedder_family=family, embedder_model=embedder.model_id,
                                            text_sha256__in=missing):
            found[row.text_sha256] = _vector_from_row(row)
    to_encode = [sha for sha in wanted if sha not in found and wanted[sha]]
    for sha in wanted:
        if not wanted[sha]:
            found[sha] = EncodedText(None, None, "empty text")  # never stored, never sent to the model
    if to_encode:
        encoded = embedder.encode([wanted[sha] for sha in to_encode])
        rows = []
        for sha, enc in zip(to_encode, encoded, strict=True):
            found[sha] = enc
            vector = enc.vector if enc.vector is not None else np.zeros(0, dtype="<f4")
            rows.append(Embedding(text_sha256=sha, embedder_family=family, embedder_model=embedder.model_id,
                                  dim=int(vector.shape[0]), vector=vector.astype("<f4").tobytes(),
                                  oov_rate=enc.oov_rate))
        # Two workers may encode the same text at once; the unique key keeps one row.
        Embedding.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    with _memo_lock:
        if len(_memo) + len(found) > MEMO_MAX_ITEMS:
            _memo.clear()
        for sha, enc in found.items():
            if wanted[sha]:
                _memo[_CacheKey(family, embedder.model_id, sha)] = enc
    return {wanted[sha]: enc for sha, enc in found.items()}


def _pair_score(gen: EncodedText, ref: EncodedText, ref_index: int, gen_text: str,
                ref_text: str) -> tuple[float | None, float | None, str]:
    rates = [r for r in (gen.oov_rate, ref.oov_rate) if r is not None]
    oov = max(rates) if rates else None  # the worse side: a score resting on few known words is weak
    if gen.vector is None:
        return None, oov, f"generated text: {gen.note}"
    if ref.vector is None:
        return None, oov, f"reference {ref_index}: {ref.note}"
    score = cosine(gen.vector, ref.vector)
    if score is None:
        return None, oov, "zero-length vector"
    notes = []
    if text_is_mostly_non_latin(gen_text):
        notes.append("generated text mostly non-Latin script")
    if text_is_mostly_non_latin(ref_text):
        notes.append(f"reference {ref_index} mostly non-Latin script")
    return score, oov, "; ".join(notes)


def similarity_compute(*, generation_ids: list[int], family: str) -> dict:
    """Score these generations against their samples' references with one embedder family.

    What a batch chunk calls. Returns {"done", "failed", "errors": {generation_id: text}}; an item
    that cannot be scored (not a description, not OK, no references) is reported, the rest go on.
    A missing checkpoint raises `EmbedderUnavailable` (the whole chunk cannot run).
    """
    family = embedder_family_check(family)
    embedder = embedder_get(family)
    generations = {g.pk: g for g in Generation.objects.filter(pk__in=generation_ids)
                   .select_related("va_estimate__sample")}
    errors: dict[str, str] = {}
    scorable: list[Generation] = []
    for gid in dict.fromkeys(generation_ids):
        gen = generations.get(gid)
        if gen is None:
            errors[str(gid)] = "generation does not exist"
        elif gen.task != PromptTemplate.Task.DESCRIBE:
            errors[str(gid)] = f"generation is a {gen.task} answer, not a description"
        elif gen.status != Generation.Status.OK:
            errors[str(gid)] = f"generation status is {gen.status}, not ok"
        elif not [r for r in gen.va_estimate.sample.references if isinstance(r, str)]:
            errors[str(gid)] = "sample has no reference descriptions"
        else:
            scorable.append(gen)
    texts = [g.text for g in scorable] + [r for g in scorable for r in g.va_estimate.sample.references
                                           if isinstance(r, str)]
    encoded = embeddings_get_or_compute(texts=texts, family=family) if scorable else {}
    rows = []
    for gen in scorable:
        gen_text = text_normalize(gen.text)
        for index, ref in enumerate(gen.va_estimate.sample.references):
            if not isinstance(ref, str):
                continue
            ref_text = text_normalize(ref)
            score, oov, note = _pair_score(encoded[gen_text], encoded[ref_text], index, gen_text, ref_text)
            rows.append(Similarity(generation=gen, reference_index=index, embedder_family=family,
                                   embedder_model=embedder.model_id, cosine=score, oov_rate=oov, note=note[:300]))
    with transaction.atomic():
        Similarity.objects.bulk_create(
            rows, update_conflicts=True, batch_size=500,
            unique_fields=["generation", "reference_index", "embedder_family", "embedder_model"],
            update_fields=["cosine", "oov_rate", "note"],
        )
    return {"done": len(scorable), "failed": len(errors), "errors": errors}


def similarity_by_generation(*, generation_ids: Iterable[int], family: str | None = None,
                             embedder_model: str | None = None) -> list[dict]:
    """Read side: mean and max cosine over the references of each generation, per embedder.

    NULL cosines (undefined) are excluded from mean/max and counted in `n_undefined`.
    """
    qs = Similarity.objects.filter(generation_id__in=list(generation_ids))
    if family:
        qs = qs.filter(embedder_family=family)
    if embedder_model:
        qs = qs.filter(embedder_model=embedder_model)
    return list(
        qs.values("generation_id", "embedder_family", "embedder_model")
        .annotate(mean_cosine=Avg("cosine"), max_cosine=Max("cosine"), n_references=Count("id"),
                  n_undefined=Count("id", filter=Q(cosine__isnull=True)))
        .order_by("generation_id", "embedder_family", "embedder_model")
    )
