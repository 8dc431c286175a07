#!/usr/bin/env bash
# Deploys Authorize, Callback, ListMessages and Disconnect as four Cloud
# Functions (2nd gen) built from the repository root, by the build service
# account and into the image repository that setup.sh created. Authorize runs
# as its own service account (the secrets, no Firestore); the other three as
# the one that may use the Firestore database.
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
  --list-auth=session|iam      who calls ListMessages and Disconnect (env LIST_AUTH; default: session)
                                 session: browsers; both public, the user named by the session cookie
                                 iam:     servers; both private, callers present a Google-signed ID token
  --allowed-callers=A,B        iam mode: service-account emails allowed to call ListMessages and
                               Disconnect (env ALLOWED_CALLERS; required with --list-auth=iam)
  --base-url=URL               public origin in front of all functions, e.g. https://gmail.example.com
                               (custom domain, load balancer or Firebase Hosting rewrite)
                               (env BASE_URL; default: https://REGION-PROJECT.cloudfunctions.net)
  --service-account=EMAIL      service account of Callback, ListMessages and Disconnect (env SERVICE_ACCOUNT;
                               default: $SERVICE_ACCOUNT_NAME@PROJECT.iam.gserviceaccount.com)
  --authorize-service-account=EMAIL
                               service account of Authorize (env AUTHORIZE_SERVICE_ACCOUNT;
                               default: $AUTHORIZE_SERVICE_ACCOUNT_NAME@PROJECT.iam.gserviceaccount.com)
  --build-service-account=EMAIL  service account Cloud Build builds the functions as (env BUILD_SERVICE_ACCOUNT;
                               default: $BUILD_SERVICE_ACCOUNT_NAME@PROJECT.iam.gserviceaccount.com)
  --artifact-repository=ID     Artifact Registry repository of the images, in the region
                               (env ARTIFACT_REPOSITORY; default: $ARTIFACT_REPOSITORY)
  --runtime=ID                 Go runtime (env RUNTIME; default: go126)
  --concurrency=N              requests one instance serves at once, 1 to 1000 (env CONCURRENCY; default: 80)
  --cpu=N                      vCPUs per instance: 0.08 to under 1 (then --concurrency=1), or 1, 2, 4, 6, 8
                               (env CPU; default: 1)
  --memory=SIZE                memory per instance (env MEMORY; default: 512Mi, or 2Gi with 4 vCPUs,
                               4Gi with 6 or 8)
  --timeout=DURATION           request timeout (env TIMEOUT; default: 60s)
  --max-instances=N            instance cap per function (env MAX_INSTANCES; default: 10;
                               deploy/README.md says how it was chosen)
  --name-prefix=P              deployed names are P+authorize, P+callback, P+list-messages,
                               P+disconnect (env NAME_PREFIX; default: gmail-)
  --only=ENTRY_POINT[,...]     deploy only these of: ${ENTRY_POINTS[*]} (env ONLY)
  --allowed-origins=O,...      ALLOWED_ORIGINS for the functions
  --session-ttl=D              SESSION_TTL    --secret-ttl=D  SECRET_TTL (default 5m)
  --log-level=L                LOG_LEVEL      --firestore-collection=C  FIRESTORE_COLLECTION
  --database=ID                FIRESTORE_DATABASE (default: $FIRESTORE_DATABASE)
  --iam-audience=URL           IAM_AUDIENCE of every function (default: each function's own
                               cloudfunctions.net URL, the audience Cloud Run's IAM check accepts)
  --dry-run                    print the commands, change nothing (env DRY_RUN=1)
  -h, --help                   this help
EOF
}

PROJECT="${PROJECT:-}"
LIST_AUTH="${LIST_AUTH:-}"
ALLOWED_CALLERS="${ALLOWED_CALLERS:-}"
BASE_URL="${BASE_URL:-}"
SERVICE_ACCOUNT="${SERVICE_ACCOUNT:-}"
AUTHORIZE_SERVICE_ACCOUNT="${AUTHORIZE_SERVICE_ACCOUNT:-}"
BUILD_SERVICE_ACCOUNT="${BUILD_SERVICE_ACCOUNT:-}"
RUNTIME="${RUNTIME:-}"
CONCURRENCY="${CONCURRENCY:-}"
CPU="${CPU:-}"
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
  --authorize-service-account) AUTHORIZE_SERVICE_ACCOUNT=$2 ;;
  --build-service-account) BUILD_SERVICE_ACCOUNT=$2 ;;
  --artifact-repository) ARTIFACT_REPOSITORY=$2 ;;
  --runtime) RUNTIME=$2 ;;
  --concurrency) CONCURRENCY=$2 ;;
  --cpu) CPU=$2 ;;
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
[[ -n "$ARTIFACT_REPOSITORY" ]] || ARTIFACT_REPOSITORY=gmail-oauth-functions
LIST_AUTH="${LIST_AUTH:-session}"
RUNTIME="${RUNTIME:-go126}"
CONCURRENCY="${CONCURRENCY:-80}"
CPU="${CPU:-1}"
TIMEOUT="${TIMEOUT:-60s}"
MAX_INSTANCES="${MAX_INSTANCES:-10}"
SECRET_TTL="${SECRET_TTL:-5m}"
FIRESTORE_DATABASE="${FIRESTORE_DATABASE:-(default)}"
FIRESTORE_COLLECTION="${FIRESTORE_COLLECTION:-gmail_tokens}"
SERVICE_ACCOUNT="${SERVICE_ACCOUNT:-$(service_account_email "$SERVICE_ACCOUNT_NAME" "$PROJECT")}"
AUTHORIZE_SERVICE_ACCOUNT="${AUTHORIZE_SERVICE_ACCOUNT:-$(service_account_email "$AUTHORIZE_SERVICE_ACCOUNT_NAME" "$PROJECT")}"
BUILD_SERVICE_ACCOUNT="${BUILD_SERVICE_ACCOUNT:-$(service_account_email "$BUILD_SERVICE_ACCOUNT_NAME" "$PROJECT")}"

