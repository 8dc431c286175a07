// Package gmailoauth is the package Google's Go buildpack for Cloud Functions
// builds when `gcloud functions deploy --source=.` uploads this repository.
//
// The buildpack (GoogleCloudPlatform/buildpacks, cmd/go/functions_framework)
// always builds the package at the root of the uploaded module: it parses the
// root directory's .go files (test files included) for one package name and
// their imports, and generates a main package that blank-imports the module
// root. When those root imports contain the Functions Framework's `functions`
// package it uses its declarative template: the root package's init (here,
// through the import below) registers the functions with functions.HTTP, and
// FUNCTION_TARGET (the --entry-point) picks one of them at start-up. Without
// that import it would instead generate `userfunction.<Target>` and the build
// would fail, so both imports below are load-bearing.
//
// Every .go file in this directory must stay in package gmailoauth (no
// gmailoauth_test external test package): the buildpack rejects a directory
// with two package names.
package gmailoauth

import (
	// Selects the buildpack's declarative main template (see above).
	_ "github.com/GoogleCloudPlatform/functions-framework-go/functions"

	// Registers Authorize, Callback, ListMessages and Disconnect in its init.
	_ "github.com/gmail-oauth-functions/gmail-oauth-functions/functions"
)
