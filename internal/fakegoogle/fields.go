package fakegoogle

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
)

// fieldMask is a partial-response selection, the "fields" parameter of
// Google's JSON APIs (https://developers.google.com/gmail/api/guides/performance#partial):
// the fields selected, each with the selection within it. A field whose
// selection is nil is selected whole; a nil mask selects everything.
type fieldMask map[string]fieldMask

// messageFields are the fields of a users.messages resource, as a mask
// that selects them all: what a "fields" selection may name.
var messageFields = fieldMask{
	"id": nil, "threadId": nil, "labelIds": nil, "snippet": nil,
	"payload":      partFields,
	"sizeEstimate": nil, "historyId": nil, "internalDate": nil, "raw": nil,
}

// partFields are the fields of a MessagePart.
var partFields = fieldMask{
	"partId": nil, "mimeType": nil, "filename": nil,
	"headers": {"name": nil, "value": nil},
	"body":    {"size": nil, "data": nil},
}

// maxFieldMasks bounds the "fields" selections a Server keeps parsed.
const maxFieldMasks = 64

// messageFieldMask returns the selection of a messages.get "fields"
// parameter, parsed once per distinct value.
func (s *Server) messageFieldMask(fields string) (fieldMask, error) {
	s.mu.Lock()
	m, ok := s.fieldMasks[fields]
	s.mu.Unlock()
	if ok {
		return m, nil
	}
	m, err := parseFields(fields, messageFields)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.fieldMasks == nil {
		s.fieldMasks = make(map[string]fieldMask)
	}
	if len(s.fieldMasks) < maxFieldMasks {
		s.fieldMasks[fields] = m
	}
	s.mu.Unlock()
	return m, nil
}

// parseFields parses a "fields" parameter: field paths separated by
// commas, where a/b selects b within a and a(b,c) selects b and c within
// a. It checks the names against schema. "" selects everything.
func parseFields(s string, schema fieldMask) (fieldMask, error) {
	if s == "" {
		return nil, nil
	}
	p := fieldParser{s: s}
	m := fieldMask{}
	if err := p.list(m, schema); err != nil {
		return nil, err
	}
	if p.i < len(s) {
		return nil, fmt.Errorf("Invalid field selection %s", s)
	}
	return m, nil
}

// fieldParser reads a "fields" parameter from s[i:].
type fieldParser struct {
	s string
	i int
}

// list reads path (',' path)* into m.
func (p *fieldParser) list(m, schema fieldMask) error {
	for {
		if err := p.path(m, schema); err != nil {
			return err
		}
		if p.i == len(p.s) || p.s[p.i] != ',' {
			return nil
		}
		p.i++
	}
}

// path reads name ('/' path | '(' list ')')? into m.
func (p *fieldParser) path(m, schema fieldMask) error {
	start := p.i
	for p.i < len(p.s) && p.s[p.i] != ',' && p.s[p.i] != '/' && p.s[p.i] != '(' && p.s[p.i] != ')' {
		p.i++
	}
	name := p.s[start:p.i]
	inner, known := schema[name]
	if !known {
		return fmt.Errorf("Invalid field selection %s", name)
	}
	if p.i == len(p.s) || (p.s[p.i] != '/' && p.s[p.i] != '(') {
		m.add(name, nil)
		return nil
	}
	if inner == nil {
		return fmt.Errorf("Invalid field selection %s: it has no fields", name)
	}
	sub := fieldMask{}
	if p.s[p.i] == '/' {
		p.i++
		if err := p.path(sub, inner); err != nil {
			return err
		}
	} else {
		p.i++
		if err := p.list(sub, inner); err != nil {
			return err
		}
		if p.i == len(p.s) || p.s[p.i] != ')' {
			return fmt.Errorf("Invalid field selection %s: missing )", name)
		}
		p.i++
	}
	m.add(name, sub)
	return nil
}

// add selects name with the selection sub within it; a field selected
// whole stays whole.
func (m fieldMask) add(name string, sub fieldMask) {
	old, ok := m[name]
	switch {
	case ok && old == nil:
	case sub == nil || !ok:
		m[name] = sub
	default:
		for k, v := range sub {
			old.add(k, v)
		}
	}
}

// sub reports whether m selects name, and the selection within it.
func (m fieldMask) sub(name string) (fieldMask, bool) {
	if m == nil {
		return nil, true
	}
	sub, ok := m[name]
	return sub, ok
}

