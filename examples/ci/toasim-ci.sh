#!/bin/sh
# toasim-ci.sh: run your server and your client tests behind a toasim FULLNAT
# gateway, in any CI that runs as root or has passwordless sudo. When the
# tests fail, keep the pcaps of both sides, the gateway's counters and the
# logs as artifacts.
#
# POSIX sh (dash, bash, busybox ash). Linux only, as toasim is.
#
#   SERVER_CMD='node server.js' TEST_CMD='npm test' sh toasim-ci.sh
#
# Configuration is by environment variable (sh toasim-ci.sh --help lists them);
# README.md next to this file explains them, with a worked example.
#
# What it does, in order:
#   1. installs toasim into the current project unless it is already there
#      (npx --no-install toasim --version), as the user who runs the script;
#   2. becomes root with sudo when it is not root already;
#   3. toasim doctor --need $TOASIM_NEED --install: installs the missing
#      Debian packages (iproute2, nftables, clang, bpftool...) or says why not;
#   4. toasim up --json in the background, waits for its ready line;
#   5. toasim capture of the client and the server side, into a temp folder;
#   6. your server, SERVER_CMD, in the server namespace (toasim exec rs);
#   7. waits until it is ready (SERVER_READY: a listening port, or a command);
#   8. your tests, TEST_CMD, in the client namespace (toasim exec client);
#   9. on failure copies client.pcap, server.pcap, stats.json, server.log and
#      gateway.log into $ARTIFACTS; on success keeps nothing;
#  10. always stops the server, the captures (SIGINT, so the pcaps are closed
#      properly) and the gateway (SIGTERM, then toasim down --id ID).
#
# Exit codes:
#   0        the tests passed
#   N        the tests failed with exit code N (124: they ran past TEST_TIMEOUT)
#   2        usage or configuration error (nothing was started)
#   3        setup failed: toasim could not be installed, this machine lacks
#            what toasim needs (toasim doctor), or the gateway or a capture
#            did not start
#   4        the server did not get ready (it exited, or SERVER_READY was not
#            met within SERVER_READY_TIMEOUT); artifacts are kept
#   129/130/143  interrupted by SIGHUP/SIGINT/SIGTERM; artifacts are kept
# Tests whose own exit code is 2, 3 or 4 are told apart by the script's last
# line on stderr, "toasim-ci: error: ...", which says which step failed.

set -eu
# TOASIM_UP_ARGS is split on blanks below; no file name globbing, ever.
set -f

ME="toasim-ci"

usage() {
  cat <<'EOF'
usage: [VAR=value ...] sh toasim-ci.sh

Runs SERVER_CMD in the server namespace and TEST_CMD in the client namespace
of a toasim gateway; keeps pcaps, counters and logs in $ARTIFACTS when the
tests fail. Runs as root, or becomes root with sudo.

Required:
  SERVER_CMD            your server, a shell command run with
                        toasim exec rs -- sh -c "$SERVER_CMD"
                        (servers have 192.0.2.10 and 2001:db8:5::10; the default
                        services send 203.0.113.10:80 to 192.0.2.10:8080 and
                        udp 203.0.113.10:53 to 192.0.2.10:5353)
  TEST_CMD              your client tests, a shell command run with
                        toasim exec client -- sh -c "$TEST_CMD"
                        (clients have 198.51.100.7 and may bind any address of
                        198.51.100.0/24 and 2001:db8:c::/64)

Optional (default in brackets):
  SERVER_READY          when the server is ready [8080]: a TCP port (8080 or
                        tcp:8080) or UDP port (udp:5353) something listens on in
                        the server namespace, "none" to not wait, or else a
                        shell command run in the server namespace until it
                        exits 0 (e.g. "test -s /tmp/ready")
  SERVER_READY_TIMEOUT  seconds to wait for SERVER_READY [30]
  TEST_TIMEOUT          seconds the tests may run, 0 for no limit [0]
  ARTIFACTS             folder for the artifacts of a failed run
                        [./toasim-artifacts]
  TOASIM_PACKAGE        what to npm install when toasim is not installed in
                        this project: a version spec or a tarball [toasim]
  TOASIM_PROFILE        the gateway profile (toasim up --help) [dpvs]
  TOASIM_UP_ARGS        more flags for toasim up, split on blanks, e.g.
                        "--service tcp:203.0.113.10:443=192.0.2.10:8443" []
  TOASIM_UP_TIMEOUT     seconds to wait for the gateway's ready line; the first
                        run compiles the eBPF decoder [120]
  TOASIM_NEED           features toasim doctor checks, "" to skip the check
                        [gateway,ebpf]
  TOASIM_APT            1: toasim doctor --install installs missing Debian
                        packages; 0: only check [1]

Exit codes: 0 tests passed; N the tests' exit code (124: TEST_TIMEOUT);
2 usage or configuration; 3 toasim install, doctor, gateway or capture failed;
4 the server did not get ready; 129/130/143 interrupted.
EOF
}

