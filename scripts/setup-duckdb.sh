#!/usr/bin/env bash
# Installs DuckDB's Python wheel (pinned; it has no dependencies) into the project-local
# venv .local/duckdb, for scripts/archive-query.py (docs/archive.md). Idempotent: does
# nothing when the pinned version is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

DUCKDB_VERSION="1.5.6"
VENV=".local/duckdb"
PYTHON="${PYTHON:-python3}"

if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "import duckdb, sys; sys.exit(duckdb.__version__ != '$DUCKDB_VERSION')" 2>/dev/null; then
  exit 0
fi

echo "==> installing duckdb==$DUCKDB_VERSION into $VENV (once)"
mkdir -p .local
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: "duckdb==$DUCKDB_VERSION"
"$VENV/bin/python" -c "import duckdb; duckdb.sql('select 1').fetchall()"
echo "==> duckdb $DUCKDB_VERSION ready at $VENV/bin/python"
