#!/usr/bin/env bash
# The test command (README; .ci/run calls exactly this): set-up, then the whole suite on PostgreSQL,
# Redis and real Celery workers, in .venv (or PYTHON). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
LOG_TAG=test
scripts/setup.sh --test
# The services setup.sh chose (the machine's own, or private ones under var/).
set -a
. "$SERVICES_ENV"
set +a
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
log "pytest with $PY; DATABASE_URL=$DATABASE_URL REDIS_URL=$REDIS_URL"
# pytest exits 5 when it collected no test: that fails this script too, as it should.
exec "$PY" -m pytest -p no:cacheprovider --timeout=600 "$@"
