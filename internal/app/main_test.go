package app

import (
	"testing"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/firestoretest"
)

// TestMain lets the Firestore tests start the real emulator on first use
// and stops it when the tests end.
func TestMain(m *testing.M) { firestoretest.Main(m) }
