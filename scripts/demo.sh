#!/usr/bin/env bash
# The demo command (README): set-up, then the whole pipeline on the embedded default (SQLite, a Celery
# worker on an embedded broker, the sample faces shipped in assets/), then the site on http://127.0.0.1:8000/.
# With DATABASE_URL and REDIS_URL set it runs the same on PostgreSQL with real workers.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
LOG_TAG=demo
scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
if [ -z "${REDIS_URL:-}" ]; then
  # No Redis: a real Celery worker on the embedded filesystem broker (DATA_DIR/broker) runs the batches,
  # for `manage.py demo` and for batches queued from the admin; stopped when this script exits.
  "$PY" manage.py embedded_worker --loglevel WARNING &
  WORKER_PID=$!
  trap 'kill "$WORKER_PID" 2>/dev/null; wait "$WORKER_PID" 2>/dev/null || true' EXIT
  trap 'exit 130' INT TERM
fi
"$PY" manage.py demo "$@"
"$PY" manage.py runserver "${DEMO_ADDR:-127.0.0.1:8000}"
