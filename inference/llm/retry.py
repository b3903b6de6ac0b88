"""Exponential backoff with full jitter around one backend call.

Only `LLMTransientError` (429, 5xx, timeouts, dropped connections) is retried; anything else is
returned at once so a 400 for a bad model name does not burn four attempts. A server's Retry-After
wins over the computed delay when it is longer (capped, so a hostile header cannot park a worker).
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from .base import LLMCallError, LLMReply, LLMTransientError

BASE_DELAY_S = 0.5
MAX_DELAY_S = 30.0


@dataclass
class CallOutcome:
    reply: LLMReply | None
    error: str
    attempts: int
    latency_ms: float  # of the last attempt: the model's time, not our waiting


def backoff_delay(attempt: int, *, base_s: float = BASE_DELAY_S, max_s: float = MAX_DELAY_S,
                  rng: Callable[[], float] = random.random) -> float:
    """Full jitter (AWS architecture blog): uniform in [0, min(max, base·2^(attempt-1))], so many
    workers hit by the same 429 do not come back in lockstep."""
    return rng() * min(max_s, base_s * 2 ** (attempt - 1))


def call_with_retries(
    call: Callable[[], LLMReply],
    *,
    max_retries: int,
    before_attempt: Callable[[], object] = lambda: None,
    sleep: Callable[[float], None] = time.sleep,
    base_delay_s: float = BASE_DELAY_S,
    max_delay_s: float = MAX_DELAY_S,
) -> CallOutcome:
    attempts = 0
    while True:
        attempts += 1
        before_attempt()  # the rate limit counts every attempt, retries included
        started = time.perf_counter()
        try:
            reply = call()
        except LLMCallError as exc:
            latency_ms = (time.perf_counter() - started) * 1000
            message = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, LLMTransientError) or attempts > max_retries:
                suffix = f" (after {attempts} attempts)" if attempts > 1 else ""
                return CallOutcome(reply=None, error=message + suffix, attempts=attempts, latency_ms=latency_ms)
            delay = backoff_delay(attempts, base_s=base_delay_s, max_s=max_delay_s)
            if exc.retry_after_s is not None:
                delay = max(delay, min(exc.retry_after_s, max_delay_s))
            sleep(delay)
            continue
        latency_ms = (time.perf_counter() - started) * 1000
        return CallOutcome(reply=reply, error="", attempts=attempts, latency_ms=latency_ms)
