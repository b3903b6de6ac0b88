"""gunicorn.conf.py, which the Docker image and docker-compose rely on for the web process's size: read
as gunicorn reads it (`--print-config` from the repository root, where the image runs it)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _config(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_BIND",
                                                               "GUNICORN_TIMEOUT"}}
    return subprocess.run([sys.executable, "-m", "gunicorn", "--print-config", "evalplatform.wsgi:application"],
                          cwd=REPO, env={**clean, **env}, capture_output=True, text=True, timeout=120)


def _settings(out: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in out.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def test_it_sizes_the_web_process_as_the_rating_benchmark_measured_it() -> None:
    done = _config()
    assert done.returncode == 0, done.stderr[-2000:]
    got = _settings(done.stdout)
    assert got["config"].endswith("gunicorn.conf.py")
    assert got["workers"] == str(2 * (os.cpu_count() or 1) + 1)
    assert (got["worker_class"], got["threads"], got["keepalive"], got["timeout"]) == ("gthread", "1", "30", "60")
    assert got["bind"] == "['0.0.0.0:8000']"


def test_the_environment_overrides_it() -> None:
    done = _config(WEB_CONCURRENCY="3", GUNICORN_THREADS="4", GUNICORN_BIND="127.0.0.1:9000", GUNICORN_TIMEOUT="120")
    assert done.returncode == 0, done.stderr[-2000:]
    got = _settings(done.stdout)
    assert (got["workers"], got["threads"], got["bind"], got["timeout"]) == ("3", "4", "['127.0.0.1:9000']", "120")


@pytest.mark.parametrize(("name", "value"), [("WEB_CONCURRENCY", "0"), ("GUNICORN_THREADS", "many"),
                                             ("GUNICORN_TIMEOUT", "-5")])
def test_a_bad_value_stops_it_naming_the_variable(name: str, value: str) -> None:
    done = _config(**{name: value})
    assert done.returncode != 0
    assert f"{name}={value!r} must be a positive whole number" in done.stdout + done.stderr


def test_the_image_and_compose_leave_the_size_to_it() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    compose = (REPO / "docker-compose.yml").read_text()
    assert 'CMD ["gunicorn", "evalplatform.wsgi:application"]' in dockerfile
    assert "--workers" not in dockerfile + compose
