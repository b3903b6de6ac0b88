"""Per-config rate limit shared by every thread of a process, and retry backoff.

The limiter hands out evenly spaced start times (60 / rate seconds apart): a thread reserves the next
slot under the lock and sleeps outside it, so 32 threads waiting on one limiter never hold the lock
while sleeping and never start two calls in the same slot. It is per process: with several worker
processes, divide the provider's limit between them.
"""
from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self, per_minute: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def acquire(self) -> float:
        """Wait for this caller's slot; returns the seconds waited."""
        if not self.interval:
            return 0.0
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
        return wait


_limiters: dict[tuple[int, float], RateLimiter] = {}
_limiters_lock = threading.Lock()


def rate_limiter_for(*, config_id: int, per_minute: float) -> RateLimiter:
    """The process-wide limiter of one LLM config (a changed rate gets a fresh limiter)."""
    key = (config_id, float(per_minute))
    with _limiters_lock:
        limiter = _limiters.get(key)
        if limiter is None:
            limiter = _limiters[key] = RateLimiter(per_minute)
        return limiter


def backoff_delay(*, attempt: int, base_s: float, cap_s: float, retry_after: float | None = None,
                  rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number `attempt` (1-based): exponential with full jitter, so a
    burst of 429s from many threads does not come back in lock-step; a server's Retry-After is a floor."""
    ceiling = min(cap_s, base_s * (2 ** (attempt - 1)))
    delay = (rng or random).uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap_s))
    return delay
