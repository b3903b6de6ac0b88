"""Settings for the test suite: PostgreSQL and Redis on loopback (started by .ci/run).

Unit tests run Celery tasks eagerly; the tests marked `celery_worker` switch eager off and run a real
worker process against the same Redis and test database.
"""
from __future__ import annotations

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
os.environ.setdefault("DATA_DIR", "/tmp/affect-eval-test")

from .settings import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed; tests only

# Parallel test runs on one machine (several checkouts or developers) each set their own suffix so
# they never drop each other's test database.
DATABASES["default"]["TEST"] = {"NAME": "test_affect_eval" + os.environ.get("TEST_DB_SUFFIX", "")}  # noqa: F405
