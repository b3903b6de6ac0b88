"""Shared fixtures: named personas (healthchecks style) and a real Celery worker process."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User

REPO = Path(__file__).resolve().parent.parent
# The model files and public-domain sample faces shipped with the repository (assets/README.md).
ASSETS = REPO / "assets"
FACES = ASSETS / "faces"
# What may not be redistributed lives only in ../shared/assets beside a checkout (the NRC lexicon, the
# Pexels photos, the 14 MB Keras fixture): tests of it use `unshipped_asset` and skip, saying so, without it.
SHARED_ASSETS = REPO.parent / "shared" / "assets"


GROUP_PEOPLE = [("obama.jpg", None), ("biden.jpg", 1100), ("astronaut.png", None), ("obama-speech.jpg", 700)]


def group_photo() -> tuple[np.ndarray, list[list[int]]]:
    """Four shipped portraits side by side, 360 px high (each cut to its top `rows` first): a several-face
    image made only of public-domain photos. Returns the BGR image and each person's tile as [x, y, w, h];
    the last person's face is the largest."""
    tiles, boxes, x = [], [], 0
    for name, rows in GROUP_PEOPLE:
        image = cv2.imread(str(FACES / name))[:rows]
        scale = 360 / image.shape[0]
        tile = cv2.resize(image, (round(image.shape[1] * scale), 360), interpolation=cv2.INTER_AREA)
        tiles.append(tile)
        boxes.append([x, 0, tile.shape[1], 360])
        x += tile.shape[1]
    return np.hstack(tiles), boxes


def group_photo_jpeg() -> bytes:
    ok, encoded = cv2.imencode(".jpg", group_photo()[0], [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return encoded.tobytes()


def unshipped_asset(relative: str, why: str) -> Path:
    """`../shared/assets/<relative>`, or skip the test naming the file and why it is not in the repository."""
    path = SHARED_ASSETS / relative
    if not path.exists():
        pytest.skip(f"needs {relative}, which is not shipped in assets/ ({why}); put ../shared/assets beside "
                    "the checkout to run it")
    return path


@pytest.fixture
def admin_user(db) -> User:
    return User.objects.create_superuser("alice-admin", "alice@example.org", "password-alice")


@pytest.fixture
def researcher(db) -> User:
    from annotations.models import RESEARCHER_GROUP

    user = User.objects.create_user("rita-researcher", "rita@example.org", "password-rita", is_staff=True)
    group, _ = Group.objects.get_or_create(name=RESEARCHER_GROUP)
    user.groups.add(group)
    return user


@pytest.fixture
def annotator_user(db) -> User:
    return User.objects.create_user("anna-annotator", "anna@example.org", "password-anna")


@pytest.fixture
def outsider(db) -> User:
    return User.objects.create_user("oscar-outsider", "oscar@example.org", "password-oscar")


@pytest.fixture(autouse=True)
def _media_root(tmp_path, settings) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


def _worker_env() -> dict[str, str]:
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "evalplatform.settings_test"
    # The worker must write into the test database pytest-django created, not the base one.
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env["CELERY_TASK_ALWAYS_EAGER"] = "0"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def celery_worker_process(transactional_db, settings, tmp_path) -> Iterator[subprocess.Popen]:
    """A real `celery worker` subprocess consuming every queue over the real Redis broker.

    Yields the Popen; tests may SIGKILL it (crash recovery) and start another with
    `start_worker()` from this module.
    """
    settings.CELERY_TASK_ALWAYS_EAGER = False
    from evalplatform.celery import app

    app.conf.task_always_eager = False
    broker_pools_reset(app)
    queues_purge(app)
    proc = start_worker(tmp_path / "worker.log", settings.MEDIA_ROOT)
    try:
        yield proc
    finally:
        stop_worker(proc)
        app.conf.task_always_eager = True


def broker_pools_reset(app) -> None:
    """Drop every cached broker connection/producer pool (the app's and kombu's global registry), so the
    next publish opens fresh connections to `app.conf.broker_url` — after a test switched brokers."""
    from kombu import pools

    if app._pool is not None:
        app._pool.force_close_all()
    app._pool = None
    app.amqp._producer_pool = None
    pools.reset()


def queues_purge(app) -> None:
    """Empty every queue over a fresh connection (not the app's pools, which a test may have closed)."""
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in ("default", "va", "llm", "embed"):
            channel.queue_purge(queue)


def start_worker(log_path: Path, media_root: Path, queues: str = "default,va,llm,embed") -> subprocess.Popen:
    env = _worker_env()
    env["MEDIA_ROOT"] = str(media_root)
    log = open(log_path, "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "evalplatform", "worker", "-Q", queues, "--pool", "threads",
         "--concurrency", "4", "--loglevel", "INFO", "--without-heartbeat", "--without-mingle",
         "--without-gossip", "-n", f"test-{os.getpid()}-{time.time_ns()}@%h"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"celery worker exited early; see {log_path}:\n{log_path.read_text()[-3000:]}")
        if b"ready." in log_path.read_bytes():
            return proc
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"celery worker not ready in 60 s; see {log_path}")


def stop_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def embedded_broker(settings, tmp_path) -> Iterator[Path]:
    """Switch this process's Celery app to the demo's embedded broker (kombu filesystem transport) in a
    temporary folder, not eager; yields the folder the message files are written to."""
    from evalplatform.celery import app

    folder = tmp_path / "broker"
    options = {"data_folder_in": str(folder / "queue"), "data_folder_out": str(folder / "queue"),
               "control_folder": str(folder / "control"), "store_processed": False}
    for sub in ("queue", "control"):
        (folder / sub).mkdir(parents=True)
    saved = (app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_always_eager)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_always_eager = "filesystem://", options, False
    broker_pools_reset(app)
    try:
        yield folder
    finally:
        app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_always_eager = saved
        broker_pools_reset(app)


@pytest.fixture
def embedded_worker_process(transactional_db, embedded_broker, settings, tmp_path) -> Iterator[subprocess.Popen]:
    """`manage.py embedded_worker` (what scripts/demo.sh runs) on the embedded broker's folder and the test
    database: one thread, so chunks finish one after another as in a small demo machine."""
    env = _worker_env()
    env.update({"CELERY_BROKER_URL": "filesystem://", "CELERY_BROKER_FOLDER": str(embedded_broker),
                "MEDIA_ROOT": str(settings.MEDIA_ROOT), "DATA_DIR": str(tmp_path)})
    env.pop("REDIS_URL", None)
    log_path = tmp_path / "embedded-worker.log"
    log = open(log_path, "ab")
    proc = subprocess.Popen([sys.executable, "manage.py", "embedded_worker", "--concurrency", "1", "--no-beat"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while b"ready." not in log_path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_worker(proc)
            raise RuntimeError(f"embedded worker did not start; see {log_path}:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    try:
        yield proc
    finally:
        stop_worker(proc)
