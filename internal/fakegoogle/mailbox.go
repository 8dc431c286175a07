package fakegoogle

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Message is a Gmail message as the fake stores it.
type Message struct {
	// ID is the message ID. SetMailbox makes one up if empty.
	ID string
	// ThreadID is the thread ID. Empty means the message's own ID.
	ThreadID string
	// From, To and Subject are the headers of the same name.
	From, To, Subject string
	// Snippet is the start of the body; the body of a made-up message is its
	// snippet.
	Snippet string
	// Date is the Date header and the internalDate. Listing is newest first.
	Date time.Time
	// LabelIDs are Gmail label IDs such as INBOX, UNREAD, SENT, SPAM, TRASH,
	// STARRED, IMPORTANT or CATEGORY_PROMOTIONS. UNREAD means unread.
	LabelIDs []string
}

// storedMessage is a Message with what listing and search need precomputed.
type storedMessage struct {
	Message
	body      string
	historyID uint64
	labels    map[string]bool
	// Lower-cased fields, for case-insensitive search.
	from, to, subject, snippet string
	// headers are the message's headers, as a get answers them.
	headers []apiHeader
	// size is the length of the message as RFC 5322, once a get has
	// needed it (0 before): Gmail stores a message's sizeEstimate rather
	// than rendering the message to answer a get.
	size atomic.Int64
}

// sizeEstimate is the message's size as RFC 5322, its sizeEstimate.
func (m *storedMessage) sizeEstimate() int {
	if n := m.size.Load(); n > 0 {
		return int(n)
	}
	n := len(rawMessage(m))
	m.size.Store(int64(n))
	return n
}

func (m *storedMessage) hasLabel(id string) bool { return m.labels[id] }

// hasLabelFold reports whether m has a label whose ID equals name ignoring
// case, as Gmail search's label: operator matches.
func (m *storedMessage) hasLabelFold(name string) bool {
	for l := range m.labels {
		if strings.EqualFold(l, name) {
			return true
		}
	}
	return false
}

// mailbox is a user's messages, newest first. It is immutable once built;
// SetMailbox replaces it as a whole.
type mailbox struct {
	msgs []*storedMessage
	byID map[string]*storedMessage
}

// compareNewestFirst orders messages by date, then ID, both descending.
func compareNewestFirst(a, b *storedMessage) int {
	if c := b.Date.Compare(a.Date); c != 0 {
		return c
	}
	return cmp.Compare(b.ID, a.ID)
}

// newMailbox stores msgs. A message whose ID repeats an earlier one is
// dropped.
func newMailbox(msgs []Message) *mailbox {
	mb := &mailbox{byID: make(map[string]*storedMessage, len(msgs))}
	for i, m := range msgs {
		m.LabelIDs = slices.Clone(m.LabelIDs)
		if m.ID == "" {
			m.ID = messageID(m.Date, uint64(i))
		}
		if m.ThreadID == "" {
			m.ThreadID = m.ID
		}
		if _, dup := mb.byID[m.ID]; dup {
			continue
		}
		sm := &storedMessage{
			Message: m,
			body:    m.Snippet,
			labels:  make(map[string]bool, len(m.LabelIDs)),
			from:    strings.ToLower(m.From),
			to:      strings.ToLower(m.To),
			subject: strings.ToLower(m.Subject),
			snippet: strings.ToLower(m.Snippet),
		}
		sm.headers = messageHeaders(&sm.Message)
		for _, l := range m.LabelIDs {
			sm.labels[l] = true
		}
		mb.byID[m.ID] = sm
		mb.msgs = append(mb.msgs, sm)
	}
	slices.SortStableFunc(mb.msgs, compareNewestFirst)
	for i, m := range mb.msgs {
		m.historyID = uint64(1000 + 7*(len(mb.msgs)-i))
	}
	return mb
}

// messageID makes a Gmail-looking ID (16 hex digits) that sorts with date.
func messageID(date time.Time, salt uint64) string {
	return fmt.Sprintf("%016x", uint64(date.UnixMilli())<<20|salt&(1<<20-1))
}

// SetMailbox replaces the user's mailbox with msgs, creating the user if
// needed. Messages without an ID get one; IDs must be unique. With
// Options.StateFile the mailbox is saved there too.
func (s *Server) SetMailbox(email string, msgs []Message) {
	mb := newMailbox(msgs)
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userLocked(email)
	u.mailbox, u.setMailbox = mb, true
	s.logSaveError(s.saveLocked())
}

// mailboxOf returns u's mailbox, seeding it on first use.
func (s *Server) mailboxOf(u *user) *mailbox {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.mailbox == nil {
		u.mailbox = newMailbox(seedMessages(u.email, s.opts.MessagesPerUser))
	}
	return u.mailbox
}
