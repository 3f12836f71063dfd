#!/usr/bin/env bash
# Installs the pinned infrastructure and build tools into the project-local venv
# .local/infra-tools, and the Rust target for arm64 Lambda builds:
#   cfn-lint            lints infra/template.yaml (scripts/lint-template.sh)
#   aws-sam-translator  the SAM transform itself, run offline (scripts/sam-translate.py)
#   cargo-lambda        builds the functions as arm64 bootstrap zips (scripts/build-lambdas.sh)
#   ziglang             the zig linker cargo-lambda cross-compiles with
# Idempotent: does nothing when the pinned versions are already there.
set -euo pipefail
cd "$(dirname "$0")/.."

CFN_LINT_VERSION="1.58.0"
SAM_TRANSLATOR_VERSION="1.115.0"
CARGO_LAMBDA_VERSION="1.9.2"
ZIGLANG_VERSION="0.17.0"
RUST_TARGET="aarch64-unknown-linux-gnu"
VENV=".local/infra-tools"
PYTHON="${PYTHON:-python3}"
PINS=("cfn-lint==$CFN_LINT_VERSION" "aws-sam-translator==$SAM_TRANSLATOR_VERSION"
      "cargo-lambda==$CARGO_LAMBDA_VERSION" "ziglang==$ZIGLANG_VERSION")

if [[ "${1:-}" == "--refreeze" ]]; then
  tmp=$(mktemp -d)
  "$PYTHON" -m venv "$tmp/venv"
  "$tmp/venv/bin/pip" install -q "${PINS[@]}"
  { echo "# Exact versions for .local/infra-tools (pip freeze of a clean install), so every machine"
    echo "# gets the same linter, SAM transform and Lambda build tools."
    echo "# Regenerate with: scripts/setup-infra-tools.sh --refreeze"
    "$tmp/venv/bin/pip" freeze | grep -v -E '^(cfn-lint|aws-sam-translator|cargo-lambda|ziglang)=='; } \
    > scripts/infra-tools-constraints.txt
  rm -rf "$tmp"
  echo "scripts/infra-tools-constraints.txt refreshed"
  exit 0
fi

if ! rustup target list --installed | grep -qx "$RUST_TARGET"; then
  echo "==> rustup target add $RUST_TARGET"
  rustup target add "$RUST_TARGET"
fi

# One stamp line per pin: reinstall when a pin changes.
stamp="$VENV/.pins"
# (A venv that was moved or copied keeps scripts whose #! names the old path: check that
# cfn-lint really runs.)
if [[ -f "$stamp" ]] && [[ "$(cat "$stamp")" == "${PINS[*]}" ]] \
    && "$VENV/bin/cfn-lint" --version >/dev/null 2>&1; then
  exit 0
fi

echo "==> installing ${PINS[*]} into $VENV (about a minute, once)"
mkdir -p .local
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  -c scripts/infra-tools-constraints.txt "${PINS[@]}"
"$VENV/bin/cfn-lint" --version >/dev/null
"$VENV/bin/cargo-lambda" lambda --version >/dev/null
echo "${PINS[*]}" > "$stamp"
echo "==> infra tools ready in $VENV"