# Sizing. Cloud Run, which runs 2nd gen functions, refuses a revision that
# breaks these rules, but only after the build; deploy.sh refuses first.
#   - Concurrency: 1 to 1000; above 1 needs at least 1 vCPU.
#     https://cloud.google.com/functions/docs/configuring/concurrency,
#     https://cloud.google.com/run/docs/about-concurrency
#   - CPU: 0.08 to under 1 (then concurrency must be 1), or 1, 2, 4, 6 or 8.
#     https://cloud.google.com/run/docs/configuring/services/cpu
#   - Memory for the CPU: under 0.5 vCPU at most 512 MiB, under 1 at most 1 GiB;
#     1 vCPU up to 4 GiB, 2 up to 8 GiB, 4 from 2 to 16 GiB, 6 from 4 to 24 GiB,
#     8 from 4 to 32 GiB; never under 128 MiB (512 MiB in the second generation
#     execution environment, so 512Mi is the default: accepted in both).
#     https://cloud.google.com/run/docs/configuring/services/memory-limits
# gcloud spells them --concurrency, --cpu (valid only with --memory) and --memory.

# cpu_millis VALUE: VALUE in thousandths of a vCPU, read as gcloud reads --cpu
# (1, 2.0, .5, 0.083, 500m); fails on anything else.
cpu_millis() {
  local whole frac
  if [[ "$1" =~ ^([0-9]{1,5})m$ ]]; then
    printf '%d' $((10#${BASH_REMATCH[1]}))
    return
  fi
  [[ "$1" =~ [0-9] && "$1" =~ ^([0-9]{0,2})(\.([0-9]{0,3}))?$ ]] || return 1
  whole=${BASH_REMATCH[1]:-0}
  frac="${BASH_REMATCH[3]}000"
  printf '%d' $((10#$whole * 1000 + 10#${frac:0:3}))
}

# memory_bytes VALUE: VALUE in bytes, read as gcloud reads --memory for 2nd
# gen: a number, then k, M, G, T (powers of 1000) or Ki, Mi, Gi, Ti (powers of
# 1024), in any case, then an optional b or B; no unit means M. Sizes past
# what Cloud Run allows come out as 2^62. Fails on anything else.
memory_bytes() {
  [[ "$1" =~ ^([0-9]{1,12})([kKmMgGtT][iI]?)?[bB]?$ ]] || return 1
  local n=$((10#${BASH_REMATCH[1]})) unit=${BASH_REMATCH[2],,} huge=$((1 << 62))
  case "${unit:-m}" in
  k) printf '%d' $((n * 1000)) ;;
  m) printf '%d' $((n * 1000000)) ;;
  g) printf '%d' $((n > 1000000 ? huge : n * 1000000000)) ;;
  t) printf '%d' $((n > 1000 ? huge : n * 1000000000000)) ;;
  ki) printf '%d' $((n * 1024)) ;;
  mi) printf '%d' $((n * 1048576)) ;;
  gi) printf '%d' $((n > 1000000 ? huge : n << 30)) ;;
  ti) printf '%d' $((n > 1000 ? huge : n << 40)) ;;
  esac
}

