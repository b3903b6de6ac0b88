"""gunicorn's settings for the web process (the Docker image and docker-compose run it from /app, where
gunicorn reads this file by default; `gunicorn -c gunicorn.conf.py ...` elsewhere).

Sized as benchmarks/rating_load.py measured the rating flow (docs/annotation.md): 2 x cores + 1 worker
processes of one thread each, gthread so that a participant's keep-alive connection is reused between the
page and the submit. Environment overrides: WEB_CONCURRENCY (workers), GUNICORN_THREADS (threads per
worker), GUNICORN_BIND (default 0.0.0.0:8000), GUNICORN_TIMEOUT (seconds, default 60). A bad value stops
gunicorn at start with a message naming the variable.
"""
import os


def _positive(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise SystemExit(f"{name}={raw!r} must be a positive whole number")
    return value


bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = _positive("WEB_CONCURRENCY", 2 * (os.cpu_count() or 1) + 1)
worker_class = "gthread"
threads = _positive("GUNICORN_THREADS", 1)
keepalive = 30
timeout = _positive("GUNICORN_TIMEOUT", 60)
