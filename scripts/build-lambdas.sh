#!/usr/bin/env bash
# Builds every function for AWS Lambda (provided.al2023, arm64) as a bootstrap zip with
# cargo-lambda, and reports each zip's size. Output: target/lambda/<function>/bootstrap.zip.
# Uses the workspace's target dir and [profile.release] (see Cargo.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/infra-env.sh

# Every crate under functions/ is a Lambda binary (the directory name is the binary name).
FUNCTIONS=()
for dir in functions/*/; do FUNCTIONS+=("$(basename "$dir")"); done
packages=()
for f in "${FUNCTIONS[@]}"; do packages+=(-p "$f"); done

echo "==> cargo lambda build --release --arm64 --output-format zip (${FUNCTIONS[*]})"
start=$(date +%s)
cargo lambda build --release --arm64 --output-format zip --locked "${packages[@]}"
echo "==> built in $(( $(date +%s) - start )) s; bootstrap zips:"
for f in "${FUNCTIONS[@]}"; do
  zip="target/lambda/$f/bootstrap.zip"
  if [[ ! -s "$zip" ]]; then
    echo "missing $zip" >&2
    exit 1
  fi
  printf '  %-10s %9d bytes (%s)\n' "$f" "$(stat -c %s "$zip")" "$(du -h "$zip" | cut -f1)"
done
