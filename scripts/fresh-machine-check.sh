#!/usr/bin/env bash
# The README's two commands on a freshly bootstrapped system, as a new user would run them.
#
#   scripts/fresh-machine-check.sh [--distro debian12|ubuntu2404] [--work DIR] [--host-wheels] [--pip-cache DIR]
#                                  [--rebuild] [--keep]
#
# Bootstraps a minimal root (debootstrap --variant=minbase, plus git, python3, python3-pip, ca-certificates:
# what the issue's "minimal image" had), clones the committed HEAD of this repository into it (no
# ../shared beside it), and runs there, as root, `scripts/demo.sh` (until its site answers) and
# `scripts/test.sh`. Everything runs in a private network namespace (unshare --net) whose only way out is
# slirp4netns with the host's loopback disabled: the host's own PostgreSQL and Redis on 127.0.0.1 cannot
# answer, so the set-up must bring its own; the package registries are reached through slirp's NAT.
# Prints PASS/FAIL per step with timings; logs under WORK/logs/. Needs root, debootstrap, slirp4netns and
# util-linux's unshare/nsenter. Takes long (an hour on 2 cores): not part of .ci/run.
#
#   --host-wheels   offer the host's pip find-links folder (e.g. a local CPU torch wheel) read-only inside
#                   the root, as a machine with such a folder would have; without it torch comes from
#                   PyTorch's CPU index or, when that is unreachable, PyPI's CUDA build (several GB)
#   --pip-cache DIR use DIR as pip's cache inside the root (a copy is not made: it is written to); saves the
#                   downloads and the llama-cpp-python compile on a second run
#   --rebuild       bootstrap again instead of reusing WORK/cache/<distro>.tar
#   --keep          keep the root afterwards (WORK/root-<distro>)
#   --reuse         run the steps again in a root kept earlier (no bootstrap, no clone)
#   --only demo|test  run only that one of the two commands
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
DISTRO=debian12
WORK="$REPO/var/fresh-machine"
HOST_WHEELS=0
PIP_CACHE=
REBUILD=0
KEEP=0
REUSE=0
ONLY=
RUN_ONLY=
DEMO_TIMEOUT=${DEMO_TIMEOUT:-7200}  # the first set-up compiles llama-cpp-python: up to an hour on a busy 2-core machine
TEST_TIMEOUT=${TEST_TIMEOUT:-5400}
while (($#)); do
  case "$1" in
    --distro) DISTRO=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --host-wheels) HOST_WHEELS=1; shift ;;
    --pip-cache) PIP_CACHE=$(realpath "$2"); shift 2 ;;
    --rebuild) REBUILD=1; shift ;;
    --keep) KEEP=1; shift ;;
    --reuse) REUSE=1; KEEP=1; shift ;;
    --only) ONLY=$2; shift 2 ;;
    --run) RUN_ONLY=$2; shift 2 ;;  # debugging: run this in the root instead of the two commands
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$DISTRO" in
  debian12) SUITE=bookworm; MIRROR=http://deb.debian.org/debian; COMPONENTS=main ;;
  # python3-pip is in Ubuntu's universe, which a stock Ubuntu install has enabled.
  ubuntu2404) SUITE=noble; MIRROR=http://archive.ubuntu.com/ubuntu; COMPONENTS=main,universe ;;
  *) echo "unknown --distro $DISTRO (debian12 or ubuntu2404)" >&2; exit 2 ;;
esac
[[ $(id -u) -eq 0 ]] || { echo "run as root (debootstrap, chroot and namespaces need it)" >&2; exit 2; }
for tool in debootstrap slirp4netns unshare nsenter ip git; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install debootstrap slirp4netns iproute2 util-linux git)" >&2; exit 2; }
done

if [[ ! -e /usr/share/debootstrap/scripts/$SUITE ]]; then
  echo "SKIP $DISTRO: this debootstrap has no script for $SUITE (a newer debootstrap and ubuntu-keyring are needed)"
  exit 3
fi

mkdir -p "$WORK/cache" "$WORK/logs"
ROOT="$WORK/root-$DISTRO"
LOGS="$WORK/logs"
NSPID=
SLIRP=
RESULTS=()
FAILED=0

