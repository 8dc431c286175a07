package fakegoogle

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// getParams are the parameters of a users.messages.get, as it reads them.
type getParams struct {
	format          string   // full, metadata, minimal or raw
	metadataHeaders []string // with format=metadata, the headers to keep
	fields          fieldMask
}

// maxGetParams bounds the distinct queries a Server keeps parsed.
const maxGetParams = 64

// parseGet parses the query of a users.messages.get, once per distinct
// query: the gets of a batch, and of one client, all carry the same one.
// The result is shared and must not be modified.
func (s *Server) parseGet(rawQuery string) (getParams, error) {
	s.mu.Lock()
	p, ok := s.parsedGets[rawQuery]
	s.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := parseGetParams(rawQuery)
	if err != nil {
		return getParams{}, err
	}
	s.mu.Lock()
	if s.parsedGets == nil {
		s.parsedGets = make(map[string]getParams)
	}
	if len(s.parsedGets) < maxGetParams {
		s.parsedGets[rawQuery] = p
	}
	s.mu.Unlock()
	return p, nil
}

// parseGetParams reads a users.messages.get query. Its errors are Gmail's
// messages for an invalid argument.
func parseGetParams(rawQuery string) (getParams, error) {
	q, _ := url.ParseQuery(rawQuery) // as Request.URL.Query: bad pairs are dropped
	p := getParams{format: strings.ToLower(q.Get("format")), metadataHeaders: q["metadataHeaders"]}
	switch p.format {
	case "":
		p.format = "full"
	case "full", "metadata", "minimal", "raw":
	default:
		return getParams{}, errors.New("Invalid value at 'format': " + strconv.Quote(q.Get("format")))
	}
	var err error
	if p.fields, err = parseFields(q.Get("fields"), messageFields); err != nil {
		return getParams{}, err
	}
	return p, nil
}
