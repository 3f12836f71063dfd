#!/usr/bin/env bash
# Installs the pinned AWS CLI (v1, from PyPI) into the project-local venv .local/aws-cli:
# the e2e test tests/tooling.rs runs `aws lambda invoke --endpoint-url` against devstack's
# Lambda API with it, and the README's "Everyday commands" use it.
# Idempotent: does nothing when the pinned version is already there.
#   scripts/setup-aws-cli.sh --refreeze   regenerates scripts/aws-cli-constraints.txt
set -euo pipefail
cd "$(dirname "$0")/.."

AWS_CLI_VERSION="1.46.3"
VENV=".local/aws-cli"
PYTHON="${PYTHON:-python3}"
PIN="awscli==$AWS_CLI_VERSION"

if [[ "${1:-}" == "--refreeze" ]]; then
  tmp=$(mktemp -d)
  "$PYTHON" -m venv "$tmp/venv"
  "$tmp/venv/bin/pip" install -q "$PIN"
  { echo "# Exact versions for .local/aws-cli (pip freeze of a clean install)."
    echo "# Regenerate with: scripts/setup-aws-cli.sh --refreeze"
    "$tmp/venv/bin/pip" freeze | grep -v -E '^awscli=='; } > scripts/aws-cli-constraints.txt
  rm -rf "$tmp"
  echo "scripts/aws-cli-constraints.txt refreshed"
  exit 0
fi

stamp="$VENV/.pins"
if [[ -f "$stamp" ]] && [[ "$(cat "$stamp")" == "$PIN" ]] \
    && "$VENV/bin/aws" --version >/dev/null 2>&1; then
  exit 0
fi
echo "==> installing $PIN into $VENV (once)"
mkdir -p .local
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -c scripts/aws-cli-constraints.txt "$PIN"
"$VENV/bin/aws" --version
echo "$PIN" > "$stamp"
