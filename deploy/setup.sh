#!/usr/bin/env bash
# Sets a Google Cloud project up for the Gmail OAuth functions, from nothing:
# APIs, the Firestore database, the two secrets, and a dedicated service
# account with least privilege. Safe to run again: it creates only what is
# missing, and never replaces the key set once one exists.
#
# Usage: deploy/setup.sh --project=PROJECT [options]   (see --help)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$SCRIPT_DIR/lib.sh"

usage() {
  cat <<EOF
Usage: deploy/setup.sh [options]

  --project=ID              Google Cloud project (env PROJECT; default: gcloud's configured project)
  --region=REGION           region of the functions (env REGION; default: $REGION)
  --firestore-location=LOC  Firestore location, e.g. us-central1, nam5, eur3
                            (env FIRESTORE_LOCATION; default: the region). Fixed once created.
  --database=ID             Firestore database id (env FIRESTORE_DATABASE; default: $FIRESTORE_DATABASE)
  --client-secret=FILE      the OAuth client's client_secret.json downloaded from the console
                            (env OAUTH_CLIENT_SECRET_FILE). Added as a new secret version.
  --keys=FILE               a key set file {"primary":"k1","keys":{"k1":"<base64 of 32 bytes>"}}
                            (env TOKEN_KEYS_FILE). Without it, a key set is generated with
                            openssl the first time only; an existing key set is never replaced.
  --service-account=NAME    name of the functions' service account (env SERVICE_ACCOUNT_NAME; default: $SERVICE_ACCOUNT_NAME)
  --client-secret-name=S    Secret Manager secret for the OAuth client (env CLIENT_SECRET_NAME; default: $CLIENT_SECRET_NAME)
  --keys-secret-name=S      Secret Manager secret for the key set (env TOKEN_KEYS_SECRET_NAME; default: $TOKEN_KEYS_SECRET_NAME)
  --deployer=MEMBER         also let MEMBER deploy the functions, e.g.
                            serviceAccount:123456789-compute@developer.gserviceaccount.com for Cloud Build
                            (env DEPLOYER)
  --dry-run                 print what would be changed, change nothing (env DRY_RUN=1)
  -h, --help                this help
EOF
}

PROJECT="${PROJECT:-}"
FIRESTORE_LOCATION="${FIRESTORE_LOCATION:-}"
OAUTH_CLIENT_SECRET_FILE="${OAUTH_CLIENT_SECRET_FILE:-}"
TOKEN_KEYS_FILE="${TOKEN_KEYS_FILE:-}"
DEPLOYER="${DEPLOYER:-}"

# Accept both --flag=value and --flag value.
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
  --firestore-location) FIRESTORE_LOCATION=$2 ;;
  --database) FIRESTORE_DATABASE=$2 ;;
  --client-secret) OAUTH_CLIENT_SECRET_FILE=$2 ;;
  --keys) TOKEN_KEYS_FILE=$2 ;;
  --service-account) SERVICE_ACCOUNT_NAME=$2 ;;
  --client-secret-name) CLIENT_SECRET_NAME=$2 ;;
  --keys-secret-name) TOKEN_KEYS_SECRET_NAME=$2 ;;
  --deployer) DEPLOYER=$2 ;;
  *) die "unknown option $1 (see --help)" ;;
  esac
  shift 2
done

require_cmd gcloud "https://cloud.google.com/sdk/docs/install"
PROJECT="${PROJECT:-$(default_project)}"
[[ -n "$PROJECT" ]] || die "no project: pass --project=ID or run 'gcloud config set project ID'"
FIRESTORE_LOCATION="${FIRESTORE_LOCATION:-$REGION}"
FIRESTORE_DATABASE="${FIRESTORE_DATABASE:-(default)}"
SA_EMAIL=$(service_account_email "$SERVICE_ACCOUNT_NAME" "$PROJECT")

if [[ -n "$OAUTH_CLIENT_SECRET_FILE" ]]; then
  [[ -r "$OAUTH_CLIENT_SECRET_FILE" ]] || die "cannot read the client secret file $OAUTH_CLIENT_SECRET_FILE"
  grep -q '"web"' "$OAUTH_CLIENT_SECRET_FILE" ||
    die "$OAUTH_CLIENT_SECRET_FILE is not a client_secret.json of a 'Web application' OAuth client (no \"web\" key)"
fi
if [[ -n "$TOKEN_KEYS_FILE" ]]; then
  [[ -r "$TOKEN_KEYS_FILE" ]] || die "cannot read the key set file $TOKEN_KEYS_FILE"
  grep -q '"primary"' "$TOKEN_KEYS_FILE" || die "$TOKEN_KEYS_FILE is not a key set (no \"primary\" key)"
fi

log "Project $PROJECT, region $REGION, service account $SA_EMAIL"

log "Enabling the APIs (the first time this takes a minute or two)"
run gcloud services enable \
  cloudfunctions.googleapis.com \
  run.googleapis.com \
  cloudbuild.googleapis.com \
  artifactregistry.googleapis.com \
  firestore.googleapis.com \
  secretmanager.googleapis.com \
  logging.googleapis.com \
  iam.googleapis.com \
  gmail.googleapis.com \
  --project="$PROJECT"

log "Firestore database $FIRESTORE_DATABASE (native mode)"
if query gcloud firestore databases describe --database="$FIRESTORE_DATABASE" --project="$PROJECT" >/dev/null; then
  log "  exists; left as it is"
