# Sourced by scripts/setup.sh, test.sh and demo.sh: which Python they use.
# PYTHON set: that interpreter as it is (no virtual environment). Otherwise the repository's `.venv`,
# which scripts/setup.sh creates.
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY=${PYTHON:-$VENV/bin/python}
# The test services chosen by `scripts/setup.sh --test` (the machine's own, or private ones under var/).
SERVICES_ENV="$ROOT/var/test-services.env"

log() { printf '\033[1m[%s]\033[0m %s\n' "${LOG_TAG:-setup}" "$*"; }
die() { printf '\033[1;31m[%s] ERROR:\033[0m %s\n' "${LOG_TAG:-setup}" "$*" >&2; exit 1; }
