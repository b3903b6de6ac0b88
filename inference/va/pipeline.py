"""Stage pipelining for the VA stage: decode + detect of the next faces overlap the model's batch.

A chunk's samples are decoded and searched for faces by a small pool (threads by default: OpenCV
releases the GIL, so two threads keep both cores busy, and nothing has to be pickled), at most
`window` ahead of the model. As soon as `batch_size` faces are ready the calling thread runs the model
on them while the pool goes on with the next samples; the remainder is one last, smaller batch.
A process pool is available for comparison (`executor="processes"`); `benchmarks/va_throughput.py`
measures both on the same run.

OpenCV's own thread pool is switched to one thread while the pool works: each worker is then one
core's worth of decode/detect instead of several threads fighting over two cores in every small layer.
"""
from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import cv2
import numpy as np

from inference.faces import DecodedImage, Detection, FaceDetector, face_detector_load, faces_detect

T = TypeVar("T")
P = TypeVar("P")
R = TypeVar("R")

PREPARE_WORKERS = max(1, os.cpu_count() or 1)
BATCH_SIZE = 32  # the model's batch-32 rate is what the stage should run at
EXECUTORS = ("threads", "processes")
_cv2_lock = threading.Lock()
_cv2_users = 0
_cv2_saved = 0


@dataclass(frozen=True)
class PreparedFace:
    """A decoded sample: its detection and, when a face (or the whole-frame fallback) was found, the
    model's input for it."""

    detection: Detection
    face: np.ndarray | None


def face_prepare(data: bytes, *, body_box: list[int] | None, preprocess: Callable[[np.ndarray, list[int]], np.ndarray],
                 detector: FaceDetector | None = None) -> PreparedFace:
    """Decode (a large JPEG at reduced scale), detect, and crop the chosen face from the stored pixels.

    ValueError/TypeError for an undecodable image or a bad body box; the caller records them per sample.
    """
    image = DecodedImage(data)
    detection = faces_detect(image, body_box=body_box, detector=detector)
    box = detection.box
    return PreparedFace(detection, None if box is None else preprocess(image.full, box.as_list()))


def _prepare_in_process(data: bytes, body_box: list[int] | None,
                        preprocess: Callable[[np.ndarray, list[int]], np.ndarray]) -> PreparedFace | Exception:
    # A worker process loads the configured detector once (module cache) and returns errors as values,
    # so one bad image never breaks the pool.
    cv2.setNumThreads(1)
    try:
        return face_prepare(data, body_box=body_box, preprocess=preprocess, detector=face_detector_load())
    except (ValueError, TypeError) as exc:
        return exc


@contextmanager
def _single_threaded_cv2() -> Iterator[None]:
    """OpenCV on one thread per caller while a pool runs (reference-counted: pipelines may overlap)."""
    global _cv2_users, _cv2_saved
    with _cv2_lock:
        if _cv2_users == 0:
            _cv2_saved = cv2.getNumThreads()
            cv2.setNumThreads(1)
        _cv2_users += 1
    try:
        yield
    finally:
        with _cv2_lock:
            _cv2_users -= 1
            if _cv2_users == 0:
                cv2.setNumThreads(_cv2_saved)


class _Pipeline(Generic[T, P, R]):
    def __init__(self, prepare: Callable[[T], P], face: Callable[[P], np.ndarray | None],
                 predict: Callable[[np.ndarray], Sequence[R]], batch_size: int) -> None:
        self.prepare, self.face, self.predict, self.batch_size = prepare, face, predict, batch_size
        self.pending: list[tuple[int, np.ndarray]] = []
        self.results: dict[int, R] = {}

    def take(self, index: int, prepared: P) -> None:
        face = self.face(prepared)
        if face is not None:
            self.pending.append((index, face))
        if len(self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        outputs = self.predict(np.stack([face for _, face in batch]))
        if len(outputs) != len(batch):
            raise RuntimeError(f"the model returned {len(outputs)} results for {len(batch)} faces")
        self.results.update((index, out) for (index, _), out in zip(batch, outputs, strict=True))


def va_pipeline_run(items: Sequence[T], *, prepare: Callable[[T], P], face: Callable[[P], np.ndarray | None],
                    predict: Callable[[np.ndarray], Sequence[R]], batch_size: int = BATCH_SIZE,
                    workers: int = PREPARE_WORKERS, window: int | None = None,
                    executor: Executor | None = None) -> list[tuple[P, R | None]]:
    """[(prepared, model output or None)] for each item, in order.

    `prepare(item)` runs in the pool (an `executor` of the caller's, or `workers` threads); `face(prepared)`
    says what to feed the model (None: nothing, e.g. no face); `predict(stacked faces)` runs in the calling
    thread on batches of `batch_size`, overlapping the preparation of the items after them. At most
    `window` items (default: two batches) are prepared ahead, so memory stays bounded on long lists.
    An exception from `prepare` propagates (the service's prepare returns errors as values).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch size must be a positive integer, got {batch_size!r}")
    window = window or 2 * batch_size
    pipeline: _Pipeline[T, P, R] = _Pipeline(prepare, face, predict, batch_size)
    prepared: list[P] = []
    own = executor is None
    pool = executor or ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="va-prepare")
    try:
        with _single_threaded_cv2():
            queue: deque[Future[P]] = deque()
            feed = iter(items)
            for item in feed:
                queue.append(pool.submit(prepare, item))
                if len(queue) >= window:
                    break
            while queue:
                done = queue.popleft().result()
                nxt = next(feed, _END)
                if nxt is not _END:
                    queue.append(pool.submit(prepare, nxt))
                prepared.append(done)
                pipeline.take(len(prepared) - 1, done)
            pipeline.flush()
    finally:
        if own:
            pool.shutdown(wait=True, cancel_futures=True)
    return [(p, pipeline.results.get(i)) for i, p in enumerate(prepared)]


_END: Any = object()


def va_process_pool(workers: int = PREPARE_WORKERS) -> ProcessPoolExecutor:
    """A process pool for `va_pipeline_run(..., executor=...)` with `prepare=process_prepare(...)`: the
    alternative the benchmark measures against threads (fork: the children inherit Django's settings)."""
    import multiprocessing

    return ProcessPoolExecutor(max_workers=max(1, workers), mp_context=multiprocessing.get_context("fork"))


def process_prepare(preprocess: Callable[[np.ndarray, list[int]], np.ndarray]
                    ) -> Callable[[tuple[bytes, list[int] | None]], PreparedFace | Exception]:
    """The picklable per-item function for a process pool: items are (image bytes, body box)."""
    return _ProcessPrepare(preprocess)


@dataclass(frozen=True)
class _ProcessPrepare:
    preprocess: Callable[[np.ndarray, list[int]], np.ndarray]

    def __call__(self, item: tuple[bytes, list[int] | None]) -> PreparedFace | Exception:
        return _prepare_in_process(item[0], item[1], self.preprocess)
