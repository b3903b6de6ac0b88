"""LLM stage: backends behind one interface (`base.LLMBackend`), prompts, strict parsing, pacing.

`llm_backend_get(config)` returns the process-wide backend of an `LLMConfig`, built on first use
(never at import time) and rebuilt when the config row is edited.
"""
from __future__ import annotations

import importlib
import threading

from django.core.exceptions import ImproperlyConfigured

from inference.models import LLMConfig

from .base import LLMBackend

BACKENDS = {
    LLMConfig.Backend.OPENAI: "inference.llm.openai_backend:OpenAIBackend",
    LLMConfig.Backend.OLLAMA: "inference.llm.ollama_backend:OllamaBackend",
    LLMConfig.Backend.GGUF: "inference.llm.gguf_backend:GGUFBackend",
    LLMConfig.Backend.LEXICON: "inference.llm.lexicon_backend:LexiconBackend",
}

_backends: dict[tuple, LLMBackend] = {}
_backends_lock = threading.Lock()


def _config_key(config: LLMConfig) -> tuple:
    return (config.pk, config.backend, config.model, config.base_url, config.api_key_env, config.temperature,
            config.max_tokens, config.timeout_seconds, config.seed, repr(sorted(config.extra.items())))


def llm_backend_get(config: LLMConfig) -> LLMBackend:
    if config.backend not in BACKENDS:
        raise ImproperlyConfigured(
            f"LLM config {config.name!r}: unknown backend {config.backend!r} (choose from {', '.join(BACKENDS)})"
        )
    if not isinstance(config.extra, dict):
        raise ImproperlyConfigured(f"LLM config {config.name!r}: extra must be a JSON object")
    key = _config_key(config)
    with _backends_lock:
        backend = _backends.get(key)
        if backend is None:
            # Imported here so that e.g. the web process never imports llama_cpp.
            module_name, _, class_name = BACKENDS[config.backend].partition(":")
            backend_class = getattr(importlib.import_module(module_name), class_name)
            backend = _backends[key] = backend_class(config)
        return backend