cleanup() {
  [[ -n "$SLIRP" ]] && kill "$SLIRP" 2>/dev/null || true
  [[ -n "$NSPID" ]] && kill "$NSPID" 2>/dev/null || true
  wait 2>/dev/null || true
  if ((KEEP == 0)) && [[ -d "$ROOT" ]]; then
    # Only what the mount namespaces left is gone with them; the root itself is a plain folder.
    rm -rf --one-file-system "$ROOT"
  fi
}
trap cleanup EXIT

step() {  # step NAME COMMAND...: run, time, record PASS/FAIL (the log keeps the output)
  local name=$1; shift
  local start=$SECONDS rc=0
  printf '[check] %-10s ...\n' "$name"
  "$@" >"$LOGS/$name.log" 2>&1 || rc=$?
  local took=$((SECONDS - start))
  if ((rc == 0)); then
    RESULTS+=("PASS  $name  $(printf '%dm%02ds' $((took / 60)) $((took % 60)))")
  else
    RESULTS+=("FAIL  $name  $(printf '%dm%02ds' $((took / 60)) $((took % 60)))  (exit $rc; log: $LOGS/$name.log)")
    FAILED=1
  fi
  printf '[check] %s\n' "${RESULTS[-1]}"
  return "$rc"
}

bootstrap() {
  local tarball="$WORK/cache/$DISTRO.tar"
  rm -rf --one-file-system "$ROOT"
  if ((REBUILD)) || [[ ! -s "$tarball" ]]; then
    debootstrap --variant=minbase --components="$COMPONENTS" --include=git,python3,python3-pip,ca-certificates \
      "$SUITE" "$ROOT" "$MIRROR" || return 1
    tar -C "$ROOT" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  else
    mkdir -p "$ROOT" && tar -C "$ROOT" -xf "$tarball"
  fi
  # Inside the namespace slirp4netns answers DNS on 10.0.2.3.
  echo "nameserver 10.0.2.3" >"$ROOT/etc/resolv.conf"
  printf '127.0.0.1 localhost\n::1 localhost\n' >"$ROOT/etc/hosts"
  echo "deb $MIRROR $SUITE ${COMPONENTS//,/ }" >"$ROOT/etc/apt/sources.list"
  # This workplace reaches the registries through a TLS-inspecting egress whose CA the host trusts: the
  # root gets the same local CAs (a normal machine has none, and needs none).
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
    chroot "$ROOT" update-ca-certificates >/dev/null
  fi
}

clone() {
  # The committed HEAD, as `git clone` gives it to a user; nothing of ../shared comes along.
  mkdir -p "$ROOT/home/tester"
  git clone --quiet --no-local "$REPO" "$ROOT/home/tester/affect-eval"
  git -C "$ROOT/home/tester/affect-eval" log --oneline -1
  test ! -e "$ROOT/home/tester/shared"
}

network() {
  # A network namespace held open by a sleeping process; slirp4netns gives it a NAT'd tap0 to reach the
  # package registries, never the host's loopback services.
  unshare --net -- sleep infinity &
  NSPID=$!
  for _ in $(seq 1 50); do
    [[ "$(readlink "/proc/$NSPID/ns/net")" != "$(readlink /proc/self/ns/net)" ]] && break
    sleep 0.1
  done
  slirp4netns --configure --mtu=65520 --disable-host-loopback "$NSPID" tap0 >"$LOGS/slirp4netns.log" 2>&1 &
  SLIRP=$!
  for _ in $(seq 1 50); do
    nsenter --target "$NSPID" --net ip -4 addr show tap0 2>/dev/null | grep -q 'inet ' && break
    sleep 0.2
  done
  nsenter --target "$NSPID" --net ip link set lo up
  nsenter --target "$NSPID" --net ip -4 addr
  # The host's PostgreSQL must not be visible from inside.
  if nsenter --target "$NSPID" --net bash -c 'exec 3<>/dev/tcp/127.0.0.1/5432' 2>/dev/null; then
    echo "127.0.0.1:5432 answers inside the namespace: not isolated"; return 1
  fi
}

