#!/usr/bin/env bash
# Throwaway virtual environments for the peer systems the benchmarks compare against.
# They live under benchmarks/peers/.venvs/ (ignored by git) and never touch the project's own Python.
#   benchmarks/peers/setup.sh tf       TensorFlow 2.15 (the authors' Keras FaceChannel)
#   benchmarks/peers/setup.sh potato   potato-annotation 2.12.1 + gunicorn
#   benchmarks/peers/setup.sh all
# Re-running is cheap: an environment that already imports its peer is left alone.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venvs="$here/.venvs"
py="${PEER_PYTHON:-python3}"
mkdir -p "$venvs"

make_venv() {  # name, import check, pip args...
  local name="$1" check="$2"; shift 2
  local dir="$venvs/$name"
  if [ -x "$dir/bin/python" ] && "$dir/bin/python" -c "$check" >/dev/null 2>&1; then
    echo "peer $name: ready ($dir)"; return 0
  fi
  rm -rf "$dir"
  "$py" -m venv "$dir"
  # The machine-wide pip constraints cap torch only; peers must not inherit them or the project's index pins.
  PIP_CONSTRAINT= "$dir/bin/python" -m pip install --quiet --upgrade pip
  PIP_CONSTRAINT= "$dir/bin/python" -m pip install --quiet "$@"
  "$dir/bin/python" -c "$check"
  echo "peer $name: installed ($dir)"
}

want="${1:-all}"
status=0
if [ "$want" = tf ] || [ "$want" = all ]; then
  make_venv tf215 "import tensorflow as tf, h5py; assert tf.__version__.startswith('2.15')" \
    "tensorflow-cpu==2.15.1" "h5py" "numpy<2" || { echo "peer tf215: could not be installed" >&2; status=1; }
fi
if [ "$want" = potato ] || [ "$want" = all ]; then
  make_venv potato "import potato" "potato-annotation==2.12.1" "gunicorn" \
    || { echo "peer potato: could not be installed" >&2; status=1; }
fi
exit $status
