#!/usr/bin/env bash
# Sets a Google Cloud project up for the Gmail OAuth functions, from nothing:
# APIs, the Firestore database, the two secrets, the image repository, and
# three dedicated service accounts with least privilege (one for Authorize,
# one for the other three functions, one for builds). Safe to run again: it
# creates only what is missing, re-asserts the grants, removes the broader
# grants older versions made, and never replaces the key set once one exists.
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
  --service-account=NAME    service account of Callback, ListMessages and Disconnect
                            (env SERVICE_ACCOUNT_NAME; default: $SERVICE_ACCOUNT_NAME)
  --authorize-service-account=NAME
                            service account of Authorize (env AUTHORIZE_SERVICE_ACCOUNT_NAME;
                            default: $AUTHORIZE_SERVICE_ACCOUNT_NAME)
  --build-service-account=NAME
                            service account of the builds (env BUILD_SERVICE_ACCOUNT_NAME;
                            default: $BUILD_SERVICE_ACCOUNT_NAME)
  --artifact-repository=ID  Artifact Registry repository of the images, in the region
                            (env ARTIFACT_REPOSITORY; default: $ARTIFACT_REPOSITORY)
  --client-secret-name=S    Secret Manager secret for the OAuth client (env CLIENT_SECRET_NAME; default: $CLIENT_SECRET_NAME)
  --keys-secret-name=S      Secret Manager secret for the key set (env TOKEN_KEYS_SECRET_NAME; default: $TOKEN_KEYS_SECRET_NAME)
  --deployer=MEMBER         also let MEMBER deploy the functions (and nothing more), e.g.
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
  --authorize-service-account) AUTHORIZE_SERVICE_ACCOUNT_NAME=$2 ;;
  --build-service-account) BUILD_SERVICE_ACCOUNT_NAME=$2 ;;
  --artifact-repository) ARTIFACT_REPOSITORY=$2 ;;
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
AUTHORIZE_SA_EMAIL=$(service_account_email "$AUTHORIZE_SERVICE_ACCOUNT_NAME" "$PROJECT")
BUILD_SA_EMAIL=$(service_account_email "$BUILD_SERVICE_ACCOUNT_NAME" "$PROJECT")

if [[ -n "$OAUTH_CLIENT_SECRET_FILE" ]]; then
  [[ -r "$OAUTH_CLIENT_SECRET_FILE" ]] || die "cannot read the client secret file $OAUTH_CLIENT_SECRET_FILE"
  grep -q '"web"' "$OAUTH_CLIENT_SECRET_FILE" ||
    die "$OAUTH_CLIENT_SECRET_FILE is not a client_secret.json of a 'Web application' OAuth client (no \"web\" key)"
fi
if [[ -n "$TOKEN_KEYS_FILE" ]]; then
  [[ -r "$TOKEN_KEYS_FILE" ]] || die "cannot read the key set file $TOKEN_KEYS_FILE"
  grep -q '"primary"' "$TOKEN_KEYS_FILE" || die "$TOKEN_KEYS_FILE is not a key set (no \"primary\" key)"
fi

log "Project $PROJECT, region $REGION"

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

# ensure_service_account NAME DESCRIPTION: create the service account if it is missing.
ensure_service_account() {
  local email
  email=$(service_account_email "$1" "$PROJECT")
  if query gcloud iam service-accounts describe "$email" --project="$PROJECT" >/dev/null; then
    log "  $email exists"
  else
    run gcloud iam service-accounts create "$1" \
      --display-name="Gmail OAuth functions: $1" \
      --description="$2" \
      --project="$PROJECT"
  fi
}

# grant_project MEMBER ROLE [CONDITION]: a project-level grant; with CONDITION
# (gcloud's expression=...,title=... form) it holds only where that is true.
# Retried: IAM takes a few seconds to see a service account just created.
grant_project() {
  retry 5 gcloud projects add-iam-policy-binding "$PROJECT" \
    --member="$1" \
    --role="$2" \
    --condition="${3:-None}" \
    --format=none
}

# drop_unconditional MEMBER ROLE: remove MEMBER's project-wide grant of ROLE
# that has no condition, which an older setup.sh made. Conditional grants stay.
drop_unconditional() {
  local found
  found=$(query gcloud projects get-iam-policy "$PROJECT" \
    --flatten="bindings[].members" \
    --filter="bindings.role=\"$2\" AND bindings.members=\"$1\" AND NOT bindings.condition:*" \
    --format="value(bindings.role)") || return 0
  [[ -n "$found" ]] || return 0
  log "  removing the project-wide, unconditional $2 of $1"
  run gcloud projects remove-iam-policy-binding "$PROJECT" \
    --member="$1" \
    --role="$2" \
    --condition=None \
    --format=none
}

log "Service accounts: $SA_EMAIL (Callback, ListMessages, Disconnect), $AUTHORIZE_SA_EMAIL (Authorize), $BUILD_SA_EMAIL (builds)"
ensure_service_account "$SERVICE_ACCOUNT_NAME" "Runs Callback, ListMessages and Disconnect: the two secrets and one Firestore database"
ensure_service_account "$AUTHORIZE_SERVICE_ACCOUNT_NAME" "Runs Authorize: the two secrets, no Firestore"
ensure_service_account "$BUILD_SERVICE_ACCOUNT_NAME" "Builds the functions: logs, their source objects and their image repository"

