#!/usr/bin/env bash
# Installs the AWS API emulator (moto server, pinned) into the project-local venv
# .local/moto. Idempotent: does nothing when the pinned version is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION="5.2.5"
VENV=".local/moto"
PYTHON="${PYTHON:-python3}"

if [[ "${1:-}" == "--refreeze" ]]; then
  tmp=$(mktemp -d)
  "$PYTHON" -m venv "$tmp/venv"
  "$tmp/venv/bin/pip" install -q "moto[server]==$MOTO_VERSION"
  { echo "# Exact versions of moto's dependencies (pip freeze of a clean install), so every"
    echo "# machine gets the same emulator. Regenerate with: scripts/setup-moto.sh --refreeze"
    "$tmp/venv/bin/pip" freeze | grep -v '^moto'; } > scripts/moto-constraints.txt
  rm -rf "$tmp"
  echo "scripts/moto-constraints.txt refreshed"
  exit 0
fi

if [[ -x "$VENV/bin/moto_server" ]] && "$VENV/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  exit 0
fi

echo "==> installing moto[server]==$MOTO_VERSION into $VENV (about a minute, once)"
mkdir -p .local
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  -c scripts/moto-constraints.txt "moto[server]==$MOTO_VERSION"
"$VENV/bin/moto_server" --help >/dev/null
echo "==> moto $MOTO_VERSION ready at $VENV/bin/moto_server"
