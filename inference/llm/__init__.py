"""LLM backends behind one interface (`Backend.complete(LLMRequest) -> LLMReply`).

`backend_for(config)` builds a backend once per process and config settings and reuses it: clients hold
connection pools (and the gguf backend a loaded model), which every call of a chunk should share.
Nothing here loads at import time.
"""
from __future__ import annotations

import json
import threading

from inference.models import LLMConfig

from .base import Backend, LLMError, LLMReply, LLMRequest, PermanentLLMError, TransientLLMError

__all__ = ["Backend", "LLMError", "LLMReply", "LLMRequest", "PermanentLLMError", "TransientLLMError",
           "backend_for"]

_backends: dict[tuple, Backend] = {}
_lock = threading.Lock()


def _key(config: LLMConfig) -> tuple:
    return (config.pk, config.backend, config.model, config.base_url, config.api_key_env,
            float(config.timeout_seconds), json.dumps(config.extra or {}, sort_keys=True))


def _build(config: LLMConfig) -> Backend:
    extra = config.extra or {}
    if not isinstance(extra, dict):
        raise PermanentLLMError(f"LLM config {config.name}: extra must be a JSON object")
    if config.backend == LLMConfig.Backend.OPENAI:
        from .openai_backend import OpenAIBackend

        return OpenAIBackend(model=config.model, base_url=config.base_url, api_key_env=config.api_key_env,
                             timeout_s=config.timeout_seconds,
                             response_format=str(extra.get("response_format", "json_schema")))
    if config.backend == LLMConfig.Backend.OLLAMA:
        from .ollama_backend import OllamaBackend

        return OllamaBackend(model=config.model, host=config.base_url, timeout_s=config.timeout_seconds)
    if config.backend == LLMConfig.Backend.GGUF:
        from .gguf_backend import GGUFBackend

        threads = extra.get("n_threads")
        return GGUFBackend(model=config.model, n_ctx=int(extra.get("n_ctx", 2048)),
                           n_threads=int(threads) if threads else None)
    if config.backend == LLMConfig.Backend.LEXICON:
        from .lexicon_backend import LexiconBackend

        return LexiconBackend(norms_path=config.model)
    raise PermanentLLMError(f"LLM config {config.name}: unknown backend {config.backend!r} "
                            f"(choose from {', '.join(LLMConfig.Backend.values)})")


def backend_for(config: LLMConfig) -> Backend:
    key = _key(config)
    with _lock:
        backend = _backends.get(key)
    if backend is None:
        # Built outside the lock (loading a norm file or a model can take a while); a rare duplicate
        # build by two threads is harmless, the first one stored wins.
        built = _build(config)
        with _lock:
            backend = _backends.setdefault(key, built)
    return backend
