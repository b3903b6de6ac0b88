"""`ollama` backend: the official `ollama` client against an Ollama server (`/api/chat`).

Structured output uses Ollama's `format` (a JSON schema since Ollama 0.5). Host: the config's
base_url, else the OLLAMA_HOST setting.
"""
from __future__ import annotations

from typing import Any

import httpx
import ollama
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from inference.models import LLMConfig

from .base import LLMPermanentError, LLMReply, LLMRequest, LLMTransientError, messages_build


class OllamaBackend:
    def __init__(self, config: LLMConfig) -> None:
        if not config.model.strip():
            raise ImproperlyConfigured(f"LLM config {config.name!r}: the ollama backend needs a model name")
        self.model = config.model
        self.host = config.base_url.strip() or settings.OLLAMA_HOST
        if not self.host:
            raise ImproperlyConfigured(f"LLM config {config.name!r}: set its base_url or OLLAMA_HOST")
        self.options: dict[str, Any] = {"temperature": config.temperature, "num_predict": config.max_tokens}
        if config.seed is not None:
            self.options["seed"] = config.seed
        self.client = ollama.Client(host=self.host, timeout=config.timeout_seconds)

    def complete(self, request: LLMRequest) -> LLMReply:
        try:
            response = self.client.chat(
                model=self.model, messages=messages_build(request), format=request.json_schema,
                options=self.options, stream=False,
            )
        except ollama.ResponseError as exc:
            status = exc.status_code
            message = f"HTTP {status} from Ollama at {self.host}: {str(exc.error)[:500]}"
            # status -1: the client could not read a status (an error object inside a 200 body).
            if status == 429 or status >= 500:
                raise LLMTransientError(message, status_code=status) from exc
            raise LLMPermanentError(message, status_code=status) from exc
        except (ConnectionError, httpx.TransportError) as exc:
            # The client turns httpx.ConnectError into ConnectionError; read timeouts stay httpx errors.
            raise LLMTransientError(f"{type(exc).__name__} talking to Ollama at {self.host}: {exc}") from exc
        except ValueError as exc:
            # A body that is not JSON, or JSON that is not a chat response (pydantic's ValidationError
            # is a ValueError).
            raise LLMPermanentError(f"malformed response from Ollama at {self.host}: {str(exc)[:500]}") from exc
        content = response.message.content
        return LLMReply(text=content or "", prompt_tokens=response.prompt_eval_count,
                        completion_tokens=response.eval_count)
