package messages_test

import (
	"context"
	"testing"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/messages"
)

func BenchmarkList_OnePage(b *testing.B) {
	_, srv := newFakeGmail(b, 1234)
	c := testClient(srv, newSleeper(), func(o *messages.Options) { o.QuotaPerMinute = -1 })
	hc := srv.Client()
	ctx := context.Background()
	q := messages.Query{MaxResults: 100}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.List(ctx, hc, "u", q); err != nil {
			b.Fatal(err)
		}
	}
}
