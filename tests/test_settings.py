"""Settings: production hardening passes `check --deploy`, and the env drives the database and broker."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.utils import get_random_secret_key

from evalplatform.secret_key import secret_key_weakness
from tests.conftest import REPO

PROD_ENV = {
    "DJANGO_SETTINGS_MODULE": "evalplatform.settings_production",
    "SECRET_KEY": "gMbfFYK9ZMSWYK1yCJE7Af_DVyjBQR3_5K4ZD2OJ2y216IXMmdYeXYLXN_GiSTMhwx4",  # secrets.token_urlsafe(50)
    "ALLOWED_HOSTS": "eval.example.org",
}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DEBUG"}}
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


def test_it_defaults_to_sqlite_and_an_embedded_broker_for_the_demo() -> None:
    code = ("from django.conf import settings as s; "
            "print(s.DATABASES['default']['ENGINE'], s.CELERY_TASK_ALWAYS_EAGER, s.CELERY_BROKER_URL)")
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_TASK_ALWAYS_EAGER"}}
    env["DJANGO_SETTINGS_MODULE"] = "evalplatform.settings"
    result = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    # No server needed, and no eager tasks: a real worker (manage.py embedded_worker) reads the broker's files.
    assert result.stdout.split() == ["django.db.backends.sqlite3", "False", "filesystem://"], result.stderr


def test_it_uses_postgres_and_redis_from_the_environment(settings) -> None:
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    assert settings.CELERY_BROKER_URL.startswith("redis://")
    assert settings.CELERY_TASK_SERIALIZER == "json" and settings.CELERY_ACCEPT_CONTENT == ["json"]
    assert settings.CELERY_TASK_TIME_LIMIT > settings.CELERY_TASK_SOFT_TIME_LIMIT > 0


def test_it_refuses_the_env_example_placeholder_secret_in_production() -> None:
    example = dict(line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
                   if "=" in line and not line.startswith("#"))
    result = _manage("check", env=dict(PROD_ENV, SECRET_KEY=example["SECRET_KEY"]))
    assert result.returncode != 0
    assert "placeholder" in result.stderr


@pytest.mark.parametrize("key", [
    "x" * 64,
    "abcdefghij" * 5,
    "abcdefghijklmnopqrstuvwxyz" * 2,
    "benchmark-only-" + "x" * 40,
    "k" * 20 + "-production-secret-for-the-deploy-check-0123456789abcdef",
    "0101010110" + "1001011010" + "0110101001" + "1010010110" + "0101101001",  # 2 symbols: 50 bits
])
def test_it_refuses_low_entropy_secret_keys(key: str) -> None:
    assert secret_key_weakness(key) is not None


@pytest.mark.parametrize("make", [get_random_secret_key, lambda: secrets.token_hex(32),
                                  lambda: secrets.token_hex(25), lambda: secrets.token_urlsafe(50)])
def test_it_accepts_random_secret_keys(make) -> None:
    for _ in range(200):
        key = make()
        assert secret_key_weakness(key) is None, key


def test_the_production_settings_refuse_a_low_entropy_key() -> None:
    result = _manage("check", env=dict(PROD_ENV, SECRET_KEY="abcdefghij" * 6))
    assert result.returncode != 0
    assert "repeats a run" in result.stderr


@pytest.mark.parametrize(("password", "message"), [
    ("password1234", "too common"),
    ("qwertyuiop", "too common"),
    ("83920175530", "entirely numeric"),
])
def test_it_rejects_common_and_numeric_passwords(db, password: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        validate_password(password, user=User(username="rita"))


def test_it_accepts_a_strong_password(db) -> None:
    validate_password("plum-orbit-Tandem-9", user=User(username="rita"))


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DEBUG", "SECRET_KEY"}}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=full_env, capture_output=True, text=True,
                          timeout=120)


def test_the_wsgi_entry_point_defaults_to_production_settings() -> None:
    code = "import evalplatform.wsgi; from django.conf import settings as s; print(s.SETTINGS_MODULE, s.DEBUG)"
    result = _python(code, {"SECRET_KEY": PROD_ENV["SECRET_KEY"], "ALLOWED_HOSTS": "eval.example.org"})
    assert result.stdout.split() == ["evalplatform.settings_production", "False"], result.stderr
    # Without a real secret a forgotten DJANGO_SETTINGS_MODULE means no server, not a debug server.
    result = _python("import evalplatform.wsgi", {})
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def test_the_development_settings_do_not_debug_unless_asked() -> None:
    code = "import django; django.setup(); from django.conf import settings as s; print(s.DEBUG)"
    assert _python(code, {"DJANGO_SETTINGS_MODULE": "evalplatform.settings"}).stdout.split() == ["False"]
    asked = _python(code, {"DJANGO_SETTINGS_MODULE": "evalplatform.settings", "DEBUG": "1"})
    assert asked.stdout.split() == ["True"]


def test_it_serves_static_files_without_debug_or_collectstatic(client, settings) -> None:
    """The demo runs with DEBUG off: WhiteNoise serves the app folders' files itself."""
    assert settings.DEBUG is False
    assert client.get("/static/annotations/rate.js").status_code == 200
    assert client.get("/static/admin/css/base.css").status_code == 200


@pytest.mark.parametrize("value", ["sometimes", "-1", "2.5"])
def test_it_names_a_bad_prepare_threshold(value) -> None:
    env = {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test", "DB_PREPARE_THRESHOLD": value,
           "DJANGO_SETTINGS_MODULE": "evalplatform.settings"}
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert f"DB_PREPARE_THRESHOLD='{value}' must be a whole number >= 0 or 'off'" in result.stderr


def test_it_reads_the_prepare_threshold_and_off() -> None:
    code = "from django.conf import settings as s; print(s.DATABASES['default']['OPTIONS']['prepare_threshold'])"
    for value, shown in (("off", "None"), ("7", "7"), ("", "0")):
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        env.update({"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test", "DB_PREPARE_THRESHOLD": value,
                    "DJANGO_SETTINGS_MODULE": "evalplatform.settings"})
        result = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.stdout.strip() == shown, result.stderr
