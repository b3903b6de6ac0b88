"""How a model file is found and kept: one rule for "the setting must name an existing file" and one
per-process cache, used by every loader (FaceChannel, expression classifier, word norms, face
detectors, embedders, LLM backends).

Heavy things load lazily, once per process, never at import: a worker loads a model on its first
chunk and keeps it; the web process only checks that the file is there (`setting_file`).
"""
from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Generic, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

T = TypeVar("T")


def setting_file(setting: str, *, hint: str = "", value: str | Path | None = None) -> Path:
    """The file a setting names (or `value`, an explicit override), checked to exist.

    Raises ImproperlyConfigured naming the setting: "X is not set: <hint>" or "X=<path> does not exist or
    is not a file", so every stage, form and command reports a missing model the same way."""
    raw = str(getattr(settings, setting, "") if value is None else value or "").strip()
    if not raw:
        raise ImproperlyConfigured(f"{setting} is not set" + (f": {hint}" if hint else ""))
    path = Path(raw).expanduser()
    if not path.is_file():
        raise ImproperlyConfigured(f"{setting}={raw} does not exist or is not a file")
    return path


class ProcessCache(Generic[T]):
    """Loaded things by key (usually the resolved file path), each loaded once per process.

    The lock is held while loading: two threads of one worker asking for the same model wait for one
    load instead of loading it twice (a model can take seconds and hundreds of MB)."""

    def __init__(self) -> None:
        self._items: dict[Hashable, T] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                item = self._items[key] = load()
            return item

    def pop(self, key: Hashable) -> T | None:
        with self._lock:
            return self._items.pop(key, None)

    def values(self) -> list[T]:
        with self._lock:
            return list(self._items.values())

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_digests: ProcessCache[str] = ProcessCache()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime): a model version is its file's hash, and
    planning asks for it often without wanting to read a large file each time."""
    resolved = Path(path).resolve()
    stat = resolved.stat()

    def digest() -> str:
        hasher = hashlib.sha256()
        with resolved.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(block)
        return hasher.hexdigest()

    return _digests.get((str(resolved), stat.st_size, stat.st_mtime_ns), digest)
