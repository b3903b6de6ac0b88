"""docker-compose.yml cannot run here (no Docker engine): check that every service command names a real
entry point of this project and that every environment name it sets is a setting."""
from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import yaml
from django.conf import settings

from tests.conftest import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def _argv(service: str) -> list[str]:
    command = SERVICES[service]["command"]
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if argv[:2] == ["sh", "-c"]:
        argv = shlex.split(argv[2].split("&&")[-1])
    return argv


def test_it_declares_every_service_of_the_design() -> None:
    assert {"web", "worker-va", "worker-llm", "worker", "beat", "postgres", "redis", "ollama"} <= set(SERVICES)
    assert SERVICES["ollama"]["profiles"] == ["ollama"]


def test_the_app_services_share_one_image_and_differ_only_in_command() -> None:
    app = [s for s in SERVICES.values() if s.get("build")]
    assert len(app) == 5
    assert {s["image"] for s in app} == {"affect-eval:latest"}
    without_command = [{k: v for k, v in s.items() if k not in {"command", "ports"}} for s in app]
    assert all(s == without_command[0] for s in without_command)


def test_the_web_command_names_the_wsgi_application() -> None:
    argv = _argv("web")
    assert argv[0] == "gunicorn"
    module, attr = argv[1].split(":")
    assert callable(getattr(importlib.import_module(module), attr))
    assert "python manage.py migrate --noinput" in SERVICES["web"]["command"]


def test_the_worker_commands_consume_queues_that_tasks_are_routed_to() -> None:
    from inference.stages import QUEUES

    # Chunks go to their stage's queue from the stage registry; everything else to the default queue.
    assert not hasattr(settings, "CELERY_TASK_ROUTES")
    routed = set(QUEUES) | {settings.CELERY_TASK_DEFAULT_QUEUE}
    consumed: set[str] = set()
    for name in ("worker-va", "worker-llm", "worker"):
        argv = _argv(name)
        assert argv[:4] == ["celery", "-A", "evalplatform", "worker"]
        consumed |= set(argv[argv.index("-Q") + 1].split(","))
    assert consumed == routed == {"va", "llm", "embed", "default"}
    assert "threads" in _argv("worker-llm"), "LLM calls wait on the network: a thread pool, not a CPU per call"
    importlib.import_module("evalplatform.celery")


def test_the_beat_command_runs_the_schedule_of_settings() -> None:
    assert _argv("beat")[:4] == ["celery", "-A", "evalplatform", "beat"]
    from evalplatform.celery import app

    app.loader.import_default_modules()
    app.autodiscover_tasks(force=True)
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert entry["task"] in app.tasks, entry["task"]


def test_every_environment_name_is_a_setting_and_listed_in_env_example() -> None:
    env_example = (REPO / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z_]+)=", env_example, flags=re.M))
    settings_source = (REPO / "evalplatform" / "settings.py").read_text()
    read_by_settings = set(re.findall(r'env_\w+\(\s*"([A-Z_]+)"', settings_source))
    names = set(COMPOSE["x-app"]["environment"]) - {"DJANGO_SETTINGS_MODULE"}
    assert names <= read_by_settings, names - read_by_settings
    assert read_by_settings <= listed, read_by_settings - listed
    assert Path(REPO / "evalplatform" / "settings_production.py").exists()
