"""The one small interface every LLM backend implements, and the errors the service tells apart.

A backend turns an `LLMRequest` into an `LLMReply` or raises:
  TransientLLMError  -- worth retrying: HTTP 429, 5xx, timeouts, dropped connections;
  PermanentLLMError  -- not worth retrying: other 4xx (bad model name, bad key, bad request),
                        a malformed response body, a local model that fails.
Retries, backoff and rate limiting live in the service (one policy for every backend); each backend
turns its client's own retries off so `Generation.attempts` counts real calls.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class LLMRequest:
    system: str
    prompt: str
    task: str  # "categorize" | "describe"
    valence: float
    arousal: float
    labels: list[str] = field(default_factory=list)  # allowed labels (categorize)
    multilabel: bool = False
    # JSON schema of the structured answer (categorize); None = free text (describe).
    schema: dict[str, Any] | None = None
    temperature: float = 0.0
    max_tokens: int = 128
    seed: int | None = None

    def messages(self) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": self.system}] if self.system.strip() else []
        return [*messages, {"role": "user", "content": self.prompt}]


@dataclass(frozen=True)
class LLMReply:
    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    refusal: bool = False  # the API itself marked the answer as a refusal (OpenAI `message.refusal`)

    def __post_init__(self) -> None:
        # A server's token count is only a statistic: one that is not a whole number the column can hold
        # ("x", -5, 2**70) is dropped, rather than failing the row that keeps the answer.
        for name in ("prompt_tokens", "completion_tokens"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and not isinstance(value, bool)
                                          and 0 <= value < 2**31):
                object.__setattr__(self, name, None)


class LLMError(Exception):
    def __init__(self, message: str, *, status_code: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


class TransientLLMError(LLMError):
    """Retry with backoff."""


class PermanentLLMError(LLMError):
    """Do not retry: the same request would fail the same way."""


class Backend(Protocol):
    def complete(self, request: LLMRequest) -> LLMReply: ...


def retryable_status(status_code: int) -> bool:
    return status_code == 429 or status_code >= 500


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds from a Retry-After header (only the delta-seconds form; dates are rare for LLM APIs)."""
    if headers is None:
        return None
    raw = headers.get("retry-after") if hasattr(headers, "get") else None
    try:
        return max(0.0, float(raw)) if raw not in (None, "") else None
    except (TypeError, ValueError):
        return None


def api_key_for(*, api_key_env: str, required: bool) -> str:
    """The key from the environment variable the config names (keys never live in the database)."""
    name = api_key_env.strip() or "OPENAI_API_KEY"
    key = os.environ.get(name, "") or (settings.OPENAI_API_KEY if name == "OPENAI_API_KEY" else "")
    if not key and required:
        raise ImproperlyConfigured(
            f"{name} is not set: the LLM config talks to the hosted OpenAI API (no base URL) and needs a key "
            f"in that environment variable (or set the config's base_url / OPENAI_BASE_URL for a local server)."
        )
    return key
