// Package functions registers the Gmail OAuth functions with the Functions
// Framework for Go: Authorize, Callback, ListMessages and Disconnect. Each
// is a thin adapter over the instance's one app.App, which is built on the
// first request from the environment (see package config).
package functions

import (
	"log/slog"
	"os"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/app"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/logging"
)

// Names are the registered function names, which are also the entry points
// to deploy.
var Names = []string{"Authorize", "Callback", "ListMessages", "Disconnect"}

func init() {
	lazy := app.NewLazy(app.FromEnv, logging.New(os.Stdout, os.Getenv("GOOGLE_CLOUD_PROJECT"), slog.LevelInfo))
	for _, name := range Names {
		functions.HTTP(name, lazy.Handler(name))
	}
}