log() {
  printf '%s: %s\n' "$ME" "$*" >&2
}

# die CODE MESSAGE: exit with CODE. Once the cleanup is armed (the trap
# below), it prints MESSAGE as the last line on stderr, after its own lines.
REASON=""
ARMED=0
die() {
  code=$1
  shift
  REASON=$*
  [ "$ARMED" = 1 ] || log "error: $*"
  exit "$code"
}

for arg in "$@"; do
  case $arg in
  -h | --help)
    usage
    exit 0
    ;;
  *)
    usage >&2
    die 2 "unknown argument \"$arg\" (configuration is by environment variable)"
    ;;
  esac
done

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

TOASIM_PACKAGE=${TOASIM_PACKAGE:-toasim}
TOASIM_PROFILE=${TOASIM_PROFILE:-dpvs}
TOASIM_UP_ARGS=${TOASIM_UP_ARGS:-}
TOASIM_UP_TIMEOUT=${TOASIM_UP_TIMEOUT:-120}
TOASIM_NEED=${TOASIM_NEED-gateway,ebpf}
TOASIM_APT=${TOASIM_APT:-1}
SERVER_CMD=${SERVER_CMD:-}
SERVER_READY=${SERVER_READY:-8080}
SERVER_READY_TIMEOUT=${SERVER_READY_TIMEOUT:-30}
TEST_CMD=${TEST_CMD:-}
TEST_TIMEOUT=${TEST_TIMEOUT:-0}
ARTIFACTS=${ARTIFACTS:-./toasim-artifacts}

if [ -z "$SERVER_CMD" ] || [ -z "$TEST_CMD" ]; then
  usage >&2
  [ -n "$SERVER_CMD" ] || die 2 "SERVER_CMD is not set"
  die 2 "TEST_CMD is not set"
fi

whole() { # whole NAME VALUE: a whole number of seconds, or a usage error
  case $2 in
  '' | *[!0-9]*) die 2 "$1 must be a whole number of seconds, not \"$2\"" ;;
  esac
}
whole TOASIM_UP_TIMEOUT "$TOASIM_UP_TIMEOUT"
whole SERVER_READY_TIMEOUT "$SERVER_READY_TIMEOUT"
whole TEST_TIMEOUT "$TEST_TIMEOUT"
case $TOASIM_APT in
0 | 1) ;;
*) die 2 "TOASIM_APT must be 0 or 1, not \"$TOASIM_APT\"" ;;
esac

# SERVER_READY: a port ss can look for, "none", or a command.
READY_PROTO=""
READY_PORT=""
case $SERVER_READY in
none) ;;
tcp:* | udp:*)
  READY_PROTO=${SERVER_READY%%:*}
  READY_PORT=${SERVER_READY#*:}
  ;;
*[!0-9]*) ;;
*)
  READY_PROTO=tcp
  READY_PORT=$SERVER_READY
  ;;
