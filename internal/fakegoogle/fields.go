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

// strs appends the member name: vs, an array of strings, unless vs is
// empty.
func (o *jsonObject) strs(name string, vs []string) {
	if len(vs) == 0 {
		return
	}
	if _, ok := o.key(name); ok {
		o.b = append(o.b, '[')
		for i, v := range vs {
			if i > 0 {
				o.b = append(o.b, ',')
			}
			o.b, _ = jsontext.AppendQuote(o.b, v)
		}
		o.b = append(o.b, ']')
	}
}

// object appends the member name: an object whose members fill appends.
func (o *jsonObject) object(name string, fill func(*jsonObject)) {
	if sub, ok := o.key(name); ok {
		o.b = appendObject(o.b, sub, fill)
	}
}

// objects appends the member name: an array of n objects, the members of
// the i-th appended by fill, unless n is 0.
func (o *jsonObject) objects(name string, n int, fill func(e *jsonObject, i int)) {
	if n == 0 {
		return
	}
	if sub, ok := o.key(name); ok {
		o.b = append(o.b, '[')
		for i := range n {
			if i > 0 {
				o.b = append(o.b, ',')
			}
			o.b = appendObject(o.b, sub, func(e *jsonObject) { fill(e, i) })
		}
		o.b = append(o.b, ']')
	}
}

// appendObject appends a JSON object whose members, those mask selects,
// fill appends.
func appendObject(b []byte, mask fieldMask, fill func(*jsonObject)) []byte {
	o := jsonObject{b: append(b, '{'), mask: mask}
	fill(&o)
	return append(o.b, '}')
}

// appendMessage appends m as JSON, the fields mask selects. Empty fields
// are left out as encoding/json's omitempty leaves them out of apiMessage.
func appendMessage(b []byte, m *apiMessage, mask fieldMask) []byte {
	return appendObject(b, mask, func(o *jsonObject) {
		o.str("id", m.ID)
		o.str("threadId", m.ThreadID)
		o.strs("labelIds", m.LabelIDs)
		o.str("snippet", m.Snippet)
		if p := m.Payload; p != nil {
			o.object("payload", func(o *jsonObject) { appendPart(o, p) })
		}
		o.int("sizeEstimate", m.SizeEstimate)
		o.str("historyId", m.HistoryID)
		o.str("internalDate", m.InternalDate)
		if m.Raw != "" {
			o.str("raw", m.Raw)
		}
	})
}

// appendPart appends the members of p.
func appendPart(o *jsonObject, p *apiPart) {
	o.str("partId", p.PartID)
	o.str("mimeType", p.MimeType)
	o.str("filename", p.Filename)
	o.objects("headers", len(p.Headers), func(e *jsonObject, i int) {
		e.str("name", p.Headers[i].Name)
		e.str("value", p.Headers[i].Value)
	})
	if body := p.Body; body != nil {
		o.object("body", func(o *jsonObject) {
			o.int("size", body.Size)
			if body.Data != "" {
				o.str("data", body.Data)
			}
		})
	}
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
	setJSONHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}
