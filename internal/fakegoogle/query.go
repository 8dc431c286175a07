package fakegoogle

import (
	"strconv"
	"strings"
	"time"
	"unicode"
)

// query is a parsed Gmail search (the q parameter). It matches a message when
// every clause does.
//
// Supported: plain words and "quoted phrases" (case-insensitive, against
// From, To, Subject and the snippet), from:, to:, subject: (with a word, a
// "phrase" or a (group of words)), is:unread|read|starred|important,
// in:inbox|sent|spam|trash|starred|important|anywhere, label:, category:,
// after:/before: (YYYY/MM/DD or Unix seconds), newer_than:/older_than:
// (Nd, Nm, Ny), -negation, OR between two clauses, and (groups).
type query struct {
	clauses []clause
	// spamTrash is set when the query asks for SPAM or TRASH itself, which
	// overrides includeSpamTrash=false as in Gmail.
	spamTrash bool
}

// clause is one or more alternatives (joined by OR), possibly negated.
type clause struct {
	neg  bool
	alts []predicate
}

// predicate tests one message.
type predicate func(*storedMessage) bool

func (q *query) match(m *storedMessage) bool {
	for _, c := range q.clauses {
		hit := false
		for _, p := range c.alts {
			if p(m) {
				hit = true
				break
			}
		}
		if hit == c.neg {
			return false
		}
	}
	return true
}

// searchTerm is one lexical term of a query: [-][op:]value, where value is a
// word, a "phrase" or a (group).
type searchTerm struct {
	neg   bool
	op    string
	words []string // a phrase is one word with spaces; a group is many
	raw   string   // the term as written, without the minus sign
}

// parseQuery parses q. It never fails: like Gmail, it treats what it does
// not understand as text to look for.
func parseQuery(q string, now time.Time) *query {
	terms := lexQuery(q)
	out := &query{}
	for i := 0; i < len(terms); i++ {
		t := terms[i]
		c := clause{neg: t.neg, alts: []predicate{out.predicate(t, now)}}
		for i+2 < len(terms) && terms[i+1].raw == "OR" && terms[i+1].op == "" && !terms[i+1].neg {
			c.alts = append(c.alts, out.predicate(terms[i+2], now))
			i += 2
		}
		out.clauses = append(out.clauses, c)
	}
	return out
}

// lexQuery splits q into terms.
func lexQuery(q string) []searchTerm {
	var terms []searchTerm
	rs := []rune(q)
	for i := 0; i < len(rs); {
		if unicode.IsSpace(rs[i]) {
			i++
			continue
		}
		if rs[i] == '-' && (i+1 == len(rs) || unicode.IsSpace(rs[i+1])) {
			i++ // a lone minus means nothing
			continue
		}
		var t searchTerm
		if rs[i] == '-' {
			t.neg = true
			i++
		}
		start := i
		// An op is letters and underscores followed by a colon.
		j := i
		for j < len(rs) && (unicode.IsLetter(rs[j]) || rs[j] == '_') {
			j++
		}
		if j > i && j+1 < len(rs) && rs[j] == ':' && !unicode.IsSpace(rs[j+1]) {
			t.op = strings.ToLower(string(rs[i:j]))
			i = j + 1
		}
		switch {
		case rs[i] == '"':
			end := closing(rs, i+1, '"')
			t.words = []string{string(rs[i+1 : end])}
			i = min(end+1, len(rs))
		case rs[i] == '(':
			end := closing(rs, i+1, ')')
			t.words = strings.Fields(strings.ReplaceAll(string(rs[i+1:end]), `"`, ""))
			i = min(end+1, len(rs))
		default:
			end := i
			for end < len(rs) && !unicode.IsSpace(rs[end]) {
				end++
			}
			t.words = []string{string(rs[i:end])}
			i = end
		}
		t.raw = string(rs[start:i])
		terms = append(terms, t)
	}
	return terms
}

// closing returns the index of the first close at or after i, or len(rs).
func closing(rs []rune, i int, close rune) int {
	for ; i < len(rs); i++ {
		if rs[i] == close {
			return i
		}
	}
	return len(rs)
}