if ! [[ "$CONCURRENCY" =~ ^[0-9]{1,4}$ ]] || ((10#$CONCURRENCY < 1 || 10#$CONCURRENCY > 1000)); then
  die "--concurrency must be a whole number from 1 to 1000, got $CONCURRENCY"
fi
CONCURRENCY=$((10#$CONCURRENCY))
cpu=$(cpu_millis "$CPU") || die "--cpu must be a number of vCPUs such as 1, 2 or 0.5 (or 500m), got $CPU"
if ((cpu < 1000)); then
  ((cpu >= 80)) || die "--cpu must be at least 0.08, got $CPU"
  ((CONCURRENCY == 1)) ||
    die "--concurrency=$CONCURRENCY needs at least 1 vCPU, got --cpu=$CPU: Cloud Run serves one request at a time on less than 1 vCPU (raise --cpu, or set --concurrency=1)"
  mem_min=128 mem_max=$((cpu < 500 ? 512 : 1024))
else
  case "$cpu" in
  1000) mem_min=128 mem_max=4096 ;;
  2000) mem_min=128 mem_max=8192 ;;
  4000) mem_min=2048 mem_max=16384 ;;
  6000) mem_min=4096 mem_max=24576 ;;
  8000) mem_min=4096 mem_max=32768 ;;
  *) die "--cpu of 1 or more must be 1, 2, 4, 6 or 8, got $CPU" ;;
  esac
fi
if [[ -z "$MEMORY" ]]; then
  case "$mem_min" in
  2048) MEMORY=2Gi ;;
  4096) MEMORY=4Gi ;;
  *) MEMORY=512Mi ;;
  esac
fi
mem=$(memory_bytes "$MEMORY") || die "--memory must be a size such as 512Mi or 1Gi, got $MEMORY"
((mem >= mem_min << 20 && mem <= mem_max << 20)) ||
  die "--memory=$MEMORY does not fit --cpu=$CPU: Cloud Run accepts ${mem_min} MiB to ${mem_max} MiB with that CPU"
[[ "$MAX_INSTANCES" =~ ^[1-9][0-9]{0,3}$ ]] || die "--max-instances must be a whole number from 1, got $MAX_INSTANCES"

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

case "$LIST_AUTH" in
session) ;;
iam)
  [[ -n "$ALLOWED_CALLERS" ]] || die "--list-auth=iam needs --allowed-callers=SERVICE_ACCOUNT_EMAIL[,...]"
  ;;
*) die "--list-auth must be session or iam, got $LIST_AUTH" ;;
esac