esac
if [ -n "$READY_PROTO" ]; then
  case $READY_PORT in
  '' | *[!0-9]*) die 2 "SERVER_READY: \"$READY_PORT\" is not a port number" ;;
  esac
  [ "$READY_PORT" -ge 1 ] && [ "$READY_PORT" -le 65535 ] ||
    die 2 "SERVER_READY: $READY_PORT is not a port from 1 to 65535"
fi

command -v node >/dev/null 2>&1 || die 2 "node is not in PATH (toasim needs Node.js 20 or later)"

# ---------------------------------------------------------------------------
# 1. toasim in the current project, installed as the user who runs this
# ---------------------------------------------------------------------------

# The installed bin/toasim.js, resolved the way the project's code would
# import it; else a toasim command in PATH (a global install).
toasim_js() {
  node -e 'const p = require.resolve("toasim/package.json");
process.stdout.write(require("path").join(require("path").dirname(p), "bin/toasim.js"))' 2>/dev/null ||
    command -v toasim 2>/dev/null
}

if [ "${TOASIM_CI_ELEVATED:-}" != 1 ]; then
  if version=$(npx --no-install toasim --version 2>/dev/null); then
    log "toasim $version is installed"
  else
    log "toasim is not installed here: npm install --no-save $TOASIM_PACKAGE"
    npm install --no-save --no-audit --no-fund "$TOASIM_PACKAGE" >&2 ||
      die 3 "npm install $TOASIM_PACKAGE failed"
    npx --no-install toasim --version >/dev/null 2>&1 ||
      die 3 "npm installed $TOASIM_PACKAGE, but npx toasim still does not run"
  fi
fi

# ---------------------------------------------------------------------------
# 2. root: toasim creates namespaces, TUN devices and nftables rules
# ---------------------------------------------------------------------------

if [ "$(id -u)" != 0 ]; then
  [ "${TOASIM_CI_ELEVATED:-}" != 1 ] || die 2 "still not root after sudo"
  command -v sudo >/dev/null 2>&1 || die 2 "not root, and there is no sudo: run this as root"
  sudo -n true 2>/dev/null || die 2 "not root, and sudo asks for a password: run this as root"
  log "not root: running again with sudo"
  # sudo's secure_path would hide the node that setup-node (or nvm) put in PATH.
  exec sudo -n -E env "PATH=$PATH" TOASIM_CI_ELEVATED=1 sh "$0" "$@"
fi

TOASIM_JS=$(toasim_js) || die 3 "cannot find toasim's bin/toasim.js from $(pwd)"
toasim() {
  node "$TOASIM_JS" "$@"
}

# Background processes run in sessions of their own (setsid), so each can be
# stopped with its children, in order, whatever signal reached this script.
SETSID=""
if command -v setsid >/dev/null 2>&1; then SETSID=setsid; fi

# ---------------------------------------------------------------------------
# State, and the cleanup that runs however the script ends
# ---------------------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/toasim-ci.XXXXXX")
ID=""
UP_PID=""
CAP_CLIENT_PID=""
CAP_SERVER_PID=""
SERVER_PID=""
TEST_PID=""
WATCHDOG_PID=""
STARTED=0 # 1: toasim up was started, so there may be artifacts to keep
FAILED=0  # 1: keep the artifacts
STATS_TAKEN=0
ARTIFACT_NAMES="client.pcap server.pcap stats.json server.log gateway.log"

# alive PID: running (not gone, not a zombie).
alive() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# signal SIG PID: the process group PID leads (setsid), or else PID alone.
signal() {
  if [ -n "$SETSID" ] && kill -s "$1" -- "-$2" 2>/dev/null; then return 0; fi
  kill -s "$1" "$2" 2>/dev/null || true
}