// predicate compiles one term.
func (q *query) predicate(t searchTerm, now time.Time) predicate {
	words := make([]string, 0, len(t.words))
	for _, w := range t.words {
		if w = strings.ToLower(strings.TrimSpace(w)); w != "" {
			words = append(words, w)
		}
	}
	value := strings.Join(words, " ")
	field := func(get func(*storedMessage) string) predicate {
		return func(m *storedMessage) bool {
			f := get(m)
			for _, w := range words {
				if !strings.Contains(f, w) {
					return false
				}
			}
			return true
		}
	}
	switch t.op {
	case "":
		return func(m *storedMessage) bool {
			for _, w := range words {
				if !strings.Contains(m.from, w) && !strings.Contains(m.to, w) &&
					!strings.Contains(m.subject, w) && !strings.Contains(m.snippet, w) {
					return false
				}
			}
			return true
		}
	case "from":
		return field(func(m *storedMessage) string { return m.from })
	case "to":
		return field(func(m *storedMessage) string { return m.to })
	case "subject":
		return field(func(m *storedMessage) string { return m.subject })
	case "is":
		switch value {
		case "unread":
			return labelled("UNREAD")
		case "read":
			return func(m *storedMessage) bool { return !m.hasLabel("UNREAD") }
		case "starred", "important":
			return labelled(strings.ToUpper(value))
		}
	case "in", "label":
		switch value {
		case "anywhere":
			if t.op == "in" {
				q.noteSpamTrash(t)
				return func(*storedMessage) bool { return true }
			}
		case "spam", "trash":
			q.noteSpamTrash(t)
		}
		name := strings.ReplaceAll(value, " ", "-")
		return func(m *storedMessage) bool { return m.hasLabelFold(name) }
	case "category":
		name := "CATEGORY_" + strings.ToUpper(value)
		return labelled(name)
	case "after", "before":
		if d, ok := parseSearchDate(value); ok {
			if t.op == "after" {
				return func(m *storedMessage) bool { return !m.Date.Before(d) }
			}
			return func(m *storedMessage) bool { return m.Date.Before(d) }
		}
	case "newer_than", "older_than":
		if d, ok := parseSearchAge(value, now); ok {
			if t.op == "newer_than" {
				return func(m *storedMessage) bool { return m.Date.After(d) }
			}
			return func(m *storedMessage) bool { return !m.Date.After(d) }
		}
	}
	// Unknown operator or value: look for the text as written.
	text := strings.ToLower(strings.TrimPrefix(t.raw, "-"))
	return func(m *storedMessage) bool {
		return strings.Contains(m.from, text) || strings.Contains(m.to, text) ||
			strings.Contains(m.subject, text) || strings.Contains(m.snippet, text)
	}
}

// noteSpamTrash records that the query itself asks for SPAM or TRASH.
func (q *query) noteSpamTrash(t searchTerm) {
	if !t.neg {
		q.spamTrash = true
	}
}

func labelled(id string) predicate {
	return func(m *storedMessage) bool { return m.hasLabel(id) }
}

// parseSearchDate parses after:/before: values: YYYY/MM/DD, YYYY-MM-DD or
// Unix seconds. Dates are midnight UTC.
func parseSearchDate(v string) (time.Time, bool) {
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil && len(v) > 8 {
		return time.Unix(secs, 0), true
	}
	for _, layout := range []string{"2006/1/2", "2006-1-2"} {
		if d, err := time.Parse(layout, v); err == nil {
			return d, true
		}
	}
	return time.Time{}, false
}

// parseSearchAge parses newer_than:/older_than: values such as 2d, 3m, 1y and
// returns the moment that long before now.
func parseSearchAge(v string, now time.Time) (time.Time, bool) {
	if len(v) < 2 {
		return time.Time{}, false
	}
	n, err := strconv.Atoi(v[:len(v)-1])
	if err != nil || n < 0 {
		return time.Time{}, false
	}
	switch v[len(v)-1] {
	case 'd':
		return now.AddDate(0, 0, -n), true
	case 'm':
		return now.AddDate(0, -n, 0), true
	case 'y':
		return now.AddDate(-n, 0, 0), true
	}
	return time.Time{}, false
}
