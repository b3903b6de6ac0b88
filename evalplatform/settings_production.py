"""Deployment settings: `DJANGO_SETTINGS_MODULE=evalplatform.settings_production`.

`python manage.py check --deploy` is clean with these (a test asserts it). SECRET_KEY and
ALLOWED_HOSTS must come from the environment; there is no insecure fallback here: a placeholder or
low-entropy key is refused (`evalplatform.secret_key`). This is also the default of `wsgi.py`, so a
server started without DJANGO_SETTINGS_MODULE runs hardened (or refuses to start), never in debug.
"""
from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

from .secret_key import secret_key_weakness
from .settings import *  # noqa: F401,F403
from .settings import env_bool, env_int, env_list

DEBUG = False
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if problem := secret_key_weakness(SECRET_KEY):
    raise ImproperlyConfigured(
        f"SECRET_KEY must be set to a random string of at least 50 characters: {problem}. Generate one with "
        "python -c \"import secrets; print(secrets.token_urlsafe(50))\"")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must list the site's host names (comma-separated).")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
WHITENOISE_USE_FINDERS = False  # production serves the collected, hashed files only
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
