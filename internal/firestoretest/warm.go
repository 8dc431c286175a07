package firestoretest

import (
	"context"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// warm makes the emulator serve each kind of call the tests make once (a
// write, a transaction with a read, a query and a delete), so that the cold
// Java server loads its classes before a test runs under the functions'
// few-second store budget. The emulator's HTTP root answers well before its
// first gRPC write does: on a busy two-core machine that first write has
// taken longer than the whole budget.
func (e *emulator) warm(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := grpc.NewClient("passthrough:///"+e.host,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(ownerCreds{}),
	)
	if err != nil {
		return fmt.Errorf("warm up: dial %s: %w", e.host, err)
	}
	defer conn.Close()
	client, err := firestore.NewClient(ctx, "firestoretest-warm-up", option.WithGRPCConn(conn))
	if err != nil {
		return fmt.Errorf("warm up: %w", err)
	}
	defer client.Close()
	doc := client.Collection("warm").Doc("up")
	for {
		err = warmOnce(ctx, client, doc)
		if err == nil {
			return nil
		}
		select {
		case <-e.exited:
			return fmt.Errorf("the Firestore emulator exited while warming up: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("the Firestore emulator did not serve a write within %v: %w", timeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func warmOnce(ctx context.Context, client *firestore.Client, doc *firestore.DocumentRef) error {
	if _, err := doc.Set(ctx, map[string]any{"n": 1}); err != nil {
		return err
	}
	err := client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		if _, err := tx.Get(doc); err != nil {
			return err
		}
		return tx.Set(doc, map[string]any{"n": 2})
	})
	if err != nil {
		return err
	}
	if _, err := client.Collection("warm").Where("n", "==", 2).Documents(ctx).GetAll(); err != nil {
		return err
	}
	_, err = doc.Delete(ctx)
	return err
}
