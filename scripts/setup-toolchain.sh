#!/usr/bin/env bash
# Makes the toolchain that rust-toolchain.toml pins available without downloading anything
# (issue 16). The project's machines come with one rustup toolchain, `stable`, which is
# that release with rustfmt, clippy and the aarch64 target; rustup knows it only as
# `stable`, so a pinned `channel = "1.95.0"` would make it try to download 1.95.0. When the
# installed stable is exactly the pinned version, it is registered under the pinned name
# (a link in rustup's toolchains folder: `rustup toolchain link` refuses official names).
# Any other case is left to rustup, with a clear message. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

want=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
command -v rustup >/dev/null 2>&1 || exit 0   # no rustup: the rustc on PATH is used as is
home="${RUSTUP_HOME:-$HOME/.rustup}"
host=$(rustc +stable -vV 2>/dev/null | sed -n 's/^host: //p' || true)
[[ -n "$host" ]] || host=$(uname -m)-unknown-linux-gnu
[[ -e "$home/toolchains/$want-$host" ]] && exit 0

stable=$(rustc +stable --version 2>/dev/null | awk '{print $2}' || true)
if [[ "$stable" == "$want" ]]; then
  sysroot=$(rustc +stable --print sysroot)
  ln -s "$sysroot" "$home/toolchains/$want-$host"
  echo "==> rust-toolchain.toml: $want is the installed stable ($sysroot); linked, nothing downloaded"
else
  echo "rust-toolchain.toml pins Rust $want, but the installed stable is ${stable:-absent}." >&2
  echo "Install it (needs rustup's servers): rustup toolchain install $want --profile minimal" >&2
  echo "  --component rustfmt,clippy --target x86_64-unknown-linux-gnu,aarch64-unknown-linux-gnu" >&2
  exit 1
fi
