from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

# A WSGI server is a deployment: without an explicit DJANGO_SETTINGS_MODULE it gets the hardened settings
# (which refuse to start without a real SECRET_KEY and ALLOWED_HOSTS) rather than the demo's.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalplatform.settings_production")

application = get_wsgi_application()
