from __future__ import annotations

import os

from celery import Celery

# Importing this package (gunicorn loading evalplatform.wsgi, `celery -A evalplatform`) fixes the settings
# module, so this default is the one a deployment gets when DJANGO_SETTINGS_MODULE is forgotten: the
# hardened settings, which refuse to start without a real SECRET_KEY. manage.py (the demo, development)
# sets `evalplatform.settings` before it gets here; tests set `evalplatform.settings_test`.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalplatform.settings_production")

app = Celery("evalplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
