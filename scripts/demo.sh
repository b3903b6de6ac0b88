#!/usr/bin/env bash
# The demo command (README): set-up, then the whole pipeline on the embedded default (SQLite, eager
# Celery, the sample faces from ../shared/assets), then the site on http://127.0.0.1:8000/.
# With DATABASE_URL and REDIS_URL set it runs the same on PostgreSQL with real workers.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
"${PYTHON:-python3}" manage.py demo "$@"
exec "${PYTHON:-python3}" manage.py runserver "${DEMO_ADDR:-127.0.0.1:8000}"
