#!/usr/bin/env bash
# Builds every function for AWS Lambda (provided.al2023, arm64) as a bootstrap zip with
# cargo-lambda, and reports each zip's size. Output: target/lambda/<function>/bootstrap.zip.
# Uses the workspace's target dir and [profile.release] (see Cargo.toml), and fails if the
# zips would abort on a panic (the full verbose output: target/lambda/build-verbose.log).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/infra-env.sh

# Every crate under functions/ is a Lambda binary (the directory name is the binary name).
FUNCTIONS=()
for dir in functions/*/; do FUNCTIONS+=("$(basename "$dir")"); done
packages=()
for f in "${FUNCTIONS[@]}"; do packages+=(-p "$f"); done

echo "==> cargo lambda build --release --arm64 --output-format zip -v (${FUNCTIONS[*]})"
mkdir -p target/lambda
log=target/lambda/build-verbose.log
start=$(date +%s)
# Verbose: cargo-lambda logs the profile settings it adds, cargo every rustc command line.
# The console gets everything but the rustc command lines and cargo-lambda's debug lines
# (one of them prints the whole cargo metadata); the whole output is in $log.
set +e
cargo lambda build --release --arm64 --output-format zip --locked -v "${packages[@]}" 2>&1 \
  | tee "$log" | grep -v -e '^ *Running `' -e '^ *DEBUG ' -e '^ *TRACE '
status=${PIPESTATUS[0]}
set -e
if (( status != 0 )); then
  echo "cargo lambda build failed (exit $status); full output: $log" >&2
  exit "$status"
fi
echo "==> built in $(( $(date +%s) - start )) s"

# The zips must unwind on a panic, as the tested binaries do: lambda_kit::batch then fails
# only the panicking record. cargo-lambda adds --config profile.release.panic="abort"
# unless [profile.release] sets `panic` (Cargo.toml does); docs/architecture.md#panic-strategy.
config=$(grep -m1 'release optimizations' "$log" || true)
if [[ -z "$config" ]]; then
  echo "cargo lambda did not log the profile settings it adds; cannot check the panic strategy" >&2
  exit 1
fi
if [[ "$config" == *panic* ]]; then
  echo "cargo lambda sets the panic strategy: $config" >&2
  exit 1
fi
rustc_lines=$(grep -c 'Running `[^ ]*rustc ' "$log" || true)
abort_lines=$(grep 'Running `[^ ]*rustc ' "$log" | grep -c -- '-C panic=abort' || true)
if (( abort_lines > 0 )); then
  echo "$abort_lines rustc command lines compile with -C panic=abort (see $log)" >&2
  exit 1
fi
echo "==> panic strategy: unwind (cargo lambda adds no panic setting; $rustc_lines rustc command lines, none with -C panic=abort)"
echo "==> bootstrap zips:"
for f in "${FUNCTIONS[@]}"; do
  zip="target/lambda/$f/bootstrap.zip"
  if [[ ! -s "$zip" ]]; then
    echo "missing $zip" >&2
    exit 1
  fi
  printf '  %-10s %9d bytes (%s)\n' "$f" "$(stat -c %s "$zip")" "$(du -h "$zip" | cut -f1)"
done
