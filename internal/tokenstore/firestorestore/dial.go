package firestorestore

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// DialOption is the gRPC option for the connection of the Firestore client a
// Store uses (pass it with option.WithGRPCDialOption). It reconnects after
// a broken connection from 100 ms, backing off to at most half a second
// between attempts, so that the first request after Firestore comes back
// finds the connection up again within about half a second, leaving the
// rest of the 2 s goal to the request itself on a busy instance (with a
// one-second cap, a saturated test machine once took 2.009 s). An
// instance then tries at most about twice a second while Firestore is
// away, a TCP connection each. gRPC's default backs
// off to two minutes: after an outage of a few seconds the next attempt
// could be seconds away.
//
// The client library ignores dial options when FIRESTORE_EMULATOR_HOST is
// set: it dials the emulator itself.
func DialOption() grpc.DialOption {
	return grpc.WithConnectParams(grpc.ConnectParams{
		Backoff: backoff.Config{
			BaseDelay:  100 * time.Millisecond,
			Multiplier: 1.6,
			Jitter:     0.2,
			MaxDelay:   500 * time.Millisecond,
		},
		MinConnectTimeout: 20 * time.Second, // gRPC's default
	})
}