else
  run gcloud firestore databases create \
    --database="$FIRESTORE_DATABASE" \
    --location="$FIRESTORE_LOCATION" \
    --type=firestore-native \
    --project="$PROJECT"
fi

# ensure_secret NAME: create the secret (automatic replication) if it is missing.
ensure_secret() {
  if query gcloud secrets describe "$1" --project="$PROJECT" >/dev/null; then
    log "  secret $1 exists"
  else
    run gcloud secrets create "$1" --replication-policy=automatic --project="$PROJECT"
  fi
}

log "Secret $CLIENT_SECRET_NAME: the OAuth client"
ensure_secret "$CLIENT_SECRET_NAME"
if [[ -n "$OAUTH_CLIENT_SECRET_FILE" ]]; then
  run gcloud secrets versions add "$CLIENT_SECRET_NAME" --data-file="$OAUTH_CLIENT_SECRET_FILE" --project="$PROJECT"
elif has_enabled_version "$CLIENT_SECRET_NAME" "$PROJECT"; then
  log "  has a version; pass --client-secret=FILE to add a new one"
else
  warn "secret $CLIENT_SECRET_NAME has no version yet: run this again with --client-secret=client_secret.json"
fi

log "Secret $TOKEN_KEYS_SECRET_NAME: the key set for tokens at rest and cookies"
ensure_secret "$TOKEN_KEYS_SECRET_NAME"
if [[ -n "$TOKEN_KEYS_FILE" ]]; then
  if has_enabled_version "$TOKEN_KEYS_SECRET_NAME" "$PROJECT"; then
    warn "replacing the key set with $TOKEN_KEYS_FILE: tokens sealed under keys it lacks will no longer open (use rotate-keys.sh to add a key)"
  fi
  run gcloud secrets versions add "$TOKEN_KEYS_SECRET_NAME" --data-file="$TOKEN_KEYS_FILE" --project="$PROJECT"
elif has_enabled_version "$TOKEN_KEYS_SECRET_NAME" "$PROJECT"; then
  log "  has a key set; left as it is (deploy/rotate-keys.sh adds a key)"
else
  require_cmd openssl
  log "  generating a key set with openssl rand (it goes straight to Secret Manager, never to disk)"
  key_id=$(new_key_id)
  key=$(openssl rand -base64 32)
  show gcloud secrets versions add "$TOKEN_KEYS_SECRET_NAME" --data-file=- --project="$PROJECT"
  if [[ "$DRY_RUN" != 1 ]]; then
    printf '{"primary":"%s","keys":{"%s":"%s"}}' "$key_id" "$key_id" "$key" |
      gcloud secrets versions add "$TOKEN_KEYS_SECRET_NAME" --data-file=- --project="$PROJECT"
  fi
  unset key
fi

log "Service account $SA_EMAIL"
if query gcloud iam service-accounts describe "$SA_EMAIL" --project="$PROJECT" >/dev/null; then
  log "  exists"
else
  run gcloud iam service-accounts create "$SERVICE_ACCOUNT_NAME" \
    --display-name="Gmail OAuth functions" \
    --description="Runs the Authorize, Callback, ListMessages and Disconnect functions" \
    --project="$PROJECT"
fi

log "Least privilege: Firestore on the project, and read access to the two secrets only"
retry 5 gcloud projects add-iam-policy-binding "$PROJECT" \
  --member="serviceAccount:$SA_EMAIL" \
  --role=roles/datastore.user \
  --condition=None \
  --format=none
for secret in "$CLIENT_SECRET_NAME" "$TOKEN_KEYS_SECRET_NAME"; do
  retry 5 gcloud secrets add-iam-policy-binding "$secret" \
    --member="serviceAccount:$SA_EMAIL" \
    --role=roles/secretmanager.secretAccessor \
    --project="$PROJECT" \
    --format=none
done

if [[ -n "$DEPLOYER" ]]; then
  log "Deployer $DEPLOYER: may deploy functions and act as $SA_EMAIL (nothing more)"
  for role in roles/cloudfunctions.developer roles/run.admin; do
    run gcloud projects add-iam-policy-binding "$PROJECT" \
      --member="$DEPLOYER" \
      --role="$role" \
      --condition=None \
      --format=none
  done
  run gcloud iam service-accounts add-iam-policy-binding "$SA_EMAIL" \
    --member="$DEPLOYER" \
    --role=roles/iam.serviceAccountUser \
    --project="$PROJECT" \
    --format=none
fi

cat >&2 <<EOF

Done. Next steps:
  1. In the Google Cloud console (APIs & Services > Credentials), make sure the OAuth
     client's "Authorized redirect URIs" contains the Callback URL
       https://$REGION-$PROJECT.cloudfunctions.net/$(function_name Callback)
     (or your custom domain's URL if you deploy with --base-url), and that the
     secret $CLIENT_SECRET_NAME has a version (--client-secret=client_secret.json).
  2. Deploy:
       deploy/deploy.sh --project=$PROJECT --region=$REGION --list-auth=session
     or, for server-to-server callers of ListMessages:
       deploy/deploy.sh --project=$PROJECT --region=$REGION --list-auth=iam --allowed-callers=CALLER_SA_EMAIL
  3. Open https://$REGION-$PROJECT.cloudfunctions.net/$(function_name Authorize) in a browser.
EOF