in_root() {  # in_root SCRIPT: bash -lc SCRIPT as root inside the root, in the private network namespace
  local binds=""
  if ((HOST_WHEELS)); then
    local links
    links=$(python3 -m pip config get global.find-links 2>/dev/null || echo "${PIP_FIND_LINKS:-}")
    if [[ -n "$links" && -d "$links" ]]; then
      binds+="mkdir -p \"\$R$links\" && mount --bind -o ro \"$links\" \"\$R$links\"; "
      export FRESH_FIND_LINKS=$links
    fi
  fi
  if [[ -n "$PIP_CACHE" ]]; then
    binds+="mkdir -p \"\$R/root/.cache/pip\" && mount --bind \"$PIP_CACHE\" \"\$R/root/.cache/pip\"; "
  fi
  R="$ROOT" nsenter --target "$NSPID" --net -- unshare --mount --pid --fork --kill-child -- bash -c "
    set -e
    mount --make-rprivate /
    mount --rbind /dev \"\$R/dev\"
    mount -t tmpfs -o mode=1777 shm \"\$R/dev/shm\"
    mount -t proc proc \"\$R/proc\"
    mount -t sysfs sys \"\$R/sys\"
    $binds
    exec chroot \"\$R\" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
      \${FRESH_FIND_LINKS:+PIP_FIND_LINKS=\$FRESH_FIND_LINKS} /bin/bash -lc \"\$0\"
  " "$1"
}

demo() {
  # The README's first command, until the site serves its pages (demo.sh ends in runserver).
  in_root "
    cd /home/tester/affect-eval
    scripts/demo.sh >/tmp/demo.log 2>&1 &
    pid=\$!
    end=\$((SECONDS + $DEMO_TIMEOUT))
    until python3 -c 'import urllib.request; urllib.request.urlopen(\"http://127.0.0.1:8000/accounts/login/\", timeout=5)' 2>/dev/null; do
      if ! kill -0 \$pid 2>/dev/null; then cat /tmp/demo.log; echo 'demo.sh exited before serving'; exit 1; fi
      if ((SECONDS > end)); then cat /tmp/demo.log; echo 'demo.sh did not serve within ${DEMO_TIMEOUT}s'; exit 1; fi
      sleep 5
    done
    cat /tmp/demo.log
    python3 - <<'EOF'
import urllib.error, urllib.request
pages = ['/', '/accounts/login/', '/s/demo-study/join?PROLIFIC_PID=fresh-check&STUDY_ID=demo&SESSION_ID=s1']
failed = 0
for page in pages:
    try:
        with urllib.request.urlopen('http://127.0.0.1:8000' + page, timeout=30) as r:
            print('page', page, r.status, len(r.read()), 'bytes')
    except urllib.error.HTTPError as e:
        print('page', page, 'HTTP', e.code); failed += 1
raise SystemExit(failed)
EOF
  "
}

tests() {
  in_root "cd /home/tester/affect-eval && timeout $TEST_TIMEOUT scripts/test.sh -q"
}

START=$SECONDS
echo "[check] $DISTRO ($SUITE) in $ROOT; logs in $LOGS"
if ((REUSE)); then
  [[ -d "$ROOT/home/tester/affect-eval" ]] || { echo "--reuse: no kept root at $ROOT" >&2; exit 2; }
  LOGS="$LOGS/reuse-$(date +%H%M%S)"; mkdir -p "$LOGS"
else
  step bootstrap bootstrap || exit 1
  step clone clone || exit 1
fi
step network network || exit 1
if [[ -n "$RUN_ONLY" ]]; then in_root "$RUN_ONLY"; exit; fi
[[ "$ONLY" == test ]] || step demo demo || true
[[ "$ONLY" == demo ]] || step test tests || true
echo
echo "[check] $DISTRO, tested $(git -C "$ROOT/home/tester/affect-eval" log --oneline -1 2>/dev/null), host wheels: $((HOST_WHEELS)), pip cache: ${PIP_CACHE:-none}"
printf '  %s\n' "${RESULTS[@]}"
echo "[check] total $(((SECONDS - START) / 60)) min: $( ((FAILED)) && echo FAIL || echo PASS)"
tail -n 3 "$LOGS/test.log" 2>/dev/null | sed 's/^/  test: /' || true
exit "$FAILED"
