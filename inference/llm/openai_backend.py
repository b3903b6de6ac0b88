"""OpenAI and OpenAI-compatible servers (llama.cpp server, vLLM, LM Studio, Ollama's /v1) via `openai`.

`LLMConfig.extra["response_format"]` picks how structured output is asked for, because servers differ:
  "json_schema" (default) -- OpenAI structured outputs; also vLLM, Ollama /v1, LM Studio;
  "json_object"           -- {"type": "json_object", "schema": ...}: llama-cpp-python's server;
  "none"                  -- plain text; the tolerant parser still applies.
"""
from __future__ import annotations

from typing import Any

import openai
from django.conf import settings

from .base import (
    LLMReply,
    LLMRequest,
    PermanentLLMError,
    TransientLLMError,
    api_key_for,
    retry_after_seconds,
    retryable_status,
)

RESPONSE_FORMATS = ("json_schema", "json_object", "none")


class OpenAIBackend:
    def __init__(self, *, model: str, base_url: str, api_key_env: str, timeout_s: float,
                 response_format: str = "json_schema") -> None:
        if not model.strip():
            raise PermanentLLMError("the openai backend needs a model name in the LLM config")
        if response_format not in RESPONSE_FORMATS:
            raise PermanentLLMError(
                f"extra.response_format must be one of {', '.join(RESPONSE_FORMATS)}, got {response_format!r}"
            )
        base_url = base_url.strip() or settings.OPENAI_BASE_URL
        # A local OpenAI-compatible server usually ignores the key, but the client insists on one.
        key = api_key_for(api_key_env=api_key_env, required=not base_url) or "not-needed"
        self.model = model
        self.response_format = response_format
        # max_retries=0: the service owns retries, so every HTTP call is counted in Generation.attempts.
        self.client = openai.OpenAI(api_key=key, base_url=base_url or None, timeout=timeout_s, max_retries=0)

    def _response_format(self, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is None or self.response_format == "none":
            return None
        if self.response_format == "json_object":
            return {"type": "json_object", "schema": schema}
        return {"type": "json_schema", "json_schema": {"name": "emotion_labels", "schema": schema, "strict": True}}

    def complete(self, request: LLMRequest) -> LLMReply:
        kwargs: dict[str, Any] = {
            "model": self.model, "messages": request.messages(), "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        if request.seed is not None:
            kwargs["seed"] = request.seed
        response_format = self._response_format(request.schema)
        if response_format is not None:
            kwargs["response_format"] = response_format
        try:
            completion = self.client.chat.completions.create(**kwargs)
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            # APITimeoutError subclasses APIConnectionError; both are the network, not the request.
            raise TransientLLMError(f"{type(exc).__name__}: {exc}") from exc
        except openai.APIStatusError as exc:
            message = f"HTTP {exc.status_code}: {_error_text(exc)}"
            if retryable_status(exc.status_code):
                raise TransientLLMError(message, status_code=exc.status_code,
                                        retry_after=retry_after_seconds(exc.response.headers)) from exc
            if exc.status_code in (400, 422) and response_format is not None:
                message += (f" (the server may not support response_format {self.response_format!r}; "
                            f"set the config's extra.response_format to one of {', '.join(RESPONSE_FORMATS)})")
            raise PermanentLLMError(message, status_code=exc.status_code) from exc
        except (openai.APIResponseValidationError, ValueError) as exc:
            # A 200 whose body is not a chat completion (a proxy error page, truncated JSON).
            raise PermanentLLMError(f"malformed response from the server: {exc}") from exc
        return _reply(completion)


def _error_text(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:500]
        return str(error)[:500]
    return (exc.response.text or str(exc))[:500]


def _reply(completion: Any) -> LLMReply:
    choices = getattr(completion, "choices", None)
    if not choices:
        raise PermanentLLMError("malformed response from the server: no choices in the chat completion")
    message = choices[0].message
    content = getattr(message, "content", None)
    if content is not None and not isinstance(content, str):  # the client does not check the body's types
        raise PermanentLLMError(f"malformed response from the server: the message content is "
                                f"{type(content).__name__}, not text")
    refusal = getattr(message, "refusal", None)
    usage = getattr(completion, "usage", None)
    return LLMReply(
        text=(message.content or refusal or "") if message is not None else "",
        prompt_tokens=getattr(usage, "prompt_tokens", None),
        completion_tokens=getattr(usage, "completion_tokens", None),
        refusal=bool(refusal) and not (message.content or "").strip(),
    )
