#!/usr/bin/env bash
# Deploys the stack with SAM: `./dev deploy [ENV]` (ENV = a section of infra/samconfig.toml:
# `default`, the dev stack, or `prod`). Extra arguments go to `sam deploy`.
#
# Refuses to start (issue 16, safe defaults) unless the district hospital's emergency desk
# is a real number: `DistrictHospitalPhone` has no default in the template. Give it as
#   DISTRICT_HOSPITAL_PHONE=+2547XXXXXXXX ./dev deploy prod
# or in the environment's parameter_overrides. It must be an E.164 number and not the local
# stack's stand-in (+254700009999), unless the environment only records notifications
# (NotificationChannel=outbox, as the dev environment does).
#
# The merged parameters (samconfig's, plus the phone) are passed on the command line:
# `--parameter-overrides` replaces samconfig's list instead of adding to it.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVIRONMENT="${1:-default}"
shift || true
LOCAL_DESK="+254700009999"

fail() {
  echo "deploy refused: $*" >&2
  exit 2
}

overrides=$(python3 - "$ENVIRONMENT" <<'PY'
import shlex, sys, tomllib
env = sys.argv[1]
with open("infra/samconfig.toml", "rb") as f:
    config = tomllib.load(f)
if env not in config:
    sys.exit(f"infra/samconfig.toml has no environment [{env}]")
deploy = config[env].get("deploy", {}).get("parameters", {})
for pair in shlex.split(deploy.get("parameter_overrides", "")):
    print(pair)
PY
) || fail "no environment [$ENVIRONMENT] in infra/samconfig.toml"

value_of() { sed -n "s/^$1=//p" <<<"$overrides" | tail -1; }
channel=$(value_of NotificationChannel)
channel="${channel:-sms}"   # the template's default
phone="${DISTRICT_HOSPITAL_PHONE:-$(value_of DistrictHospitalPhone)}"

if [[ -z "$phone" ]]; then
  fail "DistrictHospitalPhone is not set for [$ENVIRONMENT]: failed emergencies and alerts of
villages without a roster are escalated to that number. Set it, e.g.
  DISTRICT_HOSPITAL_PHONE=+2547XXXXXXXX ./dev deploy $ENVIRONMENT"
fi
if [[ ! "$phone" =~ ^\+[1-9][0-9]{7,14}$ ]]; then
  fail "DistrictHospitalPhone=$phone is not an E.164 number (+ and 8 to 15 digits)"
fi
if [[ "$phone" == "$LOCAL_DESK" && "$channel" != "outbox" ]]; then
  fail "DistrictHospitalPhone=$phone is the local stack's stand-in, not a hospital; [$ENVIRONMENT]
sends real SMS (NotificationChannel=$channel). Give the district hospital's emergency desk."
fi

if ! command -v sam >/dev/null 2>&1; then
  fail "the SAM CLI is not on PATH (pip install aws-sam-cli; README.md, Deploying to AWS)"
fi

params=()
while IFS= read -r pair; do
  [[ -z "$pair" || "$pair" == DistrictHospitalPhone=* ]] && continue
  params+=("$pair")
done <<<"$overrides"
params+=("DistrictHospitalPhone=$phone")

echo "==> sam build + sam deploy --config-env $ENVIRONMENT (NotificationChannel=$channel, DistrictHospitalPhone=$phone)"
cd infra
sam build --config-env "$ENVIRONMENT"
sam deploy --config-env "$ENVIRONMENT" --parameter-overrides "${params[@]}" "$@"