# private ENTRY_POINT: is the function called by servers, behind Cloud Run's
# IAM check? In iam mode ListMessages and Disconnect are; the rest never:
# users consent through Authorize and Callback in a browser.
private() {
  [[ "$LIST_AUTH" == iam && ("$1" == ListMessages || "$1" == Disconnect) ]]
}

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

# The configuration every function gets (each reads what it needs), but
# IAM_AUDIENCE: each function's own URL, the audience Cloud Run's IAM check
# accepts for it, so that a token minted for ListMessages does not open
# Disconnect. gcloud splits --set-env-vars on commas; IAM_ALLOWED_CALLERS and
# ALLOWED_ORIGINS hold commas, so the list is joined with '|' announced by
# gcloud's ^|^ prefix (see `gcloud topic escaping`).
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
[[ "$LIST_AUTH" != iam ]] || env_vars+=("IAM_ALLOWED_CALLERS=$ALLOWED_CALLERS")
[[ -z "$ALLOWED_ORIGINS" ]] || env_vars+=("ALLOWED_ORIGINS=$ALLOWED_ORIGINS")
[[ -z "$SESSION_TTL" ]] || env_vars+=("SESSION_TTL=$SESSION_TTL")
[[ -z "$LOG_LEVEL" ]] || env_vars+=("LOG_LEVEL=$LOG_LEVEL")
for kv in "${env_vars[@]}"; do
  [[ "$kv" != *"|"* ]] || die "a setting may not contain '|': $kv"
done

# env_list SETTING...: the settings as one --set-env-vars value.
env_list() {
  local IFS='|'
  printf '^|^%s' "$*"
}

log "Project $PROJECT, region $REGION, runtime $RUNTIME, ListMessages and Disconnect: $LIST_AUTH"
log "Each instance: $CPU vCPU, $MEMORY, up to $CONCURRENCY requests at once; up to $MAX_INSTANCES instances per function"
log "Authorize URL $AUTHORIZE_URL"
log "Callback URL  $OAUTH_REDIRECT_URL  (must be an authorized redirect URI of the OAuth client)"

IFS=',' read -r -a callers <<<"$ALLOWED_CALLERS"
for entry in "${selected[@]}"; do
  name=$(function_name "$entry")
  access=--allow-unauthenticated
  ! private "$entry" || access=--no-allow-unauthenticated
  runs_as=$SERVICE_ACCOUNT
  [[ "$entry" != Authorize ]] || runs_as=$AUTHORIZE_SERVICE_ACCOUNT
  function_env=("${env_vars[@]}")
  [[ "$LIST_AUTH" != iam ]] || function_env+=("IAM_AUDIENCE=${IAM_AUDIENCE:-$FUNCTIONS_ORIGIN/$name}")

  log "Deploying $entry as $name ($access, runs as $runs_as)"
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
    --service-account="$runs_as" \
    --build-service-account="projects/$PROJECT/serviceAccounts/$BUILD_SERVICE_ACCOUNT" \
    --docker-repository="$(docker_repository_name "$PROJECT" "$REGION" "$ARTIFACT_REPOSITORY")" \
    --concurrency="$CONCURRENCY" \
    --cpu="$CPU" \
    --memory="$MEMORY" \
    --timeout="$TIMEOUT" \
    --max-instances="$MAX_INSTANCES" \
    --set-env-vars="$(env_list "${function_env[@]}")" \
    --quiet

  if private "$entry"; then
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

# url_of ENTRY_POINT: where it is called, and how.
url_of() {
  local name
  name=$(function_name "$1")
  if private "$1"; then
    printf '%s  (private: callers send an ID token with audience %s)' "$FUNCTIONS_ORIGIN/$name" "${IAM_AUDIENCE:-$FUNCTIONS_ORIGIN/$name}"
  else
    printf '%s' "$BASE_URL/$name"
  fi
}
cat >&2 <<EOF

Deployed: ${selected[*]}
  Authorize:     $(url_of Authorize)
  Callback:      $(url_of Callback)
  ListMessages:  $(url_of ListMessages)
  Disconnect:    $(url_of Disconnect)
EOF
