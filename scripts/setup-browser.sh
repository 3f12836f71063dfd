#!/usr/bin/env bash
# Installs what the dashboard's browser test (tests/dashboard_browser.rs) needs:
#   - Debian's chromium (apt-get, only when /usr/bin/chromium is missing);
#   - Playwright for Python, pinned, into the project-local venv .local/playwright, WITHOUT
#     its own browser download (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1): the test launches
#     /usr/bin/chromium (executable_path).
# Idempotent: does nothing when both are there.
set -euo pipefail
cd "$(dirname "$0")/.."

PLAYWRIGHT_VERSION="1.65.2"
VENV=".local/playwright"
PYTHON="${PYTHON:-python3}"
CHROMIUM="/usr/bin/chromium"

if [[ ! -x "$CHROMIUM" ]]; then
  echo "==> installing Debian's chromium (apt-get)"
  if [[ $(id -u) -eq 0 ]]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium
fi

if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('playwright') != '$PLAYWRIGHT_VERSION')" 2>/dev/null; then
  exit 0
fi

echo "==> installing playwright==$PLAYWRIGHT_VERSION (Python) into $VENV (no browser download)"
mkdir -p .local
"$PYTHON" -m venv "$VENV"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$VENV/bin/pip" install --quiet --disable-pip-version-check \
  -c scripts/playwright-constraints.txt \
  "playwright==$PLAYWRIGHT_VERSION"
"$VENV/bin/python" -c "import playwright.sync_api"
echo "==> playwright $PLAYWRIGHT_VERSION ready at $VENV (browser: $CHROMIUM)"