// jsonObject appends the members of a JSON object that its mask selects.
type jsonObject struct {
	b    []byte
	mask fieldMask
	n    int // members appended
}

// begin appends the object's {.
func (o *jsonObject) begin() { o.b = append(o.b, '{') }

// end appends the object's }.
func (o *jsonObject) end() { o.b = append(o.b, '}') }

// key appends the member name's key if the mask selects it, and returns
// the selection within it.
func (o *jsonObject) key(name string) (fieldMask, bool) {
	sub, ok := o.mask.sub(name)
	if !ok {
		return nil, false
	}
	if o.n > 0 {
		o.b = append(o.b, ',')
	}
	o.n++
	o.b, _ = jsontext.AppendQuote(o.b, name)
	o.b = append(o.b, ':')
	return sub, true
}

// str appends the member name: v. Invalid UTF-8 becomes U+FFFD, as
// encoding/json makes it.
func (o *jsonObject) str(name, v string) {
	if _, ok := o.key(name); ok {
		o.b, _ = jsontext.AppendQuote(o.b, v)
	}
}

// int appends the member name: v.
func (o *jsonObject) int(name string, v int) {
	if _, ok := o.key(name); ok {
		o.b = strconv.AppendInt(o.b, int64(v), 10)
	}
}

// appendMessage appends m as JSON, the fields mask selects. Empty fields
// are left out as encoding/json's omitempty leaves them out of apiMessage.
func appendMessage(b []byte, m *apiMessage, mask fieldMask) []byte {
	o := jsonObject{b: b, mask: mask}
	o.begin()
	o.str("id", m.ID)
	o.str("threadId", m.ThreadID)
	if len(m.LabelIDs) > 0 {
		if _, ok := o.key("labelIds"); ok {
			o.b = append(o.b, '[')
			for i, l := range m.LabelIDs {
				if i > 0 {
					o.b = append(o.b, ',')
				}
				o.b, _ = jsontext.AppendQuote(o.b, l)
			}
			o.b = append(o.b, ']')
		}
	}
	o.str("snippet", m.Snippet)
	if m.Payload != nil {
		if sub, ok := o.key("payload"); ok {
			o.b = appendPart(o.b, m.Payload, sub)
		}
	}
	o.int("sizeEstimate", m.SizeEstimate)
	o.str("historyId", m.HistoryID)
	o.str("internalDate", m.InternalDate)
	if m.Raw != "" {
		o.str("raw", m.Raw)
	}
	o.end()
	return o.b
}

// appendPart appends p as JSON, the fields mask selects.
func appendPart(b []byte, p *apiPart, mask fieldMask) []byte {
	o := jsonObject{b: b, mask: mask}
	o.begin()
	o.str("partId", p.PartID)
	o.str("mimeType", p.MimeType)
	o.str("filename", p.Filename)
	if len(p.Headers) > 0 {
		if sub, ok := o.key("headers"); ok {
			o.b = append(o.b, '[')
			for i, h := range p.Headers {
				if i > 0 {
					o.b = append(o.b, ',')
				}
				ho := jsonObject{b: o.b, mask: sub}
				ho.begin()
				ho.str("name", h.Name)
				ho.str("value", h.Value)
				ho.end()
				o.b = ho.b
			}
			o.b = append(o.b, ']')
		}
	}
	if p.Body != nil {
		if sub, ok := o.key("body"); ok {
			bo := jsonObject{b: o.b, mask: sub}
			bo.begin()
			bo.int("size", p.Body.Size)
			if p.Body.Data != "" {
				bo.str("data", p.Body.Data)
			}
			bo.end()
			o.b = bo.b
		}
	}
	o.end()
	return o.b
}

// messageBuffers are the buffers writeMessage encodes in: a get is
// answered by the thousand in a batch.
var messageBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// writeMessage answers 200 with m, the fields mask selects, with the
// headers writeJSON gives.
func writeMessage(w http.ResponseWriter, m *apiMessage, mask fieldMask) {
	bp := messageBuffers.Get().(*[]byte)
	defer messageBuffers.Put(bp)
	b := append(appendMessage((*bp)[:0], m, mask), '\n')
	*bp = b
	h := w.Header()
	h["Content-Type"] = []string{"application/json; charset=utf-8"}
	h["Cache-Control"] = []string{"no-cache, no-store, max-age=0, must-revalidate"}
	h["Pragma"] = []string{"no-cache"}
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}
