// Package secrets loads the functions' secrets (the OAuth client and the
// encryption key set) from Secret Manager, a local file or fixed bytes, and
// caches them per instance so that a rotation needs no redeploy.
//
// No error from this package carries secret content: errors name the
// source (a resource name or a file path), never the bytes read from it.
package secrets

import "context"

// Fetcher reads the current bytes of one secret.
type Fetcher interface {
	Fetch(ctx context.Context) ([]byte, error)
}

// Error reports that a secret could not be loaded or parsed. Callers can
// detect it with errors.As and answer 503 Service Unavailable.
type Error struct {
	Name string // the source: a resource name, a file path or "static"
	Err  error  // the cause; never includes the secret's content
}

// Error returns "secret NAME: CAUSE".
func (e *Error) Error() string { return "secret " + e.Name + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }
