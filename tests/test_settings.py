"""Settings: production hardening passes `check --deploy`, and the env drives the database and broker."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

PROD_ENV = {
    "DJANGO_SETTINGS_MODULE": "evalplatform.settings_production",
    "SECRET_KEY": "k" * 20 + "-production-secret-for-the-deploy-check-0123456789abcdef",
    "ALLOWED_HOSTS": "eval.example.org",
}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE"}}
    full_env.update(env)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=120)


def test_it_passes_the_deploy_check_with_production_settings() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PROD_ENV)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues" in result.stdout


def test_it_refuses_production_without_a_real_secret() -> None:
    env = dict(PROD_ENV, SECRET_KEY="short")
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_it_refuses_production_without_allowed_hosts() -> None:
    env = dict(PROD_ENV, ALLOWED_HOSTS="")
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "ALLOWED_HOSTS must list" in result.stderr


def test_it_defaults_to_sqlite_and_eager_tasks_for_the_demo() -> None:
    code = ("from django.conf import settings as s; "
            "print(s.DATABASES['default']['ENGINE'], s.CELERY_TASK_ALWAYS_EAGER, s.CELERY_BROKER_URL)")
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_TASK_ALWAYS_EAGER"}}
    env["DJANGO_SETTINGS_MODULE"] = "evalplatform.settings"
    result = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["django.db.backends.sqlite3", "True", "memory://"], result.stderr


def test_it_uses_postgres_and_redis_from_the_environment(settings) -> None:
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    assert settings.CELERY_BROKER_URL.startswith("redis://")
    assert settings.CELERY_TASK_SERIALIZER == "json" and settings.CELERY_ACCEPT_CONTENT == ["json"]
    assert settings.CELERY_TASK_TIME_LIMIT > settings.CELERY_TASK_SOFT_TIME_LIMIT > 0