# stop PID SIG SECONDS NAME: SIG, up to SECONDS for it to end, then SIGKILL.
stop() {
  [ -n "$1" ] || return 0
  if alive "$1"; then
    signal "$2" "$1"
    n=0
    while alive "$1" && [ "$n" -lt $(($3 * 5)) ]; do
      sleep 0.2
      n=$((n + 1))
    done
    if alive "$1"; then
      log "$4 did not stop within $3 s of SIG$2: SIGKILL"
      signal KILL "$1"
    fi
  fi
  wait "$1" 2>/dev/null || true
}

# The gateway's counters, while it still runs.
take_stats() {
  [ "$STATS_TAKEN" = 0 ] && [ -n "$ID" ] && alive "$UP_PID" || return 0
  STATS_TAKEN=1
  toasim stats --id "$ID" --json >"$WORK/stats.json" 2>>"$WORK/stats.err" ||
    log "toasim stats failed: $(cat "$WORK/stats.err")"
}

cleanup() {
  rc=$1
  set +e
  # A second Ctrl-C must not cut the cleanup short and leave namespaces.
  trap '' INT TERM HUP
  [ "$rc" = 0 ] || FAILED=1
  [ "$FAILED" = 0 ] || take_stats
  stop "$WATCHDOG_PID" TERM 2 "the test timer"
  stop "$TEST_PID" TERM 5 "the tests"
  stop "$SERVER_PID" TERM 5 "the server"
  # SIGINT: toasim capture closes the pcap properly and says how many packets.
  stop "$CAP_CLIENT_PID" INT 10 "the client capture"
  stop "$CAP_SERVER_PID" INT 10 "the server capture"
  stop "$UP_PID" TERM 30 "toasim up"
  # gateway.log: the ready line (instance, profile, decoder, services), then
  # whatever toasim up said on stderr until it stopped.
  cat "$WORK/up.out" "$WORK/up.err" >"$WORK/gateway.log" 2>/dev/null
  if [ -n "$ID" ]; then
    toasim down --id "$ID" >/dev/null 2>&1 || log "toasim down --id $ID failed"
  fi
  if [ "$FAILED" = 1 ] && [ "$STARTED" = 1 ]; then
    if mkdir -p "$ARTIFACTS"; then
      for f in $ARTIFACT_NAMES; do
        if [ -f "$WORK/$f" ]; then cp "$WORK/$f" "$ARTIFACTS/$f"; fi
      done
      # sudo ran this: the user who called it owns the artifacts.
      if [ -n "${SUDO_UID:-}" ]; then
        chown -R "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$ARTIFACTS" 2>/dev/null
      fi
      log "artifacts kept in $ARTIFACTS:"
      for f in $ARTIFACT_NAMES; do
        if [ -f "$ARTIFACTS/$f" ]; then
          log "  $f ($(wc -c <"$ARTIFACTS/$f" | tr -d ' ') bytes)"
        fi
      done
    else
      log "cannot create $ARTIFACTS: no artifacts kept"
    fi
  elif [ "$rc" = 0 ]; then
    log "tests passed: no artifacts kept"
  fi
  rm -rf "$WORK"
  if [ "$rc" != 0 ]; then log "error: ${REASON:-failed} (exit code $rc)"; fi
  exit "$rc"
}

trap 'cleanup $?' EXIT
trap 'log "SIGINT: stopping"; die 130 "interrupted (SIGINT)"' INT
trap 'log "SIGTERM: stopping"; die 143 "interrupted (SIGTERM)"' TERM
trap 'log "SIGHUP: stopping"; die 129 "interrupted (SIGHUP)"' HUP
ARMED=1

# Artifacts of an earlier run must not pass for this one's.
for f in $ARTIFACT_NAMES; do rm -f "$ARTIFACTS/$f"; done
rmdir "$ARTIFACTS" 2>/dev/null || true

now() {
  date +%s
}

# ---------------------------------------------------------------------------
# 3. what toasim needs from the machine
# ---------------------------------------------------------------------------

