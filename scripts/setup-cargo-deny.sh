#!/usr/bin/env bash
# Installs cargo-deny (pinned) from crates.io into the project-local .local/cargo-tools
# (git-ignored), for `./dev test`'s licence/ban/source check (deny.toml). Idempotent: does
# nothing when the pinned version is already there. Built from source with --locked (the
# crate's own lock file), so a fresh machine needs only crates.io.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DENY_VERSION="0.20.2"
ROOT=".local/cargo-tools"
BIN="$ROOT/bin/cargo-deny"

if [[ -x "$BIN" ]] && [[ "$("$BIN" --version 2>/dev/null)" == "cargo-deny $CARGO_DENY_VERSION" ]]; then
  exit 0
fi

echo "==> installing cargo-deny $CARGO_DENY_VERSION into $ROOT (once; a few minutes)"
start=$(date +%s)
mkdir -p "$ROOT"
cargo install --locked --quiet --version "$CARGO_DENY_VERSION" --root "$ROOT" cargo-deny
"$BIN" --version
echo "==> cargo-deny installed in $(( $(date +%s) - start )) s"
