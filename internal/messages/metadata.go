package messages

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"golang.org/x/sync/errgroup"
	"google.golang.org/api/gmail/v1"
	"google.golang.org/api/googleapi"
)

// addMetadata fetches each message's headers and snippet, at most
// c.concurrency at a time, and returns msgs in their order without the
// messages deleted since they were listed.
func (r *run) addMetadata(ctx context.Context, msgs []Message) ([]Message, error) {
	if err := r.affordable(ctx, getCost*len(msgs)); err != nil {
		return nil, err
	}
	found := make([]bool, len(msgs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.c.concurrency)
	for i := range msgs {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			m, err := r.get(gctx, msgs[i].ID)
			if err != nil || m == nil {
				return err
			}
			fillMetadata(&msgs[i], m)
			found[i] = true
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	kept := msgs[:0]
	for i, m := range msgs {
		if found[i] {
			kept = append(kept, m)
		}
	}
	return kept, nil
}

// get makes one users.messages.get call with format=metadata, retried as
// needed. A message that no longer exists gives nil and no error.
func (r *run) get(ctx context.Context, id string) (*gmail.Message, error) {
	call := r.svc.Users.Messages.Get("me", id).Context(ctx).
		Format("metadata").MetadataHeaders(metadataHeaders...).Fields(getFields)
	var m *gmail.Message
	err := r.do(ctx, "users.messages.get", getCost, func() error {
		var err error
		m, err = call.Do()
		return err
	})
	var gerr *googleapi.Error
	if errors.As(err, &gerr) && gerr.Code == http.StatusNotFound {
		return nil, nil // deleted between list and get
	}
	return m, err
}

// fillMetadata copies m's headers and snippet into dst. For a repeated
// header the first one counts.
func fillMetadata(dst *Message, m *gmail.Message) {
	dst.Snippet = m.Snippet
	if m.Payload == nil {
		return
	}
	for _, h := range m.Payload.Headers {
		if h == nil {
			continue
		}
		var field *string
		switch {
		case strings.EqualFold(h.Name, "From"):
			field = &dst.From
		case strings.EqualFold(h.Name, "To"):
			field = &dst.To
		case strings.EqualFold(h.Name, "Subject"):
			field = &dst.Subject
		case strings.EqualFold(h.Name, "Date"):
			field = &dst.Date
		default:
			continue
		}
		if *field == "" {
			*field = h.Value
		}
	}
}