if [ -n "$TOASIM_NEED" ]; then
  if [ "$TOASIM_APT" = 1 ]; then
    toasim doctor --need "$TOASIM_NEED" --install >&2 ||
      die 3 "toasim doctor: this machine lacks what toasim needs (report above)"
  else
    toasim doctor --need "$TOASIM_NEED" >&2 ||
      die 3 "toasim doctor: this machine lacks what toasim needs (report above; TOASIM_APT=1 installs packages)"
  fi
fi

# ---------------------------------------------------------------------------
# 4. the gateway
# ---------------------------------------------------------------------------

log "toasim up --json --profile $TOASIM_PROFILE${TOASIM_UP_ARGS:+ $TOASIM_UP_ARGS}"
# shellcheck disable=SC2086 # TOASIM_UP_ARGS is a list of flags, split on blanks
$SETSID node "$TOASIM_JS" up --json --profile "$TOASIM_PROFILE" $TOASIM_UP_ARGS \
  >"$WORK/up.out" 2>"$WORK/up.err" </dev/null &
UP_PID=$!
STARTED=1

# Its first stdout line: {"ready":true,"id":"...","clientNs":...}.
deadline=$(($(now) + TOASIM_UP_TIMEOUT))
READY_LINE=""
while :; do
  # A whole line (ended by a newline), not one still being written.
  if [ "$(wc -l <"$WORK/up.out")" -ge 1 ]; then
    READY_LINE=$(head -n 1 "$WORK/up.out")
    case $READY_LINE in
    *'"ready":true'*) break ;;
    esac
  fi
  if ! alive "$UP_PID"; then
    code=0
    wait "$UP_PID" || code=$?
    UP_PID=""
    FAILED=1
    log "toasim up exited ($code) before it was ready; its stderr:"
    sed 's/^/  /' "$WORK/up.err" >&2
    die 3 "the gateway could not start"
  fi
  if [ "$(now)" -ge "$deadline" ]; then
    FAILED=1
    log "toasim up printed no ready line within $TOASIM_UP_TIMEOUT s; its stderr:"
    sed 's/^/  /' "$WORK/up.err" >&2
    die 3 "the gateway could not start (TOASIM_UP_TIMEOUT=$TOASIM_UP_TIMEOUT)"
  fi
  sleep 0.2
done
ID=$(node -p 'JSON.parse(process.argv[1]).id' "$READY_LINE") ||
  die 3 "cannot read the instance id from toasim up's ready line: $READY_LINE"
log "gateway $ID ready: $READY_LINE"
case $READY_LINE in
*'"decoder":"none"'*)
  # --decoder none, or auto on a machine that cannot run the eBPF decoder
  # (toasim up says why on stderr).
  log "warning: no decoder: the server sees the gateway's addresses"
  log "  (192.0.2.100-131) as its clients, not the clients' own"
  if [ -s "$WORK/up.err" ]; then sed 's/^/  /' "$WORK/up.err" >&2; fi
  ;;
esac

# ---------------------------------------------------------------------------
# 5. captures of both sides, from now until the cleanup
# ---------------------------------------------------------------------------

# start_capture SIDE: toasim capture in the background; the pid in CAP_PID.
start_capture() {
  $SETSID node "$TOASIM_JS" capture --id "$ID" --side "$1" --out "$WORK/$1.pcap" \
    >"$WORK/capture-$1.out" 2>"$WORK/capture-$1.err" </dev/null &
  CAP_PID=$!
}

# wait_capture SIDE PID: until the pcap is open (it says "capturing ...").
wait_capture() {
  n=0
  until grep -q '^capturing' "$WORK/capture-$1.err" 2>/dev/null; do
    if ! alive "$2" || [ "$n" -ge 100 ]; then
      FAILED=1
      log "toasim capture --side $1 did not start: $(cat "$WORK/capture-$1.err")"
      die 3 "the $1 capture did not start"
    fi
    sleep 0.2
    n=$((n + 1))
  done
}

start_capture client
CAP_CLIENT_PID=$CAP_PID
start_capture server
CAP_SERVER_PID=$CAP_PID
wait_capture client "$CAP_CLIENT_PID"
wait_capture server "$CAP_SERVER_PID"

