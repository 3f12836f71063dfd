#!/usr/bin/env bash
# LocalStack community on the host, without Docker: the second test backend.
#
#   scripts/localstack.sh setup          install localstack-core (pinned) into .local/localstack
#   scripts/localstack.sh start [PORT]   start it in the background (default port 4566), wait until ready
#   scripts/localstack.sh stop  [PORT]   stop the one started on PORT
#   scripts/localstack.sh test           start on a free port, run the end-to-end suite (or the
#                                        tests named in LOCALSTACK_TESTS) against it, stop it
#
# Pins and settings: localstack-core 2026.3.0 (the last open release) under Python 3.13 from
# pyenv, with cbor2, pyOpenSSL and localstack-twisted pinned (newer ones break it); DynamoDB and
# DynamoDB Streams are served from LocalStack's bundled moto by the provider plugin in
# localstack/moto-dynamodb-provider (the default provider downloads DynamoDB Local, which is
# not reachable here). See localstack/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

LOCALSTACK_VERSION="2026.3.0"
PINS=("localstack-core[runtime]==$LOCALSTACK_VERSION" "cbor2==5.8.0" "pyopenssl==25.3.0" "localstack-twisted==25.5.0")
# Python 3.13 from pyenv (3.11 cannot run this LocalStack); LOCALSTACK_PYTHON overrides.
PYTHON="${LOCALSTACK_PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
  for candidate in "${PYENV_ROOT:-$HOME/.pyenv}/versions/3.13.0/bin/python" \
                   "$(command -v python3.13 || true)" "$(command -v python3.12 || true)"; do
    if [[ -n "$candidate" && -x "$candidate" ]]; then PYTHON="$candidate"; break; fi
  done
fi
HOME_DIR="$ROOT/.local/localstack"
VENV="$HOME_DIR/venv"
PLUGIN="$ROOT/localstack/moto-dynamodb-provider"
# Which end-to-end tests `test` runs against LocalStack: cargo test name filters, space
# separated; empty (the default) runs the whole tests/pipeline.rs and tests/detection.rs
# suites (about 60 s).
LOCALSTACK_TESTS="${LOCALSTACK_TESTS:-}"

plugin_stamp() { cat "$PLUGIN/pyproject.toml" "$PLUGIN"/vitals_localstack/*.py | sha256sum | cut -c1-16; }

setup() {
  local stamp
  stamp="$LOCALSTACK_VERSION-$(plugin_stamp)"
  if [[ -x "$VENV/bin/python" && "$(cat "$HOME_DIR/installed" 2>/dev/null)" == "$stamp" ]]; then
    return 0
  fi
  if [[ -z "$PYTHON" || ! -x "$PYTHON" ]]; then
    echo "localstack: needs Python >= 3.12 (pyenv 3.13.0 or python3.13 on PATH; or set LOCALSTACK_PYTHON)" >&2
    exit 1
  fi
  echo "==> installing localstack-core $LOCALSTACK_VERSION into $VENV (about 90 s, once)"
  mkdir -p "$HOME_DIR"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$PLUGIN"
  echo "$stamp" > "$HOME_DIR/installed"
  echo "==> localstack-core $LOCALSTACK_VERSION ready at $VENV"
}

run_dir() { echo "$HOME_DIR/run-$1"; }

start() {
  local port="${1:-4566}" dir
  setup
  dir="$(run_dir "$port")"
  if [[ -f "$dir/pid" ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    echo "localstack: already running on port $port (pid $(cat "$dir/pid"))"
    return 0
  fi
  rm -rf "$dir"
  # The file system root keeps what LocalStack installs on first use (kinesis-local, from
  # npm) across runs; state is not persisted (PERSISTENCE is off).
  mkdir -p "$dir/tmp" "$HOME_DIR/fs"
  echo "==> starting LocalStack on 127.0.0.1:$port (log: $dir/localstack.log)"
  env FILESYSTEM_ROOT="$HOME_DIR/fs" TMPDIR="$dir/tmp" OVERRIDE_IN_DOCKER=0 \
    GATEWAY_LISTEN="127.0.0.1:$port" LOCALSTACK_HOST="127.0.0.1:$port" \
    SQS_ENDPOINT_STRATEGY=path DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 DNS_ADDRESS=0 \
    PROVIDER_OVERRIDE_DYNAMODB=moto PROVIDER_OVERRIDE_DYNAMODBSTREAMS=moto \
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 \
    setsid "$VENV/bin/python" -m localstack.runtime.main > "$dir/localstack.log" 2>&1 < /dev/null &
  echo $! > "$dir/pid"
  for _ in $(seq 1 120); do
    if curl -fsS "http://127.0.0.1:$port/_localstack/health" > /dev/null 2>&1; then
      echo "==> LocalStack ready at http://127.0.0.1:$port"
      return 0
    fi
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
      echo "localstack: exited during start; last lines of $dir/localstack.log:" >&2
      tail -20 "$dir/localstack.log" >&2
      exit 1
    fi
    sleep 0.5
  done
  echo "localstack: not ready after 60 s; see $dir/localstack.log" >&2
  stop "$port"
  exit 1
}

stop() {
  local port="${1:-4566}" dir pid
  dir="$(run_dir "$port")"
  [[ -f "$dir/pid" ]] || return 0
  pid="$(cat "$dir/pid")"
  # setsid made LocalStack the leader of its own process group: stop the group.
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 20); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$dir/pid"
  echo "==> LocalStack on port $port stopped"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

TEST_PORT=""
run_tests() {
  local started
  setup
  TEST_PORT="$(free_port)"
  started=$(date +%s)
  trap '[[ -n "$TEST_PORT" ]] && stop "$TEST_PORT"' EXIT
  start "$TEST_PORT"
  echo "==> end-to-end tests against LocalStack: ${LOCALSTACK_TESTS:-all of tests/pipeline.rs and tests/detection.rs}"
  # --workspace (not -p e2e) keeps the feature set of `cargo test --workspace`, so nothing is
  # rebuilt.
  local filters=()
  for t in $LOCALSTACK_TESTS; do filters+=("$t"); done
  DEVSTACK_ENDPOINT="http://127.0.0.1:$TEST_PORT" \
    cargo test --workspace --locked --test pipeline --test detection -- "${filters[@]}"
  echo "==> LocalStack start + tests took $(( $(date +%s) - started )) s"
}

case "${1:-}" in
  setup) setup ;;
  start) start "${2:-4566}" ;;
  stop) stop "${2:-4566}" ;;
  test) run_tests ;;
  *)
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
