#!/usr/bin/env bash
# Uploads the dashboard page (web/) to the stack's web bucket and writes its config.js from
# the stack's outputs (docs/dashboard.md, "Deployed"). Needs the AWS CLI v2 and credentials
# allowed to read the stack, write the bucket and invalidate the distribution.
#
#   scripts/deploy-web.sh STACK_NAME [REGION]
#
# config.js: the API's base URL (ApiUrl), auth mode "cognito", the hosted UI domain
# (HostedUiUrl), the dashboard app client (DashboardClientId), its allowed scopes (read from
# the client, so a scope added in the template is requested without editing this script)
# and the redirect URI (WebUrl, the client's callback URL).
set -euo pipefail
cd "$(dirname "$0")/.."

STACK="${1:?usage: scripts/deploy-web.sh STACK_NAME [REGION]}"
REGION="${2:-${AWS_REGION:-${AWS_DEFAULT_REGION:-}}}"
region_args=()
[[ -n "$REGION" ]] && region_args=(--region "$REGION")

output() {
  aws cloudformation describe-stacks "${region_args[@]}" --stack-name "$STACK" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}

api_url=$(output ApiUrl)
web_url=$(output WebUrl)
bucket=$(output WebBucketName)
distribution=$(output WebDistributionId)
client_id=$(output DashboardClientId)
hosted_ui=$(output HostedUiUrl)
pool_id=$(output UserPoolId)
for v in api_url web_url bucket distribution client_id hosted_ui pool_id; do
  if [[ -z "${!v}" || "${!v}" == "None" ]]; then
    echo "deploy-web: stack $STACK has no output for $v (deployed with the issue 14 template?)" >&2
    exit 1
  fi
done
scopes=$(aws cognito-idp describe-user-pool-client "${region_args[@]}" \
  --user-pool-id "$pool_id" --client-id "$client_id" \
  --query 'UserPoolClient.AllowedOAuthScopes' --output text | tr '\t' ' ')

config=$(mktemp)
trap 'rm -f "$config"' EXIT
python3 - "$config" "$api_url" "$hosted_ui" "$client_id" "$scopes" "$web_url" <<'PY'
import json, sys
path, api, domain, client, scopes, redirect = sys.argv[1:]
config = {"apiUrl": api, "auth": "cognito", "cognitoDomain": domain, "clientId": client,
          "scopes": scopes, "redirectUri": redirect, "pollSeconds": 5}
open(path, "w").write("window.VITALS_CONFIG = %s;\n" % json.dumps(config))
PY

echo "==> uploading web/ to s3://$bucket (config.js for $api_url)"
# No build step and no hashed names: the page and config.js are revalidated on every load,
# the script and style sheet are cached 5 minutes.
aws s3 cp "${region_args[@]}" web/index.html "s3://$bucket/index.html" \
  --content-type "text/html; charset=utf-8" --cache-control "no-cache"
aws s3 cp "${region_args[@]}" "$config" "s3://$bucket/config.js" \
  --content-type "text/javascript; charset=utf-8" --cache-control "no-cache"
for f in app.js app.css; do
  case "$f" in *.js) type="text/javascript; charset=utf-8" ;; *) type="text/css; charset=utf-8" ;; esac
  aws s3 cp "${region_args[@]}" "web/$f" "s3://$bucket/$f" \
    --content-type "$type" --cache-control "public, max-age=300"
done
aws cloudfront create-invalidation --distribution-id "$distribution" --paths "/*" \
  --query 'Invalidation.Id' --output text >/dev/null
echo "==> dashboard: $web_url"
