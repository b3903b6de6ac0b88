#!/usr/bin/env bash
# The test command (README; .ci/run calls exactly this): set-up, then the whole suite on PostgreSQL,
# Redis and real Celery workers. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# pytest exits 5 when it collected no test: that fails this script too, as it should.
exec "${PYTHON:-python3}" -m pytest -p no:cacheprovider --timeout=600 "$@"
