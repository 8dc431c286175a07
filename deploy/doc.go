// Package deploy holds the deployment scripts (setup.sh, deploy.sh,
// rotate-keys.sh), their guide (README.md) and the ignore file of the
// function upload. It has no code; its tests check the scripts and that the
// guide shows every gcloud command they run.
package deploy