# ---------------------------------------------------------------------------
# 6. the server, and 7. until it is ready
# ---------------------------------------------------------------------------

log "server: toasim exec rs -- sh -c '$SERVER_CMD'"
$SETSID node "$TOASIM_JS" exec rs --id "$ID" -- sh -c "$SERVER_CMD" \
  >"$WORK/server.log" 2>&1 </dev/null &
SERVER_PID=$!

# ready_check: 0 once SERVER_READY is met; its output kept for the error.
ready_check() {
  if [ -n "$READY_PROTO" ]; then
    if [ "$READY_PROTO" = udp ]; then flags=-Hlun; else flags=-Hltn; fi
    toasim exec rs --id "$ID" -- ss "$flags" "sport = :$READY_PORT" \
      >"$WORK/ready.out" 2>&1 || return 1
    grep -q . "$WORK/ready.out"
  else
    toasim exec rs --id "$ID" -- sh -c "$SERVER_READY" >"$WORK/ready.out" 2>&1
  fi
}

server_not_ready() {
  FAILED=1
  log "$1; the server's output (last 20 lines):"
  tail -n 20 "$WORK/server.log" | sed 's/^/  /' >&2
  if [ -s "$WORK/ready.out" ]; then
    log "the last readiness check said:"
    sed 's/^/  /' "$WORK/ready.out" >&2
  fi
  die 4 "the server did not get ready"
}

if [ "$SERVER_READY" != none ]; then
  if [ -n "$READY_PROTO" ]; then
    what="something listening on $READY_PROTO port $READY_PORT"
  else
    what="SERVER_READY ($SERVER_READY) to succeed"
  fi
  log "waiting up to $SERVER_READY_TIMEOUT s for $what in the server namespace"
  deadline=$(($(now) + SERVER_READY_TIMEOUT))
  until ready_check; do
    if ! alive "$SERVER_PID"; then
      code=0
      wait "$SERVER_PID" || code=$?
      SERVER_PID=""
      server_not_ready "the server exited ($code) before it was ready"
    fi
    if [ "$(now)" -ge "$deadline" ]; then
      server_not_ready "no $what within $SERVER_READY_TIMEOUT s (SERVER_READY_TIMEOUT)"
    fi
    sleep 0.3
  done
  log "the server is ready"
fi

# ---------------------------------------------------------------------------
# 8. the tests, in the background so a signal reaches the trap at once
# ---------------------------------------------------------------------------

log "tests: toasim exec client -- sh -c '$TEST_CMD'"
$SETSID node "$TOASIM_JS" exec client --id "$ID" -- sh -c "$TEST_CMD" </dev/null &
TEST_PID=$!
if [ "$TEST_TIMEOUT" -gt 0 ]; then
  $SETSID sh -c 'sleep "$1" || exit 0
    touch "$2"
    kill -s TERM -- "-$3" 2>/dev/null || kill -s TERM "$3"' sh "$TEST_TIMEOUT" "$WORK/timed-out" "$TEST_PID" \
    >/dev/null 2>&1 </dev/null &
  WATCHDOG_PID=$!
fi
TEST_RC=0
wait "$TEST_PID" || TEST_RC=$?
TEST_PID=""
if [ -f "$WORK/timed-out" ]; then
  log "the tests ran past TEST_TIMEOUT ($TEST_TIMEOUT s) and were stopped"
  TEST_RC=124
fi

if [ "$TEST_RC" = 0 ]; then exit 0; fi
FAILED=1
take_stats
log "the server's output (last 20 lines):"
tail -n 20 "$WORK/server.log" | sed 's/^/  /' >&2
if [ "$TEST_RC" = 124 ]; then
  REASON="the tests ran past TEST_TIMEOUT ($TEST_TIMEOUT s)"
else
  REASON="the tests failed"
fi
exit "$TEST_RC"
