package fakegoogle

import (
	"testing"
	"time"
)

func TestQueryMatching(t *testing.T) {
	now := time.Date(2025, time.March, 10, 13, 0, 0, 0, time.UTC)
	m := newMailbox([]Message{{
		ID:       "m1",
		From:     "Alice Martin <alice@example.org>",
		To:       "me@example.com",
		Subject:  "Budget: Q3 numbers",
		Snippet:  "Totals are at the bottom",
		Date:     time.Date(2025, time.March, 10, 12, 0, 0, 0, time.UTC),
		LabelIDs: []string{"INBOX", "UNREAD", "CATEGORY_UPDATES", "Label_Work"},
	}}).msgs[0]
	tests := []struct {
		q    string
		want bool
	}{
		{"", true},
		{"   ", true},
		{"budget", true},
		{"BUDGET q3", true},
		{"budget nothere", false},
		{`"q3 numbers"`, true},
		{`"numbers q3"`, false},
		{`"unterminated phrase`, false},
		{`"at the bottom`, true},
		{"from:alice", true},
		{"from:(alice martin)", true},
		{"from:(alice bob)", false},
		{"from:(alice", true},
		{`from:"alice martin"`, true},
		{"to:alice", false},
		{"subject:budget:", true}, // the colon is part of the value
		{"-from:alice", false},
		{"-nothere", true},
		{"- budget", true}, // a lone minus is ignored
		{"budget -", true},
		{"is:unread", true},
		{"is:read", false},
		{"is:unknownthing", false}, // unknown value: searched as text
		{"label:label_work", true},
		{"label:INBOX", true},
		{"category:updates", true},
		{"category:social", false},
		{"nothere OR budget", true},
		{"nothere OR alsonothere", false},
		{"OR budget", true},
		{"budget OR", true},
		{"after:2025/03/10", true},
		{"after:2025-03-11", false},
		{"before:2025/03/11", true},
		{"after:1741600000", true},
		{"newer_than:1d", true},
		{"older_than:1d", false},
		{"foo:bar", false},
		{"(budget totals)", true},
		{"(budget nothere)", false},
	}
	for _, tt := range tests {
		t.Run("q="+tt.q, func(t *testing.T) {
			if got := parseQuery(tt.q, now).match(m); got != tt.want {
				t.Fatalf("match = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestQueryAskingForSpamOrTrashOverridesTheDefault(t *testing.T) {
	tests := []struct {
		q    string
		want bool
	}{
		{"in:spam", true},
		{"in:trash", true},
		{"label:spam", true},
		{"in:anywhere", true},
		{"-in:spam", false},
		{"in:inbox", false},
		{"spam", false},
	}
	for _, tt := range tests {
		if got := parseQuery(tt.q, time.Now()).spamTrash; got != tt.want {
			t.Errorf("parseQuery(%q).spamTrash = %v, want %v", tt.q, got, tt.want)
		}
	}
}
