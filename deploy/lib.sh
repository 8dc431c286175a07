# shellcheck shell=bash
# Helpers and shared defaults for setup.sh, deploy.sh and rotate-keys.sh.
# Sourced, never executed. Every default can be overridden by the environment
# variable of the same name, and each script also takes it as a flag.

# shellcheck disable=SC2034 # the variables below are used by the scripts that source this file
{
  REGION="${REGION:-us-central1}"
  # Callback, ListMessages and Disconnect run as this one: the two secrets and
  # the one Firestore database.
  SERVICE_ACCOUNT_NAME="${SERVICE_ACCOUNT_NAME:-gmail-oauth-fn}"
  # Authorize runs as this one: the two secrets, no Firestore (it stores nothing).
  AUTHORIZE_SERVICE_ACCOUNT_NAME="${AUTHORIZE_SERVICE_ACCOUNT_NAME:-gmail-oauth-authorize}"
  # Cloud Build builds the functions as this one: build logs, the functions'
  # source objects and their own image repository, nothing else.
  BUILD_SERVICE_ACCOUNT_NAME="${BUILD_SERVICE_ACCOUNT_NAME:-gmail-oauth-build}"
  # The Artifact Registry (Docker) repository, in the functions' region, that
  # holds the built images.
  ARTIFACT_REPOSITORY="${ARTIFACT_REPOSITORY:-gmail-oauth-functions}"
  # The custom role that lets a deployer make functions public or private
  # (setup.sh --deployer), instead of the project-wide roles/run.admin.
  INVOKER_ADMIN_ROLE="${INVOKER_ADMIN_ROLE:-gmailOAuthInvokerAdmin}"
  CLIENT_SECRET_NAME="${CLIENT_SECRET_NAME:-gmail-oauth-client}"
  TOKEN_KEYS_SECRET_NAME="${TOKEN_KEYS_SECRET_NAME:-gmail-oauth-token-keys}"
  FIRESTORE_DATABASE="${FIRESTORE_DATABASE:-(default)}"
  DRY_RUN="${DRY_RUN:-0}"
}

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
  printf 'ERROR: %s\n' "$*" >&2
  exit 1
}

# require_cmd NAME [HINT]: stop early, with a clear message, when a tool is missing.
require_cmd() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' is required but not installed${2:+ ($2)}"
}

# show prints a command so that it can be pasted back into a shell.
show() {
  printf '+' >&2
  printf ' %q' "$@" >&2
  printf '\n' >&2
}

# run executes a command that changes something. Under --dry-run it only prints it.
run() {
  show "$@"
  if [[ "$DRY_RUN" == 1 ]]; then
    return 0
  fi
  "$@"
}

# query executes a read-only command, keeping its output and hiding its errors:
# its status tells whether the thing asked about exists. It runs under --dry-run
# too; without access to the project it simply reports "absent".
query() {
  "$@" 2>/dev/null
}

# retry ATTEMPTS COMMAND...: run a changing command until it succeeds. IAM takes
# a few seconds to see a service account that was just created.
retry() {
  local attempts=$1 i
  shift
  for ((i = 1; i <= attempts; i++)); do
    if run "$@"; then
      return 0
    fi
    if ((i < attempts)); then
      warn "attempt $i of $attempts failed; trying again in $((i * 5))s"
      sleep $((i * 5))
    fi
  done
  return 1
}

# default_project prints gcloud's configured project, or nothing.
default_project() {
  local p
  p=$(gcloud config get-value project 2>/dev/null || true)
  if [[ "$p" != "(unset)" ]]; then
    printf '%s' "$p"
  fi
}

# service_account_email NAME PROJECT
service_account_email() {
  printf '%s@%s.iam.gserviceaccount.com' "$1" "$2"
}

# docker_repository_name PROJECT REGION REPOSITORY: the form --docker-repository takes.
docker_repository_name() {
  printf 'projects/%s/locations/%s/repositories/%s' "$1" "$2" "$3"
}

# secret_version_name PROJECT SECRET: the form OAUTH_CLIENT_SECRET and TOKEN_KEYS_SECRET take.
secret_version_name() {
  printf 'projects/%s/secrets/%s/versions/latest' "$1" "$2"
}

# has_enabled_version SECRET PROJECT: does the secret have a version the functions can read?
has_enabled_version() {
  local v
  v=$(query gcloud secrets versions list "$1" --project="$2" --filter="state=ENABLED" --limit=1 --format="value(name)") || return 1
  [[ -n "$v" ]]
}

# The functions: entry point (the name registered with functions.HTTP) and the
# name each is deployed under. NAME_PREFIX lets two copies share a project.
ENTRY_POINTS=(Authorize Callback ListMessages Disconnect)
NAME_PREFIX="${NAME_PREFIX-gmail-}"

# function_name ENTRY_POINT: the deployed name (Cloud Functions 2nd gen names are lower case).
function_name() {
  case "$1" in
  Authorize) printf '%sauthorize' "$NAME_PREFIX" ;;
  Callback) printf '%scallback' "$NAME_PREFIX" ;;
  ListMessages) printf '%slist-messages' "$NAME_PREFIX" ;;
  Disconnect) printf '%sdisconnect' "$NAME_PREFIX" ;;
  *) die "unknown entry point $1 (want one of ${ENTRY_POINTS[*]})" ;;
  esac
}

# new_key_id: an id for a fresh key, from the time it was made (UTC).
new_key_id() {
  date -u +k%Y%m%dT%H%M%SZ
}

# split_flag_values "$@" sets ARGS to the arguments with every --flag=value
# split into --flag value, so that scripts accept both forms.
split_flag_values() {
  ARGS=()
  local a
  for a in "$@"; do
    case "$a" in
    --*=*) ARGS+=("${a%%=*}" "${a#*=}") ;;
    *) ARGS+=("$a") ;;
    esac
  done
}
