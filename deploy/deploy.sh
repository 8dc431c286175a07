#!/usr/bin/env bash
# Deploys Authorize, Callback, ListMessages and Disconnect as four Cloud
# Functions (2nd gen) built from the repository root, all running as the
# dedicated service account that setup.sh created.
#
# Usage: deploy/deploy.sh --project=PROJECT [--list-auth=session|iam] [options]   (see --help)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$SCRIPT_DIR/lib.sh"

usage() {
  cat <<EOF
Usage: deploy/deploy.sh [options]

  --project=ID                 Google Cloud project (env PROJECT; default: gcloud's configured project)
  --region=REGION              region (env REGION; default: $REGION)
  --list-auth=session|iam      how ListMessages knows its caller (env LIST_AUTH; default: session)
                                 session: public; the user is named by the session cookie
                                 iam:     private; callers present a Google-signed ID token
  --allowed-callers=A,B        iam mode: service-account emails allowed to call ListMessages
                               (env ALLOWED_CALLERS; required with --list-auth=iam)
  --base-url=URL               public origin in front of all functions, e.g. https://gmail.example.com
                               (custom domain, load balancer or Firebase Hosting rewrite)
                               (env BASE_URL; default: https://REGION-PROJECT.cloudfunctions.net)
  --service-account=EMAIL      runtime service account (env SERVICE_ACCOUNT;
                               default: $SERVICE_ACCOUNT_NAME@PROJECT.iam.gserviceaccount.com)
  --build-service-account=EMAIL  service account Cloud Build uses to build the functions (env BUILD_SERVICE_ACCOUNT)
  --runtime=ID                 Go runtime (env RUNTIME; default: go126)
  --memory=SIZE                memory per instance (env MEMORY; default: 256Mi)
  --timeout=DURATION           request timeout (env TIMEOUT; default: 60s)
  --max-instances=N            instance cap per function (env MAX_INSTANCES; default: 10)
  --name-prefix=P              deployed names are P+authorize, P+callback, P+list-messages,
                               P+disconnect (env NAME_PREFIX; default: gmail-)
  --only=ENTRY_POINT[,...]     deploy only these of: ${ENTRY_POINTS[*]} (env ONLY)
  --allowed-origins=O,...      ALLOWED_ORIGINS for the functions
  --session-ttl=D              SESSION_TTL    --secret-ttl=D  SECRET_TTL (default 5m)
  --log-level=L                LOG_LEVEL      --firestore-collection=C  FIRESTORE_COLLECTION
  --database=ID                FIRESTORE_DATABASE (default: $FIRESTORE_DATABASE)
  --iam-audience=URL           IAM_AUDIENCE (default: the ListMessages cloudfunctions.net URL)
  --dry-run                    print the commands, change nothing (env DRY_RUN=1)
  -h, --help                   this help
EOF
}

PROJECT="${PROJECT:-}"
LIST_AUTH="${LIST_AUTH:-}"
ALLOWED_CALLERS="${ALLOWED_CALLERS:-}"
BASE_URL="${BASE_URL:-}"
SERVICE_ACCOUNT="${SERVICE_ACCOUNT:-}"
BUILD_SERVICE_ACCOUNT="${BUILD_SERVICE_ACCOUNT:-}"
RUNTIME="${RUNTIME:-}"
MEMORY="${MEMORY:-}"
TIMEOUT="${TIMEOUT:-}"
MAX_INSTANCES="${MAX_INSTANCES:-}"
ONLY="${ONLY:-}"
ALLOWED_ORIGINS="${ALLOWED_ORIGINS:-}"
SESSION_TTL="${SESSION_TTL:-}"
SECRET_TTL="${SECRET_TTL:-}"
LOG_LEVEL="${LOG_LEVEL:-}"
FIRESTORE_COLLECTION="${FIRESTORE_COLLECTION:-}"
IAM_AUDIENCE="${IAM_AUDIENCE:-}"

# Accept both --flag=value and --flag value. An empty value means "the default",
# which lets Cloud Build pass empty substitutions.
split_flag_values "$@"
set -- ${ARGS[@]+"${ARGS[@]}"}
while [[ $# -gt 0 ]]; do
  case "$1" in
  -h | --help) usage; exit 0 ;;
  --dry-run) DRY_RUN=1; shift; continue ;;
  esac
  [[ $# -ge 2 ]] || die "$1 needs a value (see --help)"
  case "$1" in
  --project) PROJECT=$2 ;;
  --region) REGION=$2 ;;
  --list-auth) LIST_AUTH=$2 ;;
  --allowed-callers) ALLOWED_CALLERS=$2 ;;
  --base-url) BASE_URL=$2 ;;
  --service-account) SERVICE_ACCOUNT=$2 ;;
  --build-service-account) BUILD_SERVICE_ACCOUNT=$2 ;;
  --runtime) RUNTIME=$2 ;;
  --memory) MEMORY=$2 ;;
  --timeout) TIMEOUT=$2 ;;
  --max-instances) MAX_INSTANCES=$2 ;;
  --name-prefix) NAME_PREFIX=$2 ;;
  --only) ONLY=$2 ;;
  --allowed-origins) ALLOWED_ORIGINS=$2 ;;
  --session-ttl) SESSION_TTL=$2 ;;
  --secret-ttl) SECRET_TTL=$2 ;;
  --log-level) LOG_LEVEL=$2 ;;
  --firestore-collection) FIRESTORE_COLLECTION=$2 ;;
  --database) FIRESTORE_DATABASE=$2 ;;
  --iam-audience) IAM_AUDIENCE=$2 ;;
  *) die "unknown option $1 (see --help)" ;;
  esac
  shift 2
