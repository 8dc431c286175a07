// Package deploy holds the deployment scripts (setup.sh, deploy.sh,
// rotate-keys.sh), their guide (README.md) and the ignore file of the
// function upload. It has no code; its tests check the scripts against a
// recording gcloud and the real one, that the guide shows every gcloud
// command they run, and that the commands the guide and SECURITY.md's
// runbook show work as written.
package deploy
