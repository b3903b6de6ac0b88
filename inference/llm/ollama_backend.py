"""Ollama's native `/api/chat` via the `ollama` client (structured output through `format`)."""
from __future__ import annotations

from typing import Any

import httpx
import ollama
from django.conf import settings

from .base import LLMReply, LLMRequest, PermanentLLMError, TransientLLMError, retryable_status


class OllamaBackend:
    def __init__(self, *, model: str, host: str, timeout_s: float) -> None:
        if not model.strip():
            raise PermanentLLMError("the ollama backend needs a model name in the LLM config (e.g. llama3.2)")
        self.model = model
        self.client = ollama.Client(host=host.strip() or settings.OLLAMA_HOST, timeout=timeout_s)

    def complete(self, request: LLMRequest) -> LLMReply:
        options: dict[str, Any] = {"temperature": request.temperature, "num_predict": request.max_tokens}
        if request.seed is not None:
            options["seed"] = request.seed
        try:
            response = self.client.chat(
                model=self.model, messages=request.messages(), format=request.schema, options=options, stream=False,
            )
        except ollama.ResponseError as exc:
            message = f"HTTP {exc.status_code}: {exc.error}"
            if retryable_status(exc.status_code):
                raise TransientLLMError(message, status_code=exc.status_code) from exc
            raise PermanentLLMError(message, status_code=exc.status_code) from exc
        except (httpx.TimeoutException, httpx.NetworkError, ConnectionError) as exc:
            raise TransientLLMError(f"{type(exc).__name__}: {exc}") from exc
        except (ValueError, TypeError) as exc:
            # A 200 whose body is not an Ollama chat response (pydantic validation, bad JSON).
            raise PermanentLLMError(f"malformed response from the server: {exc}") from exc
        message = response.message
        return LLMReply(
            text=(message.content or "") if message is not None else "",
            prompt_tokens=response.prompt_eval_count,
            completion_tokens=response.eval_count,
        )