done

require_cmd gcloud "https://cloud.google.com/sdk/docs/install"
PROJECT="${PROJECT:-$(default_project)}"
[[ -n "$PROJECT" ]] || die "no project: pass --project=ID or run 'gcloud config set project ID'"
[[ -n "$REGION" ]] || REGION=us-central1
LIST_AUTH="${LIST_AUTH:-session}"
RUNTIME="${RUNTIME:-go126}"
MEMORY="${MEMORY:-256Mi}"
TIMEOUT="${TIMEOUT:-60s}"
MAX_INSTANCES="${MAX_INSTANCES:-10}"
SECRET_TTL="${SECRET_TTL:-5m}"
FIRESTORE_DATABASE="${FIRESTORE_DATABASE:-(default)}"
FIRESTORE_COLLECTION="${FIRESTORE_COLLECTION:-gmail_tokens}"
SERVICE_ACCOUNT="${SERVICE_ACCOUNT:-$(service_account_email "$SERVICE_ACCOUNT_NAME" "$PROJECT")}"

# The cloudfunctions.net URLs of one project and region share one host, so the
# flow and session cookies set by one function reach the others. The run.app
# URLs do not: each function has its own host there. Never use them here.
FUNCTIONS_ORIGIN="https://$REGION-$PROJECT.cloudfunctions.net"
BASE_URL="${BASE_URL:-$FUNCTIONS_ORIGIN}"
BASE_URL="${BASE_URL%/}"
[[ "$BASE_URL" == https://* ]] || die "--base-url must be an https:// URL, got $BASE_URL"
[[ "$BASE_URL" != *.run.app* ]] || die "--base-url must not be a run.app URL: each function has its own run.app host, so cookies set by Callback would not reach ListMessages. Use the cloudfunctions.net URLs or one custom domain in front of all functions."
AUTHORIZE_URL="$BASE_URL/$(function_name Authorize)"
OAUTH_REDIRECT_URL="$BASE_URL/$(function_name Callback)"
IAM_AUDIENCE="${IAM_AUDIENCE:-$FUNCTIONS_ORIGIN/$(function_name ListMessages)}"

case "$LIST_AUTH" in
session) ;;
iam)
  [[ -n "$ALLOWED_CALLERS" ]] || die "--list-auth=iam needs --allowed-callers=SERVICE_ACCOUNT_EMAIL[,...]"
  ;;
*) die "--list-auth must be session or iam, got $LIST_AUTH" ;;
esac

# The selected entry points, in a stable order.
selected=()
if [[ -z "$ONLY" ]]; then
  selected=("${ENTRY_POINTS[@]}")
else
  IFS=',' read -r -a wanted <<<"$ONLY"
  for w in "${wanted[@]}"; do
    function_name "$w" >/dev/null # dies on an unknown entry point
    selected+=("$w")
  done
fi

