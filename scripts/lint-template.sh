#!/usr/bin/env bash
# Checks infra/template.yaml with the pinned tools (scripts/setup-infra-tools.sh):
# 1. cfn-lint: errors AND warnings fail (cfn-lint's default exit code policy).
# 2. The SAM transform, offline: catches what SAM rejects and cfn-lint's schemas miss.
# The project's own policy rules (least privilege, DLQs, alarms) are a Rust test:
# devstack/tests/template_policy.rs, run by `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/infra-env.sh

echo "==> cfn-lint $(cfn-lint --version | awk '{print $2}') infra/template.yaml"
cfn-lint infra/template.yaml
echo "cfn-lint: no errors or warnings"
echo "==> SAM transform of infra/template.yaml"
"$INFRA_VENV/bin/python" scripts/sam-translate.py infra/template.yaml
echo "==> infra/samconfig.toml"
"$INFRA_VENV/bin/python" scripts/check-samconfig.py infra/samconfig.toml infra/template.yaml
