"""Is a SECRET_KEY good enough for production? Pure function, used by `settings_production`.

Django signs sessions, password-reset links and CSRF tokens with SECRET_KEY: a guessable key lets anyone
forge them. What is refused, and why:
- the placeholder of `.env.example` and the development default (copied files are the usual leak);
- fewer than 50 characters (Django's own deploy check uses the same floor);
- a repeated run of 8 characters (`abcdefgh…abcdefgh`, `xxxxxxxx…`): random keys of this length never
  repeat one (0 in 20,000 draws each of Django's `get_random_secret_key`, `token_hex(32)` and
  `token_urlsafe(40)`);
- under 128 bits by the key's own character frequencies (length × Shannon entropy per character): the
  lowest of those 60,000 random keys scored 212 bits; 50-character hex keys (`token_hex(25)`) scored
  at least 166.
This is a heuristic against mistakes, not proof of randomness: generate the key with
`python -c "import secrets; print(secrets.token_urlsafe(50))"`.
"""
from __future__ import annotations

import math
from collections import Counter

PLACEHOLDER_MARKERS = ("change-me", "changeme", "dev-only", "django-insecure", "insecure")
MIN_LENGTH = 50
MIN_BITS = 128.0
REPEAT_RUN = 8


def secret_key_entropy_bits(key: str) -> float:
    counts = Counter(key)
    n = len(key)
    return -n * sum(c / n * math.log2(c / n) for c in counts.values()) if n else 0.0


def secret_key_weakness(key: str) -> str | None:
    """Why `key` must not be used in production, or None when it passes."""
    lowered = key.lower()
    if any(marker in lowered for marker in PLACEHOLDER_MARKERS):
        return "SECRET_KEY is a placeholder (from .env.example or the development default)"
    if len(key) < MIN_LENGTH:
        return f"SECRET_KEY must be at least {MIN_LENGTH} characters"
    runs = [key[i:i + REPEAT_RUN] for i in range(len(key) - REPEAT_RUN + 1)]
    if len(set(runs)) < len(runs):
        return f"SECRET_KEY repeats a run of {REPEAT_RUN} characters (not random)"
    bits = secret_key_entropy_bits(key)
    if bits < MIN_BITS:
        return f"SECRET_KEY has too little entropy ({bits:.0f} bits by character frequency, need {MIN_BITS:.0f})"
    return None