# The configuration every function gets (each reads what it needs). gcloud
# splits --set-env-vars on commas; IAM_ALLOWED_CALLERS and ALLOWED_ORIGINS hold
# commas, so the list is joined with '|' announced by gcloud's ^|^ prefix
# (see `gcloud topic escaping`).
env_vars=(
  "GOOGLE_CLOUD_PROJECT=$PROJECT"
  "OAUTH_CLIENT_SECRET=$(secret_version_name "$PROJECT" "$CLIENT_SECRET_NAME")"
  "TOKEN_KEYS_SECRET=$(secret_version_name "$PROJECT" "$TOKEN_KEYS_SECRET_NAME")"
  "SECRET_TTL=$SECRET_TTL"
  "OAUTH_REDIRECT_URL=$OAUTH_REDIRECT_URL"
  "AUTHORIZE_URL=$AUTHORIZE_URL"
  "LIST_MESSAGES_URL=$BASE_URL/$(function_name ListMessages)"
  "TOKEN_STORE=firestore"
  "FIRESTORE_DATABASE=$FIRESTORE_DATABASE"
  "FIRESTORE_COLLECTION=$FIRESTORE_COLLECTION"
  "LIST_AUTH_MODE=$LIST_AUTH"
)
if [[ "$LIST_AUTH" == iam ]]; then
  env_vars+=("IAM_AUDIENCE=$IAM_AUDIENCE" "IAM_ALLOWED_CALLERS=$ALLOWED_CALLERS")
fi
[[ -z "$ALLOWED_ORIGINS" ]] || env_vars+=("ALLOWED_ORIGINS=$ALLOWED_ORIGINS")
[[ -z "$SESSION_TTL" ]] || env_vars+=("SESSION_TTL=$SESSION_TTL")
[[ -z "$LOG_LEVEL" ]] || env_vars+=("LOG_LEVEL=$LOG_LEVEL")
env_list=""
for kv in "${env_vars[@]}"; do
  [[ "$kv" != *"|"* ]] || die "a setting may not contain '|': $kv"
  env_list+="${env_list:+|}$kv"
done
env_list="^|^$env_list"

build_args=()
if [[ -n "$BUILD_SERVICE_ACCOUNT" ]]; then
  build_args+=("--build-service-account=projects/$PROJECT/serviceAccounts/$BUILD_SERVICE_ACCOUNT")
fi

log "Project $PROJECT, region $REGION, runtime $RUNTIME, ListMessages auth: $LIST_AUTH"
log "Authorize URL $AUTHORIZE_URL"
log "Callback URL  $OAUTH_REDIRECT_URL  (must be an authorized redirect URI of the OAuth client)"

for entry in "${selected[@]}"; do
  name=$(function_name "$entry")
  access=--allow-unauthenticated
  if [[ "$entry" == ListMessages && "$LIST_AUTH" == iam ]]; then
    access=--no-allow-unauthenticated
  fi
  log "Deploying $entry as $name ($access)"
  run gcloud functions deploy "$name" \
    --gen2 \
    --project="$PROJECT" \
    --region="$REGION" \
    --runtime="$RUNTIME" \
    --entry-point="$entry" \
    --trigger-http \
    "$access" \
    --source="$REPO_ROOT" \
    --ignore-file=deploy/functions.gcloudignore \
    --service-account="$SERVICE_ACCOUNT" \
    --memory="$MEMORY" \
    --timeout="$TIMEOUT" \
    --max-instances="$MAX_INSTANCES" \
    --set-env-vars="$env_list" \
    ${build_args[@]+"${build_args[@]}"} \
    --quiet

  if [[ "$entry" == ListMessages && "$LIST_AUTH" == iam ]]; then
    IFS=',' read -r -a callers <<<"$ALLOWED_CALLERS"
    for caller in "${callers[@]}"; do
      caller="${caller//[[:space:]]/}"
      [[ -n "$caller" ]] || continue
      log "Letting $caller invoke $name"
      run gcloud functions add-invoker-policy-binding "$name" \
        --project="$PROJECT" \
        --region="$REGION" \
        --member="serviceAccount:$caller"
    done
  fi

  if [[ "$DRY_RUN" != 1 ]]; then
    url=$(query gcloud functions describe "$name" --v2 --project="$PROJECT" --region="$REGION" --format="value(url)" || true)
    if [[ -n "$url" && "$url" != "$FUNCTIONS_ORIGIN/$name" ]]; then
      warn "$name reports the URL $url, not $FUNCTIONS_ORIGIN/$name: AUTHORIZE_URL, OAUTH_REDIRECT_URL and IAM_AUDIENCE assume the latter. Pass --base-url / --iam-audience to match."
    fi
  fi
done

list_url="$BASE_URL/$(function_name ListMessages)"
if [[ "$LIST_AUTH" == iam ]]; then
  list_url="$FUNCTIONS_ORIGIN/$(function_name ListMessages)  (private: callers send an ID token with audience $IAM_AUDIENCE)"
fi
cat >&2 <<EOF

Deployed: ${selected[*]}
  Authorize:     $AUTHORIZE_URL
  Callback:      $OAUTH_REDIRECT_URL
  ListMessages:  $list_url
  Disconnect:    $BASE_URL/$(function_name Disconnect)
EOF