log "Least privilege: Firestore on database $FIRESTORE_DATABASE only, for $SA_EMAIL"
# Firestore's IAM takes a condition on the database's resource name
# (https://cloud.google.com/firestore/docs/manage-databases, "Configure
# per-database access permissions"): the grant reaches no other database.
grant_project "serviceAccount:$SA_EMAIL" roles/datastore.user \
  "expression=resource.name==\"projects/$PROJECT/databases/$FIRESTORE_DATABASE\",title=gmail-oauth-database,description=Firestore database $FIRESTORE_DATABASE only"
drop_unconditional "serviceAccount:$SA_EMAIL" roles/datastore.user

log "Least privilege: read access to the two secrets only, for both runtime service accounts"
for sa in "$SA_EMAIL" "$AUTHORIZE_SA_EMAIL"; do
  for secret in "$CLIENT_SECRET_NAME" "$TOKEN_KEYS_SECRET_NAME"; do
    retry 5 gcloud secrets add-iam-policy-binding "$secret" \
      --member="serviceAccount:$sa" \
      --role=roles/secretmanager.secretAccessor \
      --project="$PROJECT" \
      --format=none
  done
done

log "Image repository $ARTIFACT_REPOSITORY ($REGION)"
if query gcloud artifacts repositories describe "$ARTIFACT_REPOSITORY" --location="$REGION" --project="$PROJECT" >/dev/null; then
  log "  exists"
else
  run gcloud artifacts repositories create "$ARTIFACT_REPOSITORY" \
    --repository-format=docker \
    --location="$REGION" \
    --description="Images of the Gmail OAuth functions" \
    --project="$PROJECT"
fi

# What a build of a 2nd gen function needs, per "Configure service accounts"
# (https://cloud.google.com/functions/docs/securing/function-identity): write
# its logs, write the image (here to this one repository, which deploy.sh
# passes as --docker-repository, instead of every repository of the project),
# and read the uploaded source, from the functions' source buckets only.
log "Least privilege for builds: $BUILD_SA_EMAIL writes logs and this one repository, and reads the functions' source"
grant_project "serviceAccount:$BUILD_SA_EMAIL" roles/logging.logWriter
grant_project "serviceAccount:$BUILD_SA_EMAIL" roles/storage.objectViewer \
  "expression=resource.type == \"storage.googleapis.com/Object\" && (resource.name.startsWith(\"projects/_/buckets/gcf-v2-sources-\") || resource.name.startsWith(\"projects/_/buckets/gcf-v2-uploads-\") || resource.name.startsWith(\"projects/_/buckets/run-sources-\")),title=gmail-oauth-function-sources,description=The source objects of Cloud Functions builds only"
retry 5 gcloud artifacts repositories add-iam-policy-binding "$ARTIFACT_REPOSITORY" \
  --location="$REGION" \
  --member="serviceAccount:$BUILD_SA_EMAIL" \
  --role=roles/artifactregistry.writer \
  --project="$PROJECT" \
  --format=none

if [[ -n "$DEPLOYER" ]]; then
  # A deploy with --allow-unauthenticated (or --no-allow-unauthenticated, or
  # an invoker binding) reads and writes the IAM policy of the function's
  # Cloud Run service: run.services.getIamPolicy and setIamPolicy, which
  # roles/cloudfunctions.developer lacks. gcloud also reads the project
  # (its number) on every 2nd gen deploy. This role holds exactly that,
  # instead of roles/run.admin (which can also create, change and delete
  # every Cloud Run service and job of the project).
  log "Deployer $DEPLOYER: may deploy the functions, set who may call them, and act as the three service accounts (nothing more)"
  role_permissions=run.services.getIamPolicy,run.services.setIamPolicy,resourcemanager.projects.get
  if query gcloud iam roles describe "$INVOKER_ADMIN_ROLE" --project="$PROJECT" >/dev/null; then
    run gcloud iam roles update "$INVOKER_ADMIN_ROLE" \
      --project="$PROJECT" \
      --permissions="$role_permissions" \
      --quiet \
      --format=none
  else
    run gcloud iam roles create "$INVOKER_ADMIN_ROLE" \
      --project="$PROJECT" \
      --title="Gmail OAuth functions: invoker policy" \
      --description="Make the functions public or private and choose their callers" \
      --permissions="$role_permissions" \
      --stage=GA \
      --format=none
  fi
  for role in roles/cloudfunctions.developer "projects/$PROJECT/roles/$INVOKER_ADMIN_ROLE"; do
    run gcloud projects add-iam-policy-binding "$PROJECT" \
      --member="$DEPLOYER" \
      --role="$role" \
      --condition=None \
      --format=none
  done
  drop_unconditional "$DEPLOYER" roles/run.admin
  for sa in "$SA_EMAIL" "$AUTHORIZE_SA_EMAIL" "$BUILD_SA_EMAIL"; do
    run gcloud iam service-accounts add-iam-policy-binding "$sa" \
      --member="$DEPLOYER" \
      --role=roles/iam.serviceAccountUser \
      --project="$PROJECT" \
      --format=none
  done
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
     or, for server-to-server callers of ListMessages and Disconnect:
       deploy/deploy.sh --project=$PROJECT --region=$REGION --list-auth=iam --allowed-callers=CALLER_SA_EMAIL
  3. Open https://$REGION-$PROJECT.cloudfunctions.net/$(function_name Authorize) in a browser.
EOF
