#!/usr/bin/env bash
# Adds a fresh key to the key set secret and makes it the primary, keeping every
# old key so that tokens and cookies sealed under them still open. No redeploy:
# the functions re-read the secret after SECRET_TTL.
#
# It goes in two steps, because instances cache the key set for SECRET_TTL:
#   1. stage:   add the new key, primary unchanged (every instance learns it);
#   2. promote: after SECRET_TTL (+ a margin), make it the primary.
# Promoting at once would let an updated instance seal a token under a key that
# instances still holding the old set cannot open.
#
# Usage: deploy/rotate-keys.sh --project=PROJECT [options]   (see --help)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$SCRIPT_DIR/lib.sh"

usage() {
  cat <<EOF
Usage: deploy/rotate-keys.sh [options]

  --project=ID           Google Cloud project (env PROJECT; default: gcloud's configured project)
  --keys-secret-name=S   the key set secret (env TOKEN_KEYS_SECRET_NAME; default: $TOKEN_KEYS_SECRET_NAME)
  --key-id=ID            id of the new key (default: k<UTC time>, e.g. $(new_key_id))
  --wait-seconds=N       pause between staging and promoting: SECRET_TTL plus a margin
                         (env WAIT_SECONDS; default: 360, for the default SECRET_TTL of 5m)
  --stage-only           add the new key without promoting it; promote later with --promote=ID
  --promote=ID           only make the already staged key ID the primary
  --dry-run              print what would be changed, change nothing (env DRY_RUN=1)
  -h, --help             this help

Old keys are never removed: stored refresh tokens stay sealed under the key that
was primary when they were stored, until the user consents again.
EOF
}

PROJECT="${PROJECT:-}"
KEY_ID=""
WAIT_SECONDS="${WAIT_SECONDS:-360}"
MODE=both
PROMOTE_ID=""

split_flag_values "$@"
set -- ${ARGS[@]+"${ARGS[@]}"}
while [[ $# -gt 0 ]]; do
  case "$1" in
  -h | --help) usage; exit 0 ;;
  --dry-run) DRY_RUN=1; shift; continue ;;
  --stage-only) MODE=stage; shift; continue ;;
  esac
  [[ $# -ge 2 ]] || die "$1 needs a value (see --help)"
  case "$1" in
  --project) PROJECT=$2 ;;
  --keys-secret-name) TOKEN_KEYS_SECRET_NAME=$2 ;;
  --key-id) KEY_ID=$2 ;;
  --wait-seconds) WAIT_SECONDS=$2 ;;
  --promote) MODE=promote; PROMOTE_ID=$2 ;;
  *) die "unknown option $1 (see --help)" ;;
  esac
  shift 2
done

require_cmd gcloud "https://cloud.google.com/sdk/docs/install"
require_cmd jq "apt-get install jq, brew install jq"
require_cmd openssl
PROJECT="${PROJECT:-$(default_project)}"
[[ -n "$PROJECT" ]] || die "no project: pass --project=ID or run 'gcloud config set project ID'"
[[ "$WAIT_SECONDS" =~ ^[0-9]+$ ]] || die "--wait-seconds must be a number of seconds"

# read_key_set: the latest version of the key set, checked. It stays in memory:
# no key is ever written to disk or put on a command line.
read_key_set() {
  local ks
  ks=$(gcloud secrets versions access latest --secret="$TOKEN_KEYS_SECRET_NAME" --project="$PROJECT") ||
    die "cannot read the latest version of secret $TOKEN_KEYS_SECRET_NAME (run deploy/setup.sh first?)"
  jq -e '(.primary | type == "string") and (.keys | type == "object") and (.keys[.primary] | type == "string")' \
    >/dev/null <<<"$ks" || die "secret $TOKEN_KEYS_SECRET_NAME does not hold a key set {\"primary\":..,\"keys\":{..}}"
  printf '%s' "$ks"
}

# add_version JSON: store JSON as the new latest version of the key set.
add_version() {
  show gcloud secrets versions add "$TOKEN_KEYS_SECRET_NAME" --data-file=- --project="$PROJECT"
  if [[ "$DRY_RUN" == 1 ]]; then
    return 0
  fi
  printf '%s' "$1" | gcloud secrets versions add "$TOKEN_KEYS_SECRET_NAME" --data-file=- --project="$PROJECT"
}

stage() {
  local ks id="$1" key staged
  ks=$(read_key_set)
  if jq -e --arg id "$id" '.keys | has($id)' >/dev/null <<<"$ks"; then
    die "the key set already has a key $id"
  fi
  key=$(openssl rand -base64 32)
  staged=$(NEW_KEY="$key" jq -c --arg id "$id" '.keys[$id] = env.NEW_KEY' <<<"$ks")
  unset key
  log "Staging key $id (primary stays $(jq -r .primary <<<"$ks"); keys: $(jq -r '.keys | keys | join(", ")' <<<"$staged"))"
  add_version "$staged"
}

promote() {
  local ks id="$1" promoted
  ks=$(read_key_set)
  if [[ "$DRY_RUN" != 1 ]] && ! jq -e --arg id "$id" '.keys | has($id)' >/dev/null <<<"$ks"; then
    die "the key set has no key $id to promote (stage it first)"
  fi
  promoted=$(jq -c --arg id "$id" '.primary = $id' <<<"$ks")
  log "Promoting key $id to primary (old keys kept: $(jq -r '.keys | keys | join(", ")' <<<"$promoted"))"
  add_version "$promoted"
}

case "$MODE" in
promote)
  promote "$PROMOTE_ID"
  ;;
stage | both)
  KEY_ID="${KEY_ID:-$(new_key_id)}"
  [[ "$KEY_ID" =~ ^[A-Za-z0-9_.-]{1,64}$ ]] || die "--key-id must be 1 to 64 letters, digits, '_', '.' or '-'"
  stage "$KEY_ID"
  if [[ "$MODE" == stage ]]; then
    log "Staged. After SECRET_TTL has passed, promote it with:"
    log "  deploy/rotate-keys.sh --project=$PROJECT --keys-secret-name=$TOKEN_KEYS_SECRET_NAME --promote=$KEY_ID"
    exit 0
  fi
  if [[ "$DRY_RUN" != 1 && "$WAIT_SECONDS" -gt 0 ]]; then
    log "Waiting ${WAIT_SECONDS}s so that every instance re-reads the key set before the new key becomes primary"
    sleep "$WAIT_SECONDS"
  fi
  promote "$KEY_ID"
  ;;
esac
log "Done. The functions pick the new key set up within SECRET_TTL; nothing to redeploy."
